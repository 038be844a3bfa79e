"""The YAML reader of every config file: strict where PyYAML is lenient.

* A key written twice in one mapping is an error naming the key and both lines (PyYAML keeps
  the last value silently). Keys brought in by a merge (``<<: *anchor``) may be overridden:
  that is what merging is for.
* Floats as YAML 1.2 and every other language write them: PyYAML follows YAML 1.1, where
  ``1e-3`` (no dot) is a *string*, so ``lr: 1e-3`` would fail a type check. Here ``1e-3``,
  ``5E+4`` and ``-2.5e-4`` are floats; ``.nan`` / ``.inf`` stay floats (the value checks reject
  them where a finite number is needed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_FLOAT_12 = re.compile(r"""^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$""")


class DuplicateKeyError(yaml.YAMLError):
    """A mapping key written twice (``key``, ``line``, ``first_line``)."""

    def __init__(self, key: Any, line: int, first_line: int):
        super().__init__(
            f"line {line}: key {key!r} appears twice in one mapping (first on line {first_line}); "
            "YAML would keep only the last value"
        )
        self.key, self.line, self.first_line = key, line, first_line


class StrictLoader(yaml.SafeLoader):
    """SafeLoader + duplicate-key errors + YAML 1.2 exponent floats."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(key, line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# a copy of the class-level resolver table, so SafeLoader itself is left as it is
StrictLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, StrictLoader.construct_mapping)


def load(text: str) -> Any:
    """Parse YAML text strictly (see the module docstring)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506  (a SafeLoader subclass)


def load_file(path: str | Path) -> Any:
    return load(Path(path).read_text(encoding="utf-8"))


def coerce_floats(obj: Any) -> Any:
    """Strings that YAML 1.2 reads as exponent floats (``"1e-3"``), as floats — for values that
    came through a YAML 1.1 parser (Snakemake's ``--config``)."""
    if isinstance(obj, dict):
        return {k: coerce_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [coerce_floats(v) for v in obj]
    if isinstance(obj, str) and _FLOAT_12.match(obj.strip()):
        return float(obj.replace("_", ""))
    return obj
