"""VPDD's video model p_theta1 (Learning an Actionable Discrete Diffusion Policy via Large-Scale
Actionless Video Pre-Training, NeurIPS 2024), pre-trained on actionless clips.

``VideoPredictor`` is a Perceiver-IO: it reads [time, prompt, history tokens, noisy future
tokens], squeezes them through a fixed set of learned latents, decodes back to every input
position and predicts the clean video code at each future position. Besides the logits it returns
the decoder features at the future positions -- the "imagined future" that the action model
(methods/video/action_model.py) reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from methods.video.networks import attend, multiplicative_condition, prompt_mlp, time_mlp


@dataclass(frozen=True)
class PredictorConfig:
    """Video predictor p_theta1 (Perceiver-IO). Defaults: the official ``pretrainModel``."""

    n_video_codes: int = 2048  # Vv (tokenizer codebook size); id Vv is [MASK]
    code_dim: int = 256  # D, size of one codebook vector
    prompt_dim: int = 1024  # size of the language/prompt embedding fed in
    width: int = 256  # hidden width of every token and latent
    n_latents: int = 2048
    latent_blocks: int = 6  # official depth 12 // 2 self-attention + FFN blocks
    heads: int = 1
    head_dim: int = 32
    attn_dropout: float = 0.1  # encoder cross- and latent self-attention (decoder uses 0)
    ff_mult: int = 4  # GEGLU feed-forward: width -> 2*mult*width -> (gate) -> width
    max_history_tokens: int = 2304  # positional-embedding capacity (official 4x24x24)
    max_video_tokens: int = 2304

    @property
    def n_positions(self) -> int:
        return 2 + self.max_history_tokens + self.max_video_tokens


# ----------------------------------------------------------------------------- Perceiver-IO


class CrossAttention(nn.Module):
    """Pre-norm attention of queries x over a context (self-attention when context is None).
    q and kv projections carry no bias; the output projection does."""

    def __init__(self, dim: int, context_dim: int | None, heads: int, head_dim: int, dropout: float):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim if context_dim is not None else dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        context = x if self.norm_context is None else self.norm_context(context)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        p = self.dropout if self.training else 0.0
        return self.to_out(attend(self.to_q(x), k, v, self.heads, p, causal=False))


class GEGLUFeedForward(nn.Module):
    """Pre-norm LayerNorm -> Linear(dim, 2*mult*dim) -> a * gelu(gate) -> Linear(mult*dim, dim)."""

    def __init__(self, dim: int, mult: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc_in = nn.Linear(dim, 2 * mult * dim)
        self.fc_out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.fc_in(self.norm(x)).chunk(2, dim=-1)
        return self.fc_out(a * F.gelu(gate))


class VideoPredictor(nn.Module):
    """p_theta1: (noisy future video tokens, t, history tokens, prompt, frozen codebook) ->
    (logits [B, Vv, Nv] over the clean future codes, decoder features [B, Nv, width])."""

    def __init__(self, cfg: PredictorConfig = PredictorConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.time_embed = time_mlp(w)
        self.prompt_embed = prompt_mlp(cfg.prompt_dim, w)
        self.history_embed = nn.Sequential(
            nn.LayerNorm(cfg.code_dim), nn.Linear(cfg.code_dim, 2 * w), nn.Mish(), nn.Linear(2 * w, w)
        )
        self.target_embed = nn.Linear(cfg.code_dim, w)
        self.mask_embedding = nn.Parameter(torch.randn(w) * 0.02)  # replaces target_embed at [MASK]
        self.pos_embedding = nn.Parameter(torch.zeros(1, cfg.n_positions, w))
        self.embed_ln = nn.LayerNorm(w)

        self.latents = nn.Parameter(torch.randn(cfg.n_latents, w))
        self.encoder_attn = CrossAttention(w, w, cfg.heads, cfg.head_dim, cfg.attn_dropout)
        self.encoder_ff = GEGLUFeedForward(w, cfg.ff_mult)
        self.latent_blocks = nn.ModuleList(
            nn.ModuleList(
                [CrossAttention(w, None, cfg.heads, cfg.head_dim, cfg.attn_dropout), GEGLUFeedForward(w, cfg.ff_mult)]
            )
            for _ in range(cfg.latent_blocks)
        )
        self.decoder_attn = CrossAttention(w, w, cfg.heads, cfg.head_dim, 0.0)
        self.head = nn.Linear(w, cfg.n_video_codes)

    def embed_inputs(
        self,
        noisy_video: torch.Tensor,
        t: torch.Tensor,
        history: torch.Tensor,
        prompt: torch.Tensor,
        codebook: torch.Tensor,
    ) -> torch.Tensor:
        """The conditioned, layer-normed input sequence [B, 2 + Nh + Nv, width]."""
        vv = self.cfg.n_video_codes
        if codebook.shape != (vv, self.cfg.code_dim):
            raise ValueError(f"codebook must be [{vv}, {self.cfg.code_dim}] (got {tuple(codebook.shape)})")
        codebook = codebook.detach()  # the tokenizer is frozen: no gradient reaches it
        if history.numel() and (history.min() < 0 or history.max() >= vv):
            raise ValueError(f"history ids must lie in [0, {vv})")
        if noisy_video.numel() and (noisy_video.min() < 0 or noisy_video.max() > vv):
            raise ValueError(f"video ids must lie in [0, {vv}] ({vv} = [MASK])")
        hist = self.history_embed(F.embedding(history, codebook))
        is_mask = noisy_video == vv
        target = self.target_embed(F.embedding(noisy_video.clamp(max=vv - 1), codebook))
        target = torch.where(is_mask[..., None], self.mask_embedding.to(target.dtype), target)
        t_emb = self.time_embed(t)
        p_emb = self.prompt_embed(prompt)
        tokens = torch.cat([t_emb[:, None], p_emb[:, None], hist, target], dim=1)
        return self.embed_ln(multiplicative_condition(tokens, t_emb, p_emb, self.pos_embedding))

    def forward(
        self,
        noisy_video: torch.Tensor,
        t: torch.Tensor,
        history: torch.Tensor,
        prompt: torch.Tensor,
        codebook: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """noisy_video [B, Nv] long (Vv = [MASK]); t [B] long; history [B, Nh] long; prompt [B, P];
        codebook [Vv, D] (the frozen tokenizer's code vectors)."""
        inputs = self.embed_inputs(noisy_video, t, history, prompt, codebook)
        x = self.latents.unsqueeze(0).expand(inputs.shape[0], -1, -1)
        x = x + self.encoder_attn(x, inputs)
        x = x + self.encoder_ff(x)
        for attn, ff in self.latent_blocks:
            x = x + attn(x)
            x = x + ff(x)
        # decoder: every input position queries the latents; no residual, as in the official code
        decoded = self.decoder_attn(inputs, x)
        features = decoded[:, -noisy_video.shape[1] :, :]
        logits = self.head(features).transpose(1, 2)
        return logits, features
