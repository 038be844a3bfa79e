"""Bench: k seeds on this machine's cores, our seed groups against k CleanRL processes (issue 26).

Both sides train k seeds of TD3 (or SAC) on Hopper with 256-256 nets, batch 256, one update per
environment step, on the same cores, all at once:

* **CleanRL**: k processes of ``cleanrl/td3_continuous_action.py`` (or ``sac_...``) at the commit
  pinned in bench/control_peers.py, one torch thread each (``--seed`` 0..k-1), in its bench-only venv.
* **ours**: the k seeds in seed groups (methods/control/group_loop.py) of ``k / cores`` seeds,
  one process per core, one torch thread each: what ``seed_batch`` does in the pipeline.

Throughput is steady-state seed-steps per second: each side runs to ``--short`` and to ``--long``
env steps per seed, and the rate is ``k * (long - short) / (T_long - T_short)`` of the wall time
until the last process ends (start-up and warm-up cancel out). Needs the cores to itself.

    <venv>/bin/python bench/seed_group_peers.py [--k 4] [--cores 2] [--algos td3] [--short 2000] [--long 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from control_peers import ENV_ID, cleanrl_checkout, ensure_peer_venv, peer_python  # noqa: E402

OURS_GROUP = """
import sys, torch
torch.set_num_threads(1)
import methods
from methods.common.runapi import MemoryRunGroup
algo, steps, starts, seeds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = methods.load(algo).Config(env_kwargs={{"suite": "gym", "task": "{env}"}}, iterations=steps,
                                start_steps=starts, eval_every=10**9, checkpoint_every=10**9, eval_episodes=1,
                                hidden=256, batch=256, buffer_size=steps)
methods.group_trainer(algo).train_group(cfg, MemoryRunGroup([int(s) for s in seeds.split(",")]))
"""


def wall_of(commands: list[tuple[list[str], Path, dict[str, str]]]) -> float:
    """Seconds until the last of ``commands`` (started together) ends."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for c, cwd, env in commands
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a bench process failed ({p.returncode}):\n{err.decode()[-3000:]}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=4, help="seeds in all")
    ap.add_argument("--cores", type=int, default=2, help="processes of ours (one seed group each)")
    ap.add_argument("--algos", default="td3")
    ap.add_argument("--short", type=int, default=2000)
    ap.add_argument("--long", type=int, default=4000)
    ap.add_argument("--learning-starts", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "seed_group_peers.json")
    args = ap.parse_args()
    ensure_peer_venv("cleanrl")
    cleanrl = cleanrl_checkout()
    base = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": "disable"}
    ours_env = {**base, "PYTHONPATH": str(REPO)}
    peer_env = {**base, "PYTHONPATH": str(cleanrl), "WANDB_MODE": "disabled"}
    seeds = list(range(args.k))
    size = -(-args.k // args.cores)
    groups = [seeds[i : i + size] for i in range(0, args.k, size)]
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for algo in args.algos.split(","):
            walls: dict[str, dict[int, float]] = {"cleanrl": {}, "ours": {}}
            for steps in (args.short, args.long):
                script = str(cleanrl / "cleanrl" / f"{algo}_continuous_action.py")
                peer = [
                    [
                        str(peer_python("cleanrl")),
                        script,
                        "--env-id",
                        ENV_ID["cleanrl"],
                        "--total-timesteps",
                        str(steps),
                    ]
                    + ["--learning-starts", str(args.learning_starts), "--buffer-size", str(steps), "--no-cuda"]
                    + ["--seed", str(s)]
                    for s in seeds
                ]
                walls["cleanrl"][steps] = wall_of([(c, Path(scratch), peer_env) for c in peer])
                ours = [
                    [sys.executable, "-c", OURS_GROUP.format(env=ENV_ID["ours"]), algo, str(steps)]
                    + [str(args.learning_starts), ",".join(map(str, g))]
                    for g in groups
                ]
                walls["ours"][steps] = wall_of([(c, REPO, ours_env) for c in ours])
                print(f"[seed_group_peers] {algo} {steps} steps: {walls}", file=sys.stderr, flush=True)
            rate = {
                side: args.k * (args.long - args.short) / max(w[args.long] - w[args.short], 1e-9)
                for side, w in walls.items()
            }
            rows[algo] = {**rate, "ratio": rate["ours"] / rate["cleanrl"]}
    print(
        f"\n{args.k} seeds on {args.cores} cores, Hopper (CleanRL v4, ours v5), 256-256, batch 256; "
        f"ours in groups of {size}; steady-state seed-steps/s, {args.short}->{args.long} steps\n"
    )
    print("| algo | k CleanRL processes | ours, seed groups | ours/CleanRL |\n|---|---|---|---|")
    for algo, r in rows.items():
        print(f"| {algo} | {r['cleanrl']:.0f} | {r['ours']:.0f} | {r['ratio']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"k": args.k, "cores": args.cores, "groups": groups, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
