"""VPDD as the pipeline runs it: the action tokens, the stage plan (who shares which stage), and
each stage's exact resume after SIGTERM, on a tiny Meta-World data set rendered once per session."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import methods
from methods.common.runapi import MemoryRun, Preempted
from methods.video.actions import ActionTokenizer, QuantileBins, gripper_values

TINY = dict(
    frames=4,
    future_offset=4,
    prompt_dim=16,
    tokenizer_steps=6,
    tokenizer_batch=3,
    tokenizer_hiddens=8,
    tokenizer_res_layers=1,
    tokenizer_embedding_dim=8,
    tokenizer_codes=16,
    tokenizer_attention=False,
    tokenizer_checkpoint_every=3,
    pretrain_steps=6,
    pretrain_batch=3,
    pretrain_checkpoint_every=3,
    predictor_width=16,
    predictor_latents=8,
    predictor_blocks=1,
    diffusion_steps=3,
    grad_accum=2,
    pretrain_grad_accum=2,
    ema_start=2,
    pretrain_ema_start=2,
    ema_every=1,
    log_every=2,
    action_bins=6,
    action_width=16,
    action_layers=1,
    action_inner=32,
    batch=4,
    eval_episodes=1,
    eval_max_steps=3,
    video_eval_clips=3,
)


# ------------------------------------------------------------------ action tokens
def test_quantile_bins_follow_the_official_discretiser_on_a_hand_case():
    data = np.arange(10, dtype=float)[:, None]  # 0..9, 5 bins: thresholds every 2nd value + the max
    bins = QuantileBins.fit(data, 5)
    assert bins.thresholds[:, 0].tolist() == [0, 2, 4, 6, 8, 9]
    assert bins.encode(np.array([[-1.0], [0.0], [1.9], [2.0], [8.5], [9.0], [42.0]]))[:, 0].tolist() == [
        0,
        0,
        0,
        1,
        4,
        4,
        4,
    ]
    # a token decodes to its bin's middle, which encodes back to the same token
    assert bins.decode(np.array([[0], [1], [4]]))[:, 0].tolist() == [1.0, 3.0, 8.5]
    tokens = np.arange(5)[:, None]
    assert (bins.encode(bins.decode(tokens)) == tokens).all()


def test_gripper_tokens_are_the_experts_values_and_noise_takes_the_nearest():
    expert = np.array([-1.0, -1.0, 0.6, 1.0, 1.0, 1.0])
    assert gripper_values(expert, 10).tolist() == [-1.0, 0.6, 1.0]
    assert gripper_values(expert, 2).tolist() == [-1.0, 1.0]  # the most frequent kept
    actions = np.array([[0.1, 0.2, 0.3, -0.93], [0.0, 0.0, 0.0, 0.71], [0.0, 0.0, 0.0, 0.95]])
    tok = ActionTokenizer.fit(np.repeat(actions, 4, axis=0), expert, 4)
    assert tok.encode(actions)[:, 3].tolist() == [0, 1, 2]
    assert tok.decode(tok.encode(actions))[:, 3].tolist() == pytest.approx([-1.0, 0.6, 1.0])
    again = ActionTokenizer.from_state_dict(tok.state_dict())
    assert (again.encode(actions) == tok.encode(actions)).all()


def test_ema_weights_copy_until_the_start_then_average_every_k_steps():
    """The official trainer's EMA: a copy of the weights before ``start``, then every ``every``-th
    step shadow = decay * shadow + (1 - decay) * weights; integer buffers are copied."""
    from methods.video.loop import EMAWeights

    net = torch.nn.Linear(1, 1, bias=False)
    ema = EMAWeights(net, decay=0.9, start=4, every=2)
    for step, w in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], start=1):
        net.weight.data.fill_(w)
        ema.update(net, step)
    # step 2 copies 2; step 4 (= start): 0.9 * 2 + 0.1 * 4 = 2.2; step 6: 0.9 * 2.2 + 0.1 * 6 = 2.58
    assert ema.state_dict()["weight"].item() == pytest.approx(2.58)


# ------------------------------------------------------------------ the stage plan
def _stages(method: str, **hp) -> list[dict]:
    cfg = methods.load(method).Config(**{**TINY, **hp})
    return [s.to_dict() for s in cfg.stages()]


def test_who_shares_which_stage():
    """The tokenizer is one for every method (per_seed False); pre-training is per seed and is
    shared by the demonstration-count ablations (they differ in fine-tuning only), not by the
    'w/o human data' ablation; the no-pre-training baseline reads the tokenizer alone."""
    from pipeline.config import stage_jobs_of

    def ids(method: str, seed: int, **hp) -> dict[str, str]:
        jobs = stage_jobs_of(
            _stages(method, **hp),
            scale="smoke",
            paper="vpdd",
            seed=seed,
            env="metaworld_video",
            env_kwargs={},
            runtime_min=5,
        )
        return {j.name: j.stage_id for j in jobs}

    vpdd0, vpdd1 = ids("vpdd", 0), ids("vpdd", 1)
    assert vpdd0["tokenizer"] == vpdd1["tokenizer"] and vpdd0["pretrain"] != vpdd1["pretrain"]
    assert ids("vpdd_1demo", 0) == vpdd0 == ids("vpdd", 0, batch=7, lr=1e-3, grad_accum=1, iterations=99)
    no_human = ids("vpdd_no_human", 0)
    assert no_human["tokenizer"] == vpdd0["tokenizer"] and no_human["pretrain"] != vpdd0["pretrain"]
    assert ids("mt_diffusion_policy", 0) == {"tokenizer": vpdd0["tokenizer"]}
    # a tokenizer setting moves the tokenizer and, through it, every pre-training stage
    bigger = ids("vpdd", 0, tokenizer_codes=32)
    assert bigger["tokenizer"] != vpdd0["tokenizer"] and bigger["pretrain"] != vpdd0["pretrain"]
    # a pre-training setting moves pre-training only
    longer = ids("vpdd", 0, pretrain_steps=7)
    assert longer["tokenizer"] == vpdd0["tokenizer"] and longer["pretrain"] != vpdd0["pretrain"]


def test_bad_vpdd_settings_stop_before_any_job_with_the_field_named(tmp_path):
    import yaml

    from pipeline.config import ConfigError
    from pipeline.paper_checks import check_paper

    src = Path(__file__).resolve().parent.parent / "config/papers/vpdd.yaml"
    for where, value, expected in (
        (("env_kwargs", "actionless_episodes"), 0, "actionless_episodes"),
        (("env_kwargs", "tasks"), ["reach-v9"], "reach-v9"),
        (("overrides", "all", "replan_every"), 9, "replan_every"),
        (("overrides", "all", "pretrain_human_fraction"), 1.5, "pretrain_human_fraction"),
    ):
        doc = yaml.safe_load(src.read_text())
        node = doc["experiments"]["metaworld"]["scales"]["smoke"]
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
        bad = tmp_path / "vpdd.yaml"
        bad.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError, match=expected) as err:
            check_paper(bad)
        assert "experiments.metaworld.scales.smoke" in str(err.value)


def test_runs_without_stages_keep_their_config_hash():
    """The stage field enters a run's resolved config only where it has stages: every other run's
    config hash (and so its results) is what it was."""
    from pipeline.config import load_from_files

    wf = load_from_files(overrides={"scale": "smoke", "papers": ["egfn", "vpdd"]})
    for job in wf.jobs():
        assert ("stages" in job.resolved()) == (job.paper == "vpdd"), job.key


# ------------------------------------------------------------------ stages end to end, in memory
@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    from envs.vpdd_data import MetaWorldVideo

    out = tmp_path_factory.mktemp("vpdd_assets")
    env = MetaWorldVideo(
        tasks=["reach-v3"],
        demos_per_task=2,
        heldout_per_task=1,
        max_demo_steps=12,
        resolution=16,
        render_size=32,
        actionless_episodes=0,
    )
    env.write_assets(out)
    return out


def _train_stages(cfg, assets: Path, root: Path) -> dict[str, Path]:
    import importlib

    dirs: dict[str, Path] = {}
    for spec in cfg.stages():
        module = importlib.import_module(spec.module)
        run = MemoryRun(seed=0, assets_dir=assets, stage_dirs=dict(dirs))
        module.train(module.Settings(**spec.settings), run)
        (root / spec.name).mkdir(parents=True, exist_ok=True)
        torch.save(run.model, root / spec.name / "model.pt")
        dirs[spec.name] = root / spec.name
    return dirs


def _resumed(train, settings, run_kwargs: dict) -> tuple[MemoryRun, MemoryRun]:
    """One run straight through; one stopped after its first checkpoint and resumed."""
    torch.manual_seed(123)
    whole = MemoryRun(**run_kwargs)
    train(settings, whole)
    torch.manual_seed(456)  # the global stream differs: a resumed run must not depend on it
    stopped = MemoryRun(**run_kwargs, stop_after_checkpoints=1)
    with pytest.raises(Preempted):
        train(settings, stopped)
    stopped._stop_after = None
    train(settings, stopped)
    assert stopped.resumed_from is not None
    return whole, stopped


def _same_state(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same_state(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("stage", ["tokenizer", "pretrain"])
def test_each_stage_resumes_exactly(assets, tmp_path, stage):
    import importlib

    cfg = methods.load("vpdd_no_human").Config(**TINY, env_kwargs={"render_size": 32})
    specs = {s.name: s for s in cfg.stages()}
    dirs = _train_stages(cfg, assets, tmp_path) if stage == "pretrain" else {}
    module = importlib.import_module(specs[stage].module)
    whole, resumed = _resumed(
        module.train, module.Settings(**specs[stage].settings), dict(seed=0, assets_dir=assets, stage_dirs=dirs)
    )
    assert whole.rows == resumed.rows
    _same_state(whole.model, resumed.model)


@pytest.fixture(scope="module")
def staged(assets, tmp_path_factory):
    cfg = methods.load("vpdd_no_human").Config(**TINY, iterations=6, eval_every=2, checkpoint_every=3)
    return cfg, _train_stages(cfg, assets, tmp_path_factory.mktemp("stages"))


def test_fine_tuning_resumes_exactly_and_keeps_the_video_model_frozen(assets, staged):
    cfg, dirs = staged
    module = methods.load("vpdd_no_human")
    whole, resumed = _resumed(module.train, cfg, dict(seed=1, assets_dir=assets, stage_dirs=dirs))
    assert whole.rows == resumed.rows
    _same_state(whole.model, resumed.model)
    pre = torch.load(dirs["pretrain"] / "model.pt", weights_only=False)
    _same_state(whole.model["predictor"]["state"], pre["state"])  # frozen: the pre-trained EMA weights


def test_evaluation_is_a_pure_function_of_model_and_seed(assets, staged):
    cfg, dirs = staged
    module = methods.load("vpdd_no_human")
    run = MemoryRun(seed=0, assets_dir=assets, stage_dirs=dirs)
    module.train(dataclasses.replace(cfg, env_kwargs={"render_size": 32}), run)
    ecfg = dataclasses.replace(cfg, env_kwargs={"render_size": 32})
    first = module.evaluate(ecfg, copy.deepcopy(run.model), 3, "cpu", assets)
    again = module.evaluate(ecfg, copy.deepcopy(run.model), 3, "cpu", assets)
    assert first == again
    m = first["metrics"]
    assert {"success_rate", "return_mean", "future_token_acc", "future_frame_mse", "success_reach-v3"} <= m.keys()
    assert 0.0 <= m["future_token_acc"] <= 1.0 and m["future_frame_mse"] >= 0.0


def test_the_no_pretraining_baseline_trains_its_video_model(assets, tmp_path):
    cfg = methods.load("mt_diffusion_policy").Config(**TINY, iterations=3, eval_every=3, checkpoint_every=3)
    dirs = _train_stages(cfg, assets, tmp_path)
    assert set(dirs) == {"tokenizer"}
    run = MemoryRun(seed=0, assets_dir=assets, stage_dirs=dirs)
    torch.manual_seed(0)
    methods.load("mt_diffusion_policy").train(cfg, run)
    before = run.untrained["predictor"]["state"]
    after = run.model["predictor"]["state"]
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


def test_the_untrained_agent_reads_the_untrained_video_model(assets, staged):
    """The guards compare a run with its untrained agent (pipeline/guards.py). For VPDD the
    future-clip metrics are the video model's, frozen in fine-tuning: the untrained agent's video
    model is the pre-training stage's step-0 model, so "did it learn" asks of pre-training too
    (with the pre-trained model in it, trained and untrained would score the same by construction)."""
    from methods.common.runapi import UNTRAINED_KEY

    cfg, dirs = staged
    pre = torch.load(dirs["pretrain"] / "model.pt", weights_only=False)
    assert UNTRAINED_KEY in pre and pre[UNTRAINED_KEY]["config"] == pre["config"]
    assert any(not torch.equal(pre["state"][k], v) for k, v in pre[UNTRAINED_KEY]["state"].items())
    run = MemoryRun(seed=0, assets_dir=assets, stage_dirs=dirs)
    methods.load("vpdd_no_human").train(cfg, run)
    _same_state(run.untrained["predictor"], pre[UNTRAINED_KEY])
    _same_state(run.model["predictor"]["state"], pre["state"])
    ecfg = dataclasses.replace(cfg, env_kwargs={"render_size": 32})
    module = methods.load("vpdd_no_human")
    trained = module.evaluate(ecfg, copy.deepcopy(run.model), 3, "cpu", assets)["metrics"]
    untrained = module.evaluate(ecfg, copy.deepcopy(run.untrained), 3, "cpu", assets)["metrics"]
    video = ("future_token_acc", "future_frame_mse")
    assert [trained[k] for k in video] != [untrained[k] for k in video]  # another video model scored
