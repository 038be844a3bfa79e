"""Bench: QGFN's sampling and training throughput beside TB's on the same environment.

Sampling: trajectories/s of ``sample_trajectories`` with TB's forward policy and with each QGFN
mixture (the sampling copy's P_F and the Q network at every step). Training: the cost of one
iteration of the full training function (two run lengths, the difference, so fixed costs
cancel). Same MLP (256 x 2), batch and env for both; 1 torch thread, CPU.
Writes bench/out/qgfn.json and prints a markdown table.

    <venv>/bin/python bench/qgfn_bench.py [--envs bitseq,qm9str] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ENVS = {"bitseq": {"n": 120, "k": 4, "mdp": "pa"}, "qm9str": {}}


def sampling_rate(env_name: str, batch: int, repeats: int) -> dict[str, float]:
    import torch

    from methods.gfn import core, qgfn
    from methods.gfn.policy import sample_trajectories

    out = {}
    cfg = qgfn.Config(env=env_name, env_kwargs=ENVS[env_name], hidden=256, online_batch=batch)
    env, net, _ = core.build(cfg, torch.device("cpu"), 0)
    policies = {"tb (P_F)": core.forward_head(env, net)}
    for kind in qgfn.MIXTURES:
        learner = qgfn.make_learner(qgfn.Config(**{**cfg.to_dict(), "mixture": kind, "p": qgfn.DEFAULT_P[kind]}))
        learner.bind(env, net)
        learner.training = False  # sample at the full p, not the ramp's start
        policies[f"qgfn {kind}"] = learner.policy(env, net)
    for name, policy in policies.items():
        gen = torch.Generator().manual_seed(0)
        sample_trajectories(env, policy, batch, gen)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sample_trajectories(env, policy, batch, gen)
            times.append(time.perf_counter() - t0)
        out[name] = batch / statistics.median(times)
    return out


def training_cost(env_name: str, batch: int, short: int, long: int) -> dict[str, float]:
    import torch

    from methods.common.runapi import MemoryRun
    from methods.gfn import qgfn, tb

    out = {}
    for name, mod, extra in (("tb", tb, {"uniform_pb": True}), ("qgfn", qgfn, {})):
        times = []
        for n in (short, long):
            cfg = mod.Config(
                env=env_name,
                env_kwargs=ENVS[env_name],
                iterations=n,
                eval_every=10**9,
                checkpoint_every=10**9,
                hidden=256,
                online_batch=batch,
                **extra,
            )
            torch.manual_seed(0)
            t0 = time.perf_counter()
            mod.train(cfg, MemoryRun(seed=0))
            times.append(time.perf_counter() - t0)
        out[name] = (times[1] - times[0]) / (long - short) * 1000.0  # ms per iteration
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--envs", default="bitseq,qm9str")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--short", type=int, default=10)
    ap.add_argument("--long", type=int, default=40)
    args = ap.parse_args()
    results = {}
    print("| env | sampler | trajectories/s | ratio to TB |\n|---|---|---:|---:|")
    for env_name in args.envs.split(","):
        rates = sampling_rate(env_name, args.batch, args.repeats)
        cost = training_cost(env_name, args.batch, args.short, args.long)
        results[env_name] = {"sampling_traj_per_s": rates, "train_ms_per_iteration": cost}
        base = rates["tb (P_F)"]
        for name, r in rates.items():
            print(f"| {env_name} | {name} | {r:,.0f} | {r / base:.2f} |")
        print(
            f"| {env_name} | training ms/iteration: TB {cost['tb']:.1f}, QGFN {cost['qgfn']:.1f} "
            f"| | {cost['qgfn'] / cost['tb']:.2f} |"
        )
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "qgfn.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
