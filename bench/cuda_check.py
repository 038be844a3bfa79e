"""CUDA-path check (run on a GPU machine; CI has none): GFlowNet training on HG-A (TB, RPE,
soft DQN) and TD3 / SAC / NE / OMNet updates on a synthetic replay buffer, all on ``cuda``.
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


def gfn(device: torch.device) -> None:
    from methods.common.runapi import MemoryRun
    from methods.gfn import rpe, soft_dqn, tb

    for mod in (tb, rpe, soft_dqn):
        cfg = mod.Config(env="hypergrid", env_kwargs={"ndim": 2, "height": 8, "r0": 0.1},
                         iterations=200, eval_every=100, hidden=64)
        t0 = time.perf_counter()
        final = mod.train(cfg, MemoryRun(seed=0, device=device))
        print(f"{mod.__name__}: exact TV {final['exact_tv']:.3f} in {time.perf_counter() - t0:.1f}s on {device}")


def control(device: torch.device) -> None:
    from methods.common.replay import ReplayBuffer
    from methods.control import ne, omnet, sac, td3

    obs_dim, act_dim = 17, 6
    buf = ReplayBuffer(5000, obs_dim, act_dim, device)
    rng = np.random.default_rng(0)
    for _ in range(5000):
        buf.add(rng.normal(size=obs_dim), rng.uniform(-1, 1, act_dim), rng.normal(), rng.normal(size=obs_dim), False)
    for mod, kw in ((td3, {}), (sac, {}), (ne, {"delta": 50, "iterations": 10_000, "start_steps": 0}), (omnet, {})):
        cfg = mod.Config(**kw)
        gen = torch.Generator(device=device).manual_seed(0)
        agent = mod.make_agent(cfg, type("T", (), {"obs_dim": obs_dim, "act_dim": act_dim, "max_action": 1.0})(),
                               device, gen)
        for _ in range(5):
            agent.update(buf, 0)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        n = 200
        for _ in range(n):
            agent.update(buf, 0)
        torch.cuda.synchronize()
        diag = agent.diagnostics(buf)
        a = agent.act(torch.zeros(obs_dim, device=device), explore=True)
        assert a.device.type == "cuda" and torch.isfinite(a).all()
        print(f"{mod.__name__}: {n / (time.perf_counter() - t0):.0f} updates/s on {device}, "
              f"critic active ratio {diag['critic_active_ratio']:.2f}")


if __name__ == "__main__":
    dev = torch.device("cuda")
    print(torch.cuda.get_device_name(dev), torch.__version__)
    gfn(dev)
    control(dev)
    print("cuda check: ok")
