"""Bench: whole training runs of k seeds in one group job (methods/control/group_loop.py)
against the same k seeds trained one after another with the single-seed loop (loop.py): the
pipeline's two ways of running a `seed_batch` experiment, environment steps, evaluation and
diagnostics included.

NE's `small` TD3 setting by default (HalfCheetah-v5, 128 units, batch 128, 3-layer critic with
LayerNorm on the last hidden layer); ``--method sac20 --task Hopper-v5 --utd 5`` is OMNet's
`small` SAC-20. One torch thread, CPU. Reported: wall seconds of k single runs and of the group,
and the ratio (seed-env-steps per second, group / single).

    <venv>/bin/python bench/seed_group_bench.py [--method td3] [--k 2,5,8] [--hidden 128] [--steps 3000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def config(method: str, hidden: int, steps: int, warmup: int, task: str, utd: int):  # noqa: ANN201
    import methods

    critic = {"critic_hidden_layers": 3, "critic_layernorm": "last"} if method.startswith("td3") else {}
    return methods.load(method).Config(
        **critic,
        utd=utd,
        env_kwargs={"suite": "gym", "task": task},
        iterations=warmup + steps,
        eval_every=warmup + steps,  # one evaluation, at the end
        checkpoint_every=10**9,
        start_steps=warmup,
        hidden=hidden,
        batch=hidden,
        eval_episodes=1,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="td3", help="a method of methods.GROUP_TRAINERS")
    ap.add_argument("--utd", type=int, default=1)
    ap.add_argument("--k", default="2,5,8")
    ap.add_argument("--hidden", default="128")
    ap.add_argument("--steps", type=int, default=3000, help="environment steps after the warm-up")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--task", default="HalfCheetah-v5")
    ap.add_argument("--out", default=str(REPO / "bench/out/seed_group.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    import methods
    from methods.common.runapi import MemoryRun, MemoryRunGroup

    module, trainer = methods.load(args.method), methods.group_trainer(args.method)
    ks = [int(k) for k in args.k.split(",")]
    rows = []
    print(
        f"{args.method}, {args.task}, {args.warmup} warm-up + {args.steps} steps ({args.utd} updates each), one thread"
    )
    print("| hidden | k | k single runs, s | group, s | ratio |")
    print("|---|---|---|---|---|")
    for hidden in map(int, args.hidden.split(",")):
        cfg = config(args.method, hidden, args.steps, args.warmup, args.task, args.utd)
        single: list[float] = []
        for seed in range(max(ks)):  # each seed's single run once; a k uses the first k
            t0 = time.perf_counter()
            module.train(cfg, MemoryRun(seed))
            single.append(time.perf_counter() - t0)
        for k in ks:
            t0 = time.perf_counter()
            trainer.train_group(cfg, MemoryRunGroup(list(range(k))))
            group = time.perf_counter() - t0
            alone = sum(single[:k])
            rows.append({"hidden": hidden, "k": k, "single_s": alone, "group_s": group, "ratio": alone / group})
            print(f"| {hidden} | {k} | {alone:.1f} | {group:.1f} | {alone / group:.2f}x |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {"method": args.method, "task": args.task, "utd": args.utd, "steps": args.steps, "rows": rows}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
