"""Atomic file writes: a reader (or a killed job) never sees a half-written file."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # os.umask can only be read by setting it; the lock keeps our own threads from
    # creating files in between (the window is two syscalls long)
    with _umask_lock:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The file gets the mode a plain ``open()`` would give it (0o666 & ~umask): mkstemp creates
    its file 0600, which would hide results from the rest of a cluster group."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


class ChecksumError(ValueError):
    """A file does not match its checksum sidecar (damaged, truncated, or never verified)."""


def checksum_path(path: str | Path) -> Path:
    """The sha256 sidecar of ``path``: ``<path>.sha256``, one accepted hex digest per line."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _digests(sidecar: Path) -> list[str]:
    try:
        lines = sidecar.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return []
    return [d for d in lines if len(d) == 64 and all(c in "0123456789abcdef" for c in d)]


def atomic_write_checked(path: str | Path, data: bytes) -> Path:
    """Write ``data`` atomically with a sha256 sidecar that :func:`read_checked` verifies.

    Three atomic steps, so that a kill between any two leaves a pair that still verifies: the
    sidecar first accepts the new digest as well as the old ones, then the data is replaced,
    then the sidecar accepts the new digest only."""
    path = Path(path)
    side = checksum_path(path)
    new = hashlib.sha256(data).hexdigest()
    accepted = list(dict.fromkeys([new, *(_digests(side) if path.exists() else [])]))
    atomic_write_text(side, "".join(f"{d}\n" for d in accepted))
    atomic_write_bytes(path, data)
    if accepted != [new]:
        atomic_write_text(side, new + "\n")
    return path


def read_checked(path: str | Path) -> bytes:
    """The bytes of ``path``, verified against its sidecar; :class:`ChecksumError` if they
    do not match or the sidecar is missing."""
    path = Path(path)
    data = path.read_bytes()
    side = checksum_path(path)
    accepted = _digests(side)
    if not accepted:
        raise ChecksumError(f"no valid checksum in {side}")
    actual = hashlib.sha256(data).hexdigest()
    if actual not in accepted:
        raise ChecksumError(
            f"sha256 of its {len(data)} bytes is {actual[:16]}..., {side.name} expects {accepted[0][:16]}..."
        )
    return data


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
