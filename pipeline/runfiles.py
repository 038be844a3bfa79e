"""Reading what the pipeline wrote: the one reader of run files (curve.csv, eval.json,
config.yaml, manifest.json), shared by aggregation, tracking and the report.

Readers never crash on a missing or damaged file: they return ``None`` (or empty) and let the
caller decide, because one bad run must not stop a paper's aggregate. pandas is imported only
by :func:`read_curve` (training jobs import this module through tracking and need no pandas).
"""

from __future__ import annotations

import csv
import json
import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from pipeline import layout

if TYPE_CHECKING:
    import pandas as pd


def as_float(value: Any) -> float | None:
    """A real number (bools and NumPy scalars included) or a numeric string as a float;
    ``None`` for anything else (None, "", lists, tensors: callers unwrap those themselves)."""
    if isinstance(value, (numbers.Real, str)):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def to_float(value: Any) -> float:
    """Like :func:`as_float`, with NaN for "not a number" (for arrays)."""
    f = as_float(value)
    return math.nan if f is None else f


def ordered(preferred: Iterable[str], found: Iterable[str]) -> list[str]:
    """The names in ``found``: those the config lists first, in config order, then the rest sorted.

    Results files are written with sorted keys; tables and aggregates follow the paper config."""
    found = set(found)
    first = [name for name in dict.fromkeys(preferred) if name in found]
    return first + sorted(found - set(first))


def read_json(path: Path) -> dict:
    """A JSON object file; ``{}`` if the file is absent."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh) or {}


def read_curve_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """curve.csv as written: its columns and its rows of text cells (``[], []`` if absent)."""
    path = Path(path)
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def read_curve(path: Path) -> "pd.DataFrame | None":
    """curve.csv indexed by step, numeric; None if absent or unreadable (never crash)."""
    import numpy as np
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if "step" not in df.columns:
        return None
    df = df.apply(pd.to_numeric, errors="coerce")
    df = df[np.isfinite(df["step"])]
    df["step"] = df["step"].astype("int64")
    # A resumed run may log a step twice; the later row wins.
    return df.drop_duplicates("step", keep="last").set_index("step").sort_index()


def read_final_metrics(path: Path, untrained: bool = False) -> dict[str, float] | None:
    """eval.json["metrics"] as {name: float} (non-numeric entries dropped); None if absent.
    ``untrained``: the same evaluation of the step-0 agent (eval.json["untrained"]["metrics"])."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        metrics = (doc.get("untrained") or {}).get("metrics") if untrained else doc.get("metrics", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    if not isinstance(metrics, dict):
        return None
    return {str(k): to_float(v) for k, v in metrics.items() if isinstance(v, (int, float)) or v is None}


class RunFiles:
    """Everything a finished run directory holds, read once (model.pt excepted).

    ``columns``/``rows`` are curve.csv as text (see :func:`read_curve_rows`); a directory
    without config.yaml is not a run directory and raises ``FileNotFoundError``."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        cfg_path = self.dir / layout.CONFIG
        if not cfg_path.is_file():
            raise FileNotFoundError(f"not a run directory (no {layout.CONFIG}): {self.dir}")
        with open(cfg_path, encoding="utf-8") as fh:
            self.config: dict = yaml.safe_load(fh) or {}
        self.manifest = read_json(self.dir / layout.MANIFEST)
        self.eval = read_json(self.dir / layout.EVAL)
        self.columns, self.rows = read_curve_rows(self.dir / layout.CURVE)

    def has(self, name: str) -> bool:
        return (self.dir / name).is_file()
