"""Bench: TD3 and SAC gradient updates per second of methods/control beside a minimal reference
update written here from the algorithm description (the way CleanRL's td3_continuous_action /
sac_continuous_action are organised: two separate Q modules, one Adam over both critics, one
for the actor; our own code, not theirs).

Hopper-v5 sizes (obs 11, act 3), 256-256 nets, batch 256, 1 torch thread, CPU. Both sides draw
their batches from the same replay buffer inside the timed loop and run alternately in this
process; the median of ``--repeats`` is reported. Also prints the FLOP bound: matmul FLOPs per
update (forward 2·in·out per linear layer and sample, backward 2x forward) divided by a measured
large-matmul rate on the same thread count.

    <venv>/bin/python bench/control_bench.py [--updates 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OBS, ACT, HID, BATCH = 11, 3, 256, 256
GAMMA, TAU, LR = 0.99, 0.005, 3e-4


def mlp(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, HID), nn.ReLU(), nn.Linear(HID, HID), nn.ReLU(), nn.Linear(HID, o))


def soft_update(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    with torch.no_grad():
        for net, tgt in pairs:
            for p, pt in zip(net.parameters(), tgt.parameters()):
                pt.mul_(1 - TAU).add_(TAU * p)


class ReferenceTD3:
    """Textbook TD3 update: clipped double Q, target smoothing, delayed actor, Polyak."""

    def __init__(self) -> None:
        self.actor, self.q1, self.q2 = mlp(OBS, ACT), mlp(OBS + ACT, 1), mlp(OBS + ACT, 1)
        self.actor_t, self.q1_t, self.q2_t = (copy.deepcopy(m) for m in (self.actor, self.q1, self.q2))
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=LR)
        self.pi_opt = torch.optim.Adam(self.actor.parameters(), lr=LR)
        self.it = 0

    def pi(self, net: nn.Module, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(net(obs))

    def update(self, b: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            eps = (torch.randn_like(b["action"]) * 0.2).clamp(-0.5, 0.5)
            a2 = (self.pi(self.actor_t, b["next_obs"]) + eps).clamp(-1, 1)
            x2 = torch.cat([b["next_obs"], a2], 1)
            q2 = torch.min(self.q1_t(x2), self.q2_t(x2)).squeeze(1)
            y = b["reward"] + GAMMA * (1 - b["terminated"]) * q2
        x = torch.cat([b["obs"], b["action"]], 1)
        q_loss = ((self.q1(x).squeeze(1) - y) ** 2).mean() + ((self.q2(x).squeeze(1) - y) ** 2).mean()
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        self.it += 1
        if self.it % 2 == 0:
            pi_loss = -self.q1(torch.cat([b["obs"], self.pi(self.actor, b["obs"])], 1)).mean()
            self.pi_opt.zero_grad()
            pi_loss.backward()
            self.pi_opt.step()
            soft_update([(self.actor, self.actor_t), (self.q1, self.q1_t), (self.q2, self.q2_t)])


class ReferenceSAC:
    """Textbook SAC update: twin Q, tanh-Gaussian policy, learned temperature, Polyak."""

    def __init__(self) -> None:
        self.actor, self.q1, self.q2 = mlp(OBS, 2 * ACT), mlp(OBS + ACT, 1), mlp(OBS + ACT, 1)
        self.q1_t, self.q2_t = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=LR)
        self.pi_opt = torch.optim.Adam(self.actor.parameters(), lr=LR)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=LR)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.actor(obs).chunk(2, -1)
        dist = torch.distributions.Normal(mu, log_std.clamp(-5, 2).exp())
        u = dist.rsample()
        a = torch.tanh(u)
        return a, (dist.log_prob(u) - torch.log(1 - a.pow(2) + 1e-6)).sum(-1)

    def q_min(self, q1: nn.Module, q2: nn.Module, obs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, a], 1)
        return torch.min(q1(x), q2(x)).squeeze(1)

    def update(self, b: dict[str, torch.Tensor]) -> None:
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.sample(b["next_obs"])
            v2 = self.q_min(self.q1_t, self.q2_t, b["next_obs"], a2) - alpha * logp2
            y = b["reward"] + GAMMA * (1 - b["terminated"]) * v2
        x = torch.cat([b["obs"], b["action"]], 1)
        q_loss = ((self.q1(x).squeeze(1) - y) ** 2).mean() + ((self.q2(x).squeeze(1) - y) ** 2).mean()
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        a, logp = self.sample(b["obs"])
        pi_loss = (alpha * logp - self.q_min(self.q1, self.q2, b["obs"], a)).mean()
        self.pi_opt.zero_grad()
        pi_loss.backward()
        self.pi_opt.step()
        alpha_loss = -(self.log_alpha.exp() * (logp.detach() - ACT)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        soft_update([(self.q1, self.q1_t), (self.q2, self.q2_t)])


# ------------------------------------------------------------------------------- FLOP bound
def fwd_flops(net: nn.Module) -> int:
    """Matmul FLOPs of one forward per sample: 2·in·out per linear layer."""
    return sum(2 * m.in_features * m.out_features for m in net.modules() if isinstance(m, nn.Linear))


def flops_per_update(algo: str) -> float:
    """Minimal matmul FLOPs per update and batch, counting a full backward as 2x forward."""
    f_pi = fwd_flops(mlp(OBS, ACT if algo == "td3" else 2 * ACT))
    f_q = fwd_flops(mlp(OBS + ACT, 1))
    target = f_pi + 2 * f_q  # a' from the (target) actor, both target critics
    critic = 3 * 2 * f_q  # both critics, fwd + bwd
    # the policy loss needs the actor's fwd + bwd and only the critics' fwd + input-gradient
    # backward (2x forward; their weight gradients are not needed)
    if algo == "td3":  # every 2nd update: actor and Q1
        policy = 0.5 * (3 * f_pi + 2 * f_q)
    else:  # every update: actor and both critics
        policy = 3 * f_pi + 2 * 2 * f_q
    return BATCH * (target + critic + policy)


def matmul_peak_gflops(n: int = 2048, reps: int = 5) -> float:
    """The best of ``reps`` timings of one n x n matmul (the thread's practical peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


# ------------------------------------------------------------------------------------ main
def rate(step: Callable[[], None], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - t0)


def filled_buffer(n: int = 10_000):
    from methods.common.replay import ReplayBuffer

    buf = ReplayBuffer(n, OBS, ACT, "cpu")
    rng = np.random.default_rng(0)
    for _ in range(n):
        buf.add(rng.normal(size=OBS), rng.uniform(-1, 1, ACT), rng.normal(), rng.normal(size=OBS), False)
    return buf


def bench(algo: str, buf, updates: int, repeats: int, peak: float) -> dict:
    from methods.control import sac, td3

    mod, ref = (td3, ReferenceTD3()) if algo == "td3" else (sac, ReferenceSAC())
    task = type("Task", (), {"obs_dim": OBS, "act_dim": ACT, "max_action": 1.0})()
    ours = mod.make_agent(mod.Config(), task, torch.device("cpu"), torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    ours_step = lambda: ours.update(buf, 0)  # noqa: E731 (samples inside)
    ref_step = lambda: ref.update(buf.sample(BATCH, gen))  # noqa: E731
    rate(ours_step, 10), rate(ref_step, 10)  # warm-up
    ours_r, ref_r = [], []
    for _ in range(repeats):
        ours_r.append(rate(ours_step, updates))
        ref_r.append(rate(ref_step, updates))
    o, r, flops = statistics.median(ours_r), statistics.median(ref_r), flops_per_update(algo)
    bound = peak * 1e9 / flops
    return {
        "algo": algo,
        "ours_updates_per_s": o,
        "reference_updates_per_s": r,
        "ratio": o / r,
        "ours_runs": ours_r,
        "reference_runs": ref_r,
        "flops_per_update": flops,
        "flop_bound_updates_per_s": bound,
        "ours_fraction_of_bound": o / bound,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "control.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    buf = filled_buffer()
    peak = matmul_peak_gflops()
    rows = [bench(algo, buf, args.updates, args.repeats, peak) for algo in ("td3", "sac")]
    print(f"matmul peak, 1 thread: {peak:.1f} GFLOP/s")
    print("| algo | ours upd/s | reference upd/s | ours/ref | MFLOP/update | FLOP bound upd/s | ours/bound |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['algo']} | {r['ours_updates_per_s']:.0f} | {r['reference_updates_per_s']:.0f} | "
            f"{r['ratio']:.2f}x | {r['flops_per_update'] / 1e6:.0f} | {r['flop_bound_updates_per_s']:.0f} | "
            f"{r['ours_fraction_of_bound']:.0%} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": 1,
        "updates": args.updates,
        "repeats": args.repeats,
        "matmul_peak_gflops": peak,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
