from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RLREPRO_DATA_MIRROR", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

# what a workspace copy needs to run the workflow
WORKSPACE_ITEMS = (
    "Snakefile",
    "pipeline",
    "methods",
    "envs",
    "config",
    "profiles",
    "dvc.yaml",
    "reports/README.md",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
)


def make_workspace(dest: Path) -> Path:
    """Copy the workflow into `dest` (a git repo), so tests never touch the real results/."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in WORKSPACE_ITEMS:
        src = REPO / item
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    env = git_env()
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "workspace"], cwd=dest, check=True, env=env)
    return dest


def git_env() -> dict:
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t.invalid", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t.invalid"
    )
    return env


def snakemake(ws: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run([str(exe), *args], cwd=ws, capture_output=True, text=True, env=git_env())
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{failed_job_logs(ws, proc.stdout + proc.stderr)}"
            f"\n--- snakemake's last lines ---\n{proc.stderr[-3000:]}"
        )
    return proc


def failed_job_logs(ws: Path, output: str, tail: int = 2500) -> str:
    """Each failed job's 'Error in rule' block and the end of its log file.

    The end of snakemake's own output only says that some job failed; the failing job and its
    traceback are hundreds of lines further up, beyond what CI shows.
    """
    lines, parts = output.splitlines(), []
    for i, line in enumerate(lines):
        if not line.startswith("Error in rule"):
            continue
        block = [line]
        for follow in lines[i + 1 : i + 15]:
            if not follow.strip():
                break
            block.append(follow)
            if follow.strip().startswith("log:"):
                for log in follow.split(":", 1)[1].split("(")[0].split(","):
                    path = ws / log.strip()
                    if log.strip() and path.is_file():
                        block.append(f"--- {log.strip()} ---\n{path.read_text(errors='replace')[-tail:]}")
        parts.append("\n".join(block))
    return "\n\n".join(parts) or "(no 'Error in rule' block in snakemake's output)"


def planned_jobs(ws: Path, *args: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run would execute."""
    out = snakemake(ws, "-n", *args).stdout
    jobs, rule = [], None
    for line in out.splitlines():
        s = line.strip()
        if s.startswith(("rule ", "localrule ")) and s.endswith(":"):
            rule = s.split()[1].rstrip(":")
            jobs.append((rule, {}))
        elif s.startswith("wildcards:") and rule is not None:
            jobs[-1] = (rule, dict(kv.split("=", 1) for kv in s[len("wildcards:") :].strip().split(", ")))
    return jobs


@pytest.fixture(scope="session")
def smoke_workspace(tmp_path_factory) -> Path:
    """A workspace where the full smoke DAG has run once (shared by the DAG tests)."""
    ws = make_workspace(tmp_path_factory.mktemp("ws") / "repo")
    snakemake(ws, "--cores", "2", "--config", "scale=smoke")
    return ws
