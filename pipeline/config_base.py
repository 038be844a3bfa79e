"""What every configuration check shares: the error type, the schema validator, the YAML loader
and the one rule that layers a paper's hyper-parameter overrides. ``pipeline/config.py`` (the
workflow and its jobs) and ``pipeline/paper_checks.py`` (a paper config's cross-field checks)
both build on this module and not on each other's internals.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline import yamlio

SCALES = ("smoke", "small", "paper")
SCHEMA_DIR = Path(__file__).parent / "schemas"
# where a validated paper document carries its methods' stage specs (pipeline/paper_checks.py puts
# them there from each method's Config, so the Snakefile plans stages without importing a method)
STAGE_PLAN = "stage_plan"
# where it carries, per experiment and scale with seed_batch > 1, the methods whose seeds train
# together (their module has ``train_group``), for the same reason
SEED_GROUPS = "seed_groups"


class ConfigError(ValueError):
    """A configuration problem, phrased as '<file>: <field>: <what is wrong>'."""


def fail(file: str | Path, field: str, msg: str) -> None:
    raise ConfigError(f"{file}: {field}: {msg}")


def schema(name: str) -> dict:
    return yaml.safe_load((SCHEMA_DIR / f"{name}.schema.yaml").read_text())


def field_path(err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else "?"
        return f"{path}.{missing}" if path else missing
    if err.validator == "additionalProperties" and "'" in err.message:
        extra = err.message.split("'")[1]
        return f"{path}.{extra}" if path else extra
    return path or "(top level)"


def describe(err: jsonschema.ValidationError) -> str:
    if err.validator == "required":
        return "missing required field"
    if err.validator == "additionalProperties":
        return "unknown field"
    if err.validator == "type":
        return f"must be of type {err.validator_value} (got {err.instance!r})"
    if err.validator in ("minimum", "exclusiveMinimum"):
        return (
            f"must be >= {err.validator_value} (got {err.instance!r})"
            if err.validator == "minimum"
            else f"must be > {err.validator_value} (got {err.instance!r})"
        )
    if err.validator == "enum":
        return f"must be one of {err.validator_value} (got {err.instance!r})"
    return err.message


def validate_schema(doc: Any, schema_name: str, file: str | Path) -> None:
    validator = jsonschema.Draft202012Validator(schema(schema_name))
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        e = errors[0]
        fail(file, field_path(e), describe(e))


def fill_defaults(doc: dict, schema: dict) -> dict:
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub and key not in doc:
            doc[key] = copy.deepcopy(sub["default"])
        if sub.get("type") == "object" and "properties" in sub:
            doc[key] = fill_defaults(dict(doc.get(key) or {}), sub)
    return doc


def load_yaml(path: Path) -> Any:
    try:
        return yamlio.load_file(path)
    except yamlio.DuplicateKeyError as exc:
        raise ConfigError(
            f"{path}: {exc.key} (line {exc.line}): written twice in one mapping (first on line "
            f"{exc.first_line}); YAML would silently keep the last value"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: (file): not valid YAML: {exc}") from exc


def require_unique(path: str | Path, field: str, items: list[Any], what: str) -> None:
    seen: set = set()
    for i, item in enumerate(items):
        if item in seen:
            fail(path, f"{field}[{i}]", f"{what} {item!r} is listed twice")
        seen.add(item)


# ------------------------------------------------------------------------ top level


def overrides_with_provenance(exp: dict, scale: str, method: str) -> dict[str, tuple[Any, str]]:
    """The one merge rule for a paper's hyper-parameter overrides: the experiment's, then the
    scale's, each ``all`` before the method's own; ``{key: (value, where it was set)}`` with
    ``where`` a field path of the experiment (``overrides.all``, ``scales.small.overrides.tb``)."""
    out: dict[str, tuple[Any, str]] = {}
    scale_cfg = (exp.get("scales") or {}).get(scale) or {}
    for where, layer in (
        ("overrides", exp.get("overrides") or {}),
        (f"scales.{scale}.overrides", scale_cfg.get("overrides") or {}),
    ):
        for target in ("all", method):
            for key, value in (layer.get(target) or {}).items():
                out[key] = (value, f"{where}.{target}")
    return out


def merged_overrides(exp: dict, scale: str, method: str) -> dict:
    """Hyper-parameters of ``method`` the paper config sets (overrides_with_provenance's values)."""
    return {key: value for key, (value, _) in overrides_with_provenance(exp, scale, method).items()}


# ------------------------------------------------------------------ scale-aware wording
# A claim's statement or a figure's title may say what a scale runs instead of the paper's word
# ("largest grid" is 16x16 at small): ``{grid_large.height}`` is experiment grid_large's env
# kwarg ``height`` at the scale being reported.
_SCALE_FIELD = re.compile(r"\{(\w+)\.(\w+)\}")


def scale_placeholders(text: str) -> list[tuple[str, str]]:
    """The ``(experiment, env kwarg)`` pairs a text refers to."""
    return _SCALE_FIELD.findall(text or "")


def at_scale(text: str, paper_cfg: dict, scale: str) -> str:
    """``text`` with each ``{experiment.kwarg}`` replaced by its value at ``scale`` (left as it
    is where the scale does not define it: the check of paper_checks.py stops that earlier)."""

    def value(m: re.Match) -> str:
        exp = (paper_cfg.get("experiments") or {}).get(m.group(1)) or {}
        kwargs = ((exp.get("scales") or {}).get(scale) or {}).get("env_kwargs") or {}
        return str(kwargs[m.group(2)]) if m.group(2) in kwargs else m.group(0)

    return _SCALE_FIELD.sub(value, text) if text else text
