"""Bench: the multi-agent learner's throughput — env steps/s of the episode runner (ε-greedy
action selection included) and learner updates/s — for QMIX (FuPS+ID), Kaleidoscope, NoPS and
VDN on the same MPE task, agent size and batch (EPyMARL defaults: hidden 64, batch 32 episodes),
1 torch thread, CPU. Kaleidoscope's cost is read as a ratio to QMIX's (its masked layers build
K effective weight matrices per forward pass). Rates are those the training loop logs itself
(``time_env_steps_per_s``, ``time_updates_per_s``: timed around the runner and the learner only).
Writes bench/out/marl.json and prints a markdown table.

The peer (issue 14): BenchMARL 1.5.2's QMIX on its PettingZoo simple_spread task with the same
env-step budget, agent size and batch, run by ``bench/benchmarl_side.py`` in a bench-only venv
(``~/.cache/rl-repro/bench-venv-benchmarl``, override with $RLREPRO_BENCHMARL_VENV; created on
first use with the pins of ``BENCHMARL_PINS``; extra pip arguments via $RLREPRO_BENCH_PIP_ARGS).
BenchMARL is never a project dependency: the side script runs in a subprocess without
PYTHONPATH and imports nothing from the repository. One update is the same unit on both sides
(one gradient step on 32 episodes x 25 steps = 800 transitions; BenchMARL with one optimizer
step per collected episode), so updates/s compares directly; learner transitions/s (updates/s x
800) is printed as the batch-size-free unit. ``--skip-peer`` omits the peer; the peer runs only
beside ``--task spread``.

    <venv>/bin/python bench/marl_bench.py [--task spread] [--steps 3000] [--methods qmix,...]
                                          [--repeats 1] [--skip-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METHODS = ("qmix", "kaleidoscope", "qmix_nops", "vdn")
BATCH_EPISODES, EPISODE_LEN = 32, 25  # ours (EPyMARL's batch) and spread's episode limit
BENCHMARL_VENV = Path(
    os.environ.get("RLREPRO_BENCHMARL_VENV", Path.home() / ".cache" / "rl-repro" / "bench-venv-benchmarl")
)
# what `pip install torch benchmarl pettingzoo mpe2` resolved to (2026-12-04), pinned; torch is
# the CPU wheel (a CUDA torch is refused below)
BENCHMARL_PINS = (
    "torch==2.13.0",
    "torchvision==0.28.0",
    "benchmarl==1.5.2",
    "torchrl==0.11.1",
    "tensordict==0.11.0",
    "hydra-core==1.3.8",
    "pettingzoo==1.27.0",
    "mpe2==1.1.1",
    "numpy==2.4.6",
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(method: str, task: str, steps: int) -> dict[str, float]:
    import torch

    import methods
    from methods.common.runapi import MemoryRun

    torch.set_num_threads(1)
    mod = methods.load(method)
    # ε at its floor from the start would not change the cost; the learner runs from the 32nd episode
    cfg = mod.Config(
        env_kwargs={"task": task},
        iterations=steps,
        eval_every=steps,
        checkpoint_every=10 * steps,
        eval_episodes=1,
        buffer_size=1000,
        epsilon_anneal_steps=steps,
    )
    run = MemoryRun(seed=0)
    mod.train(cfg, run)
    row = run.rows[-1]
    return {
        "env_steps_per_s": row["time_env_steps_per_s"],
        "updates_per_s": row["time_updates_per_s"],
        "updates": row["updates"],
    }


def benchmarl_python() -> Path:
    return BENCHMARL_VENV / "bin" / "python"


def ensure_benchmarl_venv() -> None:
    """Create the BenchMARL bench venv (outside the repository) on first use; refuse a CUDA
    torch. A venv made with other pins is refused rather than silently reused."""
    marker = BENCHMARL_VENV / ".complete"
    pins = "\n".join(BENCHMARL_PINS)
    if marker.exists():
        if marker.read_text() != pins:
            raise SystemExit(f"{BENCHMARL_VENV} was built with other pins; remove it to rebuild")
        return
    log(f"creating the BenchMARL bench venv {BENCHMARL_VENV}")
    BENCHMARL_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([shutil.which("python3.11") or "python3", "-m", "venv", str(BENCHMARL_VENV)], check=True)
    extra = os.environ.get("RLREPRO_BENCH_PIP_ARGS", "").split()
    subprocess.run([str(benchmarl_python()), "-m", "pip", "install", "-q", *extra, *BENCHMARL_PINS], check=True)
    check = subprocess.run(
        [
            str(benchmarl_python()),
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
            f"BenchMARL bench venv got a CUDA torch ({check}); remove {BENCHMARL_VENV} "
            "and pass a CPU wheel index via RLREPRO_BENCH_PIP_ARGS"
        )
    marker.write_text(pins)


def measure_benchmarl(steps: int, seed: int = 0) -> dict:
    """BenchMARL's QMIX on simple_spread for ``steps`` env steps (bench/benchmarl_side.py)."""
    spec = {"steps": steps, "seed": seed, "threads": 1, "batch_episodes": BATCH_EPISODES, "episode_len": EPISODE_LEN}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the BenchMARL side must not see the repository
    proc = subprocess.run(
        [str(benchmarl_python()), str(REPO / "bench" / "benchmarl_side.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"BenchMARL side failed (rc {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in ("env_steps_per_s", "updates_per_s")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="spread")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--methods", default=",".join(METHODS), help="ours, comma-separated (qmix first)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of ours' qmix and of the peer, alternating; medians")
    ap.add_argument(
        "--peer",
        dest="peer",
        action="store_true",
        default=True,
        help="run BenchMARL 1.5.2's QMIX beside ours (default)",
    )
    ap.add_argument("--skip-peer", dest="peer", action="store_false")
    args = ap.parse_args()
    if args.steps <= BATCH_EPISODES * EPISODE_LEN:
        ap.error(
            f"--steps must exceed {BATCH_EPISODES * EPISODE_LEN}: our learner starts at the episode {BATCH_EPISODES}"
        )
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    methods = args.methods.split(",")
    peer = args.peer and args.task == "spread" and "qmix" in methods
    if args.peer and not peer:
        log("the BenchMARL peer runs only with --task spread and qmix among --methods; skipped")
    if peer:
        ensure_benchmarl_venv()
    # ours' qmix and the peer alternate run by run, so a change in background load hits both
    qmix_runs, peer_runs = [], []
    for seed in range(args.repeats if "qmix" in methods else 0):
        qmix_runs.append(measure("qmix", args.task, args.steps))
        log(f"[ours qmix] {qmix_runs[-1]}")
        if peer:
            r = measure_benchmarl(args.steps, seed)
            peer_runs.append(r)
            log(f"[benchmarl qmix] {r['env_steps_per_s']:.0f} env steps/s, {r['updates_per_s']:.1f} updates/s")
    results = {
        m: (dict(qmix_runs[-1], **median_of(qmix_runs)) if m == "qmix" else measure(m, args.task, args.steps))
        for m in methods
    }
    base = results.get("qmix")
    print(
        f"| method ({args.task}, {args.steps} env steps) | env steps/s | updates/s | "
        f"learner transitions/s | updates/s vs QMIX |"
    )
    print("|---|---|---|---|---|")
    for m, r in results.items():
        rel = f"{r['updates_per_s'] / base['updates_per_s']:.2f}x" if base else "–"
        print(
            f"| {m} | {r['env_steps_per_s']:.0f} | {r['updates_per_s']:.1f} | "
            f"{r['updates_per_s'] * BATCH_EPISODES * EPISODE_LEN:.0f} | {rel} |"
        )
    out_doc = {"task": args.task, "steps": args.steps, "repeats": args.repeats, "results": results}
    if peer:
        bm = median_of(peer_runs)
        bm["learner_transitions_per_s"] = bm["updates_per_s"] * peer_runs[0]["transitions_per_update"]
        ratios = {
            "env_steps_per_s": base["env_steps_per_s"] / bm["env_steps_per_s"],
            "updates_per_s": base["updates_per_s"] / bm["updates_per_s"],
            "learner_transitions_per_s": base["updates_per_s"]
            * BATCH_EPISODES
            * EPISODE_LEN
            / bm["learner_transitions_per_s"],
        }
        meta = {
            k: v
            for k, v in peer_runs[0].items()
            if k in ("benchmarl", "torchrl", "tensordict", "torch", "pettingzoo", "mpe2", "threads", "model")
        }
        out_doc["benchmarl"] = {"median": bm, "runs": peer_runs, "versions": meta}
        out_doc["ours_qmix_runs"] = qmix_runs
        out_doc["ratios_ours_over_benchmarl"] = ratios
        print(
            f"| BenchMARL {meta['benchmarl']} qmix | {bm['env_steps_per_s']:.0f} | "
            f"{bm['updates_per_s']:.1f} | {bm['learner_transitions_per_s']:.0f} | – |"
        )
        print(
            f"| **ours/BenchMARL (qmix)** | **{ratios['env_steps_per_s']:.2f}x** | "
            f"**{ratios['updates_per_s']:.2f}x** | **{ratios['learner_transitions_per_s']:.2f}x** | |"
        )
        for k in ("env_steps_per_s", "updates_per_s"):
            log(f"goal >= 1.0x ours/BenchMARL {k}: {ratios[k]:.2f}x -> {'MET' if ratios[k] >= 1.0 else 'MISSED'}")
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "marl.json").write_text(json.dumps(out_doc, indent=2))


if __name__ == "__main__":
    main()
