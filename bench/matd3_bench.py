"""Bench: MATD3 learner updates/s on multi-agent MuJoCo HalfCheetah 2x3, ours
(methods/marl/actor_critic/matd3.py and Kaleidoscope's masked variant) beside a plain reference — the same
update written as one CleanRL-style function (nn.Sequential nets, no hooks, no n-step
bookkeeping) — in one process, on the same batches, 1 torch thread, CPU.

The batch is drawn once from a replay filled by random actions on the real env (the sampling
cost is included on both sides: one uniform index draw per update). Sizes default to the
paper's (MLP 256-256, critic with LayerNorm, batch 1000, two agents of 3 actuators, state 17).
Writes bench/out/matd3.json and prints a markdown table.

    <venv>/bin/python bench/matd3_bench.py [--updates 200] [--batch 1000] [--hidden 256]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ENV = {"scenario": "HalfCheetah", "agent_conf": "2x3", "agent_obsk": 0, "episode_limit": 1000}


def filled_replay(n_steps: int, device: str = "cpu"):  # noqa: ANN201
    import numpy as np

    from envs.mamujoco import MaMuJoCoTask
    from methods.common.replay import FieldReplay

    task = MaMuJoCoTask(**ENV)
    n, d, a, s = task.n_agents, task.obs_dim, task.act_dim, task.state_dim
    buf = FieldReplay(
        n_steps,
        {
            "obs": (n, d),
            "state": (s,),
            "actions": (n, a),
            "reward": (),
            "next_obs": (n, d),
            "next_state": (s,),
            "terminated": (),
            "discount": (),
        },
        device,
    )
    rng = np.random.default_rng(0)
    obs, state = task.reset_arrays(seed=0), task.state()
    for _ in range(n_steps):
        act = rng.uniform(-1, 1, (n, a)).astype(np.float32)
        nxt, r, term, trunc = task.step_arrays(act)
        buf.add(
            {
                "obs": obs,
                "state": state,
                "actions": act,
                "reward": r,
                "next_obs": nxt,
                "next_state": task.state(),
                "terminated": term,
                "discount": 0.99,
            }
        )
        obs, state = (task.reset_arrays(), task.state()) if term or trunc else (nxt, task.state())
    return task, buf


def plain_reference(task, hidden: int):  # noqa: ANN001, ANN201
    """MATD3's update as one plain function (the reference): FuPS actor, two centralised
    critics with LayerNorm, clipped double-Q target, agent-by-agent actor steps every 2nd update."""
    import copy

    import torch
    from torch import nn

    n, d, a, s = task.n_agents, task.obs_dim, task.act_dim, task.state_dim

    def critic() -> nn.Module:
        return nn.Sequential(
            nn.Linear(s + n * a, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    actor = nn.Sequential(
        nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, a), nn.Tanh()
    )
    q1, q2 = critic(), critic()
    actor_t, q1_t, q2_t = (copy.deepcopy(m).requires_grad_(False) for m in (actor, q1, q2))
    actor_opt = torch.optim.Adam(actor.parameters(), lr=5e-4)
    critic_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=1e-3)
    counter = [0]

    def update(b: dict) -> None:
        with torch.no_grad():
            noise = (torch.randn_like(b["actions"]) * 0.2).clamp(-0.5, 0.5)
            a_next = (actor_t(b["next_obs"]) + noise).clamp(-1, 1).flatten(1)
            x_next = torch.cat([b["next_state"], a_next], -1)
            q_next = torch.min(q1_t(x_next), q2_t(x_next)).squeeze(-1)
            y = b["reward"] + b["discount"] * (1 - b["terminated"]) * q_next
        x = torch.cat([b["state"], b["actions"].flatten(1)], -1)
        loss = (q1(x).squeeze(-1) - y).pow(2).mean() + (q2(x).squeeze(-1) - y).pow(2).mean()
        critic_opt.zero_grad()
        loss.backward()
        critic_opt.step()
        counter[0] += 1
        if counter[0] % 2:
            return
        with torch.no_grad():
            joint = actor(b["obs"])
        for i in range(n):
            acts = joint.clone()
            acts[:, i] = actor(b["obs"][:, i])
            xa = torch.cat([b["state"], acts.flatten(1)], -1)
            actor_loss = -(q1(xa).mean() + q2(xa).mean()) / 2
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            with torch.no_grad():
                joint[:, i] = actor(b["obs"][:, i])
        with torch.no_grad():
            for t, o in ((actor_t, actor), (q1_t, q1), (q2_t, q2)):
                for pt, p in zip(t.parameters(), o.parameters()):
                    pt.lerp_(p, 0.005)

    return update


def rate(update, buf, batch: int, updates: int, gen) -> float:  # noqa: ANN001
    for _ in range(10):  # warm-up
        update(buf.sample(batch, gen))
    t0 = time.perf_counter()
    for _ in range(updates):
        update(buf.sample(batch, gen))
    return updates / (time.perf_counter() - t0)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from methods.marl.actor_critic import kaleidoscope_matd3, matd3

    task, buf = filled_replay(max(args.batch * 2, 2000))
    gen = torch.Generator().manual_seed(0)
    results = {}
    torch.manual_seed(0)
    results["plain reference"] = rate(plain_reference(task, args.hidden), buf, args.batch, args.updates, gen)
    for name, mod, cls in (
        ("matd3 (ours)", matd3, matd3.MATD3Learner),
        ("kalei_matd3 (ours)", kaleidoscope_matd3, kaleidoscope_matd3.KaleidoscopeMATD3Learner),
    ):
        cfg = mod.Config(env_kwargs=ENV, batch=args.batch, hidden=args.hidden)
        learner = cls(cfg, task, torch.device("cpu"), torch.Generator().manual_seed(0))
        results[name] = rate(learner.update, buf, args.batch, args.updates, gen)
    base = results["plain reference"]
    print(f"| learner (HalfCheetah 2x3, batch {args.batch}, hidden {args.hidden}) | updates/s | vs plain |")
    print("|---|---|---|")
    for k, v in results.items():
        print(f"| {k} | {v:.1f} | {v / base:.2f}x |")
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "matd3.json").write_text(
        json.dumps(
            {"batch": args.batch, "hidden": args.hidden, "updates": args.updates, "updates_per_s": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
