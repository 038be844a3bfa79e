"""HG-A hypergrid with forced termination (Distributional-GFlowNet / EGFN lineage).

State s in {0..H-1}^D, s0 = 0, observation = concatenated one-hot per dimension (D*H).
Actions 0..D-1 increment one coordinate, action D stops. An episode ends when the stop
action is taken *or* when a coordinate reaches H-1 (forced termination), so states with
two or more coordinates at H-1 are unreachable and are not part of the target.

Reward (x_d = -1 + 2 s_d / (H-1)):
    R(s) = R0 + R1 * prod_d 1[|x_d| > 0.5] + R2 * prod_d 1[0.6 < |x_d| < 0.8]

Mode regions: the 2^D sign patterns of coordinates inside the band 0.6 < |x| < 0.8.
This is "HG-A", the hypergrid of EGFN's and BN's papers (a stop action, forced end at H-1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from envs.base import DagEnvFeatures, one_hot_modes, write_env_assets

TARGET_FILE = "target.npz"


@dataclass(frozen=True)
class HyperGrid(DagEnvFeatures):
    ndim: int = 2
    height: int = 8
    r0: float = 1e-3
    r1: float = 0.5
    r2: float = 2.0

    def __post_init__(self) -> None:
        if self.ndim < 1:
            raise ValueError(f"hypergrid: ndim must be >= 1 (got {self.ndim})")
        if self.height < 2:
            raise ValueError(f"hypergrid: height must be >= 2 (got {self.height})")
        if self.r0 <= 0:
            raise ValueError(f"hypergrid: r0 must be > 0 (got {self.r0})")

    # ------------------------------------------------------------------ sizes
    enumerable = True

    @property
    def n_actions(self) -> int:
        """D increments + stop."""
        return self.ndim + 1

    @property
    def n_backward_actions(self) -> int:
        """Parents: one decrement per coordinate."""
        return self.ndim

    @property
    def stop_action(self) -> int:
        return self.ndim

    @property
    def obs_dim(self) -> int:
        return self.ndim * self.height

    @property
    def n_states(self) -> int:
        return self.height**self.ndim

    @property
    def max_traj_len(self) -> int:
        """Most transitions in one episode (all moves up to one coordinate short + stop)."""
        return self.ndim * (self.height - 2) + 2

    @property
    def n_modes(self) -> int:
        """Mode regions: the 2^D sign patterns of the reward band."""
        return 2**self.ndim

    def kwargs(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------- encodings
    def index(self, states: torch.Tensor) -> torch.Tensor:
        """Flat index sum_d s_d H^d of integer states [..., D]."""
        mult = self.height ** torch.arange(self.ndim, device=states.device)
        return (states * mult).sum(-1)

    def all_states(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Every grid cell, ordered by flat index: [H^D, D] long."""
        idx = torch.arange(self.n_states, device=device)
        mult = self.height ** torch.arange(self.ndim, device=device)
        return (idx[:, None] // mult) % self.height

    def obs(self, states: torch.Tensor) -> torch.Tensor:
        """One-hot encoding [..., D*H] float32."""
        offs = torch.arange(self.ndim, device=states.device) * self.height
        out = torch.zeros(*states.shape[:-1], self.obs_dim, device=states.device)
        return out.scatter_(-1, states + offs, 1.0)

    # ------------------------------------------------------------- dynamics
    def level(self, states: torch.Tensor) -> torch.Tensor:
        """Steps from s0 to a state: the sum of its coordinates."""
        return states.sum(-1)

    def initial(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch, self.ndim, dtype=torch.long, device=device)

    def is_forced_terminal(self, states: torch.Tensor) -> torch.Tensor:
        return (states == self.height - 1).any(-1)

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply actions to non-terminal states. Returns (next_states, done)."""
        is_stop = actions == self.stop_action
        inc = torch.nn.functional.one_hot(actions.clamp(max=self.ndim - 1), self.ndim)
        nxt = states + inc * (~is_stop)[:, None].long()
        done = is_stop | self.is_forced_terminal(nxt)
        return nxt, done

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Valid forward actions of non-terminal states: all increments and stop."""
        return torch.ones(*states.shape[:-1], self.n_actions, dtype=torch.bool, device=states.device)

    def parents(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Parents by decremented coordinate: ``([B, D, D] states, forward action [B, D],
        valid [B, D])``; parent d = s - e_d, reached by incrementing d."""
        eye = torch.eye(self.ndim, dtype=states.dtype, device=states.device)
        parents = (states[:, None, :] - eye[None]).clamp(min=0)
        actions = torch.arange(self.ndim, device=states.device).expand(states.shape[0], -1)
        return parents, actions, self.backward_mask(states)

    def backward_action(self, next_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Incrementing coordinate d is undone by decrementing d (stop maps to any index)."""
        return actions.clamp(0, self.ndim - 1)

    def trajectory_states(self, actions: torch.Tensor) -> torch.Tensor:
        """States along padded action sequences, by a cumulative sum of increments."""
        valid = actions >= 0
        move = valid & (actions != self.stop_action)
        inc = torch.nn.functional.one_hot(actions.clamp(0, self.ndim - 1), self.ndim) * move[..., None]
        return torch.cat([torch.zeros_like(inc[:, :1]), inc.cumsum(1)], dim=1)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Valid parents by decremented coordinate [..., D].

        Decrementing d is valid iff s_d > 0 and the parent has no coordinate at H-1
        (such a parent would itself have been terminal).
        """
        at_top = states == self.height - 1
        n_top = at_top.sum(-1, keepdim=True)
        # parent s - e_d keeps every top coordinate except d (d's is lowered by one)
        parent_has_top = (n_top - at_top.long()) > 0
        return (states > 0) & ~parent_has_top

    # ---------------------------------------------------------------- reward
    def log_reward(self, states: torch.Tensor) -> torch.Tensor:
        x = (states.float() / (self.height - 1)) * 2.0 - 1.0
        ax = x.abs()
        r = self.r0 + self.r1 * (ax > 0.5).all(-1).float() + self.r2 * ((ax > 0.6) & (ax < 0.8)).all(-1).float()
        return torch.log(r)

    def pairwise_distance(self, states: torch.Tensor) -> np.ndarray:
        """L1 (Manhattan) distances between grid points ``[n, n]`` (top-k diversity)."""
        x = states.double()
        return torch.cdist(x, x, p=1).cpu().numpy()

    def mode_index(self, states: torch.Tensor) -> torch.Tensor:
        """Index in [0, 2^D) of the mode region a state lies in, or -1 if none."""
        x = (states.float() / (self.height - 1)) * 2.0 - 1.0
        in_band = ((x.abs() > 0.6) & (x.abs() < 0.8)).all(-1)
        bits = (x > 0).long() * (2 ** torch.arange(self.ndim, device=states.device))
        return torch.where(in_band, bits.sum(-1), torch.full_like(in_band, -1, dtype=torch.long))

    def action_blocks(self) -> list[tuple[int, int]]:
        return [(0, self.ndim), (self.ndim, self.ndim + 1)]  # increments, stop

    def modes_hit(self, states: torch.Tensor) -> torch.Tensor:
        return one_hot_modes(self.mode_index(states), self.n_modes)

    # ------------------------------------------------------- exact target
    def terminal_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Cells that can end an episode: at most one coordinate at H-1 (the others are
        unreachable, since reaching H-1 terminates)."""
        return (states == self.height - 1).sum(-1) <= 1

    def target_distribution(self, cache_dir: str | Path | None = None) -> np.ndarray:
        """Exact p*(x) = R(x)/Z over all H^D cells (zero on unreachable ones), float64.

        Reads ``cache_dir/target.npz`` when present (written by :meth:`write_assets`).
        """
        if cache_dir is not None:
            path = Path(cache_dir) / TARGET_FILE
            if path.exists():
                with np.load(path) as data:
                    return data["p"]
        states = self.all_states()
        r = torch.exp(self.log_reward(states).double()) * self.terminal_mask(states).double()
        return (r / r.sum()).numpy()

    def write_assets(self, out_dir: str | Path) -> dict:
        """Cache the exact target distribution and a description; returns the info dict."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        p = self.target_distribution()
        states = self.all_states()
        regions = self.mode_index(states)
        info = {
            "env": "hypergrid",
            "kwargs": self.kwargs(),
            "n_states": self.n_states,
            "n_terminal": int(self.terminal_mask(states).sum()),
            "n_modes": self.n_modes,
            "mode_regions_reachable": int(torch.unique(regions[regions >= 0]).numel()),
            "target_max": float(p.max()),
        }
        return write_env_assets(out, info, p)

    def check_steps(self, n: int = 64, seed: int = 0) -> None:
        """Roll random episodes to termination; raise if dynamics are inconsistent."""
        g = torch.Generator().manual_seed(seed)
        s = self.initial(n)
        alive = torch.ones(n, dtype=torch.bool)
        for _ in range(self.max_traj_len):
            if not alive.any():
                break
            a = torch.randint(0, self.n_actions, (n,), generator=g)
            nxt, done = self.step(s, a)
            s = torch.where(alive[:, None], nxt, s)
            alive &= ~done
        if alive.any():
            raise RuntimeError("hypergrid: episodes did not terminate within max_traj_len")
        if not bool(self.terminal_mask(s).all()):
            raise RuntimeError("hypergrid: reached a state outside the terminal set")
