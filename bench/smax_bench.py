"""Bench: SMAX env-steps/s through our wrapper (envs/smax.py: one env, one jitted call per step,
numpy arrays out, available actions checked) beside JaxMARL's own loops on the same scenario,
in one process, CPU, random available actions:

* ``jaxmarl_python``: JaxMARL's jitted ``step`` called from a Python loop on one env (what a
  PyTorch learner that steps one env at a time can get from JaxMARL directly);
* ``jaxmarl_vmapped``: JaxMARL's vmapped step over ``--envs`` envs inside one ``lax.scan``
  (random actions drawn on device): the throughput of an all-JAX training loop; beside it ours
  with the same number of envs (``SMAXBatch``, one vmapped call per step from Python);
* QMIX's episode collection (the agent acting for every env in one pass per step) at
  ``batch_size_run`` 1, 4 and 8.

Compile time is excluded on every side (one warm-up call). Writes bench/out/smax.json and
prints a markdown table with ours / peer ratios.

    <venv>/bin/python bench/smax_bench.py [--scenario smacv2_5_units] [--steps 2000] [--envs 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def ours(scenario: str, steps: int) -> float:
    import numpy as np

    from envs.smax import SMAXTask

    task = SMAXTask(scenario, episode_limit=100)
    rng = np.random.default_rng(0)

    def run(n: int) -> None:
        task.reset_arrays(seed=0)
        for _ in range(n):
            acts = np.array([rng.choice(np.flatnonzero(row)) for row in task.avail_actions()])
            _, _, term, trunc = task.step_arrays(acts)
            if term or trunc:
                task.reset_arrays(seed=int(rng.integers(2**31)))

    run(200)  # compile (reset, step after reset and after a step)
    t0 = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - t0)


def ours_batch(scenario: str, steps: int, n_envs: int) -> float:
    """envs/smax.py SMAXBatch: ``n_envs`` envs, one vmapped jitted call per step, numpy out;
    counts the steps of envs whose episode is still running (a finished env waits for the
    batch's longest episode, as in pymarl2's parallel runner)."""
    import numpy as np

    from envs.smax import SMAXBatch

    batch = SMAXBatch(scenario, episode_limit=100, n_envs=n_envs)
    rng = np.random.default_rng(0)

    def run(n: int) -> int:
        done, k = 0, 0
        while done < n:
            batch.reset_arrays([k * n_envs + i for i in range(n_envs)])
            k += 1
            while batch.active.any() and done < n:
                avail = batch.avail_actions()  # a uniform available action per agent, vectorised
                acts = (rng.random(avail.shape) * avail).argmax(-1)
                done += int(batch.active.sum())
                batch.step_arrays(acts)
        return done

    run(200)
    t0 = time.perf_counter()
    n = run(steps)
    return n / (time.perf_counter() - t0)


def qmix_collection(scenario: str, steps: int, n_envs: int) -> float:
    """Env-steps/s of QMIX's episode collection (methods/marl/value/episodes.py run_episodes: the GRU
    agent acting ε-greedily for all envs in one pass per step), ``batch_size_run`` = n_envs."""
    import torch

    from methods.marl.value import qmix
    from methods.marl.value.episodes import make_batch, run_episodes

    cfg = qmix.Config(
        env="smax", env_kwargs={"scenario": scenario, "episode_limit": 100}, batch_size_run=n_envs, obs_last_action=True
    )
    env = make_batch(cfg)
    learner = qmix.QLearner(cfg, env, qmix.scheme_agent_net, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)

    def run(n: int) -> int:
        done, k = 0, 0
        while done < n:
            seeds = [k * n_envs + i for i in range(n_envs)]
            done += sum(len(ep["reward"]) for ep, _ in run_episodes(learner, env, seeds, 0.5, gen))
            k += 1
        return done

    run(1)
    t0 = time.perf_counter()
    n = run(steps)
    return n / (time.perf_counter() - t0)


def jaxmarl_python(scenario: str, steps: int) -> float:
    import jax
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario

    env = HeuristicEnemySMAX(scenario=map_name_to_scenario(scenario), max_steps=100)
    step = jax.jit(env.step)  # auto-resets finished episodes
    avail_fn = jax.jit(env.get_avail_actions)

    @jax.jit
    def sample(key, avail):  # noqa: ANN001, ANN202
        keys = jax.random.split(key, len(env.agents))
        return {
            a: jax.random.choice(k, avail[a].shape[0], p=avail[a] / avail[a].sum()) for k, a in zip(keys, env.agents)
        }

    def run(n: int, key) -> None:  # noqa: ANN001
        key, sub = jax.random.split(key)
        _, state = env.reset(sub)
        for _ in range(n):
            key, k1, k2 = jax.random.split(key, 3)
            acts = sample(k1, avail_fn(state))
            _, state, rew, dones, _ = step(k2, state, acts)
            jax.block_until_ready(rew)

    run(200, jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    run(steps, jax.random.PRNGKey(1))
    return steps / (time.perf_counter() - t0)


def jaxmarl_vmapped(scenario: str, steps: int, n_envs: int) -> float:
    import jax
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario

    env = HeuristicEnemySMAX(scenario=map_name_to_scenario(scenario), max_steps=100)

    def one_step(carry, _):  # noqa: ANN001, ANN202
        key, state = carry
        key, k1, k2 = jax.random.split(key, 3)
        avail = jax.vmap(env.get_avail_actions)(state)
        acts = {}
        for i, a in enumerate(env.agents):
            logits = jax.numpy.log(avail[a])
            acts[a] = jax.random.categorical(jax.random.fold_in(k1, i), logits)
        _, state, rew, _, _ = jax.vmap(env.step)(jax.random.split(k2, n_envs), state, acts)
        return (key, state), rew[env.agents[0]].sum()

    @jax.jit
    def rollout(key):  # noqa: ANN001, ANN202
        key, sub = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(sub, n_envs))
        return jax.lax.scan(one_step, (key, state), None, length=steps_per_env)[1]

    steps_per_env = max(1, steps // n_envs)
    jax.block_until_ready(rollout(jax.random.PRNGKey(0)))
    t0 = time.perf_counter()
    jax.block_until_ready(rollout(jax.random.PRNGKey(1)))
    return steps_per_env * n_envs / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="smacv2_5_units")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--envs", type=int, default=64)
    args = p.parse_args()
    import os

    import torch

    torch.set_num_threads(1)
    res = {
        "scenario": args.scenario,
        "steps": args.steps,
        "envs": args.envs,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "ours_steps_per_s": ours(args.scenario, args.steps),
        "jaxmarl_python_steps_per_s": jaxmarl_python(args.scenario, args.steps),
        "ours_batch_steps_per_s": ours_batch(args.scenario, args.steps * 8, args.envs),
        "jaxmarl_vmapped_steps_per_s": jaxmarl_vmapped(args.scenario, args.steps * 8, args.envs),
        "qmix_collection_steps_per_s": {b: qmix_collection(args.scenario, args.steps, b) for b in (1, 4, 8)},
    }
    res["ratio_vs_python"] = res["ours_steps_per_s"] / res["jaxmarl_python_steps_per_s"]
    res["ratio_vs_vmapped"] = res["ours_steps_per_s"] / res["jaxmarl_vmapped_steps_per_s"]
    res["ratio_batch_vs_vmapped"] = res["ours_batch_steps_per_s"] / res["jaxmarl_vmapped_steps_per_s"]
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "smax.json").write_text(json.dumps(res, indent=2))
    print(f"| {args.scenario} | env-steps/s | ours / peer |\n|---|---:|---:|")
    print(f"| ours (envs/smax.py, 1 env) | {res['ours_steps_per_s']:.0f} | |")
    print(
        f"| JaxMARL jitted step, Python loop, 1 env | {res['jaxmarl_python_steps_per_s']:.0f} | "
        f"{res['ratio_vs_python']:.2f}× |"
    )
    print(
        f"| ours (envs/smax.py SMAXBatch, {args.envs} envs) | {res['ours_batch_steps_per_s']:.0f} | "
        f"{res['ratio_batch_vs_vmapped']:.3f}× vs the next row |"
    )
    print(
        f"| JaxMARL vmapped ({args.envs} envs) in lax.scan | {res['jaxmarl_vmapped_steps_per_s']:.0f} | "
        f"{res['ratio_vs_vmapped']:.3f}× (1 env) |"
    )
    base = res["qmix_collection_steps_per_s"][1]
    for b, v in res["qmix_collection_steps_per_s"].items():
        print(f"| QMIX episode collection, batch_size_run {b} | {v:.0f} | {v / base:.2f}× batch 1 |")


if __name__ == "__main__":
    main()
