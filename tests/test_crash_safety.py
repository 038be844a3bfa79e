"""Crash safety (issue 10, "Crash anywhere, run nothing wrong"): checkpoints bound to their code
and checksummed, evaluation a pure function of (model, seed), file modes that follow the umask,
one training log per attempt, and kills or races that never leave a wrong result behind."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from conftest import REPO
from pipeline import io as pio


# ------------------------------------------------------------------------------------ umask
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        paths = [pio.atomic_write_text(tmp_path / "a.txt", "x"),
                 pio.atomic_write_bytes(tmp_path / "b.bin", b"x"),
                 pio.atomic_write_json(tmp_path / "sub" / "c.json", {"a": 1})]
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == mode, p


# ------------------------------------------------------------------------ code hash
def test_code_hash_covers_the_run_contract(tmp_path):
    from pipeline.codehash import method_code_hash

    for d in ("methods", "envs", "pipeline"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    before = {m: method_code_hash(m, "hypergrid", tmp_path) for m in ("db", "tb")}
    for f in ("pipeline/run.py", "methods/common/runapi.py"):
        (tmp_path / f).write_text((tmp_path / f).read_text() + "\n# an edit\n")
        after = {m: method_code_hash(m, "hypergrid", tmp_path) for m in ("db", "tb")}
        assert all(after[m] != before[m] for m in after), f
        before = after
    (tmp_path / "methods/gfn/tb.py").write_text((tmp_path / "methods/gfn/tb.py").read_text() + "\n# x\n")
    assert method_code_hash("db", "hypergrid", tmp_path) == before["db"]   # per-method reruns kept
    assert method_code_hash("tb", "hypergrid", tmp_path) != before["tb"]
