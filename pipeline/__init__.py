"""rl-repro orchestration: config, run contract, statistics, figures, claims, report, tracking."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
