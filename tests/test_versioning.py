"""pipeline.versioning: snapshot → git clone → restore round trip leaves Snakemake nothing to do."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import versioning

SNAKEFILE = """
rule all:
    input: "results/x/a.txt", "reports/smoke/index.html"

rule make_a:
    output: "results/x/a.txt"
    params: value="alpha-42"
    shell: "mkdir -p results/x && echo {params.value} > {output}"

rule report:
    input: "results/x/a.txt"
    output: "reports/smoke/index.html"
    shell: "(echo '<html>'; cat {input}; echo '</html>') > {output}"
"""

# Generated report folders ignored by name: a wildcard like /reports/*/ hides reports/ from DVC.
GITIGNORE = "/results\n/.snakemake\n/reports/smoke/\n"


@pytest.fixture
def git_env(monkeypatch, tmp_path):
    for k, v in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),  # no user config leaks in
        "GIT_CONFIG_NOSYSTEM": "1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(versioning.ENV_REMOTE, raising=False)


def sh(*cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return sh(versioning._tool("snakemake"), *args, cwd=cwd)


def test_remote_url(monkeypatch):
    monkeypatch.delenv(versioning.ENV_REMOTE, raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    assert versioning.remote_url("~/.cache/r") == "/home/u/.cache/r"
    monkeypatch.setenv(versioning.ENV_REMOTE, "s3://bucket/$HOME-x")
    assert versioning.remote_url("~/.cache/r") == "s3://bucket//home/u-x"


def test_snapshot_clone_restore_round_trip(tmp_path, git_env):
    repo = tmp_path / "repo"
    (repo / "reports").mkdir(parents=True)
    (repo / "Snakefile").write_text(SNAKEFILE)
    (repo / ".gitignore").write_text(GITIGNORE)
    (repo / "reports" / "README.md").write_text("generated reports live here\n")
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "init", cwd=repo)
    snakemake("--cores", "1", cwd=repo)

    versioning.ensure_dvc_repo(repo)
    versioning.ensure_dvc_repo(repo)  # idempotent
    remote = tmp_path / "remote"
    written = versioning.snapshot(repo, ["results", "reports/smoke", "reports/paper"], remote=str(remote))
    assert written == ["results.dvc", "reports/smoke.dvc"]  # the missing path is skipped
    assert any(remote.rglob("*")), "nothing pushed to the remote"
    assert "rlrepro" in (repo / ".dvc" / "config.local").read_text()
    assert "rlrepro" not in (repo / ".dvc" / "config").read_text()  # remote stays local config
    with pytest.raises(RuntimeError, match="git tracks files"):
        versioning.snapshot(repo, ["reports"], remote=str(remote))
    with (repo / ".gitignore").open("a") as fh:
        fh.write("/reports/*/\n")
    with pytest.raises(RuntimeError, match="DVC would not see reports/smoke.dvc"):
        versioning.snapshot(repo, ["reports/smoke"], remote=str(remote))
    (repo / ".gitignore").write_text(GITIGNORE)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "snapshot", cwd=repo)

    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    assert not (clone / "results").exists()
    versioning.restore(clone, str(remote), [])

    for rel in ("results/x/a.txt", "reports/smoke/index.html"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes()
    dry = snakemake("-n", cwd=clone)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # DVC does not keep mtimes, and a fresh clone has no .snakemake metadata: an upstream output
    # pulled later than its downstream makes Snakemake rerun. restore()'s --touch fixes that.
    clone2 = tmp_path / "clone2"
    sh("git", "clone", "-q", str(repo), str(clone2), cwd=tmp_path)
    versioning.set_remote(clone2, str(remote))
    sh(versioning._tool("dvc"), "pull", "-q", cwd=clone2)
    earlier = time.time() - 3600  # (a future mtime would trip Snakemake's clock-skew check)
    os.utime(clone2 / "reports/smoke/index.html", (earlier, earlier))
    assert "Nothing to be done" not in snakemake("-n", cwd=clone2).stdout
    versioning.restore(clone2, str(remote), [])
    dry = snakemake("-n", cwd=clone2)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_failed_command_names_it(tmp_path, git_env):
    with pytest.raises(RuntimeError, match=r"`dvc --wait-for-lock pull"):
        versioning._dvc(tmp_path, "pull")  # not a DVC repo
