"""Goal sampling shared by the goal-conditioned environments (``goal_grid``, ``goal_seq``).

Goals are integer vectors ``[n, goal_len]`` with entries in ``[0, n_values)``. A fixed fraction of
the goal space is *held out*: never drawn for training, used only to measure generalisation to
unseen goals (He et al., ICLR 2025, "generalisation to unseen outcomes"). Membership is a seeded
hash of the goal, so it is defined without enumerating the goal space (2^100 bit strings) and is
the same on every machine, for every run seed.
"""

from __future__ import annotations

import torch

_PRIME = 2_147_483_647  # 2^31 - 1
_BUCKETS = 10_000  # resolution of the held-out fraction


def _multipliers(goal_len: int, seed: int, device: torch.device) -> tuple[torch.Tensor, int, int]:
    g = torch.Generator().manual_seed(1_000_003 * (seed + 1))
    mult = torch.randint(1, _PRIME, (goal_len,), generator=g, device="cpu")
    a, b = (int(v) for v in torch.randint(1, _PRIME, (2,), generator=g, device="cpu"))
    return mult.to(device), a, b


def heldout_mask(goals: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """``[n]`` bool: which goals belong to the held-out set (about ``fraction`` of all goals)."""
    if fraction <= 0:
        return torch.zeros(goals.shape[0], dtype=torch.bool, device=goals.device)
    mult, a, b = _multipliers(goals.shape[-1], seed, goals.device)
    # a linear hash mod a prime, then an affine mix (all in int64: every product < 2^62)
    h = ((goals.long() + 1) * mult).remainder(_PRIME).sum(-1).remainder(_PRIME)
    h = (h * a + b).remainder(_PRIME)
    return h.remainder(_BUCKETS) < int(round(fraction * _BUCKETS))


def sample_goals(
    n: int, goal_len: int, n_values: int, gen: torch.Generator, fraction: float, seed: int, heldout: bool = False
) -> torch.Tensor:
    """``n`` goals drawn uniformly from the training goals (``heldout=False``: every goal outside
    the held-out set) or from the held-out goals, by rejection from uniform draws."""
    dev = gen.device
    out = torch.empty((0, goal_len), dtype=torch.long, device=dev)
    if heldout and fraction <= 0:
        raise ValueError("no held-out goals: heldout_fraction is 0")
    for _ in range(1000):
        if out.shape[0] >= n:
            return out
        need = n - out.shape[0]
        # enough candidates that one round almost always suffices
        k = 2 * need + 16 if not heldout else int(need / max(fraction, 1e-3)) * 2 + 64
        cand = torch.randint(0, n_values, (k, goal_len), generator=gen, device=dev)
        keep = heldout_mask(cand, fraction, seed) == heldout
        out = torch.cat([out, cand[keep][:need]])
    if out.shape[0] >= n:
        return out
    raise ValueError(
        f"could not draw {n} {'held-out' if heldout else 'training'} goals: the set is "
        "empty or tiny (check heldout_fraction)"
    )


class GoalEnvAssets:
    """``check_steps`` and ``write_assets``, the pipeline's setup job, for a goal-conditioned env
    (an env with ``initial``, ``step``, ``forward_mask``, ``backward_mask``, ``backward_step``,
    ``goal_state``, ``achieved``, ``sample_goals`` and ``kwargs``)."""

    heldout_goals: torch.Tensor | None = None  # goals never drawn in training (the grid's held-out share)

    def check_steps(self, n: int = 64, seed: int = 0) -> None:
        """Uniform random forward episodes must end within ``max_traj_len``; uniform random
        backward walks from goals must reach s_0, and replaying them forward must be allowed by
        the forward mask and end at the goal."""
        g = torch.Generator().manual_seed(seed)
        s = self.initial(n)
        alive = torch.ones(n, dtype=torch.bool)
        for _ in range(self.max_traj_len):
            if not alive.any():
                break
            live = alive.clone()
            a = torch.multinomial(self.forward_mask(s[live]).float(), 1, generator=g).squeeze(1)
            nxt, done = self.step(s[live], a)
            s = s.clone()
            s[live] = nxt
            alive[live] = ~done
        if alive.any():
            raise RuntimeError(f"{self.name}: episodes did not end within max_traj_len")
        goals = self.sample_goals(n, g)
        s = self.goal_state(goals)
        for _ in range(self.max_traj_len):
            live = ~self.is_initial(s)
            if not live.any():
                break
            b = torch.multinomial(self.backward_mask(s[live]).float(), 1, generator=g).squeeze(1)
            parent, fwd = self.backward_step(s[live], b)
            allowed = self.forward_mask(parent).gather(1, fwd[:, None]).squeeze(1)
            child, _ = self.step(parent, fwd)
            if not allowed.all() or not torch.equal(child, s[live]):
                raise RuntimeError(f"{self.name}: a backward step is not the reverse of an allowed forward step")
            s = s.clone()
            s[live] = parent
        if not self.is_initial(s).all():
            raise RuntimeError(f"{self.name}: backward walks did not reach s_0")

    def write_assets(self, out_dir: object) -> dict:
        """A description of the env (nothing to cache: rewards are goal matches)."""
        from envs.base import write_env_assets

        info = {
            "env": self.name,
            "kwargs": self.kwargs(),
            "max_traj_len": self.max_traj_len,
            "n_actions": self.n_actions,
            "goal_len": self.goal_len,
            "goal_values": self.goal_values,
            "heldout_fraction": self.heldout_fraction,
        }
        held = self.heldout_goals
        if held is not None:
            info.update(n_training_goals=int(self.n_goals), n_heldout_goals=int(len(held)))
        return write_env_assets(out_dir, info)
