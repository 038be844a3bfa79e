"""VPDD stage 2: pre-train the video model on actionless clips (the paper's Sec. 3.2; official
``pretrainModel`` / ``MetaDataset``).

Each item is a clip the policy could see (the history: the window ending at step t) and the clip
``future_offset`` steps later (the target), with a text: the task's instruction for robot clips,
the caption for the actionless ("human") videos. The target's tokens are corrupted by the
mask-and-replace process and the Perceiver-IO video model learns to denoise them, conditioned on
the history, the text and the diffusion step. Robot clips come from the demonstrations with their
actions unused; with ``human_videos`` a ``human_fraction`` of every batch comes from the
actionless videos (the official code pairs one robot and one human clip per item: 50/50).
Pre-training has no action tokens: the official code fills them with a constant and its action
head outputs zeros, so they carry no loss; here the sequence is the video tokens alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from methods.common.runapi import Run
from envs.video_episodes import Episodes, load_actionless, load_demonstrations
from methods.video.diffusion import (
    DiscreteDiffusionLoss,
    ImportanceTimestepSampler,
    MaskReplaceSchedule,
    TokenLayout,
    assemble_log_x0,
    q_sample,
)
from methods.video.loop import EMAWeights, run_steps
from methods.video.predictor import PredictorConfig, VideoPredictor
from methods.video.tokenizer_stage import load_tokenizer


@dataclass(frozen=True)
class Settings:
    """Defaults: the paper's official code (config/locomotion.py and the README) where it has them."""

    seed: int = 0
    steps: int = 1_000_000
    batch: int = 10  # clips per micro-batch
    grad_accum: int = 2
    lr: float = 2e-4
    diffusion_steps: int = 100
    aux_weight: float = 5e-4
    width: int = 256
    n_latents: int = 2048
    latent_blocks: int = 6
    heads: int = 1
    head_dim: int = 32
    attn_dropout: float = 0.1
    prompt_dim: int = 1024  # CLIP-RN50's text feature size; here the width of the text embedding
    future_offset: int = 20  # the target clip ends this many env steps after the history clip
    human_videos: bool = True
    human_fraction: float = 0.5
    ema_decay: float = 0.995
    ema_every: int = 10
    ema_start: int = 2000
    log_every: int = 100
    checkpoint_every: int = 10_000


@dataclass
class ClipPairs:
    """Every (history, target, text) a set of episodes offers: token-grid rows and a text index."""

    history: np.ndarray  # [n] row of the history window in ``tokens``
    target: np.ndarray  # [n] row of the target window
    text: np.ndarray  # [n] index into ``texts``
    tokens: np.ndarray  # [S, n_tokens] the windows' token ids
    texts: list[str]

    @classmethod
    def of(cls, episodes: Episodes, tokens: np.ndarray, ids: np.ndarray, future_offset: int) -> ClipPairs:
        hist, targ, text = [], [], []
        texts = sorted(set(episodes.texts))
        for e in ids:
            start, length = int(episodes.starts[e]), int(episodes.lengths[e])
            t = np.arange(length)
            hist.append(start + t)
            targ.append(start + np.minimum(t + future_offset, length - 1))
            text.append(np.full(length, texts.index(episodes.texts[e])))
        cat = (lambda xs: np.concatenate(xs).astype(np.int64)) if hist else (lambda xs: np.zeros(0, np.int64))
        return cls(cat(hist), cat(targ), cat(text), tokens, texts)

    def __len__(self) -> int:
        return len(self.history)


def text_table(texts: list[str], dim: int) -> torch.Tensor:
    """``[len(texts), dim]`` embeddings of the texts (envs/metaworld_video.py: the fixed embedding
    that stands in for the frozen CLIP text encoder, which is not available offline)."""
    from envs.metaworld_video import embed_text

    return torch.as_tensor(np.stack([embed_text(t, dim) for t in texts]), dtype=torch.float32)


def predictor_config(s: Settings, n_codes: int, code_dim: int, n_tokens: int) -> PredictorConfig:
    return PredictorConfig(
        n_video_codes=n_codes,
        code_dim=code_dim,
        prompt_dim=s.prompt_dim,
        width=s.width,
        n_latents=s.n_latents,
        latent_blocks=s.latent_blocks,
        heads=s.heads,
        head_dim=s.head_dim,
        attn_dropout=s.attn_dropout,
        max_history_tokens=n_tokens,
        max_video_tokens=n_tokens,
    )


def load_predictor(saved: dict, device: torch.device | str = "cpu") -> VideoPredictor:
    """The pre-trained video model (its EMA weights) from this stage's saved model, in eval mode."""
    model = VideoPredictor(PredictorConfig(**saved["config"])).to(device)
    model.load_state_dict(saved["state"])
    return model.eval()


def local_video_ids(x_t: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Global ids at video positions -> the video model's ids (0..Vv-1, [MASK] = Vv)."""
    return torch.where(x_t == layout.mask_id, torch.full_like(x_t, layout.video_vocab), x_t)


def read_stage(path: Path) -> dict:
    return torch.load(Path(path) / "model.pt", map_location="cpu", weights_only=False)


def train(s: Settings, run: Run) -> None:
    tok = read_stage(run.stage_dirs["tokenizer"])
    codebook = load_tokenizer(tok).codebook.to(run.device)
    n_codes, code_dim = codebook.shape
    demos = load_demonstrations(run.assets_dir)
    robot = ClipPairs.of(demos, tok["demo_tokens"], np.flatnonzero(~demos.heldout), s.future_offset)
    human = None
    if s.human_videos:
        actionless = load_actionless(run.assets_dir)
        human = ClipPairs.of(actionless, tok["actionless_tokens"], np.flatnonzero(~actionless.heldout), s.future_offset)
        if len(human) == 0:
            raise ValueError("human_videos is set but the setup wrote no actionless videos (env actionless_episodes)")
    n_human = round(s.batch * s.human_fraction) if human is not None else 0
    texts = {"robot": text_table(robot.texts, s.prompt_dim).to(run.device)}
    if human is not None:
        texts["human"] = text_table(human.texts, s.prompt_dim).to(run.device)

    n_tokens = robot.tokens.shape[1]
    layout = TokenLayout(video_vocab=n_codes, action_vocab=1)
    schedule = MaskReplaceSchedule(s.diffusion_steps, layout)
    is_action = torch.zeros(n_tokens, dtype=torch.bool, device=run.device)
    loss_fn = DiscreteDiffusionLoss(schedule, aux_weight=s.aux_weight)
    sampler = ImportanceTimestepSampler(s.diffusion_steps)

    gen = torch.Generator(device=run.device).manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)
    torch.manual_seed(run.seed)
    model = VideoPredictor(predictor_config(s, n_codes, code_dim, n_tokens)).to(run.device)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    ema = EMAWeights(model, s.ema_decay, s.ema_start, s.ema_every)

    def draw(pairs: ClipPairs, n: int, table: torch.Tensor) -> tuple[torch.Tensor, ...]:
        i = rng.integers(len(pairs), size=n)
        as_ids = lambda rows: torch.as_tensor(pairs.tokens[rows].astype(np.int64), device=run.device)  # noqa: E731
        return as_ids(pairs.history[i]), as_ids(pairs.target[i]), table[torch.as_tensor(pairs.text[i])]

    def batch() -> tuple[torch.Tensor, ...]:
        parts = [draw(robot, s.batch - n_human, texts["robot"])]
        if n_human:
            parts.append(draw(human, n_human, texts["human"]))
        return tuple(torch.cat(p) for p in zip(*parts))

    def step_fn(step: int) -> dict[str, float]:
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(s.grad_accum):
            history, x0, prompt = batch()
            t, p_t = sampler.sample(len(x0), gen, device=run.device)
            x_t = q_sample(schedule, x0, t, is_action, gen)
            logits, _ = model(local_video_ids(x_t, layout), t, history, prompt, codebook)
            out = loss_fn(assemble_log_x0(layout, logits, None, is_action), x0, x_t, t, is_action, None, p_t)
            (out["loss"] / s.grad_accum).backward()
            sampler.update(t, out["vlb"])
            total += out["loss"].item() / s.grad_accum
        opt.step()
        ema.update(model, step)
        return {"loss": total}

    model.train()
    # the step-0 video model: a run's "untrained" agent reads it, so that a claim on the video
    # model's predictions asks whether pre-training learned (a resumed stage gets it back)
    run.save_untrained_model({"config": asdict(model.cfg), "state": model.state_dict()})
    run_steps(
        run,
        steps=s.steps,
        log_every=s.log_every,
        checkpoint_every=s.checkpoint_every,
        step_fn=step_fn,
        stateful={"model": model, "opt": opt, "ema": ema, "sampler": sampler},
        gen=gen,
        rng=rng,
    )
    run.save_model({"config": asdict(model.cfg), "state": ema.state_dict(), "settings": asdict(s)})
