"""sEH fragment molecules (Bengio et al. 2021 blocks; the reward as the QGFN paper uses it): the
MDP over fragment trees. Molecules, SMILES, the proxy and fingerprints: envs/seh_chem.py.

**Blocks.** ``seh/blocks_PDB_105.json`` lists 105 blocks: 72 unique fragment SMILES plus
variants of the same SMILES that differ in their list of attachment atoms ``block_r``. A
block's *slots* are the positions of ``block_r`` (an atom may appear more than once: it can
then bond several times). As in Bengio et al.'s ``BlockMoleculeData.add_block``, a block added
to a molecule bonds through its slot 0 (atom ``block_r[0]``), so choosing among the variants
chooses which of the new fragment's atoms bonds; its other slots become open. The first block
(the root) has all its slots open.

**Molecule.** The fragments are combined into one RDKit molecule, every fragment-fragment
edge becomes a single bond between the two attachment atoms, each of those atoms loses one
explicit hydrogen if it has any, and the result is sanitised (Bengio's ``mol_from_frag``;
recursion/QGFN's ``graph_to_mol`` is the same). A molecule RDKit cannot sanitise, and the
empty state, are *invalid*.

**State encoding** (integer tensor ``[B, S]``, ``M = max_frags``, ``K = 6`` slots at most per
block, ``S = 1 + 3M + MK`` = 82 for M = 9). Nodes are numbered in insertion order (node 0 =
root), so a node's parent always has a smaller index:

* column 0: number of fragments n (0..M);
* columns 1..M: block id (0..104) of node i, 105 (pad) for i >= n;
* columns 1+M..2M: parent node of node i (0 for the root and for absent nodes);
* columns 1+2M..3M: the parent's slot that node i is bonded to (0 for the root / absent);
* columns 1+3M..: occupancy flags ``[M, K]`` node-major: 1 if slot k of node i holds a bond
  (slot 0 of every non-root node holds the bond to its parent).

**Forward actions** (``n_actions = M*K*105 + 1``): action ``(p*K + k)*105 + v`` bonds a new
fragment of block v through its slot 0 to open slot k of node p; at the empty state the
actions with p = k = 0 place block v as the root (any of the 105 blocks, as in Bengio's MDP).
The last action is *stop* (not allowed at the empty state; QGFN forbids stopping at t = 0).
Stop leaves the state unchanged (as envs.hypergrid does). An episode ends by stop or, forced,
when it holds M fragments; ``max_traj_len = M``.

**Backward actions** (``n_backward_actions = M``): backward action i removes node i, allowed
when node i is a leaf of the fragment tree other than the root (the root only when it is the
sole fragment). The parent state is compacted (later nodes move down one index), so the parent
of removing node i re-grows the same fragment tree by the forward action that re-adds node i,
with node i then stored last: for i = n-1 step(parent, action) reproduces the state exactly,
for other leaves an equal tree with the nodes relabelled (same molecule). The root is never
re-chosen: the terminal objects are *rooted* fragment trees, so a molecule is counted once per
distinct rooted tree (block variant and root choice) that builds it, as in Bengio's block MDP,
where the same molecule also has several block representations. Not enumerable: no exact
target, no modes (``n_modes = 0``, ``mode_index`` is -1 everywhere).

**Reward** (recursion ``tasks/seh_frag.py``, QGFN ``tasks/seh_double.py``): flat reward
``clip(proxy/8, 1e-4, 100)`` (a NaN proxy counts as 0, so 1e-4), ``log_reward = beta *
log(flat)`` with ``beta`` = 32 (QGFN's default; train with the core's ``reward_beta = 1``);
invalid states get ``invalid_log_reward`` = -75 (QGFN's ``illegal_action_logreward``). With
beta = 32 a valid molecule whose flat reward is below exp(-75/32) = 0.096 has a lower log-reward
than an invalid one, as in QGFN; the blocks' attachment atoms all carry hydrogens, so the action
space rarely (in our rollouts never) builds an invalid molecule.
Proxy scores are cached per canonical SMILES (LRU).

**Observation** (float32): per node slot, the one-hot block id (106 with pad), the one-hot
parent node (M), the one-hot parent slot (K) and the open-slot flags (K).

**Similarity**: Tanimoto on ``Chem.RDKFingerprint`` (RDKit topological fingerprint, 2048
bits), the fingerprint QGFN's ``utils/plotting.py`` uses for its mode filter and top-k
diversity; ``fingerprint="morgan"`` switches to Morgan radius 2, 2048 bits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from envs.base import DagEnvFeatures, replay_states, write_env_assets
from envs.seh_chem import BLOCKS_FILE, FINGERPRINTS, MAX_SLOTS, N_BLOCKS, FragmentChemistry, blocks

__all__ = ["BLOCKS_FILE", "MAX_SLOTS", "N_BLOCKS", "SEHFragments", "blocks"]
REWARD_NORM = 8.0  # flat reward = proxy / 8 (recursion seh_frag)
FLAT_MIN, FLAT_MAX = 1e-4, 100.0


class SEHFragments(DagEnvFeatures):
    name = "seh"
    enumerable = False
    n_modes = 0
    # QGFN's mode counter (yunglau/QGFN utils/plotting.py): flat reward above 0.9, Tanimoto
    # similarity below 0.7 to every mode accepted before
    flat_reward_is_tempered_log_reward = False  # proxy / 8, clipped; 0 for invalid states
    mode_flat_threshold = 0.9
    mode_similarity = 0.7

    def __init__(
        self,
        max_frags: int = 9,
        beta: float = 32.0,
        invalid_log_reward: float = -75.0,
        root_layout: str = "linear",
        fingerprint: str = "rdkit",
        cache_size: int = 500_000,
        proxy_batch: int = 512,
    ):
        if max_frags < 1:
            raise ValueError(f"seh: max_frags must be >= 1 (got {max_frags})")
        if beta <= 0:
            raise ValueError(f"seh: beta must be > 0 (got {beta})")
        if fingerprint not in FINGERPRINTS:
            raise ValueError(f"seh: fingerprint must be one of {FINGERPRINTS} (got {fingerprint!r})")
        from envs.seh_proxy import ROOT_LAYOUTS

        if root_layout not in ROOT_LAYOUTS:
            raise ValueError(f"seh: root_layout must be one of {ROOT_LAYOUTS} (got {root_layout!r})")
        self.max_frags = int(max_frags)
        self.beta = float(beta)
        self.invalid_log_reward = float(invalid_log_reward)
        self.root_layout = root_layout
        self.fingerprint = fingerprint
        self.cache_size = int(cache_size)
        self.proxy_batch = int(proxy_batch)

        smi, r, _ = blocks()
        self.block_smiles, self.block_r = smi, r
        n_slots = torch.tensor([len(x) for x in r] + [0], dtype=torch.long)  # pad block: 0 slots
        self._n_slots = n_slots
        M, K = self.max_frags, MAX_SLOTS
        self.c_block = 1
        self.c_parent = 1 + M
        self.c_pslot = 1 + 2 * M
        self.c_occ = 1 + 3 * M
        self.state_dim = 1 + 3 * M + M * K
        # a state's molecule is read from its tree columns: block ids, parents, parent slots
        self.chem = FragmentChemistry(
            smi,
            r,
            tree_columns=(self.c_block, self.c_parent, self.c_pslot, self.c_occ),
            root_layout=root_layout,
            fingerprint=fingerprint,
            cache_size=self.cache_size,
            proxy_batch=self.proxy_batch,
        )

    # ------------------------------------------------------------------ sizes
    @property
    def n_actions(self) -> int:
        return self.max_frags * MAX_SLOTS * N_BLOCKS + 1

    @property
    def stop_action(self) -> int:
        return self.max_frags * MAX_SLOTS * N_BLOCKS

    @property
    def n_backward_actions(self) -> int:
        return self.max_frags

    def action_blocks(self) -> list[tuple[int, int]]:
        """One block per fragment (its slots x blocks: recursionpharma's AddNode row of that
        node, with the attachment choice its SetEdgeAttr would make folded in), then stop."""
        per = MAX_SLOTS * N_BLOCKS
        return [(p * per, (p + 1) * per) for p in range(self.max_frags)] + [(self.stop_action, self.stop_action + 1)]

    @property
    def max_traj_len(self) -> int:
        # M additions (forced end) or at most M-1 additions and a stop
        return self.max_frags

    @property
    def obs_dim(self) -> int:
        M, K = self.max_frags, MAX_SLOTS
        return M * (N_BLOCKS + 1) + M * M + 2 * M * K

    def kwargs(self) -> dict:
        return {
            "max_frags": self.max_frags,
            "beta": self.beta,
            "invalid_log_reward": self.invalid_log_reward,
            "root_layout": self.root_layout,
            "fingerprint": self.fingerprint,
            "cache_size": self.cache_size,
            "proxy_batch": self.proxy_batch,
        }

    # ------------------------------------------------------------- state views
    def n_frags(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., 0]

    def _views(self, states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        M, K = self.max_frags, MAX_SLOTS
        n = states[:, 0]
        blk = states[:, self.c_block : self.c_block + M]
        par = states[:, self.c_parent : self.c_parent + M]
        psl = states[:, self.c_pslot : self.c_pslot + M]
        occ = states[:, self.c_occ :].reshape(-1, M, K)
        return n, blk, par, psl, occ

    def _pack(
        self, n: torch.Tensor, blk: torch.Tensor, par: torch.Tensor, psl: torch.Tensor, occ: torch.Tensor
    ) -> torch.Tensor:
        return torch.cat([n[:, None], blk, par, psl, occ.flatten(1)], 1)

    def open_slots(self, states: torch.Tensor) -> torch.Tensor:
        """Open attachment slots ``[B, M, K]``: the node exists, the block has slot k, and no
        bond uses it."""
        n, blk, _, _, occ = self._views(states)
        M, K = self.max_frags, MAX_SLOTS
        n_slots = self._n_slots.to(states.device)[blk]  # [B, M]
        k = torch.arange(K, device=states.device)
        exists = torch.arange(M, device=states.device)[None] < n[:, None]
        return exists[..., None] & (k[None, None] < n_slots[..., None]) & (occ == 0)

    def _is_leaf(self, states: torch.Tensor) -> torch.Tensor:
        n, _, par, _, _ = self._views(states)
        M = self.max_frags
        idx = torch.arange(M, device=states.device)
        exists = idx[None] < n[:, None]
        child = exists & (idx[None] >= 1)  # nodes that have a parent
        return exists & ~self._has_child(par, child)

    @staticmethod
    def _has_child(par: torch.Tensor, child: torch.Tensor) -> torch.Tensor:
        # has_child[b, j] = any_i child[b, i] & par[b, i] == j
        counts = torch.zeros(par.shape, dtype=torch.long, device=par.device)
        counts.scatter_add_(1, par, child.long())
        return counts > 0

    # ------------------------------------------------------------- dynamics
    def initial(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        s = torch.zeros(batch, self.state_dim, dtype=torch.long, device=device)
        s[:, self.c_block : self.c_block + self.max_frags] = N_BLOCKS
        return s

    def is_forced_terminal(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., 0] >= self.max_frags

    def decode_action(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(node p, slot k, block v) of non-stop forward actions."""
        v = actions % N_BLOCKS
        k = (actions // N_BLOCKS) % MAX_SLOTS
        p = actions // (N_BLOCKS * MAX_SLOTS)
        return p, k, v

    def encode_action(
        self, node: torch.Tensor | int, slot: torch.Tensor | int, block: torch.Tensor | int
    ) -> torch.Tensor | int:
        return (node * MAX_SLOTS + slot) * N_BLOCKS + block

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply forward actions to non-terminal states; returns (next_states, done)."""
        B = states.shape[0]
        dev = states.device
        stop = actions == self.stop_action
        a = torch.where(stop, torch.zeros_like(actions), actions)
        p, k, v = self.decode_action(a)
        n, blk, par, psl, occ = (t.clone() for t in self._views(states))
        rows = torch.arange(B, device=dev)
        grow = ~stop
        i = n.clamp(max=self.max_frags - 1)  # index of the new node
        child = grow & (n > 0)  # n == 0: v becomes the root
        blk[rows[grow], i[grow]] = v[grow]
        par[rows[child], i[child]] = p[child]
        psl[rows[child], i[child]] = k[child]
        occ[rows[child], p[child], k[child]] = 1
        occ[rows[child], i[child], 0] = 1
        n = n + grow.long()
        nxt = self._pack(n, blk, par, psl, occ)
        return nxt, stop | (n >= self.max_frags)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Open slots x any block, and stop once a fragment is placed; at the empty state the
        105 root placements. A forced-terminal state (M fragments) gets only stop, so that a
        softmax over it stays finite (it is never sampled from)."""
        B = states.shape[0]
        n = states[:, 0]
        moves = self.open_slots(states)[..., None].expand(B, self.max_frags, MAX_SLOTS, N_BLOCKS)
        moves = moves.reshape(B, -1) & (n < self.max_frags)[:, None]
        empty = n == 0
        if bool(empty.any()):
            moves = moves.clone()
            moves[empty] = False
            moves[empty, :N_BLOCKS] = True
        stop = (n > 0)[:, None]
        return torch.cat([moves, stop], 1)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Removable nodes ``[B, M]``: leaves other than the root; the root when it is alone."""
        n = states[:, 0]
        idx = torch.arange(self.max_frags, device=states.device)
        leaf = self._is_leaf(states)
        return leaf & ((idx[None] >= 1) | (n[:, None] == 1))

    def _remove(self, states: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """State without node i (compacted) and the forward action re-adding it."""
        M = self.max_frags
        B = states.shape[0]
        dev = states.device
        n, blk, par, psl, occ = (t.clone() for t in self._views(states))
        rows = torch.arange(B, device=dev)
        p, k, v = par[:, i], psl[:, i], blk[:, i].clamp(max=N_BLOCKS - 1)
        if i >= 1:
            occ[rows, p, k] = 0  # free the parent's slot
            action = self.encode_action(p, k, v)
        else:
            action = v  # re-place the root
        keep = torch.tensor([j for j in range(M) if j != i] + [i], device=dev)
        blk, par, psl, occ = blk[:, keep], par[:, keep], psl[:, keep], occ[:, keep]
        par = par - (par > i).long()
        # the freed last slot becomes an absent node
        blk[:, -1] = N_BLOCKS
        par[:, -1] = 0
        psl[:, -1] = 0
        occ[:, -1] = 0
        if i == 0:
            par[:, 0] = 0
            psl[:, 0] = 0
        n = (n - 1).clamp(min=0)
        return self._pack(n, blk, par, psl, occ), action

    def parents(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Parents by removed node ``([B, M, S], forward action [B, M], valid [B, M])``."""
        outs = [self._remove(states, i) for i in range(self.max_frags)]
        parents = torch.stack([o[0] for o in outs], 1)
        actions = torch.stack([o[1] for o in outs], 1)
        return parents, actions, self.backward_mask(states)

    def backward_action(self, next_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """A forward move adds the last node, n-1 (stop maps to any index)."""
        return (next_states[..., 0] - 1).clamp(min=0)

    def trajectory_states(self, actions: torch.Tensor) -> torch.Tensor:
        return replay_states(self, actions)

    # --------------------------------------------------------------- encodings
    def obs(self, states: torch.Tensor) -> torch.Tensor:
        """Block one-hot, parent one-hot, parent-slot one-hot and open flags per node."""
        _, blk, par, psl, _ = self._views(states)
        F = torch.nn.functional
        parts = [
            F.one_hot(blk, N_BLOCKS + 1).flatten(1),
            F.one_hot(par, self.max_frags).flatten(1),
            F.one_hot(psl, MAX_SLOTS).flatten(1),
            self.open_slots(states).flatten(1),
        ]
        return torch.cat(parts, 1).float()

    # ------------------------------------------- molecules and scores (envs/seh_chem.py)
    def build_mol(self, state: Sequence[int]) -> Any:
        """The sanitised RDKit molecule of one state row, or None (empty / unsanitisable)."""
        return self.chem.build_mol(state)

    def smiles(self, states: torch.Tensor) -> list[str | None]:
        """Canonical SMILES of each state's molecule (None: empty or invalid)."""
        return self.chem.smiles(states)

    def proxy(self) -> Any:
        """The pretrained sEH proxy (loaded on first use)."""
        return self.chem.proxy()

    def proxy_scores(self, states: torch.Tensor) -> torch.Tensor:
        """Raw proxy score of each state's molecule, float64 CPU ``[B]`` (NaN: invalid)."""
        return self.chem.proxy_scores(states)

    def flat_reward(self, states: torch.Tensor) -> torch.Tensor:
        """clip(proxy/8, 1e-4, 100) per state (no beta), float64 CPU; 0 for invalid states.
        A NaN score of a valid molecule counts as 0 before clipping (recursion)."""
        valid = torch.tensor([s is not None for s in self.smiles(states)], dtype=torch.bool)
        score = self.proxy_scores(states)
        flat = torch.nan_to_num(score / REWARD_NORM, nan=0.0).clamp(FLAT_MIN, FLAT_MAX)
        return torch.where(valid, flat, torch.zeros_like(flat))

    def is_valid(self, states: torch.Tensor) -> torch.Tensor:
        """Whether each state is a molecule RDKit can sanitise (the empty state is not)."""
        return torch.tensor([s is not None for s in self.smiles(states)], dtype=torch.bool)

    def log_reward(self, states: torch.Tensor) -> torch.Tensor:
        """beta * log(flat reward), float32 on the states' device; invalid_log_reward for
        invalid states (the empty state included)."""
        flat = self.flat_reward(states)
        lr = torch.where(
            flat > 0, self.beta * flat.clamp(min=FLAT_MIN).log(), torch.full_like(flat, self.invalid_log_reward)
        )
        return lr.float().to(states.device)

    def mode_index(self, states: torch.Tensor) -> torch.Tensor:
        return torch.full(states.shape[:-1], -1, dtype=torch.long, device=states.device)

    def modes_hit(self, states: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*states.shape[:-1], 0, dtype=torch.bool, device=states.device)

    def similarity(self, states_a: torch.Tensor, states_b: torch.Tensor) -> np.ndarray:
        """Tanimoto similarity ``[A, B]`` of the molecules' fingerprints (0 where a state is invalid)."""
        return self.chem.similarity(states_a, states_b)

    def pairwise_distance(self, states: torch.Tensor) -> np.ndarray:
        """1 - Tanimoto similarity ``[n, n]`` (the core's top-100 diversity)."""
        return 1.0 - self.similarity(states, states)

    # ------------------------------------------------------------------ assets
    def info(self) -> dict:
        return {
            "env": self.name,
            "kwargs": self.kwargs(),
            "enumerable": False,
            "n_modes": 0,
            "n_blocks": N_BLOCKS,
            "n_fragments": len(set(self.block_smiles)),
            "max_slots": MAX_SLOTS,
            "n_actions": self.n_actions,
            "obs_dim": self.obs_dim,
            "blocks": BLOCKS_FILE,
        }

    def write_assets(self, out_dir: str | Path) -> dict:
        """Write ``info.json`` (no exact target: not enumerable)."""
        return write_env_assets(out_dir, self.info(), None)

    def check_steps(self, n: int = 32, seed: int = 0) -> None:
        """Roll uniform random episodes; raise if the dynamics or the reward are inconsistent."""
        g = torch.Generator().manual_seed(seed)
        s = self.initial(n)
        alive = torch.ones(n, dtype=torch.bool)
        actions = torch.full((n, self.max_traj_len), -1, dtype=torch.long)
        for t in range(self.max_traj_len):
            if not bool(alive.any()):
                break
            idx = alive.nonzero().squeeze(1)
            mask = self.forward_mask(s[idx])
            a = torch.multinomial(mask.float(), 1, generator=g).squeeze(1)
            nxt, done = self.step(s[idx], a)
            actions[idx, t] = a
            s[idx] = nxt
            alive[idx] = ~done
        if bool(alive.any()):
            raise RuntimeError("seh: episodes did not end within max_traj_len")
        if not torch.equal(self.trajectory_states(actions)[:, -1], s):
            raise RuntimeError("seh: trajectory_states disagrees with step")
        if not bool(torch.isfinite(self.log_reward(s)).all()):
            raise RuntimeError("seh: non-finite log-reward")
