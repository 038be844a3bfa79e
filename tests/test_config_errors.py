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
    "unknown method": (
        lambda d: d["experiments"]["hypergrid"]["methods"].append("ppo"),
        "experiments.hypergrid.methods[4]",
        "unknown method 'ppo'",
    ),
    "unknown env": (
        lambda d: d["experiments"]["hypergrid"].update(env="gridworld"),
        "experiments.hypergrid.env",
        "unknown env 'gridworld'",
    ),
    "wrong type": (
        lambda d: d["experiments"]["hypergrid"]["scales"]["small"].update(iterations="many"),
        "experiments.hypergrid.scales.small.iterations",
        "must be of type integer",
    ),
    "zero seeds": (
        lambda d: d["experiments"]["hypergrid"]["scales"]["paper"].update(seeds=0),
        "experiments.hypergrid.scales.paper.seeds",
        "must be >= 1",
    ),
    "negative seeds": (
        lambda d: d["experiments"]["hypergrid"]["scales"]["smoke"].update(seeds=-2),
        "experiments.hypergrid.scales.smoke.seeds",
        "must be >= 1",
    ),
    "unknown override key": (
        lambda d: d["experiments"]["hypergrid"]["overrides"]["tb"].update(learning_rate=1),
        "experiments.hypergrid.overrides.tb.learning_rate",
        "unknown hyper-parameter",
    ),
    "override wrong type": (
        lambda d: d["experiments"]["hypergrid"]["overrides"]["tb"].update(lr="fast"),
        "experiments.hypergrid.overrides.tb.lr",
        "must be of type float",
    ),
    "missing scale": (
        lambda d: d["experiments"]["hypergrid"]["scales"].pop("paper"),
        "experiments.hypergrid.scales.paper",
        "missing required field",
    ),
    "bad env kwarg": (
        lambda d: d["experiments"]["hypergrid"]["scales"]["small"]["env_kwargs"].update(width=3),
        "experiments.hypergrid.scales.small.env_kwargs",
        "width",
    ),
    "dataclass check": (
        lambda d: d["experiments"]["hypergrid"]["overrides"]["egfn"].update(base_loss="fm"),
        "experiments.hypergrid.scales.smoke (overrides of egfn)",
        "base_loss must be one of",
    ),
    "claim on absent method": (
        lambda d: d["claims"][0].update(method="fm"),
        "claims[0].method",
        "not run in experiment",
    ),
    "scale runs an unknown method": (
        lambda d: d["experiments"]["hypergrid"]["scales"]["small"].update(methods=["tb", "ppo"]),
        "experiments.hypergrid.scales.small.methods[1]",
        "'ppo' is not a method of this experiment",
    ),
    "unsafe experiment id": (
        lambda d: d["experiments"].update({"hg$(touch x)": d["experiments"].pop("hypergrid")}),
        "experiments.'hg$(touch x)'",
        "an experiment id must match",
    ),
    "unsafe claim id": (lambda d: d["claims"][0].update(id="a b;c"), "claims[0].id", "a claim id must match"),
    "claim on a method a scale skips": (
        lambda d: d["experiments"]["hypergrid"]["scales"]["small"].update(methods=["tb", "egfn"]),
        "claims[0].method",
        "not run at scale 'small'",
    ),
}


def assert_paper_stops(tmp_path, fn, field: str, msg: str) -> None:
    """Loading the paper config edited by `fn` fails with `<file>: <field>: ...msg...`."""
    path = write_paper(tmp_path, mutate(fn))
    with pytest.raises(pc.ConfigError) as err:
        pc.load_paper(path)
    text = str(err.value)
    assert text.startswith(f"{path}: {field}: "), text
    assert msg in text, text


@pytest.mark.parametrize("case", sorted(CASES))
def test_paper_errors_name_file_and_field(tmp_path, case):
    assert_paper_stops(tmp_path, *CASES[case])


def test_unknown_paper_and_bad_scale(tmp_path):
    with pytest.raises(pc.ConfigError, match=r"papers\[0\]: unknown paper 'nope'"):
        pc.load_workflow({"scale": "small", "papers": ["nope"]}, REPO, "config/config.yaml")
    with pytest.raises(pc.ConfigError, match=r"config/config.yaml: scale: must be one of"):
        pc.load_workflow({"scale": "huge", "papers": ["egfn"]}, REPO, "config/config.yaml")


def test_valid_config_expands_jobs(tmp_path):
    """On a config of its own (not the editable config/config.yaml) and a copy of the paper."""
    write_paper(tmp_path, EGFN)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(
        yaml.safe_dump({"scale": "small", "papers": ["egfn"], "paper_dir": "papers"})
    )
    wf = pc.load_from_files(tmp_path / "config/config.yaml", root=tmp_path)
    assert wf.scale == "small" and wf.paper_files["egfn"] == tmp_path / "papers/egfn.yaml"
    jobs = [j for j in wf.jobs("egfn") if j.experiment == "hypergrid"]
    assert {j.method for j in jobs} == {"tb", "db", "egfn", "egfn_no_mutation"}
    small = EGFN["experiments"]["hypergrid"]["scales"]["small"]
    assert len(jobs) == 4 * small["seeds"]
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


# ---------------------------------------------------------------------------------------------
# Configs that validated but ran wrong (or failed only inside a job): each stopped at load time.
HG = ("experiments", "hypergrid")


def at(d: dict, *keys: str) -> dict:
    for k in keys:
        d = d[k]
    return d


VALUE_CASES = {
    "negative lr": (
        lambda d: at(d, *HG, "overrides", "tb").update(lr=-1.0e-3),
        "experiments.hypergrid.overrides.tb.lr",
        "must be > 0 (got -0.001)",
    ),
    "zero lr": (
        lambda d: at(d, *HG, "overrides", "db").update(lr=0.0),
        "experiments.hypergrid.overrides.db.lr",
        "must be > 0",
    ),
    "nan lr": (
        lambda d: at(d, *HG, "overrides", "tb").update(lr=float("nan")),
        "experiments.hypergrid.overrides.tb.lr",
        "must be finite",
    ),
    "inf lr": (
        lambda d: at(d, *HG, "overrides", "tb").update(lr=float("inf")),
        "experiments.hypergrid.overrides.tb.lr",
        "must be finite",
    ),
    "zero hidden": (
        lambda d: at(d, *HG, "scales", "smoke", "overrides", "all").update(hidden=0),
        "experiments.hypergrid.scales.smoke.overrides.all.hidden",
        "must be >= 1 (got 0)",
    ),
    "negative online batch": (
        lambda d: at(d, *HG, "scales", "smoke", "overrides", "all").update(online_batch=-4),
        "experiments.hypergrid.scales.smoke.overrides.all.online_batch",
        "must be >= 1",
    ),
    "epsilon above 1": (
        lambda d: at(d, *HG, "overrides", "tb").update(epsilon=1.5),
        "experiments.hypergrid.overrides.tb.epsilon",
        "must be in [0, 1]",
    ),
    "mutation probability 2": (
        lambda d: at(d, *HG, "overrides", "egfn").update(mutation_prob=2.0),
        "experiments.hypergrid.overrides.egfn.mutation_prob",
        "must be in [0, 1]",
    ),
    "negative replay batch": (
        lambda d: at(d, *HG, "overrides", "db").update(replay_batch=-1),
        "experiments.hypergrid.overrides.db.replay_batch",
        "must be >= 0",
    ),
    "zero log Z lr": (
        lambda d: at(d, *HG, "overrides", "tb").update(log_z_lr=0.0),
        "experiments.hypergrid.overrides.tb.log_z_lr",
        "must be > 0",
    ),
    "negative reward exponent": (
        lambda d: at(d, *HG, "overrides", "db").update(reward_beta=-1.0),
        "experiments.hypergrid.overrides.db.reward_beta",
        "must be > 0",
    ),
    "empty population": (
        lambda d: at(d, *HG, "scales", "smoke", "overrides", "egfn").update(population_size=0),
        "experiments.hypergrid.scales.smoke.overrides.egfn.population_size",
        "must be >= 2",
    ),
    "zero train steps": (
        lambda d: at(d, "experiments", "tfbind8", "overrides", "all").update(train_steps=0),
        "experiments.tfbind8.overrides.all.train_steps",
        "must be >= 1",
    ),
    "bool for a float": (
        lambda d: at(d, *HG, "overrides", "tb").update(lr=True),
        "experiments.hypergrid.overrides.tb.lr",
        "must be of type float (got True)",
    ),
    "method listed twice": (
        lambda d: at(d, *HG)["methods"].append("tb"),
        "experiments.hypergrid.methods[4]",
        "method 'tb' is listed twice",
    ),
    "scale method listed twice": (
        lambda d: at(d, *HG, "scales", "small").update(methods=["tb", "tb"]),
        "experiments.hypergrid.scales.small.methods[1]",
        "method 'tb' is listed twice",
    ),
    "claim id twice": (
        lambda d: d["claims"].append(dict(d["claims"][0])),
        f"claims[{len(EGFN['claims'])}]",
        "claim id 'db-fits-hga' is listed twice",
    ),
    "figure id twice": (
        lambda d: d["figures"].append(dict(d["figures"][0])),
        f"figures[{len(EGFN['figures'])}]",
        "figure id 'tv_curve' is listed twice",
    ),
    "figure axis that is not logged": (
        lambda d: d["figures"][0].update(x="stepz"),
        "figures[0].x",
        "'stepz' is not a curve axis of experiment 'hypergrid'",
    ),
    "evaluation after the end": (
        lambda d: at(d, *HG, "scales", "smoke").update(eval_every=41),
        "experiments.hypergrid.scales.smoke.eval_every",
        "must be <= iterations (40)",
    ),
    "zero iterations": (
        lambda d: at(d, *HG, "scales", "small").update(iterations=0),
        "experiments.hypergrid.scales.small.iterations",
        "must be >= 1",
    ),
    "zero checkpoint interval": (
        lambda d: at(d, *HG, "scales", "small").update(checkpoint_every=0),
        "experiments.hypergrid.scales.small.checkpoint_every",
        "must be >= 1",
    ),
    "string seeds": (
        lambda d: at(d, *HG, "scales", "small").update(seeds="five"),
        "experiments.hypergrid.scales.small.seeds",
        "must be of type integer",
    ),
    "zero runtime": (
        lambda d: at(d, *HG, "scales", "paper").update(runtime_min=0),
        "experiments.hypergrid.scales.paper.runtime_min",
        "must be >= 1",
    ),
    "env_kwargs not a mapping": (
        lambda d: at(d, *HG, "scales", "small").update(env_kwargs=[3, 12]),
        "experiments.hypergrid.scales.small.env_kwargs",
        "must be of type object",
    ),
    "override not a mapping": (
        lambda d: at(d, *HG, "overrides").update(tb=5),
        "experiments.hypergrid.overrides.tb",
        "must be of type object",
    ),
    "override of a method not run": (
        lambda d: at(d, *HG, "overrides").update(fm={"lr": 1e-3}),
        "experiments.hypergrid.overrides.fm",
        "not a method of this experiment",
    ),
    "unknown scale field": (
        lambda d: at(d, *HG, "scales", "small").update(seed=3),
        "experiments.hypergrid.scales.small.seed",
        "unknown field",
    ),
    "unknown top-level field": (lambda d: d.update(experimentz={}), "experimentz", "unknown field"),
    "no experiments": (lambda d: d.update(experiments={}), "experiments", "should be non-empty"),
    "claim on an unknown experiment": (
        lambda d: d["claims"][0].update(experiment="grid"),
        "claims[0].experiment",
        "unknown experiment 'grid'",
    ),
    "claim on an undeclared metric": (
        lambda d: d["claims"][0].update(metric="l2"),
        "claims[0].metric",
        "unknown metric 'l2'",
    ),
    "figure of an undeclared metric": (
        lambda d: d["figures"][0].update(metric="l2"),
        "figures[0].metric",
        "unknown metric 'l2'",
    ),
    "threshold claim without threshold": (
        lambda d: d["claims"][0].pop("threshold"),
        "claims[0].threshold",
        "missing required field for kind threshold",
    ),
    "unknown claim kind": (lambda d: d["claims"][0].update(kind="vibes"), "claims.0.kind", "must be one of"),
    "metric without direction": (
        lambda d: d["metrics"]["exact_tv"].pop("higher_is_better"),
        "metrics.exact_tv.higher_is_better",
        "missing required field",
    ),
    "trend over one experiment": (
        lambda d: d["claims"][4].update(experiments=["hg_dim1"]),
        "claims.4.experiments",
        "is too short",
    ),
    "paper name differs from file": (lambda d: d.update(paper="egfn2"), "paper", "must equal the file name"),
}


@pytest.mark.parametrize("case", sorted(VALUE_CASES))
def test_bad_values_stop_before_any_job(tmp_path, case):
    assert_paper_stops(tmp_path, *VALUE_CASES[case])


MAIN = {"scale": "small", "papers": ["egfn"]}
MAIN_CASES = {
    "papers not a list": ({"papers": "egfn"}, "papers", "must be of type array"),
    "no papers": ({"papers": []}, "papers", "should be non-empty"),
    "paper listed twice": ({"papers": ["egfn", "bn", "egfn"]}, "papers[2]", "paper 'egfn' is listed twice"),
    "unknown scale": ({"scale": "huge"}, "scale", "must be one of"),
    "confidence above 1": ({"stats": {"confidence": 1.5}}, "stats.confidence", "1.5"),
    "too few resamples": ({"stats": {"reps": 0}}, "stats.reps", "0"),
    "alpha above 0.5": ({"stats": {"alpha": 0.7}}, "stats.alpha", "0.7"),
    "unknown correction": ({"stats": {"correction": "bonferroni"}}, "stats.correction", "must be one of"),
    "zero threads": ({"threads_per_run": 0}, "threads_per_run", "must be >= 1"),
    "unknown device": ({"device": "tpu"}, "device", "must be one of"),
    "unknown top-level key": ({"papres": ["egfn"]}, "papres", "unknown field"),
    "unknown stats key": ({"stats": {"seed": 1}}, "stats.seed", "unknown field"),
}


@pytest.mark.parametrize("case", sorted(MAIN_CASES))
def test_bad_main_config(case):
    update, field, msg = MAIN_CASES[case]
    with pytest.raises(pc.ConfigError) as err:
        pc.load_workflow({**MAIN, **update}, REPO, "config/config.yaml")
    text = str(err.value)
    assert text.startswith(f"config/config.yaml: {field}: "), text
    assert msg in text, text


def test_duplicated_yaml_key_in_a_paper_file(tmp_path):
    text = (REPO / "config/papers/egfn.yaml").read_text()
    text = text.replace("    env: hypergrid\n", "    env: hypergrid\n    env: tfbind8\n", 1)
    d = tmp_path / "papers"
    d.mkdir()
    (d / "egfn.yaml").write_text(text)
    with pytest.raises(pc.ConfigError) as err:
        pc.load_paper(d / "egfn.yaml")
    assert str(err.value).startswith(f"{d / 'egfn.yaml'}: env (line ")
    assert "written twice in one mapping" in str(err.value)


def test_duplicated_yaml_key_in_config_yaml(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text("scale: small\npapers: [egfn]\nscale: paper\n")
    with pytest.raises(pc.ConfigError, match=r"config.yaml: scale \(line 3\): written twice"):
        pc.load_from_files(tmp_path / "config/config.yaml", root=tmp_path)


def test_exponent_floats_are_floats(tmp_path):
    # the README's own example: YAML 1.1 reads 1e-3 as a string
    doc = mutate(lambda d: None)
    text = yaml.safe_dump(doc).replace("lr: 0.001", "lr: 1e-3")
    assert "lr: 1e-3" in text
    d = tmp_path / "papers"
    d.mkdir()
    (d / "egfn.yaml").write_text(text)
    loaded = pc.load_paper(d / "egfn.yaml")
    assert loaded["experiments"]["hypergrid"]["overrides"]["tb"]["lr"] == 1e-3
    # on the command line too: Snakemake's --config and the CLI's --set
    wf = pc.load_workflow({**MAIN, "stats": {"alpha": "1e-2"}}, REPO, "config/config.yaml")
    assert wf.main["stats"]["alpha"] == 0.01
    from pipeline import cli

    ns = cli.argparse.Namespace(
        set=["threads_per_run=1", "stats={alpha: 5e-2}"],
        scale=None,
        papers="egfn",
        config_file=str(REPO / "config/config.yaml"),
    )
    assert cli._workflow(ns).main["stats"]["alpha"] == 0.05


def test_method_defaults_pass_the_value_checks_and_every_number_is_bounded():
    import dataclasses

    import methods

    for name in methods.names():
        cls = methods.load(name).Config
        cfg = cls()  # __post_init__ applies the table: defaults pass it
        limits = cls.constraints()
        for f in dataclasses.fields(cls):
            value = getattr(cfg, f.name)
            if f.name in cls.hyperparameter_names() and isinstance(value, (int, float)) and not isinstance(value, bool):
                assert f.name in limits, f"{name}: numeric hyper-parameter {f.name} has no limit"
        assert set(limits) <= {f.name for f in dataclasses.fields(cls)}, name


def test_configs_check_themselves_outside_the_pipeline():
    import methods

    with pytest.raises(ValueError, match="lr: must be > 0"):
        methods.load("tb").Config(lr=-1.0)
    with pytest.raises(ValueError, match="hidden: must be >= 1"):
        methods.load("sac").Config(hidden=0)


def test_statements_and_titles_say_what_the_scale_runs(tmp_path):
    """ "{grid_large.height}" in a statement or a figure title is the scale's own value ("16x16" at
    small, not the paper's "largest"), and a placeholder no scale can fill stops validation."""
    from pipeline.config_base import at_scale
    from pipeline.paper_checks import check_paper

    doc = check_paper(REPO / "config/papers/rbs.yaml")
    claim = next(c for c in doc["claims"] if c["id"] == "rbs-learns-faster-than-her")
    assert "16x16 grid" in at_scale(claim["statement"], doc, "small")
    assert "128x128 grid" in at_scale(claim["statement"], doc, "paper")
    assert "{" not in at_scale(claim["statement"], doc, "smoke")
    text = (REPO / "config/papers/rbs.yaml").read_text()
    bad = tmp_path / "rbs.yaml"
    bad.write_text(text.replace("{grid_large.height}x", "{grid_large.width}x", 1))
    with pytest.raises(pc.ConfigError, match=r"claims\[\d+\]\.statement: \{grid_large\.width\}: .*'width'"):
        check_paper(bad)
    bad.write_text(text.replace("{grid_large.height}x", "{grid_huge.height}x", 1))
    with pytest.raises(pc.ConfigError, match=r"unknown experiment 'grid_huge'"):
        check_paper(bad)


def test_a_setup_job_reads_no_paper_config(tmp_path):
    """The setup rule passes the env and its assets directory, so the job reads no paper config:
    it neither validates papers the run did not select nor races another setup job over what
    their checks build (two setup jobs once collided over gymnasium-robotics' generated swimmer
    XML while validating Kaleidoscope). A broken paper in the configured list does not stop it."""
    import json

    from pipeline import cli

    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "broken.yaml").write_text("paper: broken\n")  # fails its schema
    main = tmp_path / "config.yaml"
    doc = yaml.safe_load((REPO / "config/config.yaml").read_text())
    main.write_text(yaml.safe_dump({**doc, "papers": ["broken"], "paper_dir": str(papers)}))
    kwargs = {"suite": "gym", "task": "Pendulum-v1"}
    out = tmp_path / "assets"
    argv = ["--config-file", str(main), "setup", "--env-key", pc.env_key("control", kwargs), "--env", "control"]
    assert cli.main([*argv, "--env-kwargs", json.dumps(kwargs), "--assets-dir", str(out)]) == 0
    assert (out / "info.json").is_file()
    # without the env on the command line the configs are read (to look the env up by its key)
    assert cli.main(["--config-file", str(main), "setup", "--env-key", pc.env_key("control", kwargs)]) != 0
