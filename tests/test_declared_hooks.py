"""Optional hooks are declared on their interface with a no-op default (agent networks' losses
and callbacks, control agents' evaluation metrics, GFlowNet environments' optional features,
env tasks' win reporting); nothing probes the project's own objects with ``hasattr`` or a
defaulted ``getattr``. The probes left are of other libraries' objects, each listed with why."""

from __future__ import annotations

import ast

from conftest import REPO

# (file, attribute probed): why a probe is right there
ALLOWED = {
    ("methods/common/nets.py", "weight"): "torch modules: which children are linear layers",
    ("methods/common/dormant.py", "bias"): "torch.nn.Linear built with or without a bias",
    ("methods/common/dormant.py", "reset_parameters"): "torch modules that have an initialiser",
    ("methods/control/plasticity.py", "reset_parameters"): "torch modules that have an initialiser",
    ("envs/mpe.py", "food"): "mpe2's World: only some scenarios have food",
    ("pipeline/run.py", "__wrapped__"): "a torch.compile-wrapped function or a plain one",
    ("pipeline/run.py", "__code__"): "a Python function or a builtin",
    ("pipeline/run.py", "__dynamo_disable"): "torch.compile's marker on a function",
    ("pipeline/tracking/live.py", "item"): "numpy / torch scalars among logged values",
}


def _probes() -> list[tuple[str, str, int]]:
    out = []
    for pkg in ("methods", "envs", "pipeline"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                probe = (node.func.id == "hasattr" and len(node.args) == 2) or (
                    node.func.id == "getattr" and len(node.args) == 3
                )
                if probe and isinstance(node.args[1], ast.Constant):
                    out.append((rel, str(node.args[1].value), node.lineno))
    return out


def test_no_probes_of_the_projects_own_objects():
    found = [f"{f}:{line} probes {attr!r}" for f, attr, line in _probes() if (f, attr) not in ALLOWED]
    assert not found, "declare the hook on its interface instead:\n" + "\n".join(found)


def test_the_allowed_probes_still_exist():
    """A stale entry would let a new probe of the same name in the same file through unseen."""
    seen = {(f, attr) for f, attr, _ in _probes()}
    assert set(ALLOWED) <= seen, sorted(set(ALLOWED) - seen)


def test_the_declared_defaults_mean_what_the_probes_meant():
    """Before, a missing feature fell back to exp(log R / beta) with beta 1, 'every state valid',
    'no distance' and 'no auxiliary loss'; the declared defaults say the same."""
    import torch

    from envs.bitseq import BitSequence
    from envs.hypergrid import HyperGrid
    from methods.marl.agents import FuPSAgent

    grid = HyperGrid(ndim=2, height=4)
    states = grid.all_states()[:5]
    assert torch.allclose(grid.flat_reward(states), grid.log_reward(states).double().exp())
    assert grid.is_valid(states).all() and grid.similarity(states, states) is None
    assert grid.mode_flat_threshold is None and grid.flat_reward_is_tempered_log_reward
    bits = BitSequence(n=8, k=2, beta=3.0)
    s = bits.initial(3)
    for _ in range(bits.max_traj_len):
        s, _ = bits.step(s, torch.zeros(3, dtype=torch.long))
    assert torch.allclose(bits.flat_reward(s), (bits.log_reward(s).double() / 3.0).exp())
    agent = FuPSAgent(6, 2, 3, 8)
    assert agent.auxiliary_loss(torch.tensor(1.0)) is None and agent.on_env_steps(10, 100) is False


def test_every_method_config_follows_one_contract():
    """Every registered method's Config derives from methods.common.method_config.MethodConfig
    (one copy of the task fields, hyper-parameter names, serialisation, curve axes) and its
    BUDGET_FIELDS are hyper-parameters it has (the confound check reads them from there)."""
    import dataclasses

    import methods
    from methods.common.method_config import TASK_FIELDS, MethodConfig

    for name in methods.names():
        cls = methods.load(name).Config
        assert issubclass(cls, MethodConfig), name
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(TASK_FIELDS) <= fields, name
        assert set(cls.BUDGET_FIELDS) <= set(cls.hyperparameter_names()), name
        assert cls.CURVE_AXES[0] == "step", name
