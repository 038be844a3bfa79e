"""Bad input stops before any job with a message naming the file and the field."""
import copy
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_workspace, snakemake
from pipeline import config as pc

EGFN = yaml.safe_load((REPO / "config/papers/egfn.yaml").read_text())


def write_paper(tmp_path: Path, doc: dict) -> Path:
    d = tmp_path / "papers"
    d.mkdir(exist_ok=True)
    p = d / "egfn.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def mutate(fn):
    doc = copy.deepcopy(EGFN)
    fn(doc)
    return doc


CASES = {
    "unknown method": (lambda d: d["experiments"]["hypergrid"]["methods"].append("ppo"),
                       "experiments.hypergrid.methods[3]", "unknown method 'ppo'"),
    "unknown env": (lambda d: d["experiments"]["hypergrid"].update(env="gridworld"),
                    "experiments.hypergrid.env", "unknown env 'gridworld'"),
    "wrong type": (lambda d: d["experiments"]["hypergrid"]["scales"]["small"].update(iterations="many"),
                   "experiments.hypergrid.scales.small.iterations", "must be of type integer"),
    "zero seeds": (lambda d: d["experiments"]["hypergrid"]["scales"]["paper"].update(seeds=0),
                   "experiments.hypergrid.scales.paper.seeds", "must be >= 1"),
    "negative seeds": (lambda d: d["experiments"]["hypergrid"]["scales"]["smoke"].update(seeds=-2),
                       "experiments.hypergrid.scales.smoke.seeds", "must be >= 1"),
    "unknown override key": (lambda d: d["experiments"]["hypergrid"]["overrides"]["tb"].update(learning_rate=1),
                             "experiments.hypergrid.overrides.tb.learning_rate", "unknown hyper-parameter"),
    "override wrong type": (lambda d: d["experiments"]["hypergrid"]["overrides"]["tb"].update(lr="fast"),
                            "experiments.hypergrid.overrides.tb.lr", "must be of type float"),
    "missing scale": (lambda d: d["experiments"]["hypergrid"]["scales"].pop("paper"),
                      "experiments.hypergrid.scales.paper", "missing required field"),
    "bad env kwarg": (lambda d: d["experiments"]["hypergrid"]["scales"]["small"]["env_kwargs"].update(width=3),
                      "experiments.hypergrid.scales.small.env_kwargs", "width"),
    "dataclass check": (lambda d: d["experiments"]["hypergrid"]["overrides"]["egfn"].update(base_loss="fm"),
                        "experiments.hypergrid.scales.smoke (overrides of egfn)", "base_loss must be one of"),
    "claim on absent method": (lambda d: d["claims"][0].update(method="fm"),
                               "claims[0].method", "not run in experiment"),
    "scale runs an unknown method": (
        lambda d: d["experiments"]["hypergrid"]["scales"]["small"].update(methods=["tb", "ppo"]),
        "experiments.hypergrid.scales.small.methods[1]", "'ppo' is not a method of this experiment"),
    "claim on a method a scale skips": (
        lambda d: d["experiments"]["hypergrid"]["scales"]["small"].update(methods=["tb", "egfn"]),
        "claims[0].method", "not run at scale 'small'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_paper_errors_name_file_and_field(tmp_path, case):
    fn, field, msg = CASES[case]
    path = write_paper(tmp_path, mutate(fn))
    with pytest.raises(pc.ConfigError) as err:
        pc.load_paper(path)
    text = str(err.value)
    assert text.startswith(f"{path}: {field}: "), text
    assert msg in text, text


def test_unknown_paper_and_bad_scale(tmp_path):
    with pytest.raises(pc.ConfigError, match=r"papers\[0\]: unknown paper 'nope'"):
        pc.load_workflow({"scale": "small", "papers": ["nope"]}, REPO, "config/config.yaml")
    with pytest.raises(pc.ConfigError, match=r"config/config.yaml: scale: must be one of"):
        pc.load_workflow({"scale": "huge", "papers": ["egfn"]}, REPO, "config/config.yaml")


def test_valid_config_expands_jobs():
    wf = pc.load_from_files()
    jobs = [j for j in wf.jobs("egfn") if j.experiment == "hypergrid"]
    assert {j.method for j in jobs} == {"tb", "db", "egfn"}
    small = EGFN["experiments"]["hypergrid"]["scales"][wf.scale]
    assert len(jobs) == 3 * small["seeds"]
    cfg = jobs[0].method_config()
    assert cfg.lr == 1e-3 and cfg.env_kwargs == small["env_kwargs"]


def test_snakemake_stops_before_any_job(tmp_path):
    ws = make_workspace(tmp_path / "repo")
    p = ws / "config/papers/egfn.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["experiments"]["hypergrid"]["scales"]["smoke"]["seeds"] = 0
    p.write_text(yaml.safe_dump(doc))
    proc = snakemake(ws, "--cores", "1", "--config", "scale=smoke", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "egfn.yaml: experiments.hypergrid.scales.smoke.seeds: must be >= 1" in out
    assert not (ws / "results").exists()
