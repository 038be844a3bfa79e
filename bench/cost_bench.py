"""Bench: what each paper's runs cost at a scale, measured on this machine (pipeline/costs.py).

For every (experiment, method) of the selected papers, the method's own ``train`` runs at the
scale's resolved settings, cut to the config's ``measure_iterations()`` by
``Config.measurement_config`` (evaluations and checkpoints off; control and MATD3 warm up for
1000 steps instead of the paper's 5k-25k). A loop that asks ``run.should_stop()`` once per
iteration (the GFlowNet loops) is timed between those questions, which leaves out the exact
metrics computed before and after the iterations; the others run twice (short and long) and
the seconds per iteration are the difference of the wall times over the difference in
iterations, so environment construction and the warm-up cancel out. One torch thread, in this
process, seed 0. The rates are merged into ``bench/costs/<scale>.json`` (other pairs kept),
which ``python -m pipeline plan`` and the README's cost table read.

    <venv>/bin/python bench/cost_bench.py [--scale paper] [--papers egfn,bn] [--only SUBSTRING]
    <venv>/bin/python bench/cost_bench.py --readme     # rewrite the README's table from the file
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def log(msg: str) -> None:
    print(f"[cost_bench] {msg}", file=sys.stderr, flush=True)


class TimedRun:
    """A MemoryRun that notes when the loop asks whether to stop: the GFlowNet loops ask once
    per iteration, so the time between the first and the last question is the iterations'
    own cost, without the exact-distribution metrics computed before and after them."""

    def __init__(self, run):  # noqa: ANN001
        self.run, self.asked = run, []

    def __getattr__(self, name: str):  # noqa: ANN204  (everything else is the MemoryRun's)
        return getattr(self.run, name)

    def should_stop(self) -> bool:
        self.asked.append(time.perf_counter())
        return self.run.should_stop()


def measure_pair(job, assets_root: Path) -> dict:  # noqa: ANN001  (a pipeline RunJob)
    """Seconds per iteration of ``job``'s (experiment, method) at its scale's settings: timed
    between the loop's per-iteration questions where it asks once per iteration (GFlowNets),
    else the difference of a short and a long run over their difference in iterations."""
    import torch

    import envs
    import methods
    from methods.common.runapi import MemoryRun
    from pipeline.config import env_key

    assets = assets_root / env_key(job.env, job.env_kwargs)
    if not assets.exists():
        envs.make(job.env, **job.env_kwargs).write_assets(assets)
    module = methods.load(job.method)
    cfg = job.method_config()
    short, long = cfg.measure_iterations()
    seconds = {}
    for n in (long, short):
        torch.manual_seed(0)
        run = TimedRun(MemoryRun(seed=0, assets_dir=assets))
        t0 = time.perf_counter()
        module.train(cfg.measurement_config(n), run)
        seconds[n] = time.perf_counter() - t0
        if len(run.asked) == n:  # once per iteration
            rate = (run.asked[-1] - run.asked[0]) / (n - 1)
            return {
                "s_per_iteration": rate,
                "iterations": [n],
                "seconds": [round(seconds[n], 3)],
                "timed": "per iteration",
            }
    return {
        "s_per_iteration": max(seconds[long] - seconds[short], 0.0) / (long - short),
        "iterations": [short, long],
        "seconds": [round(seconds[short], 3), round(seconds[long], 3)],
        "timed": "difference of two runs",
    }


def write_readme(scale: str) -> None:
    from pipeline import costs
    from pipeline.config import load_from_files

    wf = load_from_files(REPO / "config" / "config.yaml", {"scale": scale})
    measured = costs.load_measured(scale, REPO)
    table = costs.cost_table([costs.paper_cost(cfg, scale, measured) for cfg in wf.papers.values()], measured, scale)
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = text.index(costs.README_BEGIN), text.index(costs.README_END)
    readme.write_text(text[:start] + costs.README_BEGIN + "\n" + table + "\n" + text[end:])
    log(f"README.md: the {scale} cost table rewritten")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="paper")
    ap.add_argument("--papers", help="comma-separated (default: all of config/config.yaml)")
    ap.add_argument("--only", default="", help="measure only pairs whose paper/experiment/method contains this")
    ap.add_argument("--readme", action="store_true", help="only rewrite the README's table from the file")
    args = ap.parse_args()
    if args.readme:
        write_readme(args.scale)
        return 0

    import torch

    from pipeline import costs
    from pipeline.config import expand_jobs, load_from_files

    torch.set_num_threads(1)
    overrides = {"scale": args.scale, **({"papers": args.papers.split(",")} if args.papers else {})}
    wf = load_from_files(REPO / "config" / "config.yaml", overrides)
    out = costs.measured_path(args.scale, REPO)
    doc = costs.load_measured(args.scale, REPO) or {"scale": args.scale, "pairs": {}}
    doc.update(
        date=datetime.date.today().isoformat(),
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        threads=1,
    )
    assets_root = Path(os.environ.get("RLREPRO_BENCH_ASSETS", tempfile.gettempdir())) / "rl-repro-cost-assets"
    for cfg in wf.papers.values():
        seen = set()
        for job in expand_jobs(cfg, args.scale):
            key = costs.pair_key(job)
            if key in seen or args.only not in key:
                continue
            seen.add(key)
            t0 = time.perf_counter()
            doc["pairs"][key] = measure_pair(job, assets_root)
            log(
                f"{key}: {doc['pairs'][key]['s_per_iteration'] * 1e3:.2f} ms/iteration "
                f"({time.perf_counter() - t0:.0f} s)"
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")  # after every pair: resumable
    write_readme(args.scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
