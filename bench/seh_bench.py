"""Bench: throughput of the sEH proxy and of the seh environment's reward (CPU).

Three figures, on terminal states of uniform random rollouts (valid molecules of 1-9
fragments; the mean fragment count is printed):

* ``proxy``: :meth:`envs.seh_proxy.SEHProxy.predict_mols` on already-built RDKit molecules,
  batched (featurisation + network), molecules/s;
* ``reward (cold)``: :meth:`envs.seh.SEHFragments.log_reward` with empty caches (build the
  molecule from the state, sanitise, canonical SMILES, proxy), molecules/s;
* ``reward (cached)``: the same states again (every SMILES in the LRU cache), molecules/s.

    <venv>/bin/python bench/seh_bench.py [--n 2048] [--batch 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="molecules")
    ap.add_argument("--batch", type=int, default=512, help="proxy batch size")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from envs.seh import SEHFragments
    from methods.gfn.policy import sample_trajectories, terminal_states, uniform_policy

    torch.set_num_threads(args.threads)
    env = SEHFragments(proxy_batch=args.batch)
    gen = torch.Generator().manual_seed(args.seed)
    states = terminal_states(env, sample_trajectories(env, uniform_policy(env), args.n, gen))
    mols = [env.build_mol(row) for row in states.tolist()]
    proxy = env.proxy()
    proxy.predict_mols(mols[:64], args.batch)  # warm-up

    t0 = time.perf_counter()
    proxy.predict_mols(mols, args.batch)
    t_proxy = time.perf_counter() - t0

    cold = SEHFragments(proxy_batch=args.batch)
    cold.chem._proxy = proxy  # same weights; exclude the load from the timing
    t0 = time.perf_counter()
    cold.log_reward(states)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    cold.log_reward(states)
    t_cached = time.perf_counter() - t0

    n = len(mols)
    frags = float(states[:, 0].float().mean())
    print(
        f"seh bench: {n} molecules ({frags:.1f} fragments on average), {args.threads} thread(s), "
        f"batch {args.batch}: proxy {n / t_proxy:,.0f} mol/s, reward (cold) {n / t_cold:,.0f} mol/s, "
        f"reward (cached) {n / t_cached:,.0f} mol/s"
    )


if __name__ == "__main__":
    main()
