"""Bench: the multi-agent learner's throughput — env steps/s of the episode runner (ε-greedy
action selection included) and learner updates/s — for QMIX (FuPS+ID), Kaleidoscope, NoPS and
VDN on the same MPE task, agent size and batch (EPyMARL defaults: hidden 64, batch 32 episodes),
1 torch thread, CPU. Kaleidoscope's cost is read as a ratio to QMIX's (its masked layers build
K effective weight matrices per forward pass). Rates are those the training loop logs itself
(``time_env_steps_per_s``, ``time_updates_per_s``: timed around the runner and the learner only).
Writes bench/out/marl.json and prints a markdown table.

The peer named by issue 14 (BenchMARL 1.5.2's QMIX in its own venv) is not run yet.

    <venv>/bin/python bench/marl_bench.py [--task spread] [--steps 3000]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METHODS = ("qmix", "kaleidoscope", "qmix_nops", "vdn")


def measure(method: str, task: str, steps: int) -> dict[str, float]:
    import torch

    import methods
    from methods.common.runapi import MemoryRun

    torch.set_num_threads(1)
    mod = methods.load(method)
    # ε at its floor from the start would not change the cost; the learner runs from the 32nd episode
    cfg = mod.Config(env_kwargs={"task": task}, iterations=steps, eval_every=steps, checkpoint_every=10 * steps,
                     eval_episodes=1, buffer_size=1000, epsilon_anneal_steps=steps)
    run = MemoryRun(seed=0)
    mod.train(cfg, run)
    row = run.rows[-1]
    return {"env_steps_per_s": row["time_env_steps_per_s"], "updates_per_s": row["time_updates_per_s"],
            "updates": row["updates"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="spread")
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()
    results = {m: measure(m, args.task, args.steps) for m in METHODS}
    base = results["qmix"]
    print(f"| method ({args.task}, {args.steps} env steps) | env steps/s | updates/s | updates/s vs QMIX |")
    print("|---|---|---|---|")
    for m, r in results.items():
        print(f"| {m} | {r['env_steps_per_s']:.0f} | {r['updates_per_s']:.1f} | "
              f"{r['updates_per_s'] / base['updates_per_s']:.2f}x |")
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "marl.json").write_text(json.dumps({"task": args.task, "steps": args.steps, "results": results}, indent=2))


if __name__ == "__main__":
    main()
