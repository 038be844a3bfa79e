"""Bench: TD3 updates of k seeds on stacked networks (methods/control/seed_batch.py) against the
same k seeds updated one after another with the single-seed agent, in one process.

Hopper sizes (obs 11, act 3), batch 256, one torch thread, CPU; each seed has its own replay
buffer (random transitions) and generator. Reported: seed-updates per second of both paths and
their ratio; the two paths alternate ``--repeats`` times and the medians are reported.

    <venv>/bin/python bench/seed_batch_bench.py [--k 1,2,4,8] [--hidden 64,256] [--updates 200]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OBS, ACT, BATCH = 11, 3, 256


def setup(k: int, hidden: int):  # noqa: ANN201
    import methods
    from methods.common.replay import ReplayBuffer
    from methods.control.td3 import TD3Agent

    cfg = methods.load("td3").Config(hidden=hidden, batch=BATCH)
    agents, buffers = [], []
    for s in range(k):
        torch.manual_seed(s)
        agents.append(TD3Agent(cfg, OBS, ACT, 1.0, torch.device("cpu"), torch.Generator().manual_seed(s)))
        buf = ReplayBuffer(10_000, OBS, ACT)
        g = torch.Generator().manual_seed(100 + s)
        for key, shape in (("obs", (OBS,)), ("action", (ACT,)), ("reward", ()), ("next_obs", (OBS,))):
            buf.data[key].copy_(torch.randn(10_000, *shape, generator=g))
        buf.size = buf.capacity
        buffers.append(buf)
    return agents, buffers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", default="1,2,4,8")
    ap.add_argument("--hidden", default="64,256")
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from methods.control.seed_batch import StackedTD3

    print("| hidden | k | single-seed agents, seed-updates/s | stacked, seed-updates/s | ratio |")
    print("|---|---|---|---|---|")
    for hidden in map(int, args.hidden.split(",")):
        for k in map(int, args.k.split(",")):
            agents, buffers = setup(k, hidden)
            stacked = StackedTD3([copy.deepcopy(a) for a in agents])
            gens = [torch.Generator().manual_seed(7 + s) for s in range(k)]
            for a in agents:  # warm-up
                a.update(buffers[0], 0)
            stacked.update(buffers, gens)
            single_t, stacked_t = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for _ in range(args.updates):
                    for a, buf in zip(agents, buffers):
                        a.update(buf, 0)
                single_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                for _ in range(args.updates):
                    stacked.update(buffers, gens)
                stacked_t.append(time.perf_counter() - t0)
            n = k * args.updates
            single, batched = n / statistics.median(single_t), n / statistics.median(stacked_t)
            print(f"| {hidden} | {k} | {single:.0f} | {batched:.0f} | {batched / single:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
