"""Where every file of the workflow lives: the one owner of the results/ and reports/ layout.

::

    <results>/<scale>/_envs/<env_key>/info.json                  setup (+ the env's cached assets)
    <results>/<scale>/<paper>/<experiment>/<method>/seed<k>/     one run (RUN_FILES)
    <results>/<scale>/<paper>/_stages/<stage id>/                 a stage several runs read (TRAIN_FILES)
    <results>/<scale>/<paper>/summary.csv, stats.json            aggregate
    <results>/<scale>/<paper>/claims.json                        claims
    <results>/<scale>/_tracking/store.json, registered.json      init_tracking, register (MLflow)
    <reports>/<scale>/<paper>/<figure>.png, .pdf                 figures
    <reports>/<scale>/index.html                                 report
    <work>/ckpt/<run key>/latest.pt                              resumable checkpoint (undeclared)
    logs/<scale>/...                                             job logs

Nothing here reads the config or the disk: every function takes plain strings, so the Snakemake
rules call the same functions with wildcard patterns (``"{scale}"``, ``"{seed}"``) that the
command line calls with values, and no path is ever parsed back into its parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# ---- the files of one run directory
CONFIG = "config.yaml"  # the resolved run config
MANIFEST = "manifest.json"  # versions, git state, device, host, times, resumed_from
CURVE = "curve.csv"  # one row per evaluation point
MODEL = "model.pt"  # the trained model
EVAL = "eval.json"  # final metrics (evaluate)
TRAIN_FILES = (CONFIG, MANIFEST, CURVE, MODEL)
RUN_FILES = TRAIN_FILES + (EVAL,)
CHECKPOINT = "latest.pt"

# ---- per-paper and per-scale files
ENV_INFO = "info.json"
SUMMARY = "summary.csv"
STATS = "stats.json"
CLAIMS = "claims.json"
REPORT = "index.html"
FIGURE_FORMATS = ("png", "pdf")
ENVS_DIR = "_envs"
TRACKING_DIR = "_tracking"

# The MLflow tag that carries a run's key: live logging sets it, `register` finds runs by it.
RUN_KEY_TAG = "rlrepro.run_key"


def run_name(experiment: str, method: str, seed: int | str) -> str:
    """A run's name inside its paper (also the MLflow run name)."""
    return f"{experiment}/{method}/seed{seed}"


def _in_paper(paper: str, experiment: str, method: str, seed: int | str) -> str:
    return f"{paper}/{run_name(experiment, method, seed)}"


def run_key(scale: str, paper: str, experiment: str, method: str, seed: int | str) -> str:
    """``<scale>/<paper>/<experiment>/<method>/seed<k>``: a run's identity and its directory
    below the results root (also its checkpoint directory below ``work/ckpt``)."""
    return f"{scale}/{_in_paper(paper, experiment, method, seed)}"


STAGES_DIR = "_stages"


def stage_key(scale: str, paper: str, stage_id: str) -> str:
    """``<scale>/<paper>/_stages/<stage id>``: a stage's identity and its directory below the
    results root (also its checkpoint directory below ``work/ckpt``); experiment ids cannot begin
    with ``_``, so it never meets a run's directory."""
    return f"{scale}/{paper}/{STAGES_DIR}/{stage_id}"


GROUPS_DIR = "_groups"


def group_key(scale: str, paper: str, experiment: str, method: str, first: int | str, last: int | str) -> str:
    """``<scale>/<paper>/_groups/<experiment>/<method>/seeds<first>-<last>``: a seed group's
    directory (pipeline.config.GroupJob; also its checkpoint directory below ``work/ckpt``)."""
    return f"{scale}/{paper}/{GROUPS_DIR}/{experiment}/{method}/seeds{first}-{last}"


def group_member(group: str, seed: int | str) -> str:
    """Where a group job writes one seed's run files, below the group's directory."""
    return f"{group}/seed{seed}"


def figure_name(figure_id: str, fmt: str = "png") -> str:
    return f"{figure_id}.{fmt}"


@dataclass(frozen=True)
class Layout:
    """The paths below one results root and one reports root."""

    results: Path = Path("results")
    reports: Path = Path("reports")
    work: Path = Path("work")
    logs: Path = Path("logs")

    # all four default to the repository's own folders, relative to the working directory
    def __post_init__(self) -> None:
        for name in ("results", "reports", "work", "logs"):
            object.__setattr__(self, name, Path(getattr(self, name)))

    # ---- runs
    def run_dir(self, key: str) -> Path:
        return self.results / key

    def run_file(self, key: str, name: str) -> Path:
        return self.run_dir(key) / name

    def stage_log(self, stage: str, scale: str, paper: str, stage_id: str) -> Path:
        """``logs/<scale>/<stage>/<paper>/_stages/<stage id>.log``"""
        return self.logs / scale / stage / paper / STAGES_DIR / f"{stage_id}.log"

    def group_log(self, scale: str, paper: str, experiment: str, method: str, first: str, last: str) -> Path:
        """``logs/<scale>/train_group/<paper>/<experiment>/<method>/seeds<first>-<last>.log``"""
        return self.logs / scale / "train_group" / paper / experiment / method / f"seeds{first}-{last}.log"

    def checkpoint_dir(self, key: str) -> Path:
        return self.work / "ckpt" / key

    # ---- environments
    def env_dir(self, scale: str, env_key: str) -> Path:
        return self.results / scale / ENVS_DIR / env_key

    def env_info(self, scale: str, env_key: str) -> Path:
        return self.env_dir(scale, env_key) / ENV_INFO

    # ---- per paper
    def paper_dir(self, scale: str, paper: str) -> Path:
        return self.results / scale / paper

    def summary(self, scale: str, paper: str) -> Path:
        return self.paper_dir(scale, paper) / SUMMARY

    def stats(self, scale: str, paper: str) -> Path:
        return self.paper_dir(scale, paper) / STATS

    def claims(self, scale: str, paper: str) -> Path:
        return self.paper_dir(scale, paper) / CLAIMS

    def figure_dir(self, scale: str, paper: str) -> Path:
        return self.reports / scale / paper

    def figure(self, scale: str, paper: str, figure_id: str, fmt: str = "png") -> Path:
        return self.figure_dir(scale, paper) / figure_name(figure_id, fmt)

    # ---- per scale
    def scale_reports(self, scale: str) -> Path:
        return self.reports / scale

    def report(self, scale: str) -> Path:
        return self.scale_reports(scale) / REPORT

    def tracking_store(self, scale: str) -> Path:
        """Marker: the MLflow store of this scale is initialised."""
        return self.results / scale / TRACKING_DIR / "store.json"

    def tracking_registered(self, scale: str) -> Path:
        """Marker: every finished run of this scale is registered in MLflow."""
        return self.results / scale / TRACKING_DIR / "registered.json"

    # ---- logs
    def run_log(self, stage: str, scale: str, paper: str, experiment: str, method: str, seed: int | str) -> Path:
        """``logs/<scale>/<stage>/<paper>/<experiment>/<method>/seed<k>.log``"""
        return self.logs / scale / stage / f"{_in_paper(paper, experiment, method, seed)}.log"

    def log(self, *parts: str) -> Path:
        """``logs/<parts...>.log`` (the last part names the file)."""
        *dirs, name = parts
        return self.logs.joinpath(*dirs, f"{name}.log")
