"""Goal-conditioned 2-D grid of RBS (He, Chang, Xu, Pan, ICLR 2025; code
tinnerhrhe/Goal-Conditioned-GFN, grid/main.py).

State s in {0..H-1}^2, s_0 = (0, 0). Forward actions: 0, 1 = increment coordinate 0 / 1 (masked
at H-1), 2 = stop (always allowed; the episode ends at x = s). Backward actions: 0, 1 =
decrement coordinate 0 / 1 (masked at 0); the stop transition has no backward choice. A goal y
is a grid cell; the reward is R(x | y) = 1[x = y].

Training rollouts of the official code add "sticky" noise: with probability ``sticky_prob``
(0.01) a move is replaced by a uniformly random move, except where a coordinate is at H-1
(``perturb``). Evaluation rollouts are noise-free (the code's ``evaluate``).

Encoding: one-hot per coordinate for the state (2H inputs) and for the goal (2H inputs).
"""

from __future__ import annotations

import torch

from envs import goals as goal_sets


class GoalGrid(goal_sets.GoalEnvAssets):
    name = "goal_grid"
    ndim = 2

    def __init__(
        self, height: int = 32, sticky_prob: float = 0.01, heldout_fraction: float = 0.1, heldout_seed: int = 0
    ):
        if height < 2:
            raise ValueError(f"goal_grid: height must be >= 2 (got {height})")
        if not 0 <= sticky_prob < 1:
            raise ValueError(f"goal_grid: sticky_prob must be in [0, 1) (got {sticky_prob})")
        if not 0 <= heldout_fraction < 1:
            raise ValueError(f"goal_grid: heldout_fraction must be in [0, 1) (got {heldout_fraction})")
        self.height = int(height)
        self.sticky_prob = float(sticky_prob)
        self.heldout_fraction = float(heldout_fraction)
        self.heldout_seed = int(heldout_seed)
        self.n_actions = self.ndim + 1
        self.stop_action = self.ndim
        self.n_backward_actions = self.ndim
        self.obs_dim = self.ndim * self.height
        self.goal_obs_dim = self.ndim * self.height
        self.goal_len = self.ndim
        self.goal_values = self.height
        self.max_traj_len = self.ndim * (self.height - 1) + 1  # every move, then stop
        # the goal space is small: enumerate it once and split it exactly
        cells = torch.cartesian_prod(*[torch.arange(self.height)] * self.ndim)
        held = goal_sets.heldout_mask(cells, self.heldout_fraction, self.heldout_seed)
        self.train_goals, self.heldout_goals = cells[~held], cells[held]
        if self.heldout_fraction > 0 and len(self.heldout_goals) == 0:
            raise ValueError(
                f"goal_grid: no cell of the {self.height}x{self.height} grid is held out "
                f"at heldout_fraction {self.heldout_fraction}; raise it"
            )
        self.n_goals = len(self.train_goals)

    def kwargs(self) -> dict:
        return {
            "height": self.height,
            "sticky_prob": self.sticky_prob,
            "heldout_fraction": self.heldout_fraction,
            "heldout_seed": self.heldout_seed,
        }

    # ------------------------------------------------------------------ goals
    def sample_goals(self, n: int, gen: torch.Generator, heldout: bool = False) -> torch.Tensor:
        pool = self.heldout_goals if heldout else self.train_goals
        if len(pool) == 0:
            raise ValueError("goal_grid: no held-out goals (heldout_fraction is 0)")
        idx = torch.randint(0, len(pool), (n,), generator=gen, device=gen.device)
        return pool.to(gen.device)[idx]

    def is_heldout(self, goals: torch.Tensor) -> torch.Tensor:
        return goal_sets.heldout_mask(goals, self.heldout_fraction, self.heldout_seed)

    def goal_obs(self, goals: torch.Tensor) -> torch.Tensor:
        return self.obs(goals)

    def goal_state(self, goals: torch.Tensor) -> torch.Tensor:
        """The state equal to the goal (where a backward rollout starts)."""
        return goals.long().clone()

    def achieved(self, states: torch.Tensor) -> torch.Tensor:
        """Goal-format outcome of terminal states."""
        return states

    # ------------------------------------------------------------------ dynamics
    def initial(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros((batch, self.ndim), dtype=torch.long, device=device)

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        return (states == 0).all(-1)

    def obs(self, states: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(states.long(), self.height).flatten(-2).float()

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        moves = states < self.height - 1
        return torch.cat([moves, torch.ones_like(moves[..., :1])], -1)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return states > 0

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next states and whether the episode ended (the stop action)."""
        done = actions == self.stop_action
        inc = torch.nn.functional.one_hot(actions.clamp(max=self.ndim - 1), self.ndim) * (~done)[:, None]
        return states + inc, done

    def perturb(self, states: torch.Tensor, actions: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The code's sticky noise on training rollouts: with probability ``sticky_prob`` a move
        becomes a uniformly random move, unless a coordinate is at H-1 (so it stays valid)."""
        if self.sticky_prob <= 0:
            return actions
        u = torch.rand(actions.shape, generator=gen, device=gen.device).to(actions.device)
        rand = torch.randint(0, self.ndim, actions.shape, generator=gen, device=gen.device).to(actions.device)
        flip = (u < self.sticky_prob) & (actions != self.stop_action) & (states < self.height - 1).all(-1)
        return torch.where(flip, rand, actions)

    def backward_step(self, states: torch.Tensor, back: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parents by backward action ``back`` and the forward action leading parent -> state."""
        return states - torch.nn.functional.one_hot(back, self.ndim), back

    def backward_action(self, next_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Backward action undoing forward move ``actions`` (meaningless for stop)."""
        return actions.clamp(max=self.ndim - 1)

    def trajectory_states(self, actions: torch.Tensor) -> torch.Tensor:
        """States s_0..s_L ``[B, L+1, 2]`` of padded action sequences (frozen after the end)."""
        move = (actions >= 0) & (actions != self.stop_action)
        inc = torch.nn.functional.one_hot(actions.clamp(0, self.ndim - 1), self.ndim) * move[..., None]
        steps = torch.cumsum(inc, 1)
        return torch.cat([torch.zeros_like(steps[:, :1]), steps], 1)
