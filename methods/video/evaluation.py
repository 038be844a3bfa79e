"""VPDD's evaluation (methods/video/vpdd.py ``evaluate``): the policy's rollouts on every task, and
the video model's predicted future clips on held-out demonstrations (the FVD stand-in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from envs.video_episodes import Episodes
from methods.video.diffusion import assemble_log_x0, sample_tokens
from methods.video.pretrain_stage import local_video_ids, text_table
from methods.video.tokenizer import frames_to_clip

if TYPE_CHECKING:
    from methods.video.vpdd import Policy


def rollouts(
    policy: Policy, demos: Episodes, seed: int, gen: torch.Generator
) -> tuple[dict[str, list[float]], list[float]]:
    """Each task's episodes run side by side (one batch per reverse process): success per episode,
    and every episode's return."""
    from envs.metaworld_video import DEFAULT_RENDER_SIZE, RenderedMetaWorld, episode_seed

    cfg, frames = policy.cfg, policy.tokenizer_frames
    # each task's instruction, as fine-tuning embedded it
    texts = text_table(
        [demos.texts[int(np.flatnonzero(demos.task == k)[0])] for k in range(len(demos.task_names))], cfg.prompt_dim
    )
    render_size = cfg.env_kwargs.get("render_size", DEFAULT_RENDER_SIZE)
    per_task: dict[str, list[float]] = {}
    returns: list[float] = []
    for k, name in enumerate(demos.task_names):
        envs_ = [
            RenderedMetaWorld(name, demos.frames.shape[1], render_size, max_episode_steps=cfg.eval_max_steps)
            for _ in range(cfg.eval_episodes)
        ]
        try:
            # evaluation seeds: another stream than the demonstrations' (episode numbers from 10^6)
            for i, env in enumerate(envs_):
                env.reset(episode_seed(seed, env.task_id, 10**6 + i))
            window = [[env.render()] * frames for env in envs_]
            done = [False] * len(envs_)
            ret = [0.0] * len(envs_)
            prompt = texts[k].expand(len(envs_), -1).to(policy.device)
            while not all(done):
                clips = frames_to_clip(np.stack([np.stack(w[-frames:]) for w in window])).to(policy.device)
                history = policy.tokenizer.encode(clips).flatten(1)
                chunk = policy.chunk(policy.sample(history, prompt, gen))
                for k in range(cfg.replan_every):  # the chunk's first actions, then replan
                    for j, env in enumerate(envs_):
                        if done[j]:
                            continue
                        _, reward, terminated, truncated, _ = env.step(chunk[j, k])
                        ret[j] += reward
                        window[j].append(env.render())
                        done[j] = terminated or truncated or env.ever_succeeded
            per_task[name] = [float(env.ever_succeeded) for env in envs_]
            returns.extend(ret)
        finally:
            for env in envs_:
                env.close()
    return per_task, returns


@torch.no_grad()
def future_clip_quality(policy: Policy, demos: Episodes, seed: int, gen: torch.Generator) -> dict[str, float]:
    """The video model's prediction of the clip ``future_offset`` steps ahead, on windows of the
    held-out demonstrations (never trained on): token accuracy against the real clip's tokens, and
    the mean squared error of its decoded frames against the real frames (pixels in [-0.5, 0.5]).
    The offline stand-in for the paper's FVD."""
    cfg, frames = policy.cfg, policy.tokenizer_frames
    held = np.flatnonzero(demos.heldout)
    if len(held) == 0 or cfg.video_eval_clips == 0:
        return {}
    steps = demos.steps(held)
    pick = steps[
        np.random.default_rng(seed).choice(len(steps), size=min(cfg.video_eval_clips, len(steps)), replace=False)
    ]
    hist = np.stack([demos.window(e, t, frames) for e, t in pick])
    fut = np.stack([demos.window(e, t + cfg.future_offset, frames) for e, t in pick])
    names = sorted(set(demos.texts))
    prompt = text_table(names, cfg.prompt_dim)[[names.index(demos.texts[e]) for e, _ in pick]].to(policy.device)
    real = frames_to_clip(demos.frames[fut]).to(policy.device)
    history = policy.tokenizer.encode(frames_to_clip(demos.frames[hist]).to(policy.device)).flatten(1)
    target = policy.tokenizer.encode(real).flatten(1)
    video_only = torch.zeros(policy.n_video, dtype=torch.bool, device=policy.device)

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits, _ = policy.predictor(local_video_ids(x_t, policy.layout), t, history, prompt, policy.codebook)
        return assemble_log_x0(policy.layout, logits, None, video_only)

    predicted = sample_tokens(denoise, len(pick), video_only, policy.schedule, cfg.truncation_r, gen)
    decoded = policy.tokenizer.decode(predicted.view(-1, *policy.latent_shape))
    return {
        "future_token_acc": float((predicted == target).float().mean()),
        "future_frame_mse": float(((decoded.clamp(-0.5, 0.5) - real) ** 2).mean()),
    }
