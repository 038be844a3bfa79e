"""The GFlowNet learner interface: every registered GFlowNet method is a typed learner built by
``loop.entry_points``, and is evaluated with its own sampling policy."""

from __future__ import annotations

import pytest
import torch

import methods
from methods.common.runapi import MemoryRun
from methods.gfn import core, loop, rpe, tb
from methods.gfn.learner import Learner, TrajectoryLearner, TransitionLearner, check_learner
from methods.gfn.policy import forward_head

# the goal-conditioned GFlowNets (methods/gfn/goal/) have their own learner interface and core:
# tests/test_rbs.py
GFN_METHODS = sorted(
    m
    for m, mod in methods.METHODS.items()
    if mod.startswith("methods.gfn.") and not mod.startswith("methods.gfn.goal.")
)
TINY = {
    "env": "hypergrid",
    "env_kwargs": {"ndim": 2, "height": 4, "r0": 0.1},
    "iterations": 4,
    "eval_every": 2,
    "hidden": 16,
    "eval_samples": 50,
}


def _tiny_config(method: str) -> core.GFNConfig:
    mod = methods.load(method)
    extra = (
        {"population_size": 3, "num_elites": 1, "tournament_size": 2, "eval_episodes": 1}
        if method.startswith("egfn")
        else {}
    )
    return mod.Config(**TINY, **extra)


def test_every_gfn_method_is_registered_with_a_typed_learner() -> None:
    assert {"tb", "db", "subtb", "fm", "bn", "rpe", "soft_dqn", "mdqn", "egfn"} <= set(GFN_METHODS)
    for method in GFN_METHODS:
        mod = methods.load(method)
        learner = mod.make_learner(_tiny_config(method))
        assert isinstance(learner, (TrajectoryLearner, TransitionLearner)), method
        assert check_learner(learner) is learner


@pytest.mark.parametrize("method", GFN_METHODS)
def test_evaluation_samples_with_the_methods_own_policy(method: str) -> None:
    """``evaluate``'s exact TV is the TV of the distribution of ``make_learner(cfg).policy`` —
    for RPE that is the child-flow policy, not the network's forward head."""
    mod = methods.load(method)
    cfg = _tiny_config(method)
    run = MemoryRun(seed=0)
    mod.train(cfg, run)
    model = run.model
    reported = mod.evaluate(cfg, model, seed=0)["metrics"]["exact_tv"]

    env, net, _ = core.build(cfg, torch.device("cpu"), 0)
    net.load_state_dict(model["net"])
    learner = mod.make_learner(cfg)
    learner.bind(env, net)
    learner.load_model_state(model.get("learner") or {})  # QGFN: its Q net and sampling copy
    exact = core.ExactDistribution(env, torch.device("cpu"))
    target = core.exact_target(env, cfg.reward_beta, exact.states, None)
    own = core.total_variation(exact.terminal_probs(learner.policy(env, net)), target)
    assert reported == pytest.approx(own, abs=1e-9)
    if method == "rpe":  # the test can tell the two policies apart
        head = core.total_variation(exact.terminal_probs(forward_head(env, net)), target)
        assert abs(head - own) > 1e-6


def test_a_method_that_forgets_its_policy_cannot_be_evaluated_with_the_wrong_one() -> None:
    """RPE through the generic path: ``evaluate_model`` requires a learner, and the one
    ``entry_points`` builds carries RPE's policy."""
    cfg = rpe.Config(**TINY)
    learner = rpe.make_learner(cfg)
    assert isinstance(learner.policy(None, None), rpe.ChildFlowPolicy)
    with pytest.raises(TypeError):
        loop.evaluate_model(cfg, {"net": {}}, 0, "cpu", None)  # type: ignore[call-arg]


def test_learner_contract_is_checked_before_training() -> None:
    class NotALearner:
        uses_log_z = True

        def __call__(self, batch, log_z):  # noqa: ANN001, ANN204
            return log_z

    with pytest.raises(TypeError, match="NotALearner is not a GFlowNet learner"):
        loop.train_learner(tb.Config(**TINY), MemoryRun(seed=0), NotALearner())  # type: ignore[arg-type]

    class Forgetful(TrajectoryLearner):  # no loss
        pass

    with pytest.raises(TypeError):
        Forgetful()  # type: ignore[abstract]

    class BadBehaviour(tb.TrajectoryBalance):
        behaviour = "greedy"

    with pytest.raises(TypeError, match="behaviour"):
        check_learner(BadBehaviour())


def test_default_hooks_are_no_ops() -> None:
    learner = tb.TrajectoryBalance()
    assert learner.state_dict() == {}
    learner.load_state_dict({})
    learner.after_step()
    assert isinstance(learner, Learner) and learner.behaviour == "policy"
