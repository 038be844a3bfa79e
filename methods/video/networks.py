"""Pieces VPDD's two denoising networks share (methods/video/predictor.py, action_model.py): the
diffusion-time and prompt embeddings, the multiplicative conditioning and the attention kernel.

Both networks condition multiplicatively, as the official code does: with x the stacked token
embeddings, p the prompt embedding and t the time embedding (both one vector per sample),
``LayerNorm(t * (p * x) + pos)``; the time and prompt tokens are themselves rows of x.

Token ids are local per modality: video ids 0..Vv-1 with Vv = [MASK]; action ids 0..Va-1 with
Va = [MASK]. Every size is a constructor argument; the config defaults are the paper's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------- shared pieces


class SinusoidalTimeEmbedding(nn.Module):
    """Diffusion step -> [sin(t w_i), cos(t w_i)], w_i = 10000^(-i/(dim/2-1))."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"time-embedding dim must be even and >= 4 (got {dim})")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


def time_mlp(width: int) -> nn.Sequential:
    return nn.Sequential(
        SinusoidalTimeEmbedding(width), nn.Linear(width, 4 * width), nn.Mish(), nn.Linear(4 * width, width)
    )


def prompt_mlp(prompt_dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(prompt_dim), nn.Linear(prompt_dim, width), nn.Mish(), nn.Linear(width, width))


def multiplicative_condition(
    tokens: torch.Tensor, t_emb: torch.Tensor, p_emb: torch.Tensor, pos: torch.Tensor
) -> torch.Tensor:
    """t * (p * tokens) + pos[:L]. tokens [B, L, W]; t_emb, p_emb [B, W]; pos [1, >=L, W]."""
    length = tokens.shape[1]
    if length > pos.shape[1]:
        raise ValueError(f"sequence of {length} tokens exceeds the positional embedding ({pos.shape[1]})")
    return t_emb[:, None, :] * (p_emb[:, None, :] * tokens) + pos[:, :length, :]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, p: float, causal: bool) -> torch.Tensor:
    """Multi-head scaled dot-product attention on [B, L, heads*hd] tensors; weights dropped with p."""
    b, lq, inner = q.shape
    hd = inner // heads
    q, k, v = (x.reshape(b, x.shape[1], heads, hd).transpose(1, 2) for x in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)
    return out.transpose(1, 2).reshape(b, lq, inner)
