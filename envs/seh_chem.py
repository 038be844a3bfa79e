"""The chemistry of the sEH fragment environment (envs/seh.py holds the MDP): the 105 blocks,
the RDKit molecule of a fragment tree, its canonical SMILES, the pretrained proxy's score and
the fingerprints behind similarity — each cached, since a GFlowNet batch repeats molecules.

``FragmentChemistry`` reads a state row through the tree columns the MDP gives it (block ids,
parent nodes, parent slots; the occupancy flags that follow from them are not part of a
molecule's key). How the fragments bond, the hydrogens and the sanitisation are described in
envs/seh.py's docstring.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import torch

from envs import data

BLOCKS_FILE = "seh/blocks_PDB_105.json"
N_BLOCKS = 105
MAX_SLOTS = 6  # the most attachment positions of any block in the 105
FINGERPRINTS = ("rdkit", "morgan")


@lru_cache(maxsize=1)
def blocks() -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...], tuple[str, ...]]:
    """(SMILES, attachment atoms, names) of the 105 blocks, by block id."""
    with open(data.fetch(BLOCKS_FILE)) as f:
        d = json.load(f)
    ids = [str(i) for i in range(N_BLOCKS)]
    smi = tuple(d["block_smi"][i] for i in ids)
    r = tuple(tuple(int(a) for a in d["block_r"][i]) for i in ids)
    names = tuple(d["block_name"][i] for i in ids)
    if max(len(x) for x in r) > MAX_SLOTS or min(len(x) for x in r) < 1:
        raise ValueError(f"{BLOCKS_FILE}: a block has no or more than {MAX_SLOTS} attachment atoms")
    return smi, r, names


class LRU(OrderedDict):
    """A least-recently-used map of at most ``size`` entries."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def lookup(self, key: Any, default: Any = KeyError) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def store(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class FragmentChemistry:
    """Molecules, SMILES, proxy scores and fingerprints of fragment-tree state rows."""

    def __init__(
        self,
        block_smiles: Sequence[str],
        block_r: Sequence[Sequence[int]],
        tree_columns: tuple[int, int, int, int],
        root_layout: str = "linear",
        fingerprint: str = "rdkit",
        cache_size: int = 500_000,
        proxy_batch: int = 512,
    ):
        self.block_smiles, self.block_r = tuple(block_smiles), tuple(tuple(r) for r in block_r)
        # first column of the block ids, the parents, the parent slots and the occupancy flags
        self.c_block, self.c_parent, self.c_pslot, self.c_occ = tree_columns
        self.root_layout = root_layout
        self.fingerprint = fingerprint
        self.proxy_batch = int(proxy_batch)
        self._proxy = None
        self._block_mols: list[Any] | None = None
        self._smiles_of_key = LRU(cache_size)  # tree key -> canonical SMILES or None
        self._proxy_of_smiles = LRU(cache_size)  # canonical SMILES -> proxy score

    # ---------------------------------------------------------------- molecules
    def _mols(self) -> list[Any]:
        if self._block_mols is None:
            from rdkit import Chem

            self._block_mols = [Chem.MolFromSmiles(s) for s in self.block_smiles]
        return self._block_mols

    def build_mol(self, state: Sequence[int]) -> Any:
        """The sanitised RDKit molecule of one state row, or None (empty / unsanitisable)."""
        from rdkit import Chem

        row = [int(x) for x in state]
        n = row[0]
        if n == 0:
            return None
        blk = row[self.c_block : self.c_block + n]
        par = row[self.c_parent : self.c_parent + n]
        psl = row[self.c_pslot : self.c_pslot + n]
        frags = self._mols()
        mol = frags[blk[0]]
        offsets = [0]
        for j in range(1, n):
            offsets.append(offsets[-1] + frags[blk[j - 1]].GetNumAtoms())
            mol = Chem.CombineMols(mol, frags[blk[j]])
        em = Chem.RWMol(mol)
        ends = []
        for j in range(1, n):
            u = offsets[par[j]] + self.block_r[blk[par[j]]][psl[j]]
            w = offsets[j] + self.block_r[blk[j]][0]
            if u == w or em.GetBondBetweenAtoms(u, w) is not None:
                return None
            em.AddBond(u, w, Chem.BondType.SINGLE)
            ends += [u, w]
        for a in ends:
            atom = em.GetAtomWithIdx(a)
            if atom.GetNumExplicitHs() > 0:
                atom.SetNumExplicitHs(atom.GetNumExplicitHs() - 1)
        mol = em.GetMol()
        try:
            Chem.SanitizeMol(mol)
        except Exception:  # RDKit raises several types (valence, kekulisation)
            return None
        return mol

    def _key(self, row: Sequence[int]) -> tuple[int, ...]:
        return tuple(row[: self.c_occ])  # occupancy follows from the tree

    def _smiles_and_mols(self, states: torch.Tensor) -> tuple[list[str | None], dict[str, Any]]:
        from rdkit import Chem

        out: list[str | None] = []
        new_mols: dict[str, Any] = {}
        for row in states.tolist():
            key = self._key(row)
            smi = self._smiles_of_key.lookup(key, default=KeyError)
            if smi is KeyError or (smi is not None and smi not in self._proxy_of_smiles and smi not in new_mols):
                mol = self.build_mol(row)
                smi = Chem.MolToSmiles(mol) if mol is not None else None
                self._smiles_of_key.store(key, smi)
                if smi is not None and smi not in self._proxy_of_smiles:
                    new_mols[smi] = mol
            out.append(smi)
        return out, new_mols

    def smiles(self, states: torch.Tensor) -> list[str | None]:
        """Canonical SMILES of each state's molecule (None: empty or invalid)."""
        return self._smiles_and_mols(states.cpu())[0]

    # ---------------------------------------------------------------- the proxy
    def proxy(self) -> Any:
        """The pretrained sEH proxy (loaded on first use)."""
        if self._proxy is None:
            from envs.seh_proxy import SEHProxy

            self._proxy = SEHProxy.pretrained(self.root_layout)
        return self._proxy

    def proxy_scores(self, states: torch.Tensor) -> torch.Tensor:
        """Raw proxy score of each state's molecule, float64 CPU ``[B]`` (NaN: invalid)."""
        smis, new_mols = self._smiles_and_mols(states.cpu())
        if new_mols:
            keys = list(new_mols)
            scores = self.proxy().predict_mols([new_mols[s] for s in keys], self.proxy_batch)
            for s, v in zip(keys, scores.tolist()):
                self._proxy_of_smiles.store(s, v)
        out = [self._proxy_of_smiles.lookup(s, default=float("nan")) if s is not None else float("nan") for s in smis]
        # a molecule evicted between the two passes (tiny caches) is scored again
        missing = [j for j, s in enumerate(smis) if s is not None and out[j] != out[j] and s not in new_mols]
        for j in missing:
            mol = self.build_mol(states[j].tolist())
            out[j] = float(self.proxy().predict_mols([mol])[0])
        return torch.tensor(out, dtype=torch.float64)

    # --------------------------------------------------------------- diversity
    def fingerprints(self, states: torch.Tensor) -> list[Any]:
        from rdkit import Chem

        fps = []
        for smi in self.smiles(states):
            mol = Chem.MolFromSmiles(smi) if smi is not None else None
            if mol is None:
                fps.append(None)
            elif self.fingerprint == "rdkit":
                fps.append(Chem.RDKFingerprint(mol))
            else:
                from rdkit.Chem import rdFingerprintGenerator

                gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
                fps.append(gen.GetFingerprint(mol))
        return fps

    def similarity(self, states_a: torch.Tensor, states_b: torch.Tensor) -> np.ndarray:
        """Tanimoto similarity ``[A, B]`` of the molecules' fingerprints (0 where a state is
        invalid)."""
        from rdkit import DataStructs

        fa, fb = self.fingerprints(states_a), self.fingerprints(states_b)
        out = np.zeros((len(fa), len(fb)), dtype=np.float64)
        ok_b = [j for j, f in enumerate(fb) if f is not None]
        if not ok_b:
            return out
        fb_ok = [fb[j] for j in ok_b]
        for i, f in enumerate(fa):
            if f is not None:
                out[i, ok_b] = DataStructs.BulkTanimotoSimilarity(f, fb_ok)
        return out
