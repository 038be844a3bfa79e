"""Bench: TD3 and SAC gradient updates per second of methods/control beside a CleanRL-style
reference update written here from the algorithm description (two separate Q-networks each with
its own MLP, one Adam for both critics, one for the actor: what CleanRL's td3_continuous_action /
sac_continuous_action do; our own code, not theirs). Same task sizes (Hopper-v5: obs 11,
act 3), 256-256 nets, batch 256, 1 torch thread, CPU; both run in this process, alternating,
median of ``--repeats``. Also prints the FLOP bound: training FLOPs per update / a measured
matmul peak on the same thread count.

    <venv>/bin/python bench/control_bench.py [--updates 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OBS, ACT, HID, BATCH = 11, 3, 256, 256


def q_net() -> nn.Module:
    return nn.Sequential(nn.Linear(OBS + ACT, HID), nn.ReLU(), nn.Linear(HID, HID), nn.ReLU(), nn.Linear(HID, 1))


class ReferenceTD3:
    """The textbook TD3 update with two separate Q modules."""

    def __init__(self) -> None:
        self.actor = nn.Sequential(nn.Linear(OBS, HID), nn.ReLU(), nn.Linear(HID, HID), nn.ReLU(), nn.Linear(HID, ACT), nn.Tanh())
        self.q1, self.q2 = q_net(), q_net()
        self.actor_t, self.q1_t, self.q2_t = (copy.deepcopy(m) for m in (self.actor, self.q1, self.q2))
        self.q_opt = torch.optim.Adam(list(self.q1.parameters()) + list(self.q2.parameters()), lr=3e-4)
        self.a_opt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.it = 0

    def update(self, b: dict) -> None:
        with torch.no_grad():
            noise = (torch.randn_like(b["action"]) * 0.2).clamp(-0.5, 0.5)
            a2 = (self.actor_t(b["next_obs"]) + noise).clamp(-1, 1)
            x2 = torch.cat([b["next_obs"], a2], 1)
            y = b["reward"] + 0.99 * (1 - b["terminated"]) * torch.min(self.q1_t(x2), self.q2_t(x2)).view(-1)
        x = torch.cat([b["obs"], b["action"]], 1)
        loss = nn.functional.mse_loss(self.q1(x).view(-1), y) + nn.functional.mse_loss(self.q2(x).view(-1), y)
        self.q_opt.zero_grad()
        loss.backward()
        self.q_opt.step()
        self.it += 1
        if self.it % 2 == 0:
            a_loss = -self.q1(torch.cat([b["obs"], self.actor(b["obs"])], 1)).mean()
            self.a_opt.zero_grad()
            a_loss.backward()
            self.a_opt.step()
            for net, tgt in ((self.actor, self.actor_t), (self.q1, self.q1_t), (self.q2, self.q2_t)):
                for p, pt in zip(net.parameters(), tgt.parameters()):
                    pt.data.copy_(0.005 * p.data + 0.995 * pt.data)


class ReferenceSAC:
    """The textbook SAC update (twin Q, automatic alpha), two separate Q modules."""

    def __init__(self) -> None:
        self.actor = nn.Sequential(nn.Linear(OBS, HID), nn.ReLU(), nn.Linear(HID, HID), nn.ReLU(), nn.Linear(HID, 2 * ACT))
        self.q1, self.q2 = q_net(), q_net()
        self.q1_t, self.q2_t = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.q_opt = torch.optim.Adam(list(self.q1.parameters()) + list(self.q2.parameters()), lr=3e-4)
        self.a_opt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.al_opt = torch.optim.Adam([self.log_alpha], lr=3e-4)

    def pi(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.actor(obs).chunk(2, -1)
        std = log_std.clamp(-5, 2).exp()
        u = mean + std * torch.randn_like(mean)
        a = torch.tanh(u)
        logp = torch.distributions.Normal(mean, std).log_prob(u).sum(-1) - torch.log(1 - a.pow(2) + 1e-6).sum(-1)
        return a, logp

    def update(self, b: dict) -> None:
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.pi(b["next_obs"])
            x2 = torch.cat([b["next_obs"], a2], 1)
            y = b["reward"] + 0.99 * (1 - b["terminated"]) * (torch.min(self.q1_t(x2), self.q2_t(x2)).view(-1) - alpha * logp2)
        x = torch.cat([b["obs"], b["action"]], 1)
        loss = nn.functional.mse_loss(self.q1(x).view(-1), y) + nn.functional.mse_loss(self.q2(x).view(-1), y)
        self.q_opt.zero_grad()
        loss.backward()
        self.q_opt.step()
        a, logp = self.pi(b["obs"])
        xa = torch.cat([b["obs"], a], 1)
        a_loss = (alpha * logp - torch.min(self.q1(xa), self.q2(xa)).view(-1)).mean()
        self.a_opt.zero_grad()
        a_loss.backward()
        self.a_opt.step()
        al_loss = -(self.log_alpha.exp() * (logp.detach() - ACT)).mean()
        self.al_opt.zero_grad()
        al_loss.backward()
        self.al_opt.step()
        for net, tgt in ((self.q1, self.q1_t), (self.q2, self.q2_t)):
            for p, pt in zip(net.parameters(), tgt.parameters()):
                pt.data.copy_(0.005 * p.data + 0.995 * pt.data)


def matmul_peak_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    from methods.common.replay import ReplayBuffer
    from methods.control import sac, td3

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "control.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dev = torch.device("cpu")
    buf = ReplayBuffer(10_000, OBS, ACT, dev)
    rng = np.random.default_rng(0)
    for _ in range(10_000):
        buf.add(rng.normal(size=OBS), rng.uniform(-1, 1, ACT), rng.normal(), rng.normal(size=OBS), False)
    task = type("Task", (), {"obs_dim": OBS, "act_dim": ACT, "max_action": 1.0})()
    peak = matmul_peak_gflops()
    rows = []
    for name, mod, ref_cls in (("td3", td3, ReferenceTD3), ("sac", sac, ReferenceSAC)):
        ours = mod.make_agent(mod.Config(), task, dev, torch.Generator().manual_seed(0))
        ref = ref_cls()
        gen = torch.Generator().manual_seed(1)
        ours_t, ref_t = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.updates):
                ours.update(buf, 0)
            ours_t.append(args.updates / (time.perf_counter() - t0))
            batches = [buf.sample(BATCH, gen) for _ in range(args.updates)]
            t0 = time.perf_counter()
            for b in batches:       # batches drawn beforehand: the reference gets its sampling free
                ref.update(b)
            ref_t.append(args.updates / (time.perf_counter() - t0))
        diag = ours.diagnostics(buf)
        flops = diag["flops_per_env_step"]          # = one update + one policy update at utd 1
        o, r = statistics.median(ours_t), statistics.median(ref_t)
        rows.append({"algo": name, "ours_updates_per_s": o, "reference_updates_per_s": r, "ratio": o / r,
                     "flops_per_update": flops, "flop_bound_updates_per_s": peak * 1e9 / flops,
                     "matmul_peak_gflops": peak})
    print("| algo | ours upd/s | reference upd/s | ours/ref | FLOP bound upd/s | ours / bound |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['algo']} | {r['ours_updates_per_s']:.0f} | {r['reference_updates_per_s']:.0f} | "
              f"{r['ratio']:.2f}x | {r['flop_bound_updates_per_s']:.0f} | {r['ours_updates_per_s'] / r['flop_bound_updates_per_s']:.0%} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
