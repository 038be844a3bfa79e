"""Thin variants: a registered method whose only difference from another is a few ``Config``
defaults (a parameter-sharing scheme, a mixer, a topology rule). Each family keeps them as one
table of plain data (``methods/marl/value/variants.py``, ``methods/marl/actor_critic/variants.py``)
instead of a module per variant; the registry (``methods/__init__.py``) names an entry as
``"<table module>:<entry>"`` and :func:`make_variant` turns it into a method module.

An entry is ``{"base": <registered method>, "settings": {field: value}, "what": <one paragraph>}``.
The code hash of a variant's runs is its base's plus the entry's own ``base`` and ``settings``
(``pipeline/codehash.py``), so editing one entry reruns that variant's runs only.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

ENTRY_KEYS = ("base", "settings", "what")


def check_entry(name: str, entry: dict[str, Any]) -> None:
    """An entry's shape: exactly base/settings/what, scalar settings (a mutable default would be
    shared between configs)."""
    if not isinstance(entry, dict) or set(entry) != set(ENTRY_KEYS):
        raise ValueError(f"variant {name!r}: an entry has exactly the keys {ENTRY_KEYS}")
    for key, value in entry["settings"].items():
        if not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"variant {name!r}: settings.{key}: a scalar default (got {type(value).__name__})")


def make_variant(name: str, base: ModuleType, entry: dict[str, Any]) -> ModuleType:
    """The method module of variant ``name``: ``Config`` is ``base.Config`` with the entry's
    defaults, ``train`` / ``evaluate`` are the base method's."""
    check_entry(name, entry)
    fields = {f.name: f for f in dataclasses.fields(base.Config)}
    unknown = sorted(set(entry["settings"]) - set(fields))
    if unknown:
        raise ValueError(f"variant {name!r}: {', '.join(unknown)} not a field of {base.__name__}.Config")
    module = ModuleType(f"{base.__name__}[{name}]", entry["what"])
    config = dataclasses.make_dataclass(
        "Config",
        [(k, fields[k].type, dataclasses.field(default=v)) for k, v in entry["settings"].items()],
        bases=(base.Config,),
        namespace={
            "__doc__": entry["what"],
            # dataclasses resolves the (string) annotations there
            "__module__": base.Config.__module__,
        },
    )
    module.Config, module.train, module.evaluate = config, base.train, base.evaluate
    return module
