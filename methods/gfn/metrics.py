"""Exact and empirical metrics of the GFlowNet core: the policy's terminal distribution by
dynamic programming, total variation, the EGFN empirical L1 over a window of visited
terminal states, modes found, and the exact target R^beta / Z."""

from __future__ import annotations

import math
from typing import Any

import torch

from methods.gfn.policy import ExactLogitsPolicy, Policy, PolicyNet, as_policy, masked_log_softmax


class ExactDistribution:
    """Terminal distribution of P_F computed exactly by dynamic programming over the DAG,
    level by level (an enumerable environment's ``level`` orders it topologically)."""

    def __init__(self, env: Any, device: Any = "cpu"):
        self.env = env
        self.device = torch.device(device)
        states = env.all_states(self.device)
        self.states = states
        level = env.level(states)
        self.levels = [torch.nonzero(level == k).squeeze(1) for k in range(int(level.max()) + 1)]
        self.forced = env.is_forced_terminal(states)
        # child index of every (non-forced state, move action), computed once by stepping
        self.moves = [a for a in range(env.n_actions) if a != env.stop_action]
        self.children: dict[int, torch.Tensor] = {}
        for k, idx in enumerate(self.levels):
            n_idx = idx[~self.forced[idx]]
            if n_idx.numel() == 0:
                continue
            s = states[n_idx]
            kids = []
            for a in self.moves:
                nxt, _ = env.step(s, torch.full((len(s),), a, device=self.device))
                kids.append(env.index(nxt))
            self.children[k] = torch.stack(kids, 1)  # [n, n_moves]

    @torch.no_grad()
    def terminal_probs(self, policy: PolicyNet | Policy, chunk: int = 65536) -> torch.Tensor:
        env = self.env
        if isinstance(policy, ExactLogitsPolicy):
            # a policy that scores children (RPE) computes all states' logits at once
            logp = masked_log_softmax(policy.exact_logits(self), env.forward_mask(self.states))
        else:
            logits_of = as_policy(env, policy)
            logp = torch.cat(
                [masked_log_softmax(logits_of(s).double(), env.forward_mask(s)) for s in self.states.split(chunk)]
            )
        probs = logp.exp()
        reach = torch.zeros(len(self.states), dtype=torch.float64, device=self.device)
        term = torch.zeros_like(reach)
        reach[env.index(env.initial(1, self.device))] = 1.0
        for k, idx in enumerate(self.levels):
            forced = self.forced[idx]
            f_idx, n_idx = idx[forced], idx[~forced]
            term[f_idx] = reach[f_idx]
            if n_idx.numel() == 0:
                continue
            p = reach[n_idx]
            if env.stop_action is not None:
                term[n_idx] = p * probs[n_idx, env.stop_action]
            for j, a in enumerate(self.moves):
                reach.index_add_(0, self.children[k][:, j], p * probs[n_idx, a])
        return term


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


class VisitTracker:
    """Training-time statistics of visited terminal states: the EGFN empirical L1 over a
    sliding window of the last ``window`` terminal states, and mode regions found."""

    def __init__(self, env: Any, window: int, device: Any = "cpu"):
        self.env = env
        self.window = window
        # the empirical distribution needs a state index: enumerable environments only
        self.ring = torch.full((window if env.enumerable else 0,), -1, dtype=torch.long, device=device)
        self.n_seen = 0
        self.modes = torch.zeros(env.n_modes, dtype=torch.bool, device=device)
        # environments without a mode set but with a reward threshold (sEH): how many visited
        # terminal states are above it (QGFN's "high-reward samples over training")
        self.counts_high_reward = env.mode_flat_threshold is not None
        # distinct terminal states above it: a sampler repeating one molecule counts it once
        self.high_reward_states: set[bytes] = set()

    def add(self, terminal: torch.Tensor) -> None:
        if self.env.enumerable:
            idx = self.env.index(terminal)[-self.window :]
            pos = (self.n_seen + torch.arange(idx.numel(), device=idx.device)) % self.window
            self.ring[pos] = idx
        self.n_seen += terminal.shape[0]
        self.modes |= self.env.modes_hit(terminal).any(0)
        if self.counts_high_reward:
            high = terminal[flat_reward(self.env, terminal) > self.env.mode_flat_threshold]
            self.high_reward_states.update(row.tobytes() for row in high.cpu().numpy())

    @property
    def n_high_reward(self) -> int:
        return len(self.high_reward_states)

    def empirical_l1(self, target: torch.Tensor, terminal: torch.Tensor) -> float:
        seen = self.ring[self.ring >= 0]
        if seen.numel() == 0:
            return float("nan")
        p_hat = torch.bincount(seen, minlength=target.numel()).double() / seen.numel()
        return float((p_hat - target).abs()[terminal].mean())

    def state_dict(self) -> dict[str, Any]:
        return {
            "ring": self.ring,
            "n_seen": self.n_seen,
            "modes": self.modes,
            "high_reward_states": sorted(self.high_reward_states),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.ring, self.n_seen, self.modes = d["ring"], d["n_seen"], d["modes"]
        self.high_reward_states = set(d["high_reward_states"])


def exact_target(env: Any, reward_beta: float, states: torch.Tensor, cache_dir: Any = None) -> torch.Tensor:
    """p*(x) ∝ R(x)^reward_beta over the enumerable state index (the env's cached target when
    reward_beta = 1)."""
    if reward_beta == 1.0:
        return torch.as_tensor(env.target_distribution(cache_dir=cache_dir), device=states.device)
    log_r = reward_beta * env.log_reward(states).double()
    log_r = torch.where(env.terminal_mask(states), log_r, torch.full_like(log_r, -math.inf))
    return torch.softmax(log_r, 0)


def flat_reward(env: Any, states: torch.Tensor) -> torch.Tensor:
    """The task's reward before the GFlowNet's exponent (sEH: proxy / 8; bit sequences:
    exp(1 - d/n); Shen-scaled sequence tasks: r scaled): ``env.flat_reward`` where the env
    defines it, else exp(log R / beta) with the env's own beta. QGFN reports and trains its Q
    on this scale."""
    return torch.as_tensor(env.flat_reward(states), dtype=torch.float64)


def modes_in_samples(env: Any, states: torch.Tensor, flat: torch.Tensor) -> int:
    """Modes among a batch of terminal samples. Environments with a mode set count the distinct
    modes hit; molecule environments that define ``similarity`` and the thresholds
    ``mode_flat_threshold`` / ``mode_similarity`` count samples, in sampling order, whose flat
    reward exceeds the threshold and whose Tanimoto similarity to every sample accepted before
    is below the other (QGFN's counter, yunglau/QGFN utils/plotting.py)."""
    if env.n_modes > 0:
        return int(env.modes_hit(states).any(0).sum())
    if env.mode_flat_threshold is None or env.mode_similarity is None:
        return 0
    high = (flat > env.mode_flat_threshold).nonzero().squeeze(1)
    accepted: list[int] = []
    for i in high.tolist():
        if accepted:
            sim = env.similarity(states[i : i + 1], states[accepted])
            if float(torch.as_tensor(sim).max()) >= env.mode_similarity:
                continue
        accepted.append(i)
    return len(accepted)
