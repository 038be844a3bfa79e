"""Thin variants (methods/common/variants.py): one table per family, each entry its own method,
hashed on its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import methods
from methods.common.variants import make_variant

REPO = Path(__file__).resolve().parent.parent
VARIANTS = sorted(m for m in methods.names() if methods.variant_of(m))


def test_the_tables_hold_the_config_only_variants():
    assert {"vdn", "qmix_nops", "qmix_rlx2", "res_nops", "matd3_ens", "matd3_snp"} <= set(VARIANTS)
    assert not methods.variant_of("qmix") and not methods.variant_of("mast")


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variant_is_its_base_with_the_entry_s_defaults(name):
    import importlib

    table, entry = methods.variant_of(name)
    spec = importlib.import_module(table).VARIANTS[entry]
    base, variant = methods.load(spec["base"]), methods.load(name)
    assert variant is methods.load(name)  # one Config class per process
    assert variant.train is base.train and variant.evaluate is base.evaluate
    assert issubclass(variant.Config, base.Config)
    a, b = base.Config().to_dict(), variant.Config().to_dict()
    assert {k for k in a if a[k] != b[k]} <= set(spec["settings"])
    assert {k: b[k] for k in spec["settings"]} == spec["settings"]
    assert variant.Config.CONSTRAINTS == base.Config.CONSTRAINTS  # the same value bounds apply
    with pytest.raises(ValueError):
        variant.Config(iterations=0)


def test_a_bad_entry_names_the_variant_and_the_field():
    base = methods.load("qmix")
    with pytest.raises(ValueError, match=r"variant 'x'.*hiden_dim not a field"):
        make_variant("x", base, {"base": "qmix", "settings": {"hiden_dim": 8}, "what": ""})
    with pytest.raises(ValueError, match=r"variant 'x': settings.env_kwargs: a scalar"):
        make_variant("x", base, {"base": "qmix", "settings": {"env_kwargs": {}}, "what": ""})
    with pytest.raises(ValueError, match="exactly the keys"):
        make_variant("x", base, {"base": "qmix", "settings": {}})


def test_each_entry_is_hashed_on_its_own(tmp_path):
    """Editing one entry reruns that variant's runs only; its prose none; its base all of them."""
    from pipeline.codehash import method_code_hash

    for d in ("methods", "envs", "pipeline"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    names = ("qmix", "vdn", "qmix_nops", "qmix_fups")

    def hashes() -> dict[str, str]:
        return {m: method_code_hash(m, "mpe", tmp_path) for m in names}

    before = hashes()
    assert len(set(before.values())) == len(names)
    table = tmp_path / "methods/marl/value/variants.py"
    text = table.read_text()
    table.write_text(text.replace("VDN (Sunehag et al. 2018)", "VDN (Sunehag et al., 2018)"))
    assert hashes() == before
    table.write_text(text.replace('"settings": {"mixer": "vdn"}', '"settings": {"mixer": "vdn", "hidden_dim": 32}'))
    after = hashes()
    assert after["vdn"] != before["vdn"] and {m: after[m] for m in names if m != "vdn"} == {
        m: before[m] for m in names if m != "vdn"
    }
    learner = tmp_path / "methods/marl/value/learner.py"
    learner.write_text(learner.read_text() + "\n# an edit\n")
    edited = hashes()
    assert all(edited[m] != after[m] for m in names)
