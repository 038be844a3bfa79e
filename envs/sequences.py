"""Fixed-length sequence MDPs shared by the sequence benchmarks (envs.base.DagEnv interface).

Two MDPs over a vocabulary of V tokens and a fixed length L, both ending by forced
termination at length L (no stop action, ``stop_action = None``):

* ``mdp="ar"`` — autoregressive / tree form: actions 0..V-1 append token c. Every non-root
  state has exactly one parent (``n_backward_actions = 1``; backward action 0 = delete-last).
* ``mdp="pa"`` — prepend-append (Shen et al. 2023): actions 0..V-1 prepend token c, actions
  V..2V-1 append token c. Backward actions: 0 = delete-first (undoes a prepend), 1 = delete-last
  (undoes an append). Edges are counted as multi-edges: at the empty state "prepend c" and
  "append c" are two parallel edges into the same child, so every non-terminal state has 2V
  outgoing edges and every non-root state 2 incoming edges (both backward actions are valid
  at length 1, where both lead back to the empty state). Hence the RPE branching ratio
  g(s_t) = (2V/2)^t = V^t depends only on the length.

State encoding (integer tensor ``[..., L+1]``): columns 0..L-1 hold the tokens left-aligned
(the sequence occupies columns 0..len-1), empty columns hold the pad id V; column L holds
the current length. Observation: one-hot over V+1 symbols (the V tokens and pad) per
position, flattened to ``L*(V+1)`` float32 inputs (the length is implied by the pads).

Enumerable instances (V^L small) index every state: sequences are ordered by length, then by
their base-V value read left to right (first token most significant), i.e.
``index = (V^n - 1)/(V - 1) + sum_i tok_i V^(n-1-i)`` for a sequence of length n; ``level`` is
the length and the terminal states are exactly those of length L.

Subclasses provide the reward by overriding ``_terminal_log_reward(tokens)`` (tokens ``[B, L]``
of terminal states) and ``_terminal_mode_index(tokens)``; ``log_reward`` is -inf on
non-terminal states (they carry no reward).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.base import DagEnvFeatures, one_hot_modes, write_env_assets

TARGET_FILE = "target.npz"
MDPS = ("pa", "ar")


class SequenceMDP(DagEnvFeatures):
    """Prepend-append or autoregressive construction of sequences of exactly ``length`` tokens."""

    name = "sequence"
    stop_action = None

    def __init__(self, vocab_size: int, length: int, mdp: str = "pa", enumerable: bool | None = None):
        if mdp not in MDPS:
            raise ValueError(f"{self.name}: mdp must be one of {MDPS} (got {mdp!r})")
        if vocab_size < 2:
            raise ValueError(f"{self.name}: vocabulary size must be >= 2 (got {vocab_size})")
        if length < 1:
            raise ValueError(f"{self.name}: length must be >= 1 (got {length})")
        self.vocab_size = int(vocab_size)
        self.length = int(length)
        self.mdp = mdp
        self.pad = self.vocab_size
        # number of states of every length 0..L; index fits int64 only when this is small
        self._total = sum(self.vocab_size**n for n in range(self.length + 1))
        self._indexable = self._total < 2**62
        if enumerable is None:
            enumerable = self._total <= 2_000_000
        self.enumerable = bool(enumerable)
        if self.enumerable and not self._indexable:
            raise ValueError(f"{self.name}: {vocab_size}^{length} sequences cannot be enumerated")

    # ------------------------------------------------------------------ sizes
    @property
    def n_actions(self) -> int:
        return 2 * self.vocab_size if self.mdp == "pa" else self.vocab_size

    @property
    def n_backward_actions(self) -> int:
        return 2 if self.mdp == "pa" else 1

    def action_blocks(self) -> list[tuple[int, int]]:
        """Prepend and append tokens are separate action types (yunglau/QGFN's sequence model
        has one logit row per type); the autoregressive MDP has one."""
        V = self.vocab_size
        return [(0, V), (V, 2 * V)] if self.mdp == "pa" else [(0, V)]

    @property
    def obs_dim(self) -> int:
        return self.length * (self.vocab_size + 1)

    @property
    def max_traj_len(self) -> int:
        return self.length

    @property
    def n_states(self) -> int:
        return self._total

    @property
    def n_modes(self) -> int:
        return 0

    # ------------------------------------------------------------- dynamics
    def initial(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        s = torch.full((batch, self.length + 1), self.pad, dtype=torch.long, device=device)
        s[:, self.length] = 0
        return s

    def lengths(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., self.length]

    def tokens(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., : self.length]

    def level(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., self.length]

    def is_forced_terminal(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., self.length] == self.length

    def terminal_mask(self, states: torch.Tensor) -> torch.Tensor:
        return self.is_forced_terminal(states)

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply forward actions to non-terminal states ``[B, L+1]``; returns (next, done)."""
        L, V = self.length, self.vocab_size
        n = states[:, L]
        tok = actions % V
        nxt = states.clone()
        # append: write the token at column n
        nxt.scatter_(1, n.clamp(max=L - 1)[:, None], tok[:, None])
        if self.mdp == "pa":
            prepend = actions < V
            shifted = torch.cat([tok[:, None], states[:, : L - 1]], 1)
            nxt[:, :L] = torch.where(prepend[:, None], shifted, nxt[:, :L])
        nxt[:, L] = n + 1
        return nxt, nxt[:, L] == L

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Every action is valid in a non-terminal state. Terminal states have no move, but
        get an all-true row (as in envs.hypergrid) so that a softmax over them stays finite."""
        return torch.ones(*states.shape[:-1], self.n_actions, dtype=torch.bool, device=states.device)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Every backward action (delete-first / delete-last, or delete-last) is valid iff
        the state is non-empty."""
        nonempty = states[..., self.length] > 0
        return nonempty[..., None].expand(*nonempty.shape, self.n_backward_actions).clone()

    def parents(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Parents by backward action, ``([B, P, L+1], forward action [B, P], valid [B, P])``.

        AR: delete-last, reached by appending the last token. PA: delete-first (reached by
        prepending the first token) and delete-last (reached by appending the last token); at
        length 1 both are the empty state, through two parallel edges."""
        L, V = self.length, self.vocab_size
        n = states[:, L]
        valid = self.backward_mask(states)
        last = n.clamp(min=1) - 1
        last_tok = states.gather(1, last[:, None]).squeeze(1).clamp(max=V - 1)
        del_last = states.clone()
        del_last.scatter_(1, last[:, None], self.pad)
        del_last[:, L] = (n - 1).clamp(min=0)
        if self.mdp == "ar":
            return del_last[:, None], last_tok[:, None], valid
        first_tok = states[:, 0].clamp(max=V - 1)
        del_first = torch.cat([states[:, 1:L], torch.full_like(states[:, :1], self.pad)], 1)
        del_first = torch.cat([del_first, (n - 1).clamp(min=0)[:, None]], 1)
        parents = torch.stack([del_first, del_last], 1)
        actions = torch.stack([first_tok, V + last_tok], 1)
        return parents, actions, valid

    def backward_action(self, next_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """PA: prepend -> 0 (delete-first), append -> 1 (delete-last). AR: always 0."""
        if self.mdp == "pa":
            return (actions >= self.vocab_size).long()
        return torch.zeros_like(actions)

    def trajectory_states(self, actions: torch.Tensor) -> torch.Tensor:
        """States s_0..s_T ``[B, T+1, L+1]`` along padded action sequences, vectorised.

        After k actions, a prepend taken at step j (the P_j-th prepend, 0-based) sits at
        position P_k - 1 - P_j, where P_k counts prepends among the first k actions; an append
        taken at step j (after A_j earlier appends) sits at position P_k + A_j."""
        B, T = actions.shape
        L, V = self.length, self.vocab_size
        dev = actions.device
        valid = actions >= 0
        a = actions.clamp(min=0)
        tok = a % V
        is_pre = valid & (a < V) if self.mdp == "pa" else torch.zeros_like(valid)
        is_app = valid & ~is_pre
        p_before = is_pre.long().cumsum(1) - is_pre.long()  # [B, T]
        a_before = is_app.long().cumsum(1) - is_app.long()
        zero = torch.zeros(B, 1, dtype=torch.long, device=dev)
        p_k = torch.cat([zero, is_pre.long().cumsum(1)], 1)  # [B, T+1]
        n_k = torch.cat([zero, valid.long().cumsum(1)], 1)  # lengths
        pos = torch.where(
            is_pre[:, None, :], p_k[:, :, None] - 1 - p_before[:, None, :], p_k[:, :, None] + a_before[:, None, :]
        )  # [B, T+1, T]
        j = torch.arange(T, device=dev)
        k = torch.arange(T + 1, device=dev)
        placed = valid[:, None, :] & (j[None, None, :] < k[None, :, None])
        pos = torch.where(placed, pos, torch.full_like(pos, L))  # junk column L
        out = torch.full((B, T + 1, L + 1), self.pad, dtype=torch.long, device=dev)
        out.scatter_(2, pos, tok[:, None, :].expand(B, T + 1, T))
        out[:, :, L] = n_k
        return out

    # --------------------------------------------------------------- encodings
    def obs(self, states: torch.Tensor) -> torch.Tensor:
        """One-hot over V+1 symbols (tokens + pad) per position, ``[..., L*(V+1)]`` float32."""
        oh = torch.nn.functional.one_hot(states[..., : self.length], self.vocab_size + 1)
        return oh.flatten(-2).float()

    def _offsets(self, device: Any) -> torch.Tensor:
        V = self.vocab_size
        return torch.tensor([(V**n - 1) // (V - 1) for n in range(self.length + 2)], dtype=torch.long, device=device)

    def index(self, states: torch.Tensor) -> torch.Tensor:
        """Flat index of states (ordered by length, then base-V value)."""
        if not self._indexable:
            raise NotImplementedError(
                f"{self.name}: {self.vocab_size}^{self.length} sequences do not fit an int64 index"
            )
        L, V = self.length, self.vocab_size
        n = states[..., L]
        i = torch.arange(L, device=states.device)
        expo = (n[..., None] - 1 - i).clamp(min=0)
        w = torch.where(i < n[..., None], V**expo, torch.zeros_like(expo))
        tok = states[..., :L].clamp(max=V - 1)
        return self._offsets(states.device)[n] + (tok * w).sum(-1)

    def all_states(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Every state ``[n_states, L+1]`` in index order (enumerable instances only)."""
        if not self.enumerable:
            raise NotImplementedError(f"{self.name} is not enumerable")
        L, V = self.length, self.vocab_size
        parts = []
        for n in range(L + 1):
            vals = torch.arange(V**n, dtype=torch.long, device=device)
            s = torch.full((V**n, L + 1), self.pad, dtype=torch.long, device=device)
            for i in range(n):
                s[:, i] = (vals // V ** (n - 1 - i)) % V
            s[:, L] = n
            parts.append(s)
        return torch.cat(parts)

    def tokens_value(self, tokens: torch.Tensor) -> torch.Tensor:
        """Base-V value of full-length token rows ``[..., L]`` (first token most significant)."""
        L, V = self.length, self.vocab_size
        w = V ** torch.arange(L - 1, -1, -1, device=tokens.device)
        return (tokens.clamp(max=V - 1) * w).sum(-1)

    def terminal_index(self, states: torch.Tensor) -> torch.Tensor:
        """Index of full-length states among the V^L sequences (base-V value)."""
        return self.tokens_value(states[..., : self.length])

    def pairwise_distance(self, states: torch.Tensor) -> np.ndarray:
        """Levenshtein distances between terminal sequences ``[n, n]`` (the diversity of
        LS-GFN / BN: mean pairwise edit distance of the top-k samples)."""
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import cdist

        words = ["".join(chr(65 + int(t)) for t in row) for row in states[:, : self.length].tolist()]
        return cdist(words, words, scorer=Levenshtein.distance, dtype=np.int32)

    def encode(
        self, seqs: list[list[int]] | np.ndarray | torch.Tensor, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Terminal states ``[B, L+1]`` from token sequences of length L."""
        tok = torch.as_tensor(np.asarray(seqs), dtype=torch.long, device=device).reshape(-1, self.length)
        n = torch.full((tok.shape[0], 1), self.length, dtype=torch.long, device=device)
        return torch.cat([tok, n], 1)

    # ---------------------------------------------------------------- reward
    def _terminal_log_reward(self, tokens: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _terminal_mode_index(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.full(tokens.shape[:-1], -1, dtype=torch.long, device=tokens.device)

    def log_reward(self, states: torch.Tensor) -> torch.Tensor:
        """log R of terminal states (float32); -inf for non-terminal states."""
        term = self.is_forced_terminal(states)
        out = torch.full(states.shape[:-1], -float("inf"), dtype=torch.float32, device=states.device)
        if term.any():
            out[term] = self._terminal_log_reward(states[term][:, : self.length]).float().to(states.device)
        return out

    def mode_index(self, states: torch.Tensor) -> torch.Tensor:
        """Index in [0, n_modes) of the mode a terminal state is, or -1."""
        term = self.is_forced_terminal(states)
        out = torch.full(states.shape[:-1], -1, dtype=torch.long, device=states.device)
        if term.any() and self.n_modes > 0:
            out[term] = self._terminal_mode_index(states[term][:, : self.length]).to(states.device)
        return out

    def modes_hit(self, states: torch.Tensor) -> torch.Tensor:
        """``[B, n_modes]``: the modes each terminal state finds (one per state here; bit
        sequences override: a string within the threshold of several modes finds them all)."""
        term = self.is_forced_terminal(states)
        out = torch.zeros(*states.shape[:-1], self.n_modes, dtype=torch.bool, device=states.device)
        if term.any() and self.n_modes > 0:
            out[term] = self._terminal_modes_hit(states[term][:, : self.length]).to(states.device)
        return out

    def _terminal_modes_hit(self, tokens: torch.Tensor) -> torch.Tensor:
        return one_hot_modes(self._terminal_mode_index(tokens), self.n_modes)

    # ------------------------------------------------------------ exact target
    def terminal_rewards(self) -> np.ndarray:
        """R(x) (float64) of all V^L terminal sequences in base-V order (enumerable only)."""
        if not self.enumerable:
            raise NotImplementedError(f"{self.name} is not enumerable")
        V, L = self.vocab_size, self.length
        vals = torch.arange(V**L, dtype=torch.long)
        tok = torch.stack([(vals // V ** (L - 1 - i)) % V for i in range(L)], 1)
        return torch.exp(self._terminal_log_reward(tok).double()).numpy()

    def target_distribution(self, cache_dir: str | Path | None = None) -> np.ndarray:
        """Exact p*(x) = R(x)/Z over the full index space (zero on non-terminal states).

        Reads ``cache_dir/target.npz`` when present (written by :meth:`write_assets`)."""
        if not self.enumerable:
            raise NotImplementedError(f"{self.name} is not enumerable: no exact target")
        if cache_dir is not None:
            path = Path(cache_dir) / TARGET_FILE
            if path.exists():
                with np.load(path) as data:
                    return data["p"]
        r = self.terminal_rewards()
        p = np.zeros(self.n_states, dtype=np.float64)
        p[self._offsets("cpu")[self.length].item() :] = r / r.sum()
        return p

    # ------------------------------------------------------------------ assets
    def kwargs(self) -> dict:  # pragma: no cover - subclasses
        return {"vocab_size": self.vocab_size, "length": self.length, "mdp": self.mdp}

    def info(self) -> dict:
        return {
            "env": self.name,
            "kwargs": self.kwargs(),
            "mdp": self.mdp,
            "vocab_size": self.vocab_size,
            "length": self.length,
            "enumerable": self.enumerable,
            "n_sequences": self.vocab_size**self.length,
            "n_modes": self.n_modes,
        }

    def write_assets(self, out_dir: str | Path) -> dict:
        """Write ``info.json`` (and, if enumerable, the exact target ``target.npz``)."""
        info, p = self.info(), None
        if self.enumerable:
            p = self.target_distribution()
            info.update(n_states=self.n_states, n_terminal=self.vocab_size**self.length, target_max=float(p.max()))
        return write_env_assets(out_dir, info, p)

    def check_steps(self, n: int = 64, seed: int = 0) -> None:
        """Roll random episodes; raise if the dynamics or the reward are inconsistent."""
        g = torch.Generator().manual_seed(seed)
        s = self.initial(n)
        actions = torch.randint(0, self.n_actions, (n, self.max_traj_len), generator=g)
        for t in range(self.max_traj_len):
            if bool(self.is_forced_terminal(s).any()):
                raise RuntimeError(f"{self.name}: episode ended before length {self.length}")
            s, done = self.step(s, actions[:, t])
            if bool(done.any()) != (t == self.max_traj_len - 1) or bool(done.any() != done.all()):
                raise RuntimeError(f"{self.name}: forced termination not at length {self.length}")
        if not bool(self.terminal_mask(s).all()):
            raise RuntimeError(f"{self.name}: reached a state outside the terminal set")
        if not torch.equal(self.trajectory_states(actions)[:, -1], s):
            raise RuntimeError(f"{self.name}: trajectory_states disagrees with step")
        if not bool(((s[:, : self.length] >= 0) & (s[:, : self.length] < self.vocab_size)).all()):
            raise RuntimeError(f"{self.name}: terminal state holds a pad")
        lr = self.log_reward(s)
        if not bool(torch.isfinite(lr).all()):
            raise RuntimeError(f"{self.name}: non-finite log-reward on terminal states")


def shen_scale(
    r: np.ndarray, beta: float, reward_max: float, reward_min: float = 1e-3, clip_first: bool = True
) -> tuple[np.ndarray, float]:
    """Shen et al. / LS-GFN reward scaling; returns (R, c).

    ``clip_first=True`` (LS-GFN code, QM9str / RNA): R = max(r, min)^beta * c,
    c = reward_max / max(max(r, min)^beta). ``clip_first=False`` (Shen's TFBind8 code):
    R = max(r^beta * c, min), c = reward_max / max(r^beta)."""
    r = np.asarray(r, dtype=np.float64)
    if clip_first:
        p = np.maximum(r, reward_min) ** beta
        c = reward_max / p.max()
        return p * c, float(c)
    p = r**beta
    c = reward_max / p.max()
    return np.maximum(p * c, reward_min), float(c)
