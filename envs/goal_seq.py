"""Goal-conditioned prepend/append sequence generation of RBS (He, Chang, Xu, Pan, ICLR 2025;
code tinnerhrhe/Goal-Conditioned-GFN, gfn_bit/main.py): bit sequences and TFBind8 goals.

A sequence of exactly L tokens over V symbols is built one token at a time; the episode ends by
forced termination at length L (no stop action). Forward actions, in the code's order:
``c`` in 0..V-1 appends token c, ``V + c`` prepends it. The code's masks make the construction
a DAG without parallel edges: at the empty state every prepend is masked (append only), and at
a state whose tokens are all the same symbol c, "prepend c" is masked (it equals "append c").
Backward actions: 0 removes the first token (undoes a prepend), 1 removes the last (undoes an
append); "remove first" is masked at states with at most one distinct symbol, so each forward
edge has exactly one backward edge. A goal y is a full sequence; R(x | y) = 1[x = y].

* ``GoalBitSequence(n, k)``: n-bit strings as n/k tokens of k bits, V = 2^k; the paper's sizes
  (n, k) = (40, 2), (60, 3), (100, 5). Goals: uniform token strings (the code's
  ``torch.randint(0, 2^k, (16, n/k))``).
* ``GoalTFBind8``: 8-mers over {A, C, G, T} (V = 4, L = 8); goals uniform over the 65,536 8-mers
  (a reconstruction: the code does not ship this task). The reward is exact goal matching, so the
  TFBind8 oracle is not needed.

State encoding (integer ``[..., L+1]``): tokens left-aligned in columns 0..L-1 (pad id V), the
length in column L. Observation: one-hot of each position over the V tokens (pads all zero),
``L*V`` inputs, and the same for the goal, as in the code's conditional MLP input.
"""

from __future__ import annotations

import torch

from envs import goals as goal_sets
from envs.base import replay_states


class GoalSequence(goal_sets.GoalEnvAssets):
    name = "goal_sequence"
    stop_action = None
    n_backward_actions = 2

    def __init__(self, vocab_size: int, length: int, heldout_fraction: float = 0.1, heldout_seed: int = 0):
        if vocab_size < 2 or length < 1:
            raise ValueError(f"{self.name}: need vocab_size >= 2 and length >= 1 (got {vocab_size}, {length})")
        if not 0 <= heldout_fraction < 1:
            raise ValueError(f"{self.name}: heldout_fraction must be in [0, 1) (got {heldout_fraction})")
        self.vocab_size, self.length = int(vocab_size), int(length)
        self.heldout_fraction = float(heldout_fraction)
        self.heldout_seed = int(heldout_seed)
        self.pad = self.vocab_size
        self.n_actions = 2 * self.vocab_size
        self.obs_dim = self.length * self.vocab_size
        self.goal_obs_dim = self.length * self.vocab_size
        self.goal_len = self.length
        self.goal_values = self.vocab_size
        self.max_traj_len = self.length
        self.n_goals = self.vocab_size**self.length  # held-out ones included (all but ~fraction)
        self.sticky_prob = 0.0

    # ------------------------------------------------------------------ goals
    def sample_goals(self, n: int, gen: torch.Generator, heldout: bool = False) -> torch.Tensor:
        return goal_sets.sample_goals(
            n, self.length, self.vocab_size, gen, self.heldout_fraction, self.heldout_seed, heldout
        )

    def is_heldout(self, goals: torch.Tensor) -> torch.Tensor:
        return goal_sets.heldout_mask(goals, self.heldout_fraction, self.heldout_seed)

    def goal_obs(self, goals: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(goals.long(), self.vocab_size).flatten(-2).float()

    def goal_state(self, goals: torch.Tensor) -> torch.Tensor:
        full = torch.full_like(goals[:, :1], self.length)
        return torch.cat([goals.long(), full], -1)

    def achieved(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., : self.length]

    # ------------------------------------------------------------------ dynamics
    def initial(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        s = torch.full((batch, self.length + 1), self.pad, dtype=torch.long, device=device)
        s[:, -1] = 0
        return s

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., -1] == 0

    def obs(self, states: torch.Tensor) -> torch.Tensor:
        tok = states[..., : self.length]
        return torch.nn.functional.one_hot(tok, self.vocab_size + 1)[..., : self.vocab_size].flatten(-2).float()

    def _uniform(self, states: torch.Tensor) -> torch.Tensor:
        """At most one distinct symbol (the empty state included)."""
        tok, n = states[..., : self.length], states[..., -1:]
        inside = torch.arange(self.length, device=states.device) < n
        return ((tok == tok[..., :1]) | ~inside).all(-1)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        n = states[..., -1]
        open_ = (n < self.length)[..., None]
        append = open_.expand(*n.shape, self.vocab_size)
        prepend = append & (n > 0)[..., None]
        # all tokens equal c: "prepend c" duplicates "append c"
        dup = torch.nn.functional.one_hot(states[..., 0].clamp(max=self.vocab_size - 1), self.vocab_size).bool()
        prepend = prepend & ~(dup & self._uniform(states)[..., None])
        return torch.cat([append, prepend], -1)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        n = states[..., -1]
        last = n > 0
        first = last & ~self._uniform(states)
        return torch.stack([first, last], -1)

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok, n = states[:, : self.length], states[:, -1]
        c = actions % self.vocab_size
        prepend = actions >= self.vocab_size
        shifted = torch.cat([c[:, None], tok[:, :-1]], 1)
        appended = tok.scatter(1, n.clamp(max=self.length - 1)[:, None], c[:, None])
        new_tok = torch.where(prepend[:, None], shifted, appended)
        new_n = n + 1
        return torch.cat([new_tok, new_n[:, None]], 1), new_n == self.length

    def perturb(self, states: torch.Tensor, actions: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return actions  # the bit-sequence code has no action noise

    def backward_step(self, states: torch.Tensor, back: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok, n = states[:, : self.length], states[:, -1]
        rows = torch.arange(len(states), device=states.device)
        last_i = (n - 1).clamp(min=0)
        first_c, last_c = tok[:, 0], tok[rows, last_i]
        pad = torch.full_like(tok[:, :1], self.pad)
        drop_first = torch.cat([tok[:, 1:], pad], 1)
        drop_last = tok.scatter(1, last_i[:, None], self.pad)
        remove_first = back == 0
        parent_tok = torch.where(remove_first[:, None], drop_first, drop_last)
        fwd = torch.where(remove_first, first_c + self.vocab_size, last_c)
        return torch.cat([parent_tok, (n - 1)[:, None]], 1), fwd

    def backward_action(self, next_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return (actions < self.vocab_size).long()  # prepend -> 0 (remove first), append -> 1

    def trajectory_states(self, actions: torch.Tensor) -> torch.Tensor:
        return replay_states(self, actions)

    def kwargs(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "length": self.length,
            "heldout_fraction": self.heldout_fraction,
            "heldout_seed": self.heldout_seed,
        }


class GoalBitSequence(GoalSequence):
    name = "goal_bitseq"

    def __init__(self, n: int = 40, k: int = 2, heldout_fraction: float = 0.1, heldout_seed: int = 0):
        if k < 1 or n % k:
            raise ValueError(f"goal_bitseq: n must be a multiple of k >= 1 (got n={n}, k={k})")
        self.n_bits, self.k = int(n), int(k)
        super().__init__(2**k, n // k, heldout_fraction, heldout_seed)

    def kwargs(self) -> dict:
        return {
            "n": self.n_bits,
            "k": self.k,
            "heldout_fraction": self.heldout_fraction,
            "heldout_seed": self.heldout_seed,
        }


class GoalTFBind8(GoalSequence):
    name = "goal_tfbind8"

    def __init__(self, heldout_fraction: float = 0.1, heldout_seed: int = 0):
        super().__init__(4, 8, heldout_fraction, heldout_seed)

    def kwargs(self) -> dict:
        return {"heldout_fraction": self.heldout_fraction, "heldout_seed": self.heldout_seed}
