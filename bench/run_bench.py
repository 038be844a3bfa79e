"""Bench: hypergrid TB training throughput, ours vs torchgfn 2.4.1, and the DAG overhead.

Run with the project venv (``make bench``)::

    <venv>/bin/python bench/run_bench.py [--iterations 1000] [--skip-dag] [--skip-torchgfn]

1. Ours: a warm training loop built from ``methods.gfn.core``'s public functions
   (sample_trajectories -> evaluate_trajectories -> TB loss -> Adam step), replay off, no
   metrics inside the timed region; warm-up, then ``--repeats`` fresh runs, median.
2. torchgfn: the same loop through torchgfn's public API, in a subprocess of the bench venv
   (``bench/torchgfn_side.py``; torchgfn pins numpy<2, so it never enters the project venv).
3. DAG overhead: wall time of ``snakemake -n --config scale=paper`` in the repo, beside the
   same DAG shape written as plain Snakemake (the floor no workflow of this size can go under),
   and of a no-op rerun of a completed smoke workflow in a temporary git copy of the workflow.

Writes bench/out/results.json and prints a markdown table. torchgfn is a bench-only
dependency: nothing in the project imports it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dag_bench import bench_dag

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
BENCH_VENV = Path(os.environ.get("RLREPRO_BENCH_VENV", Path.home() / ".cache" / "rl-repro" / "bench-venv-torchgfn"))
TORCH_PIN, TORCHGFN_PIN = "torch==2.13.0", "torchgfn==2.4.1"
# the common settings of both sides (EGFN Table 2, HG-A column; replay off)
COMMON = {
    "batch": 16,
    "hidden": 256,
    "n_hidden_layers": 2,
    "lr": 1e-3,
    "log_z_lr": 0.1,
    "r0": 1e-3,
    "r1": 0.5,
    "r2": 2.0,
    "threads": 1,
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- our loop
def ours_runner():
    """Returns ``one_run(ndim, height, seed, iterations, warmup) -> dict``: a fresh model,
    ``warmup`` untimed iterations, then ``iterations`` timed ones (training step only)."""
    import torch

    sys.path.insert(0, str(REPO))
    from methods.gfn import core, tb

    torch.set_num_threads(COMMON["threads"])
    device = torch.device("cpu")
    loss_fn = tb.TrajectoryBalance()

    def one_run(ndim: int, height: int, seed: int, iterations: int, warmup: int) -> dict:
        cfg = tb.Config(
            env="hypergrid",
            env_kwargs={"ndim": ndim, "height": height},
            hidden=COMMON["hidden"],
            n_hidden_layers=COMMON["n_hidden_layers"],
            lr=COMMON["lr"],
            log_z_lr=COMMON["log_z_lr"],
            online_batch=COMMON["batch"],
            replay_batch=0,
            epsilon=0.0,
        )
        env, net, log_z = core.build(cfg, device, seed)
        assert (env.r0, env.r1, env.r2) == (COMMON["r0"], COMMON["r1"], COMMON["r2"])
        opt = torch.optim.Adam([{"params": net.parameters(), "lr": cfg.lr}, {"params": [log_z], "lr": cfg.log_z_lr}])
        gen = torch.Generator(device=device).manual_seed(seed)

        def step() -> torch.Tensor:
            actions = core.sample_trajectories(env, net, cfg.online_batch, gen, cfg.epsilon)
            batch = core.evaluate_trajectories(env, net, actions, cfg.reward_beta)
            loss = loss_fn(batch, log_z)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return actions  # transitions counted after the timed region

        for _ in range(warmup):
            step()
        acts = []
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(iterations):
            acts.append(step())
        sec = time.perf_counter() - t0
        cpu = time.process_time() - c0
        lens = torch.cat([(a >= 0).sum(1) for a in acts]).double()  # actions incl. stop
        n_traj, n_trans = int(lens.numel()), int(lens.sum())
        return {
            "ndim": ndim,
            "height": height,
            "mode": "ours",
            "seed": seed,
            "seconds": sec,
            "cpu_seconds": cpu,
            "trajectories": n_traj,
            "transitions": n_trans,
            "traj_per_s": n_traj / sec,
            "trans_per_s": n_trans / sec,
            "traj_per_cpu_s": n_traj / cpu,
            "mean_len": float(lens.mean()),
        }

    return one_run


def summarise(runs: list[dict]) -> list[dict]:
    """Median over seeds of every (size, implementation/mode) group."""
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["ndim"], r["height"], r["mode"]), []).append(r)
    out = []
    for (ndim, height, mode), rs in groups.items():
        out.append(
            {
                "ndim": ndim,
                "height": height,
                "mode": mode,
                "n_runs": len(rs),
                **{
                    k: statistics.median(r[k] for r in rs)
                    for k in ("traj_per_s", "trans_per_s", "traj_per_cpu_s", "mean_len", "seconds")
                },
            }
        )
    return out


# ------------------------------------------------------------------------ torchgfn side
def bench_python() -> Path:
    return BENCH_VENV / "bin" / "python"


def ensure_bench_venv() -> None:
    """Create the bench venv (outside the repo) on first use; refuse a CUDA torch."""
    if (BENCH_VENV / ".complete").exists():
        return
    log(f"creating the torchgfn bench venv {BENCH_VENV}")
    BENCH_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([shutil.which("python3.11") or "python3", "-m", "venv", str(BENCH_VENV)], check=True)
    # extra pip arguments (e.g. a CPU wheel index) via $RLREPRO_BENCH_PIP_ARGS
    extra = os.environ.get("RLREPRO_BENCH_PIP_ARGS", "").split()
    subprocess.run([str(bench_python()), "-m", "pip", "install", "-q", *extra, TORCH_PIN, TORCHGFN_PIN], check=True)
    check = subprocess.run(
        [
            str(bench_python()),
            "-c",
            "import torch, importlib.metadata as m; "
            "bad=[d.metadata['Name'] for d in m.distributions() "
            "if d.metadata['Name'].lower().startswith('nvidia')]; "
            "print(torch.__version__, torch.version.cuda, bad)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if "None []" not in check:
        raise SystemExit(
            f"bench venv got a CUDA torch ({check}); remove {BENCH_VENV} and pin a CPU wheel via RLREPRO_BENCH_PIP_ARGS"
        )
    (BENCH_VENV / ".complete").touch()


def torchgfn_runs(
    sizes: list[tuple[int, int]], iterations: int, warmup: int, seeds: list[int], modes: list[str]
) -> dict:
    spec = dict(COMMON, sizes=[list(s) for s in sizes], iterations=iterations, warmup=warmup, seeds=seeds, modes=modes)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the torchgfn side must not see the repository
    proc = subprocess.run(
        [str(bench_python()), str(REPO / "bench" / "torchgfn_side.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"torchgfn side failed (rc {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ report
def versions() -> dict:
    import numpy
    import torch

    v = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cpu_cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                v["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return v


def ratios(summary: list[dict]) -> list[dict]:
    """ours / torchgfn for every size and torchgfn mode."""
    ours = {(r["ndim"], r["height"]): r for r in summary if r["mode"] == "ours"}
    out = []
    for t in summary:
        o = ours.get((t["ndim"], t["height"]))
        if t["mode"] == "ours" or o is None:
            continue
        out.append(
            {
                "ndim": t["ndim"],
                "height": t["height"],
                "vs": t["mode"],
                **{k: o[k] / t[k] for k in ("traj_per_s", "trans_per_s", "traj_per_cpu_s")},
            }
        )
    return out


def table(res: dict) -> str:
    rat = {(r["ndim"], r["height"], r["vs"]): r for r in res["ratios"]}
    lines = [
        "| hypergrid | implementation | traj/s | transitions/s | mean len (actions) | "
        "ours/torchgfn traj/s | ours/torchgfn transitions/s | ours/torchgfn traj/CPU-s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    order = sorted(res["summary"], key=lambda r: (r["ndim"], r["height"], r["mode"] != "ours", r["mode"]))
    for r in order:
        size = f"{r['ndim']}-D, H={r['height']}"
        q = rat.get((r["ndim"], r["height"], r["mode"]))
        cols = f"{q['traj_per_s']:.2f}x | {q['trans_per_s']:.2f}x | {q['traj_per_cpu_s']:.2f}x" if q else "– | – | –"
        lines.append(
            f"| {size} | {r['mode']} | {r['traj_per_s']:.0f} | {r['trans_per_s']:.0f} | {r['mean_len']:.2f} | {cols} |"
        )
    dag = res.get("dag")
    if dag:

        def f(x):
            return "n/a" if x is None else f"{x:.2f} s"

        lines += [
            "",
            "| DAG overhead | wall time (median) |",
            "|---|---:|",
            f"| `snakemake -n --config scale=paper` ({dag.get('dryrun_paper_jobs')} jobs) | "
            f"{f(dag.get('dryrun_paper_s'))} |",
            f"| plain Snakemake, the same DAG shape ({dag.get('dryrun_bare_jobs')} jobs, "
            f"constant rules) | {f(dag.get('dryrun_bare_s'))} |",
            f"| the same, every paper configured twice ({dag.get('dryrun_paper_doubled_papers')} "
            f"papers, {dag.get('dryrun_paper_doubled_jobs')} jobs) | {f(dag.get('dryrun_paper_doubled_s'))} |",
            f"| no-op rerun, `--cores 2 --config scale=smoke` | {f(dag.get('noop_rerun_s'))} |",
            f"| (first smoke run, for reference) | {f(dag.get('smoke_full_run_s'))} |",
        ]
    return "\n".join(lines)


def goals(res: dict) -> str:
    """The issue's goals: ours >= 1.5x torchgfn (traj/s, against torchgfn's faster loop
    variant at every size) and DAG overhead < 3 s."""
    lines = []
    by_size: dict = {}
    for r in res.get("ratios", []):
        k = (r["ndim"], r["height"])
        if k not in by_size or r["traj_per_s"] < by_size[k]["traj_per_s"]:
            by_size[k] = r  # the smallest ratio = torchgfn's fastest variant
    for (d, h), r in by_size.items():
        ok = r["traj_per_s"] >= 1.5
        lines.append(
            f"- {d}-D H={h}: ours/torchgfn ({r['vs']}) = {r['traj_per_s']:.2f}x traj/s, "
            f"{r['trans_per_s']:.2f}x transitions/s -> goal 1.5x "
            f"{'MET' if ok else 'MISSED'}"
        )
    dag = res.get("dag") or {}
    for key, name in (
        ("dryrun_paper_s", "dry run (paper)"),
        ("dryrun_paper_doubled_s", "dry run (paper, papers doubled)"),
        ("noop_rerun_s", "no-op rerun"),
    ):
        v = dag.get(key)
        if v is not None:
            lines.append(f"- {name}: {v:.2f} s -> goal < 3 s {'MET' if v < 3 else 'MISSED'}")
    bare = dag.get("dryrun_bare_s")
    if bare is not None:
        lines.append(
            f"- plain Snakemake, the paper DAG's shape: {bare:.2f} s (the floor; goal < 3 s "
            f"{'reachable' if bare < 3 else 'under the floor'}); ours / plain = "
            f"{dag.get('dryrun_paper_over_bare', float('nan')):.2f}x"
        )
    return "\n".join(lines)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        d, h = part.lower().split("x")
        out.append((int(d), int(h)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2x16,4x20", help="NDIMxHEIGHT,... (default 2x16,4x20)")
    ap.add_argument("--iterations", type=int, default=1000, help="timed iterations per run")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default="onpolicy,recompute", help="torchgfn loop variants (see bench/torchgfn_side.py)")
    ap.add_argument("--dag-repeats", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2, help="cores of the smoke workflow runs")
    ap.add_argument("--skip-torchgfn", action="store_true")
    ap.add_argument("--skip-dag", action="store_true")
    ap.add_argument("--out", default=str(OUT_DIR / "results.json"))
    args = ap.parse_args()
    sizes = parse_sizes(args.sizes)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported

    res: dict = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": versions(),
        "settings": dict(COMMON, iterations=args.iterations, warmup=args.warmup, repeats=args.repeats, sizes=sizes),
    }
    # one fresh run per (repeat, size, implementation); ours and torchgfn alternate repeat
    # by repeat, so a change in background load hits both sides alike
    ours = ours_runner()
    if not args.skip_torchgfn:
        ensure_bench_venv()
    runs, tg_meta = [], {}
    for seed in range(args.repeats):
        for ndim, height in sizes:
            r = ours(ndim, height, seed, args.iterations, args.warmup)
            runs.append(r)
            log(
                f"[ours] {ndim}x{height} seed {seed}: {r['traj_per_s']:.0f} traj/s, "
                f"{r['trans_per_s']:.0f} transitions/s, mean len {r['mean_len']:.2f}"
            )
        if not args.skip_torchgfn:
            tg = torchgfn_runs(sizes, args.iterations, args.warmup, [seed], args.modes.split(","))
            tg_meta = {k: v for k, v in tg.items() if k != "results"}
            for r in tg["results"]:
                r["mode"] = f"torchgfn {r['mode']}"
                runs.append(r)
                log(
                    f"[{r['mode']}] {r['ndim']}x{r['height']} seed {seed}: "
                    f"{r['traj_per_s']:.0f} traj/s, {r['trans_per_s']:.0f} transitions/s, "
                    f"mean len {r['mean_len']:.2f}"
                )
    res["runs"] = runs
    res["summary"] = summarise(runs)
    res["torchgfn_versions"] = tg_meta
    res["ratios"] = ratios(res["summary"])
    if not args.skip_dag:
        res["dag"] = bench_dag(args.dag_repeats, args.cores)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(table(res))
    print()
    print(goals(res))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
