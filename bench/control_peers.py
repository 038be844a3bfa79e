"""Bench: TD3 and SAC training throughput of methods/control beside the peers' own code, in one run.

Sides (each a subprocess on one torch thread, CPU, Hopper-v5, 256-256 nets, batch 256, one
critic update per environment step, TD3's actor every 2nd):

* **ours**: ``methods.load("td3" | "sac").train`` through the pipeline's loop (project venv).
* **CleanRL**: ``cleanrl/td3_continuous_action.py`` / ``sac_continuous_action.py`` of
  vwxyzjn/cleanrl at the pinned commit ``CLEANRL_COMMIT``, run as their README says (``python
  <script> --env-id Hopper-v4 ...``) in a bench-only venv with CleanRL's own pins
  (gymnasium 0.29.1, mujoco 2.3.3, numpy < 2; torch 2.13.0 as ours instead of their 2.4.1, so
  the code is compared, not the torch release). These scripts read gymnasium 0.29's vector-env
  infos, so they run Hopper-v4 (the same MuJoCo model and dynamics as v5; v5 changed defaults
  and fixed bugs, not the cost of a step). Nothing of CleanRL enters the repository.
* **SB3**: Stable-Baselines3 2.9.2 ``TD3`` / ``SAC`` on Hopper-v5 with the same nets, batch,
  learning rate, warm-up and one gradient step per env step, in a second bench-only venv with
  the project's gymnasium / mujoco / numpy pins.

Throughput is steady-state training steps per second: every side runs twice, to ``--short``
and to ``--long`` env steps with the same ``--learning-starts`` warm-up, and the rate is
``(long - short) / (T_long - T_short)`` of the whole process's wall time, so start-up (imports,
env and buffer creation, the warm-up) cancels out. With one update per step this is also
updates/s. The ratios ours/peer are printed and written to bench/out/control_peers.json.

    <venv>/bin/python bench/control_peers.py [--short 2000] [--long 5000] [--algos td3,sac]

The bench-only venvs (~/.cache/rl-repro/bench-venv-sb3 and bench-venv-cleanrl) are created on
first use with the pins in ``VENVS``. CleanRL's files come from ``$CLEANRL_DIR`` (a
checkout of vwxyzjn/cleanrl; the bench checks out ``CLEANRL_COMMIT`` into a scratch copy) or
are cloned from GitHub into ~/.cache/rl-repro/cleanrl.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "rl-repro"
CLEANRL_URL = "https://github.com/vwxyzjn/cleanrl"
CLEANRL_COMMIT = "fe8d8a03c41a7ef5b523e2e354bd01c363e786bb"  # 2025, "docs: fix PPO title ..." (#549)
SB3_PIN = "stable-baselines3==2.9.2"
VENVS = {
    "sb3": ("torch==2.13.0", SB3_PIN, "gymnasium==1.4.0", "mujoco==3.3.0", "numpy==2.4.6", "imageio"),
    "cleanrl": (
        "torch==2.13.0",
        "gymnasium==0.29.1",
        "mujoco==2.3.3",
        "numpy<2",
        "tyro>=0.5.10",
        "tensorboard",
        "imageio",
        "psutil",
    ),
}
ENV_ID = {"ours": "Hopper-v5", "sb3": "Hopper-v5", "cleanrl": "Hopper-v4"}

OURS = """
import sys, torch
torch.set_num_threads(1)
import methods
from methods.common.runapi import MemoryRun
algo, steps, starts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mod = methods.load(algo)
cfg = mod.Config(env_kwargs={{"suite": "gym", "task": "{env}"}}, iterations=steps, start_steps=starts,
                 eval_every=10**9, checkpoint_every=10**9, eval_episodes=1, hidden=256, batch=256,
                 buffer_size=steps)
mod.train(cfg, MemoryRun(seed=1))
"""

SB3 = """
import sys, numpy as np, torch, gymnasium as gym
torch.set_num_threads(1)
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.noise import NormalActionNoise
algo, steps, starts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
env = gym.make("{env}")
common = dict(learning_rate=3e-4, buffer_size=steps, learning_starts=starts, batch_size=256, tau=0.005,
              gamma=0.99, train_freq=1, gradient_steps=1, policy_kwargs=dict(net_arch=[256, 256]),
              device="cpu", seed=1, verbose=0)
if algo == "td3":
    n = env.action_space.shape[0]
    model = TD3("MlpPolicy", env, policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5,
                action_noise=NormalActionNoise(np.zeros(n), 0.1 * np.ones(n)), **common)
else:
    model = SAC("MlpPolicy", env, ent_coef="auto", **common)
model.learn(total_timesteps=steps)
"""


def log(msg: str) -> None:
    print(f"[control_peers] {msg}", file=sys.stderr, flush=True)


def peer_python(side: str) -> Path:
    return CACHE / f"bench-venv-{side}" / "bin" / "python"


def ensure_peer_venv(side: str) -> None:
    venv = CACHE / f"bench-venv-{side}"
    if (venv / ".complete").exists():
        return
    log(f"creating the {side} bench venv {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([shutil.which("python3.11") or sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(peer_python(side)), "-m", "pip", "install", "-q", *VENVS[side]], check=True)
    (venv / ".complete").touch()


def cleanrl_checkout() -> Path:
    """CleanRL's scripts at CLEANRL_COMMIT in a scratch directory outside the repository."""
    out = CACHE / f"cleanrl-{CLEANRL_COMMIT[:12]}"
    if (out / "cleanrl" / "td3_continuous_action.py").exists():
        return out
    src = os.environ.get("CLEANRL_DIR")
    if not src:
        src = str(CACHE / "cleanrl-git")
        if not Path(src).exists():
            subprocess.run(["git", "clone", "-q", CLEANRL_URL, src], check=True)
    out.mkdir(parents=True, exist_ok=True)
    where = ["-C", src] if (Path(src) / ".git").exists() else [f"--git-dir={src}"]  # a checkout or a bare repo
    archive = subprocess.run(
        ["git", *where, "archive", CLEANRL_COMMIT, "cleanrl", "cleanrl_utils"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return dt


def side_commands(side: str, algo: str, steps: int, starts: int, cleanrl: Path | None) -> tuple[list[str], Path]:
    if side == "ours":
        return [sys.executable, "-c", OURS.format(env=ENV_ID[side]), algo, str(steps), str(starts)], REPO
    if side == "sb3":
        return [str(peer_python(side)), "-c", SB3.format(env=ENV_ID[side]), algo, str(steps), str(starts)], REPO
    assert cleanrl is not None
    script = cleanrl / "cleanrl" / f"{algo}_continuous_action.py"
    return [
        str(peer_python(side)),
        str(script),
        "--env-id",
        ENV_ID[side],
        "--total-timesteps",
        str(steps),
        "--learning-starts",
        str(starts),
        "--buffer-size",
        str(steps),
        "--no-cuda",
        "--seed",
        "1",
    ], cleanrl


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", type=int, default=2000, help="env steps of the short run")
    ap.add_argument("--long", type=int, default=5000, help="env steps of the long run")
    ap.add_argument("--learning-starts", type=int, default=1000, help="uniform warm-up steps (all sides)")
    ap.add_argument("--algos", default="td3,sac")
    ap.add_argument("--sides", default="ours,cleanrl,sb3")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "control_peers.json")
    args = ap.parse_args()
    if not args.learning_starts < args.short < args.long:
        raise SystemExit("need --learning-starts < --short < --long")
    sides = args.sides.split(",")
    for side in {"cleanrl", "sb3"} & set(sides):
        ensure_peer_venv(side)
    cleanrl = cleanrl_checkout() if "cleanrl" in sides else None
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        "MUJOCO_GL": "disable",
        "WANDB_MODE": "disabled",
    }
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for algo in args.algos.split(","):
            for side in sides:
                times = {}
                for steps in (args.short, args.long):
                    cmd, cwd = side_commands(side, algo, steps, args.learning_starts, cleanrl)
                    # CleanRL writes its TensorBoard runs/ into the working directory: a scratch one
                    if side == "cleanrl":
                        cwd = Path(scratch)
                        env_side = {**env, "PYTHONPATH": str(cleanrl)}
                    else:
                        env_side = env
                    times[steps] = timed(cmd, cwd, env_side)
                    log(f"{algo} {side} {steps} steps: {times[steps]:.1f} s")
                rate = (args.long - args.short) / max(times[args.long] - times[args.short], 1e-9)
                rows.setdefault(algo, {})[side] = rate
    print(
        f"\nsteady-state training steps/s (= critic updates/s), Hopper (CleanRL v4, others v5), 1 thread, "
        f"{args.short}->{args.long} steps after {args.learning_starts} warm-up\n"
    )
    head = ["algo", *sides, *(f"ours/{s}" for s in sides if s != "ours" and "ours" in sides)]
    print("| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    for algo, r in rows.items():
        ratios = [f"{r['ours'] / r[s]:.2f}x" for s in sides if s != "ours" and "ours" in r]
        print("| " + " | ".join([algo, *(f"{r[s]:.0f}" for s in sides), *ratios]) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "machine": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "cleanrl_commit": CLEANRL_COMMIT,
                "venvs": VENVS,
                "env": ENV_ID,
                "short": args.short,
                "long": args.long,
                "learning_starts": args.learning_starts,
                "steps_per_s": rows,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
