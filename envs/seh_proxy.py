"""The pretrained sEH-binding proxy of Bengio et al. (2021), re-implemented in plain torch.

The proxy is the atom-graph message-passing network "MPNNet_v2" of GFNOrg/gflownet
(``mols/model_atom.py``; the same network is loaded by zarifikram/EGFN and by
recursionpharma/gflownet ``models/bengio2021flow.py``, which QGFN uses), with the weights of
``seh/best_params.pkl.gz`` (22 float32 arrays, read with the restricted unpickler of
:mod:`envs.data`). Architecture (``info.pkl.gz``: ``repr_type=atom_graph``, ``model_version=v2``,
``nemb=64``, ``num_conv_steps=12``):

* ``x0 = LeakyReLU(lin0(x))`` with 71 input features per atom (see :func:`atom_features`);
* 12 steps of an edge-conditioned convolution (NNConv, mean aggregation over incoming
  edges, plus a root weight and a bias; the edge network maps the 4 bond-type features
  through 4 -> 128 -> LeakyReLU -> 64*64 to a per-edge 64x64 matrix), LeakyReLU, then one
  GRU step whose hidden state is the node state;
* Set2Set readout (3 processing steps, an LSTM of input 128 and hidden 64);
* ``lin3``: 128 -> 1, the scalar proxy score (mostly 0..9 on fragment molecules).

LeakyReLU has the default slope 0.01. torch_geometric is not used: the convolution and
Set2Set are written with ``index_add_`` / ``scatter_reduce``. Because the bond features are
one-hot (4 bond types) or all-zero (the self-loop of a molecule without bonds), the edge
network is evaluated once per distinct bond type, not once per edge (the same numbers, far
less memory and time).

**Root-weight layout.** The weights were trained with torch_geometric 1.x, whose NNConv
stored its root weight as ``[in, out]`` and applied ``x @ root``. EGFN and recursion/QGFN
load the same array into torch_geometric 2's ``conv.lin.weight`` (``[out, in]``, applied as
``x @ W.T``), i.e. they apply the *transpose* of the trained root weight. The benchmark the
QGFN and EGFN papers report is therefore the transposed one; ``root_layout="linear"``
(default) reproduces it, ``root_layout="original"`` gives the network as trained in 2021.

**Stem flag.** Feature 70 marks "stem" atoms (open attachment points). GFNOrg/EGFN set it
from the block molecule's open stems; recursion/QGFN's ``mol2graph`` always leaves it 0.
:func:`atom_graph` follows recursion/QGFN (all zeros) unless ``stem_atoms`` are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from envs import data

PARAMS_FILE = "seh/best_params.pkl.gz"
N_ATOM_FEATURES = 71
N_ATOMIC_NUMBERS = 56  # one-hot of atomic numbers 1..56 (H..Ba)
N_BOND_TYPES = 4  # single, double, triple, aromatic
SELF_LOOP_TYPE = N_BOND_TYPES  # the all-zero edge feature of a bond-less molecule's self-loop
DIM = 64
N_CONV_STEPS = 12
N_SET2SET_STEPS = 3
ROOT_LAYOUTS = ("linear", "original")

# feature columns of one atom (14 + 56 + 1 = 71)
_ELEMENT_COLUMN = {"H": 0, "C": 1, "N": 2, "O": 3, "F": 4}
_OTHER_ELEMENT_COLUMN = 5  # any element outside H, C, N, O, F
# columns 6 (scaled atomic number), 7 (acceptor) and 8 (donor) stay 0 in this configuration
_AROMATIC_COLUMN = 9
_SP_COLUMN, _SP2_COLUMN, _SP3_COLUMN = 10, 11, 12
_NUM_HS_COLUMN = 13
_ATOMIC_NUMBER_OFFSET = 13  # column 14 + Z - 1 holds the one-hot of atomic number Z
_STEM_COLUMN = 70


@dataclass
class AtomGraph:
    """A batch of molecules as one disjoint atom graph.

    ``x`` [N, 71] atom features, ``src``/``dst`` [E] directed edges (each bond both ways),
    ``edge_type`` [E] in 0..3 (bond type) or 4 (self-loop with an all-zero feature),
    ``batch`` [N] molecule index of every atom, ``n_graphs`` molecules."""

    x: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    edge_type: torch.Tensor
    batch: torch.Tensor
    n_graphs: int

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "AtomGraph":
        return AtomGraph(
            self.x.to(device, dtype),
            self.src.to(device),
            self.dst.to(device),
            self.edge_type.to(device),
            self.batch.to(device),
            self.n_graphs,
        )


def atom_features(mol: "object", stem_atoms: Sequence[int] = ()) -> np.ndarray:
    """The 71 proxy input features of every atom of an RDKit molecule, ``[n_atoms, 71]``.

    Columns: 0-4 element one-hot over H, C, N, O, F and 5 for any other element; 9 aromatic;
    10/11/12 hybridisation SP/SP2/SP3; 13 total number of hydrogens (implicit + explicit +
    neighbouring H atoms); 14..69 one-hot of the atomic number 1..56; 70 stem flag.
    Columns 6-8 (scaled atomic number, acceptor, donor) are unused by this proxy and stay 0.
    """
    from rdkit.Chem.rdchem import HybridizationType

    feats = np.zeros((mol.GetNumAtoms(), N_ATOM_FEATURES), dtype=np.float32)
    for i, atom in enumerate(mol.GetAtoms()):
        z = atom.GetAtomicNum()
        if not 1 <= z <= N_ATOMIC_NUMBERS:
            raise ValueError(f"sEH proxy: atomic number {z} outside 1..{N_ATOMIC_NUMBERS}")
        feats[i, _ELEMENT_COLUMN.get(atom.GetSymbol(), _OTHER_ELEMENT_COLUMN)] = 1.0
        feats[i, _ATOMIC_NUMBER_OFFSET + z] = 1.0
        feats[i, _AROMATIC_COLUMN] = float(atom.GetIsAromatic())
        hyb = atom.GetHybridization()
        feats[i, _SP_COLUMN] = float(hyb == HybridizationType.SP)
        feats[i, _SP2_COLUMN] = float(hyb == HybridizationType.SP2)
        feats[i, _SP3_COLUMN] = float(hyb == HybridizationType.SP3)
        feats[i, _NUM_HS_COLUMN] = float(atom.GetTotalNumHs(includeNeighbors=True))
    for a in stem_atoms:
        feats[a, _STEM_COLUMN] = 1.0
    return feats


def _bond_type_index(bond: "object") -> int:
    from rdkit.Chem.rdchem import BondType

    # recursion's featuriser maps an unspecified bond to "single"; other kinds are rejected
    table = {BondType.SINGLE: 0, BondType.DOUBLE: 1, BondType.TRIPLE: 2, BondType.AROMATIC: 3, BondType.UNSPECIFIED: 0}
    kind = bond.GetBondType()
    if kind not in table:
        raise ValueError(f"sEH proxy: unsupported bond type {kind}")
    return table[kind]


def atom_graph(mols: Sequence["object"], stem_atoms: Sequence[Sequence[int]] | None = None) -> AtomGraph:
    """Batch RDKit molecules into one :class:`AtomGraph` (float32, CPU).

    Each bond becomes two directed edges; a molecule without bonds gets one self-loop on its
    first atom with an all-zero bond feature (as recursion's ``mol2graph`` does)."""
    xs, srcs, dsts, types, batch = [], [], [], [], []
    offset = 0
    for g, mol in enumerate(mols):
        stems = stem_atoms[g] if stem_atoms is not None else ()
        x = atom_features(mol, stems)
        n = x.shape[0]
        if n == 0:
            raise ValueError("sEH proxy: empty molecule")
        bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), _bond_type_index(b)) for b in mol.GetBonds()]
        if bonds:
            # both directions, sorted by (source, target) like torch_sparse.coalesce
            edges = sorted([(u, v, t) for u, v, t in bonds] + [(v, u, t) for u, v, t in bonds])
            e = np.asarray(edges, dtype=np.int64)
        else:
            e = np.asarray([[0, 0, SELF_LOOP_TYPE]], dtype=np.int64)
        xs.append(x)
        srcs.append(e[:, 0] + offset)
        dsts.append(e[:, 1] + offset)
        types.append(e[:, 2])
        batch.append(np.full(n, g, dtype=np.int64))
        offset += n
    return AtomGraph(
        x=torch.from_numpy(np.concatenate(xs)),
        src=torch.from_numpy(np.concatenate(srcs)),
        dst=torch.from_numpy(np.concatenate(dsts)),
        edge_type=torch.from_numpy(np.concatenate(types)),
        batch=torch.from_numpy(np.concatenate(batch)),
        n_graphs=len(mols),
    )


def _segment_softmax(scores: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax of ``scores`` [N] within each segment (as torch_geometric.utils.softmax)."""
    seg_max = scores.new_full((n_segments,), -torch.inf).scatter_reduce(
        0, segment, scores, reduce="amax", include_self=True
    )
    e = (scores - seg_max[segment]).exp()
    denom = e.new_zeros(n_segments).index_add_(0, segment, e)
    return e / (denom[segment] + 1e-16)


class SEHProxy(nn.Module):
    """MPNNet_v2 (atom graph, v2): features 71 -> 64, 12 NNConv+GRU steps, Set2Set, linear."""

    def __init__(self, root_layout: str = "linear"):
        super().__init__()
        if root_layout not in ROOT_LAYOUTS:
            raise ValueError(f"sEH proxy: root_layout must be one of {ROOT_LAYOUTS} (got {root_layout!r})")
        self.root_layout = root_layout
        self.act = nn.LeakyReLU()
        self.lin0 = nn.Linear(N_ATOM_FEATURES, DIM)
        self.conv_root = nn.Parameter(torch.zeros(DIM, DIM))
        self.conv_bias = nn.Parameter(torch.zeros(DIM))
        self.edge_net = nn.Sequential(nn.Linear(N_BOND_TYPES, 128), nn.LeakyReLU(), nn.Linear(128, DIM * DIM))
        self.gru = nn.GRUCell(DIM, DIM)
        self.set2set_lstm = nn.LSTMCell(2 * DIM, DIM)
        self.lin3 = nn.Linear(2 * DIM, 1)

    # order of the 22 arrays in best_params.pkl.gz (the parameter order of the original
    # module); None = a head the scalar output does not use
    _PARAM_ORDER: tuple[str | None, ...] = (
        "lin0.weight",
        "lin0.bias",
        "conv_root",
        "conv_bias",  # NNConv root [in, out] and bias
        "edge_net.0.weight",
        "edge_net.0.bias",
        "edge_net.2.weight",
        "edge_net.2.bias",
        "gru.weight_ih",
        "gru.weight_hh",
        "gru.bias_ih",
        "gru.bias_hh",
        # lin1 (64 -> 512) and lin2 (512 -> 105): the per-stem block-policy head of the
        # original model (do_stems=True); the proxy score never uses them
        None,
        None,
        None,
        None,
        "set2set_lstm.weight_ih",
        "set2set_lstm.weight_hh",
        "set2set_lstm.bias_ih",
        "set2set_lstm.bias_hh",
        "lin3.weight",
        "lin3.bias",
    )
    _EXPECTED_SHAPES = (
        (64, 71),
        (64,),
        (64, 64),
        (64,),
        (128, 4),
        (128,),
        (4096, 128),
        (4096,),
        (192, 64),
        (192, 64),
        (192,),
        (192,),
        (512, 64),
        (512,),
        (105, 512),
        (105,),
        (256, 128),
        (256, 64),
        (256,),
        (256,),
        (1, 128),
        (1,),
    )

    def load_arrays(self, arrays: Sequence[np.ndarray]) -> None:
        """Copy the 22 arrays of ``best_params.pkl.gz`` into the parameters (checked by shape)."""
        if len(arrays) != len(self._PARAM_ORDER):
            raise ValueError(f"sEH proxy: expected {len(self._PARAM_ORDER)} arrays, got {len(arrays)}")
        params = dict(self.named_parameters())
        for i, (name, arr, shape) in enumerate(zip(self._PARAM_ORDER, arrays, self._EXPECTED_SHAPES)):
            if tuple(np.shape(arr)) != shape:
                raise ValueError(f"sEH proxy: array {i} has shape {np.shape(arr)}, expected {shape}")
            if name is not None:
                params[name].data.copy_(torch.as_tensor(np.asarray(arr, dtype=np.float32)))

    @classmethod
    def pretrained(
        cls, root_layout: str = "linear", dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> "SEHProxy":
        """The proxy with the published weights, in eval mode, gradients off."""
        model = cls(root_layout)
        model.load_arrays(data.load(PARAMS_FILE))
        model = model.to(device=device, dtype=dtype).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def _root_term(self, h: torch.Tensor) -> torch.Tensor:
        # see the module docstring: the papers' benchmark applies the transposed root weight
        return h @ self.conv_root.T if self.root_layout == "linear" else h @ self.conv_root

    def forward(self, g: AtomGraph) -> torch.Tensor:
        """Proxy score of every molecule of the batch, ``[n_graphs]``."""
        dtype = self.lin0.weight.dtype
        x = g.x.to(dtype)
        n_nodes = x.shape[0]
        # per-bond-type edge matrices [5, 64, 64] (the self-loop type sees an all-zero feature)
        edge_feats = torch.cat(
            [
                torch.eye(N_BOND_TYPES, dtype=dtype, device=x.device),
                torch.zeros(1, N_BOND_TYPES, dtype=dtype, device=x.device),
            ]
        )
        w = self.edge_net(edge_feats).view(N_BOND_TYPES + 1, DIM, DIM)
        w_cat = w.permute(1, 0, 2).reshape(DIM, (N_BOND_TYPES + 1) * DIM)
        in_degree = torch.zeros(n_nodes, dtype=dtype, device=x.device).index_add_(
            0, g.dst, torch.ones_like(g.dst, dtype=dtype)
        )
        inv_degree = (1.0 / in_degree.clamp(min=1.0))[:, None]

        h = self.act(self.lin0(x))
        for _ in range(N_CONV_STEPS):
            per_type = (h @ w_cat).view(n_nodes, N_BOND_TYPES + 1, DIM)  # h_j @ W_t for every t
            messages = per_type[g.src, g.edge_type]  # [E, 64]
            agg = torch.zeros_like(h).index_add_(0, g.dst, messages) * inv_degree
            m = self.act(agg + self._root_term(h) + self.conv_bias)
            h = self.gru(m, h)

        # Set2Set
        B = g.n_graphs
        q_star = h.new_zeros(B, 2 * DIM)
        hx, cx = h.new_zeros(B, DIM), h.new_zeros(B, DIM)
        for _ in range(N_SET2SET_STEPS):
            hx, cx = self.set2set_lstm(q_star, (hx, cx))
            scores = (h * hx[g.batch]).sum(-1)
            attn = _segment_softmax(scores, g.batch, B)
            readout = torch.zeros(B, DIM, dtype=h.dtype, device=h.device).index_add_(0, g.batch, attn[:, None] * h)
            q_star = torch.cat([hx, readout], -1)
        return self.lin3(q_star).squeeze(-1)

    @torch.no_grad()
    def predict_mols(self, mols: Sequence["object"], batch_size: int = 512) -> torch.Tensor:
        """Proxy scores of sanitised RDKit molecules, float64 CPU tensor ``[len(mols)]``."""
        device = self.lin0.weight.device
        dtype = self.lin0.weight.dtype
        out = []
        for i in range(0, len(mols), batch_size):
            g = atom_graph(mols[i : i + batch_size]).to(device, dtype)
            out.append(self(g).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def predict_smiles(self, smiles: Sequence[str], batch_size: int = 512) -> torch.Tensor:
        """Proxy scores of SMILES strings; NaN where RDKit cannot parse one."""
        from rdkit import Chem

        mols = [Chem.MolFromSmiles(s) for s in smiles]
        ok = [i for i, m in enumerate(mols) if m is not None and m.GetNumAtoms() > 0]
        out = torch.full((len(smiles),), float("nan"), dtype=torch.float64)
        if ok:
            out[ok] = self.predict_mols([mols[i] for i in ok], batch_size)
        return out
