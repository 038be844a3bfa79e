"""CUDA-path check (run on a GPU machine; CI has none): every registered GFlowNet method trained
and evaluated on HG-A (the goal-conditioned ones on an 8x8 goal grid), and every registered
control agent's updates on a synthetic replay buffer, all on ``cuda``. ``tests/test_cuda_check.py`` runs the
same functions on the CPU.
Needs only torch + numpy (no gymnasium): the control agents are driven without an env.

    python bench/cuda_check.py   # prints one line per check and 'cuda check: ok'
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def registered(family: str) -> list[str]:
    import methods

    return sorted(m for m, mod in methods.METHODS.items() if mod.startswith(f"methods.{family}."))


def gfn(device: torch.device, iterations: int = 200) -> None:
    """Every registered GFlowNet method: train on HG-A and evaluate, all on ``device``."""
    import methods
    from methods.common.runapi import MemoryRun

    for name in registered("gfn"):
        mod = methods.load(name)
        if methods.module_name(name).startswith("methods.gfn.goal."):
            goal_gfn(name, device, iterations)
            continue
        extra = {"population_size": 4, "num_elites": 1, "tournament_size": 2} if name.startswith("egfn") else {}
        cfg = mod.Config(
            env="hypergrid",
            env_kwargs={"ndim": 2, "height": 8, "r0": 0.1},
            iterations=iterations,
            eval_every=max(1, iterations // 2),
            hidden=64,
            eval_samples=200,
            **extra,
        )
        t0 = time.perf_counter()
        run = MemoryRun(seed=0, device=device)
        final = mod.train(cfg, run)
        ev = mod.evaluate(cfg, run.model, 0, str(device))
        _sync(device)
        print(
            f"{name}: exact TV {final['exact_tv']:.3f} (evaluated {ev['metrics']['exact_tv']:.3f}) "
            f"in {time.perf_counter() - t0:.1f}s on {device}"
        )


def goal_gfn(name: str, device: torch.device, iterations: int) -> None:
    """A goal-conditioned method (RBS and its baselines): train on an 8x8 goal grid and evaluate."""
    import methods
    from methods.common.runapi import MemoryRun

    mod = methods.load(name)
    cfg = mod.Config(
        env="goal_grid",
        env_kwargs={"height": 8},
        iterations=iterations,
        eval_every=max(1, iterations // 2),
        hidden=64,
        batch_size=64,
        eval_goals=200,
    )
    t0 = time.perf_counter()
    run = MemoryRun(seed=0, device=device)
    final = mod.train(cfg, run)
    ev = mod.evaluate(cfg, run.model, 0, str(device))
    _sync(device)
    print(
        f"{name}: success rate {final['success_rate']:.1f} % (evaluated "
        f"{ev['metrics']['success_rate']:.1f} %) in {time.perf_counter() - t0:.1f}s on {device}"
    )


def control(device: torch.device, updates: int = 200) -> None:
    """Every registered control method's agent: updates, diagnostics and acting on ``device``."""
    import methods
    from methods.common.replay import ReplayBuffer

    obs_dim, act_dim = 17, 6
    buf = ReplayBuffer(5000, obs_dim, act_dim, device)
    rng = np.random.default_rng(0)
    for _ in range(5000):
        buf.add(rng.normal(size=obs_dim), rng.uniform(-1, 1, act_dim), rng.normal(), rng.normal(size=obs_dim), False)
    task = type("Task", (), {"obs_dim": obs_dim, "act_dim": act_dim, "max_action": 1.0})()
    for name in registered("control"):
        mod = methods.load(name)
        kw = {"delta": 50, "iterations": 10_000, "start_steps": 0} if name == "ne" else {}
        cfg = mod.Config(**kw)
        gen = torch.Generator(device=device).manual_seed(0)
        agent = mod.make_agent(cfg, task, device, gen)
        for _ in range(5):
            agent.update(buf, 0)
        _sync(device)
        t0 = time.perf_counter()
        for step in range(updates):
            agent.update(buf, step)
        _sync(device)
        diag = agent.diagnostics(buf)
        a = agent.act(torch.zeros(obs_dim, device=device), explore=True)
        assert a.device.type == device.type and torch.isfinite(a).all(), name
        print(
            f"{name}: {updates / (time.perf_counter() - t0):.0f} updates/s on {device}, "
            f"critic active ratio {diag.get('critic_active_ratio', float('nan')):.2f}"
        )


if __name__ == "__main__":
    dev = torch.device("cuda")
    print(torch.cuda.get_device_name(dev), torch.__version__)
    gfn(dev)
    control(dev)
    print("cuda check: ok")
