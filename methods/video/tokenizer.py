"""VQ-VAE video tokenizer of VPDD (VideoGPT's VQ-VAE, Yan et al. 2021, as used by He et al. 2024).

A clip ``[B, C, T, H, W]`` in ``[-0.5, 0.5]`` is encoded by stride-2 3-D convolutions and a stack of
residual blocks with axial attention, projected to ``embedding_dim`` and snapped to the nearest of
``n_codes`` code vectors; the decoder mirrors the encoder with transposed convolutions. The
codebook is learnt by exponential moving averages (not by gradients), initialised from the first
training batch, and codes that fall out of use are restarted at encodings of the current batch.

Every size is a ``TokenizerConfig`` field, so the paper's model (4x96x96 clips -> 1x24x24 = 576
tokens from 2048 codes) and the tiny CPU models of the tests are the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TokenizerConfig:
    """Sizes and training constants; the defaults are the paper's (VideoGPT's VQ-VAE defaults)."""

    n_hiddens: int = 256
    n_res_layers: int = 6
    downsample: tuple[int, int, int] = (4, 4, 4)  # (T, H, W) reduction factors, powers of two
    embedding_dim: int = 256
    n_codes: int = 2048
    attn_heads: int = 2
    use_attention: bool = True  # axial attention in each residual block; tiny CPU models may drop it
    ema_decay: float = 0.99
    commitment_cost: float = 0.25
    recon_scale: float = 0.06  # the reconstruction MSE is divided by this (roughly the data variance)
    lr: float = 3e-4

    def __post_init__(self) -> None:
        if len(self.downsample) != 3:
            raise ValueError(f"downsample must give (T, H, W) factors, got {self.downsample!r}")
        for d in self.downsample:
            if d < 1 or d & (d - 1):
                raise ValueError(f"downsample factors must be powers of two, got {self.downsample!r}")
        if max(self.downsample) == 1:
            raise ValueError("at least one downsample factor must be > 1 (the decoder ends with a strided stage)")
        if self.n_hiddens % 2:
            raise ValueError("n_hiddens must be even: residual blocks squeeze to n_hiddens // 2 channels")
        if self.use_attention and self.n_hiddens % self.attn_heads:
            raise ValueError("n_hiddens must be divisible by attn_heads")
        if self.n_res_layers < 0 or self.n_codes < 1 or self.embedding_dim < 1:
            raise ValueError("n_res_layers >= 0, n_codes >= 1 and embedding_dim >= 1 are required")
        if not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1], got {self.ema_decay}")


def _same_padding(kernel: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...]:
    """F.pad argument giving ``k - s`` total padding per axis, the odd unit in front (last axis first)."""
    pad: list[int] = []
    for k, s in reversed(list(zip(kernel, stride))):
        total = k - s
        pad += [total - total // 2, total // 2]
    return tuple(pad)


class SamePadConv3d(nn.Module):
    """Conv3d whose output length is ``input // stride`` on each axis (input divisible by stride)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: tuple[int, int, int] = (1, 1, 1), bias: bool = True
    ):
        super().__init__()
        k = (kernel,) * 3
        self.pad = _same_padding(k, stride)
        self.conv = nn.Conv3d(in_ch, out_ch, k, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class SamePadConvTranspose3d(nn.Module):
    """ConvTranspose3d whose output length is ``input * stride`` on each axis (inverse of SamePadConv3d)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: tuple[int, int, int]):
        super().__init__()
        k = (kernel,) * 3
        self.pad = _same_padding(k, stride)
        # padding k-1 cancels the full-convolution border, so with the k-s input padding
        # the output is exactly input * stride long
        self.convt = nn.ConvTranspose3d(in_ch, out_ch, k, stride=stride, padding=kernel - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convt(F.pad(x, self.pad))


class AxialAttention(nn.Module):
    """Multi-head self-attention along one axis of a channels-last ``[B, T, H, W, C]`` tensor."""

    def __init__(self, dim: int, n_heads: int, axis: int):
        super().__init__()
        self.n_heads, self.axis = n_heads, axis
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim)
        # VideoGPT draws every projection from N(0, 1/dim) instead of PyTorch's uniform default
        for lin in (self.q, self.k, self.v, self.out):
            nn.init.normal_(lin.weight, std=1.0 / math.sqrt(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(self.axis, -2)  # the attended axis becomes the sequence axis
        lead, (length, dim) = x.shape[:-2], x.shape[-2:]
        seq = x.reshape(-1, length, dim)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(t.shape[0], length, self.n_heads, dim // self.n_heads).transpose(1, 2)

        attn = F.scaled_dot_product_attention(heads(self.q(seq)), heads(self.k(seq)), heads(self.v(seq)))
        attn = attn.transpose(1, 2).reshape(-1, length, dim)
        return self.out(attn).view(*lead, length, dim).movedim(-2, self.axis)


class AxialBlock(nn.Module):
    """Sum of self-attention over T, H and W, each with its own weights; ``[B, C, T, H, W]`` in and out."""

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        # axes of the channels-last view [B, T, H, W, C]
        self.attn_t = AxialAttention(dim, n_heads, axis=1)
        self.attn_h = AxialAttention(dim, n_heads, axis=2)
        self.attn_w = AxialAttention(dim, n_heads, axis=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.movedim(1, -1)
        return (self.attn_w(h) + self.attn_h(h) + self.attn_t(h)).movedim(-1, 1)


class ResidualBlock(nn.Module):
    """x + [BN-ReLU-conv3 (to n/2) -> BN-ReLU-conv1 (back to n) -> BN-ReLU -> axial attention](x)."""

    def __init__(self, n_hiddens: int, attn_heads: int, use_attention: bool):
        super().__init__()
        half = n_hiddens // 2
        layers: list[nn.Module] = [
            nn.BatchNorm3d(n_hiddens),
            nn.ReLU(),
            SamePadConv3d(n_hiddens, half, 3, bias=False),
            nn.BatchNorm3d(half),
            nn.ReLU(),
            SamePadConv3d(half, n_hiddens, 1, bias=False),
            nn.BatchNorm3d(n_hiddens),
            nn.ReLU(),
        ]
        if use_attention:
            layers.append(AxialBlock(n_hiddens, attn_heads))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _stage_strides(downsample: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Per-stage strides: an axis with factor 2^k is strided by 2 in the first k stages, by 1 after."""
    steps = [int(math.log2(d)) for d in downsample]
    return [tuple(2 if i < s else 1 for s in steps) for i in range(max(steps))]


def _res_stack(cfg: TokenizerConfig) -> nn.Sequential:
    blocks = [ResidualBlock(cfg.n_hiddens, cfg.attn_heads, cfg.use_attention) for _ in range(cfg.n_res_layers)]
    return nn.Sequential(*blocks, nn.BatchNorm3d(cfg.n_hiddens), nn.ReLU())


class Encoder(nn.Module):
    """Strided 4x4x4 convs (ReLU after each), a 3x3x3 conv, then the residual stack."""

    def __init__(self, cfg: TokenizerConfig, in_channels: int):
        super().__init__()
        self.convs = nn.ModuleList(
            SamePadConv3d(in_channels if i == 0 else cfg.n_hiddens, cfg.n_hiddens, 4, stride=s)
            for i, s in enumerate(_stage_strides(cfg.downsample))
        )
        self.conv_last = SamePadConv3d(cfg.n_hiddens, cfg.n_hiddens, 3)
        self.res_stack = _res_stack(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.res_stack(self.conv_last(x))


class Decoder(nn.Module):
    """The residual stack, then strided 4x4x4 transposed convs (ReLU between, none after the last)."""

    def __init__(self, cfg: TokenizerConfig, out_channels: int):
        super().__init__()
        self.res_stack = _res_stack(cfg)
        strides = _stage_strides(cfg.downsample)
        self.convts = nn.ModuleList(
            SamePadConvTranspose3d(cfg.n_hiddens, out_channels if i == len(strides) - 1 else cfg.n_hiddens, 4, s)
            for i, s in enumerate(strides)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.res_stack(h)
        for i, convt in enumerate(self.convts):
            h = convt(h)
            if i < len(self.convts) - 1:
                h = F.relu(h)
        return h


class EMACodebook(nn.Module):
    """Vector quantiser whose code vectors are EMA cluster means (VQ-VAE-2 style), all state in buffers.

    ``N`` holds the EMA cluster sizes and ``z_avg`` the EMA sums of the encodings assigned to each
    code; a code vector is ``z_avg / N`` with Laplace-smoothed ``N``. A code whose EMA size drops
    below 1 is "dead" and is overwritten by a random encoding of the current batch.
    """

    def __init__(self, n_codes: int, embedding_dim: int, decay: float = 0.99, eps: float = 1e-7):
        super().__init__()
        self.n_codes, self.embedding_dim, self.decay, self.eps = n_codes, embedding_dim, decay, eps
        self.register_buffer("embeddings", torch.randn(n_codes, embedding_dim))
        self.register_buffer("N", torch.zeros(n_codes))
        self.register_buffer("z_avg", self.embeddings.clone())
        # a buffer (not a Python flag) so a resumed model does not re-initialise from its next batch
        self.register_buffer("initialised", torch.tensor(False))

    def _random_encodings(self, flat: torch.Tensor) -> torch.Tensor:
        """``n_codes`` rows drawn without replacement from ``flat``; if it has too few rows it is
        repeated first, with a little noise so the copies do not collapse onto one code."""
        rows, dim = flat.shape
        if rows < self.n_codes:
            flat = flat.repeat((self.n_codes + rows - 1) // rows, 1)
            flat = flat + torch.randn_like(flat) * (0.01 / math.sqrt(dim))
        return flat[torch.randperm(flat.shape[0], device=flat.device)[: self.n_codes]]

    @torch.no_grad()
    def initialise(self, flat: torch.Tensor) -> None:
        """Data-dependent init: codes = random encodings of ``flat`` [n, D], each with cluster size 1."""
        rows = self._random_encodings(flat)
        self.embeddings.copy_(rows)
        self.z_avg.copy_(rows)
        self.N.fill_(1.0)
        self.initialised.fill_(True)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the closest code (squared Euclidean distance) for each row of ``flat`` [n, D]."""
        e = self.embeddings
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None, :]
        return dist.argmin(dim=1)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, onehot: torch.Tensor) -> None:
        self.N.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.z_avg.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.N.sum()
        # Laplace smoothing keeps an empty cluster from dividing by zero, total mass unchanged
        sizes = (self.N + self.eps) / (n + self.n_codes * self.eps) * n
        self.embeddings.copy_(self.z_avg / sizes[:, None])
        # dead-code restart; z_avg and N of a restarted code are left as they are (as in VideoGPT),
        # so it is redrawn every step until it wins enough encodings to get N >= 1 again
        alive = (self.N >= 1.0)[:, None]
        self.embeddings.copy_(torch.where(alive, self.embeddings, self._random_encodings(flat)))

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Quantise ``z`` [B, D, t, h, w]; in training mode also initialise (first call) and EMA-update.

        Returns ``embeddings`` (straight-through, [B, D, t, h, w]; the codes as they were before this
        call's update), ``indices`` [B, t, h, w], ``commitment_loss`` (MSE(z, sg[e]), unweighted)
        and the code ``perplexity`` of the batch.
        """
        flat = z.movedim(1, -1).reshape(-1, self.embedding_dim)
        if self.training and not bool(self.initialised):
            self.initialise(flat.detach())
        idx = self.nearest(flat.detach())
        onehot = F.one_hot(idx, self.n_codes).type_as(flat)
        quantised = F.embedding(idx, self.embeddings).view(*z.shape[:1], *z.shape[2:], -1).movedim(-1, 1)
        commitment = F.mse_loss(z, quantised.detach())
        if self.training:
            self._ema_update(flat.detach(), onehot)
        probs = onehot.mean(0)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return {
            "embeddings": z + (quantised - z).detach(),  # straight-through: gradients skip the snap
            "indices": idx.view(z.shape[0], *z.shape[2:]),
            "commitment_loss": commitment,
            "perplexity": perplexity,
        }


class VideoVQVAE(nn.Module):
    """VideoGPT's VQ-VAE: ``[B, C, T, H, W]`` clips <-> ``[B, t, h, w]`` token grids."""

    def __init__(self, cfg: TokenizerConfig, in_channels: int = 3):
        super().__init__()
        self.cfg, self.in_channels = cfg, in_channels
        self.encoder = Encoder(cfg, in_channels)
        self.pre_vq_conv = SamePadConv3d(cfg.n_hiddens, cfg.embedding_dim, 1)
        self.quantizer = EMACodebook(cfg.n_codes, cfg.embedding_dim, decay=cfg.ema_decay)
        self.post_vq_conv = SamePadConv3d(cfg.embedding_dim, cfg.n_hiddens, 1)
        self.decoder = Decoder(cfg, in_channels)

    @property
    def codebook(self) -> torch.Tensor:
        """The code vectors [n_codes, embedding_dim], detached."""
        return self.quantizer.embeddings.detach()

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Token grid (t, h, w) of a ``frames x height x width`` clip (each stride-2 stage floors)."""
        shape = [frames, height, width]
        for stride in _stage_strides(self.cfg.downsample):
            shape = [n // s for n, s in zip(shape, stride)]
        return tuple(shape)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstruct ``x`` [B, C, T, H, W]; in training mode this also updates the codebook.

        ``loss = recon_loss + commitment_cost * commitment_loss`` with ``recon_loss = MSE / recon_scale``.
        """
        z = self.pre_vq_conv(self.encoder(x))
        vq = self.quantizer(z)
        x_recon = self.decoder(self.post_vq_conv(vq["embeddings"]))
        recon_loss = F.mse_loss(x_recon, x) / self.cfg.recon_scale
        loss = recon_loss + self.cfg.commitment_cost * vq["commitment_loss"]
        return {
            "loss": loss,
            "recon_loss": recon_loss,
            "commitment_loss": vq["commitment_loss"],
            "x_recon": x_recon,
            "indices": vq["indices"],
            "perplexity": vq["perplexity"],
        }

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Token indices [B, t, h, w] of ``x``. Never touches the codebook (unlike VideoGPT's encode,
        which EMA-updates it in training mode); BatchNorm still follows the module's mode, so call
        ``eval()`` first for tokens that do not depend on the rest of the batch."""
        z = self.pre_vq_conv(self.encoder(x))
        flat = z.movedim(1, -1).reshape(-1, self.cfg.embedding_dim)
        return self.quantizer.nearest(flat).view(z.shape[0], *z.shape[2:])

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Clips [B, C, T, H, W] from token indices [B, t, h, w]."""
        h = F.embedding(indices, self.quantizer.embeddings).movedim(-1, 1)
        return self.decoder(self.post_vq_conv(h))


def make_optimizer(model: VideoVQVAE) -> torch.optim.Adam:
    """Adam(lr, betas (0.9, 0.999)) over the gradient-trained weights (the codebook is buffers)."""
    return torch.optim.Adam(model.parameters(), lr=model.cfg.lr, betas=(0.9, 0.999))


def frames_to_clip(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames [..., T, H, W, C] -> float clip [..., C, T, H, W] in [-0.5, 0.5]."""
    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    if x.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8, got {x.dtype}")
    return x.movedim(-1, -4).float() / 255.0 - 0.5


def clip_to_frames(clip: torch.Tensor) -> np.ndarray:
    """Inverse of frames_to_clip: float clip [..., C, T, H, W] -> uint8 frames [..., T, H, W, C]
    (rounded and clipped to [0, 255], so decoder outputs outside [-0.5, 0.5] are safe)."""
    x = ((clip.detach().float() + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return x.movedim(-4, -1).cpu().numpy()
