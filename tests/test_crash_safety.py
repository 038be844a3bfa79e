"""Crash safety (issue 10, "Crash anywhere, run nothing wrong"): checkpoints bound to their code
and checksummed, evaluation a pure function of (model, seed), file modes that follow the umask,
one training log per attempt, and kills or races that never leave a wrong result behind."""
from __future__ import annotations

import os
import stat

import pytest

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
