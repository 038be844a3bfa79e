"""DVC as the storage layer under Snakemake: snapshot results/reports, restore them elsewhere.

Snakemake owns the DAG; DVC only versions and ships finished artifacts (results/ files are the record).
Every function shells out to the ``dvc`` executable installed next to the running Python and
takes DVC's repo lock, so call them from one sequential step (a localrule or the CLI), never from
parallel jobs.

Restore = ``dvc pull`` + ``snakemake --touch``: DVC does not preserve mtimes and a fresh clone has
no ``.snakemake/`` metadata, so without the touch Snakemake would recompute everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ENV_REMOTE = "RLREPRO_DVC_REMOTE"
REMOTE_NAME = "rlrepro"
_TAIL = 2000  # characters of stderr quoted in errors


def _tool(name: str) -> str:
    """The executable ``name`` from this interpreter's environment (else from PATH)."""
    # Not resolved: a venv's bin/python is a symlink to the base interpreter, whose bin has no dvc.
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"`{name}` executable not found next to {sys.executable} or on PATH")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DVC_NO_ANALYTICS", "1")  # no network calls home, also before `dvc config`
    return env


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; on failure raise RuntimeError naming it with the tail of its stderr."""
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-_TAIL:]
        shown = " ".join([Path(cmd[0]).name] + cmd[1:])
        raise RuntimeError(f"`{shown}` failed (exit {proc.returncode}) in {cwd}:\n{tail}")
    return proc


def _dvc(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    # --wait-for-lock: a concurrent `dvc status` by the user should delay us, not fail us.
    return _run([_tool("dvc"), "--wait-for-lock", *args], cwd=repo_root)


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def remote_url(configured: str) -> str:
    """The DVC remote to use: ``$RLREPRO_DVC_REMOTE`` if set, else ``configured``; ~ and $VARS expanded."""
    url = os.environ.get(ENV_REMOTE) or configured
    if not url:
        raise ValueError(f"no DVC remote configured (versioning.remote in config, or ${ENV_REMOTE})")
    url = os.path.expandvars(url)
    return os.path.expanduser(url) if _is_local(url) else url


def ensure_dvc_repo(repo_root: Path) -> None:
    """``dvc init`` if ``.dvc/`` is missing (the repo must be a git work tree); analytics off."""
    repo_root = Path(repo_root)
    if not (repo_root / ".dvc").is_dir():
        top = _run(["git", "rev-parse", "--show-toplevel"], cwd=repo_root).stdout.strip()
        init = ["init"]
        if Path(top).resolve() != repo_root.resolve():
            init.append("--subdir")  # DVC project nested inside a larger git repo
        _dvc(repo_root, *init)
    config = repo_root / ".dvc" / "config"
    text = config.read_text(encoding="utf-8") if config.is_file() else ""
    if "analytics = false" not in text:
        _dvc(repo_root, "config", "core.analytics", "false")


def set_remote(repo_root: Path, url: str) -> None:
    """Make ``url`` the default remote ``rlrepro`` in ``.dvc/config.local`` (never committed).

    Local-config so each clone/user picks their own remote. A local path is made absolute
    (relative paths are taken against ``repo_root``) and created.
    """
    repo_root = Path(repo_root)
    url = remote_url(url)
    if _is_local(url):
        path = Path(url[len("file://") :] if url.startswith("file://") else url)
        if not path.is_absolute():
            # DVC would store it relative to .dvc/, which surprises; pin it instead.
            path = (repo_root / path).resolve()
        path.mkdir(parents=True, exist_ok=True)
        url = str(path)
    _dvc(repo_root, "remote", "add", "--local", "-f", "-d", REMOTE_NAME, url)


def _git_tracked(repo_root: Path, path: str) -> list[str]:
    out = _run(["git", "ls-files", "--", path], cwd=repo_root, check=False).stdout
    return [line for line in out.splitlines() if line]


def _hidden_parent(repo_root: Path, target: str) -> str | None:
    """The gitignore rule that hides a parent folder of ``<target>.dvc`` from DVC, if any.

    DVC skips folders that look gitignored when it collects ``.dvc`` files (scmrepo asks
    ``is_ignored("reports/")``), and a pattern like ``/reports/*/`` matches ``reports/`` itself
    there (as in ``git check-ignore reports/``). ``reports/smoke.dvc`` would then be silently left
    out of push and pull, so refuse up front.
    """
    parents = Path(target).parents
    for parent in reversed(list(parents)[:-1]):  # outermost first, repo root excluded
        proc = _run(
            ["git", "check-ignore", "-v", "--no-index", "--", f"{parent.as_posix()}/"],
            cwd=repo_root,
            check=False,
        )
        if proc.returncode == 0:
            return proc.stdout.strip()
    return None


def snapshot(repo_root: Path, paths: list[str], remote: str) -> list[str]:
    """``dvc add`` the existing ``paths`` (relative to ``repo_root``) and ``dvc push`` them.

    Missing paths are skipped. Returns the ``.dvc`` files written, relative to ``repo_root``;
    commit them together with the ``.gitignore`` entries DVC adds. A directory that git already
    tracks files in cannot be DVC-tracked: add ``reports/<scale>``, not ``reports/``.
    """
    repo_root = Path(repo_root)
    ensure_dvc_repo(repo_root)
    set_remote(repo_root, remote)
    targets = [p.rstrip("/") for p in paths if (repo_root / p).exists()]
    if not targets:
        return []
    for t in targets:
        rule = _hidden_parent(repo_root, t)
        if rule:
            raise RuntimeError(
                f"DVC would not see {t}.dvc: its folder is gitignored ({rule}); ignore the "
                "generated subfolders by name (e.g. /reports/small/) instead of with a wildcard"
            )
        tracked = _git_tracked(repo_root, t)
        if tracked:
            # Checked here because DVC's own message for this case is obscure.
            raise RuntimeError(
                f"cannot `dvc add {t}`: git tracks files in it ({', '.join(tracked[:3])}...); "
                "add a subdirectory instead"
            )
    _dvc(repo_root, "add", *targets)
    _dvc(repo_root, "push", "-r", REMOTE_NAME)
    return [f"{t}.dvc" for t in targets]


def restore(repo_root: Path, remote: str, snakemake_args: list[str]) -> None:
    """Pull DVC-tracked outputs from ``remote``, then ``snakemake --touch`` them current.

    ``snakemake_args`` selects the same targets/config the snapshot was made with (e.g.
    ``["--config", "scale=small"]``), so the touch covers exactly the restored outputs.
    """
    repo_root = Path(repo_root)
    ensure_dvc_repo(repo_root)
    set_remote(repo_root, remote)
    _dvc(repo_root, "pull", "-r", REMOTE_NAME)
    _run([_tool("snakemake"), "--touch", "--cores", "1", *snakemake_args], cwd=repo_root)
