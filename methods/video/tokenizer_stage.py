"""VPDD stage 1: the video tokenizer (VideoGPT's VQ-VAE, methods/video/tokenizer.py), trained once
per data set and shared by every method and seed that reads it.

It trains on random ``frames``-frame clips of the demonstrations' videos and (``actionless``) of
the actionless videos, then encodes every window of both — the clip ending at each step of each
episode — so that the later stages read token grids, not pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from methods.common.runapi import Run
from envs.video_episodes import Episodes, load_actionless, load_demonstrations
from methods.video.loop import run_steps
from methods.video.tokenizer import TokenizerConfig, VideoVQVAE, frames_to_clip, make_optimizer


@dataclass(frozen=True)
class Settings:
    """Defaults: the paper's (VideoGPT VQ-VAE on 4-frame 96x96 clips, 2048 codes; official README:
    batch 32); steps: ours (the README trains 10 epochs of its data set)."""

    seed: int = 0
    steps: int = 20_000
    batch: int = 32
    frames: int = 4
    n_hiddens: int = 256
    n_res_layers: int = 6
    downsample: tuple[int, int, int] = (4, 4, 4)
    embedding_dim: int = 256
    n_codes: int = 2048
    attn_heads: int = 2
    use_attention: bool = True
    lr: float = 3e-4
    actionless: bool = True  # clips of the actionless videos too (the official tokenizer saw both)
    log_every: int = 100
    checkpoint_every: int = 1000
    encode_batch: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "downsample", tuple(self.downsample))  # from JSON: a list

    def tokenizer_config(self) -> TokenizerConfig:
        return TokenizerConfig(
            n_hiddens=self.n_hiddens,
            n_res_layers=self.n_res_layers,
            downsample=self.downsample,
            embedding_dim=self.embedding_dim,
            n_codes=self.n_codes,
            attn_heads=self.attn_heads,
            use_attention=self.use_attention,
            lr=self.lr,
        )


def load_tokenizer(state: dict, device: torch.device | str = "cpu") -> VideoVQVAE:
    """The trained tokenizer in eval mode, from this stage's saved model."""
    cfg = state["config"]
    model = VideoVQVAE(TokenizerConfig(**{**cfg, "downsample": tuple(cfg["downsample"])})).to(device)
    model.load_state_dict(state["state"])
    return model.eval()


@torch.no_grad()
def encode_windows(model: VideoVQVAE, episodes: Episodes, frames: int, batch: int) -> np.ndarray:
    """Token ids ``[S, n_tokens]`` (int16) of the window ending at every step of every episode."""
    steps = episodes.steps(range(episodes.n_episodes))
    n_tokens = int(np.prod(model.latent_shape(frames, *episodes.frames.shape[1:3])))
    if len(steps) == 0:
        return np.zeros((0, n_tokens), dtype=np.int16)
    index = np.stack([episodes.window(e, t, frames) for e, t in steps])
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(index), batch):
        clips = frames_to_clip(episodes.frames[index[i : i + batch]]).to(device)
        out.append(model.encode(clips).flatten(1).cpu().numpy().astype(np.int16))
    return np.concatenate(out)


def train(s: Settings, run: Run) -> None:
    demos, actionless = load_demonstrations(run.assets_dir), load_actionless(run.assets_dir)
    sources = [demos, actionless] if s.actionless else [demos]
    # training clips: every window of every episode not held out (held-out clips judge prediction)
    windows = [(k, e, t) for k, src in enumerate(sources) for e, t in src.steps(np.flatnonzero(~src.heldout)).tolist()]
    gen = torch.Generator(device=run.device).manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)
    torch.manual_seed(run.seed)
    model = VideoVQVAE(s.tokenizer_config()).to(run.device)
    opt = make_optimizer(model)

    def step_fn(step: int) -> dict[str, float]:
        picks = rng.integers(len(windows), size=s.batch)
        clips = torch.stack(
            [
                frames_to_clip(sources[windows[i][0]].frames[sources[windows[i][0]].window(*windows[i][1:], s.frames)])
                for i in picks
            ]
        ).to(run.device)
        out = model(clips)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        return {
            "loss": out["loss"].item(),
            "recon_loss": out["recon_loss"].item(),
            "perplexity": out["perplexity"].item(),
        }

    model.train()
    run_steps(
        run,
        steps=s.steps,
        log_every=s.log_every,
        checkpoint_every=s.checkpoint_every,
        step_fn=step_fn,
        stateful={"model": model, "opt": opt},
        gen=gen,
        rng=rng,
    )
    model.eval()
    latent = model.latent_shape(s.frames, *demos.frames.shape[1:3])
    run.save_model(
        {
            "config": asdict(s.tokenizer_config()),
            "state": model.state_dict(),
            "frames": s.frames,
            "latent_shape": list(latent),
            "demo_tokens": encode_windows(model, demos, s.frames, s.encode_batch),
            # encoded whether or not it trained on them: pre-training may read them
            "actionless_tokens": encode_windows(model, actionless, s.frames, s.encode_batch),
        }
    )
