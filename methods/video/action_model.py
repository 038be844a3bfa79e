"""VPDD's action model p_theta2, fine-tuned on demonstrations with the video model frozen.

``ActionModel`` is a causal GPT-2 over [time, prompt, video features, noisy action tokens]. Action
tokens come last, so each sees all conditioning but only earlier action tokens. Each action
dimension (x, y, z, gripper at paper size) has its own 2-layer head, read at the action token's
OWN position (as the official ``MetaFinetuneModel_v1`` does): position j's logits depend on
action tokens 0..j, never on later ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from methods.video.networks import attend, multiplicative_condition, prompt_mlp, time_mlp


@dataclass(frozen=True)
class ActionModelConfig:
    """Action model p_theta2 (causal GPT-2). Defaults: the official ``MetaFinetuneModel_v1``."""

    n_action_codes: int = 256  # Va bins per action dimension; id Va is [MASK]
    action_dim: int = 4  # d: x, y, z, gripper -- one head each
    horizon: int = 4  # H future steps; H*d action tokens
    video_feature_dim: int = 256  # width of the predictor's features
    n_video_tokens: int = 576  # Nv (positional-embedding capacity; official 24x24)
    prompt_dim: int = 1024
    width: int = 256
    layers: int = 6
    heads: int = 2
    inner: int = 1024
    dropout: float = 0.1  # GPT-2 embd/attn/resid dropout

    @property
    def n_action_tokens(self) -> int:
        return self.horizon * self.action_dim

    @property
    def n_positions(self) -> int:
        return 2 + self.n_video_tokens + self.n_action_tokens


# ----------------------------------------------------------------------------- GPT-2 action model


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        p = self.dropout if self.training else 0.0
        return self.resid_drop(self.proj(attend(q, k, v, self.heads, p, causal=True)))


class GPT2Block(nn.Module):
    """Pre-norm: x + attn(ln1 x); x + mlp(ln2 x), mlp = Linear -> Mish -> Linear -> Dropout."""

    def __init__(self, width: int, heads: int, inner: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, inner), nn.Mish(), nn.Linear(inner, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class ActionModel(nn.Module):
    """p_theta2: (predictor features, noisy action tokens, t, prompt) -> logits [B, Va, H*d].

    Action token k = h*d + j (horizon step h, dimension j); head j reads the hidden state at the
    token's own position, so logits at position k see action tokens 0..k only."""

    def __init__(self, cfg: ActionModelConfig = ActionModelConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.time_embed = time_mlp(w)
        self.prompt_embed = prompt_mlp(cfg.prompt_dim, w)
        self.video_proj = nn.Linear(cfg.video_feature_dim, w)
        # the action token id enters as a raw (unscaled) scalar, the [MASK] id Va included
        self.action_embed = nn.Sequential(nn.Linear(1, w), nn.Mish(), nn.Linear(w, w), nn.Mish(), nn.Linear(w, w))
        self.pos_embedding = nn.Parameter(torch.zeros(1, cfg.n_positions, w))
        self.embed_ln = nn.LayerNorm(w)
        self.embed_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(GPT2Block(w, cfg.heads, cfg.inner, cfg.dropout) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(w)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(w, w), nn.Mish(), nn.Linear(w, cfg.n_action_codes)) for _ in range(cfg.action_dim)
        )
        for m in self.blocks.modules():  # GPT-2's own init inside the transformer
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def embed_inputs(
        self, video_features: torch.Tensor, noisy_actions: torch.Tensor, t: torch.Tensor, prompt: torch.Tensor
    ) -> torch.Tensor:
        """The conditioned, layer-normed sequence [B, 2 + Nv + H*d, width] (before dropout)."""
        cfg = self.cfg
        if noisy_actions.shape[1] != cfg.n_action_tokens:
            raise ValueError(f"expected {cfg.n_action_tokens} action tokens (got {noisy_actions.shape[1]})")
        if noisy_actions.numel() and (noisy_actions.min() < 0 or noisy_actions.max() > cfg.n_action_codes):
            raise ValueError(f"action ids must lie in [0, {cfg.n_action_codes}] ({cfg.n_action_codes} = [MASK])")
        t_emb = self.time_embed(t)
        p_emb = self.prompt_embed(prompt)
        video = self.video_proj(video_features)
        acts = self.action_embed(noisy_actions.to(video.dtype).unsqueeze(-1))
        tokens = torch.cat([t_emb[:, None], p_emb[:, None], video, acts], dim=1)
        return self.embed_ln(multiplicative_condition(tokens, t_emb, p_emb, self.pos_embedding))

    def forward(
        self, video_features: torch.Tensor, noisy_actions: torch.Tensor, t: torch.Tensor, prompt: torch.Tensor
    ) -> torch.Tensor:
        """video_features [B, Nv, width_v]; noisy_actions [B, H*d] long (Va = [MASK]); t [B] long;
        prompt [B, P]."""
        cfg = self.cfg
        x = self.embed_drop(self.embed_inputs(video_features, noisy_actions, t, prompt))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        b = x.shape[0]
        acts = x[:, -cfg.n_action_tokens :, :].reshape(b, cfg.horizon, cfg.action_dim, cfg.width)
        logits = torch.stack([head(acts[:, :, j]) for j, head in enumerate(self.heads)], dim=2)
        return logits.reshape(b, cfg.n_action_tokens, cfg.n_action_codes).transpose(1, 2)
