"""Networks of k seeds stacked into one module: the first piece of seed batching (issue 26).

k independent MLPs of the same shape are held as weights ``[k, in, out]`` and run with one
batched matmul per layer on inputs ``[k, B, in]``, so k seeds' updates cost one kernel launch
per layer instead of k. Each slice is exactly one seed's network: built from (and written back
to) ordinary ``nn.Sequential`` MLPs of ``methods/common/nets.py``, so a seed-batched run's
parameters are the ones its single-seed run would hold, up to the float rounding of the
batched matmul. Adam is element-wise, so one Adam over the stacked tensors steps every seed as
its own Adam would.

Linear/ReLU MLPs with optional LayerNorm in hidden blocks (``nets.mlp``'s Linear -> [LayerNorm]
-> ReLU; NE's TD3 critic normalises its last hidden layer). Dropout and masked layers are not
stacked: the variants with those keep their single-seed path.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class StackedMLP(nn.Module):
    """``k`` Linear-ReLU-...-Linear MLPs; ``forward(x [k, B, in]) -> [k, B, out]``."""

    def __init__(self, mlps: list[nn.Sequential]):
        super().__init__()
        linears = [[m for m in seq if isinstance(m, nn.Linear)] for seq in mlps]
        shapes = {tuple(type(m).__name__ for m in seq) for seq in mlps}
        for seq, lins in zip(mlps, linears):
            kinds = {type(m) for m in seq}
            n_norms = sum(isinstance(m, nn.LayerNorm) for m in seq)
            if not kinds <= {nn.Linear, nn.ReLU, nn.LayerNorm} or len(seq) != 2 * len(lins) - 1 + n_norms:
                raise ValueError(
                    f"StackedMLP takes Linear-[LayerNorm]-ReLU MLPs only (got {[type(m).__name__ for m in seq]})"
                )
        if len(shapes) != 1:
            raise ValueError(f"StackedMLP stacks MLPs of one shape (got {sorted(shapes)})")
        # LayerNorms by the index of the Linear they follow
        norms = [self._norms_of(seq) for seq in mlps]
        self.norm_eps = {i: ln.eps for i, ln in norms[0].items()}
        self.norms = nn.ParameterDict()
        for i in norms[0]:
            self.norms[f"weight{i}"] = nn.Parameter(torch.stack([n[i].weight.detach()[None] for n in norms]))
            self.norms[f"bias{i}"] = nn.Parameter(torch.stack([n[i].bias.detach()[None] for n in norms]))
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([lins[i].weight.detach().t() for lins in linears]).contiguous())
            for i in range(len(linears[0]))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([lins[i].bias.detach()[None] for lins in linears]).contiguous())
            for i in range(len(linears[0]))
        )

    @staticmethod
    def _norms_of(seq: nn.Sequential) -> dict[int, nn.LayerNorm]:
        out, n_linear = {}, 0
        for m in seq:
            if isinstance(m, nn.Linear):
                n_linear += 1
            elif isinstance(m, nn.LayerNorm):
                out[n_linear - 1] = m
        return out

    @property
    def k(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """``rows`` runs a subset of the stacked MLPs (a view: their gradients flow back)."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if rows is not None:
                w, b = w[rows], b[rows]
            x = torch.baddbmm(b, x, w)
            if i in self.norm_eps:
                gain, shift = self.norms[f"weight{i}"], self.norms[f"bias{i}"]
                if rows is not None:
                    gain, shift = gain[rows], shift[rows]
                x = torch.addcmul(shift, F.layer_norm(x, x.shape[-1:], eps=self.norm_eps[i]), gain)
            if i < last:
                x = torch.relu(x)
        return x

    @torch.no_grad()
    def write_back(self, mlps: list[nn.Sequential]) -> None:
        """Copy every seed's slice into its ordinary MLP (the run contract saves those)."""
        for s, seq in enumerate(mlps):
            for lin, w, b in zip((m for m in seq if isinstance(m, nn.Linear)), self.weights, self.biases):
                lin.weight.copy_(w[s].t())
                lin.bias.copy_(b[s, 0])
            for i, ln in self._norms_of(seq).items():
                ln.weight.copy_(self.norms[f"weight{i}"][s, 0])
                ln.bias.copy_(self.norms[f"bias{i}"][s, 0])
