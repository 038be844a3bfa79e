"""Bench: training throughput of every GFlowNet method beside TB's, through the same loop the
pipeline runs (``method.train(cfg, run)``), on HG-A hypergrids.

The per-iteration cost is the difference of two runs of the full training function
(``--short`` and ``--long`` iterations) divided by the difference in iterations, so the fixed
costs (building the exact-distribution tables, the metrics at iteration 0 and at the end)
cancel out. Settings: EGFN Table 2 HG-A (MLP 256 x 2, batch 16 online + 16 replay), 1 torch
thread, CPU. Writes bench/out/methods.json and prints a markdown table.

    <venv>/bin/python bench/methods_bench.py [--sizes 2x16,4x20] [--methods tb,db,egfn,...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def per_iteration(method: str, ndim: int, height: int, short: int, long: int, seed: int) -> dict:
    import torch

    import methods
    from methods.common.runapi import MemoryRun

    mod = methods.load(method)
    times = {}
    for n in (short, long):
        # one network and batch size for all (RPE's paper default is 2048 units, 32 trajectories)
        cfg = mod.Config(
            env="hypergrid",
            env_kwargs={"ndim": ndim, "height": height},
            iterations=n,
            eval_every=10**9,
            checkpoint_every=10**9,
            hidden=256,
            n_hidden_layers=2,
            online_batch=16,
        )
        run = MemoryRun(seed=seed)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        final = mod.train(cfg, run)
        times[n] = (time.perf_counter() - t0, final["trajectories"])
    dt_s = (times[long][0] - times[short][0]) / (long - short)
    traj = (times[long][1] - times[short][1]) / (long - short)
    return {"ms_per_iteration": 1e3 * dt_s, "learner_traj_per_s": traj / dt_s}


def main() -> None:
    import torch

    import methods

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2x16,4x20")
    ap.add_argument(
        "--methods", default=",".join(m for m in methods.names() if methods.module_name(m).startswith("methods.gfn"))
    )
    ap.add_argument("--short", type=int, default=20)
    ap.add_argument("--long", type=int, default=320)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "methods.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for size in args.sizes.split(","):
        ndim, height = (int(v) for v in size.lower().split("x"))
        for method in args.methods.split(","):
            try:
                importlib.import_module(methods.module_name(method))
            except ImportError as exc:
                print(f"skip {method}: {exc}", file=sys.stderr)
                continue
            runs = [per_iteration(method, ndim, height, args.short, args.long, seed) for seed in range(args.repeats)]
            rows.append(
                {
                    "size": size,
                    "method": method,
                    "ms_per_iteration": statistics.median(r["ms_per_iteration"] for r in runs),
                    "learner_traj_per_s": statistics.median(r["learner_traj_per_s"] for r in runs),
                }
            )
            print(f"{size} {method}: {rows[-1]['ms_per_iteration']:.2f} ms/iteration", file=sys.stderr)
    for size in {r["size"] for r in rows}:
        base = next((r for r in rows if r["size"] == size and r["method"] == "tb"), None)
        for r in rows:
            if r["size"] == size and base is not None:
                r["cost_vs_tb"] = r["ms_per_iteration"] / base["ms_per_iteration"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "rows": rows}, indent=2))
    print("| hypergrid | method | ms / iteration | learner trajectories / s | cost vs TB |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r['method']} | {r['ms_per_iteration']:.2f} | "
            f"{r['learner_traj_per_s']:.0f} | {r.get('cost_vs_tb', float('nan')):.2f}x |"
        )


if __name__ == "__main__":
    main()
