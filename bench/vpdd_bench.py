"""Bench: where VPDD's time goes, at a scale's own sizes (config/papers/vpdd.yaml), one torch thread.

Reported: tokenizer training clips/s; video pre-training and action fine-tuning samples/s (one
optimiser step each, frozen video model included in fine-tuning); sampling latency of one
decision (the T reverse steps over video and action tokens) per environment; evaluation
environment steps/s with rendering (step + render + tokenise the 4-frame window), beside the pure
step + render rate of the same Meta-World env. No peer runs VPDD on a CPU offline (the official
code needs its data-preparation scripts, CLIP and GPUs), so there is no ratio here; the rates
size the `small` budgets and the cost plan.

    <venv>/bin/python bench/vpdd_bench.py [--scale small] [--steps 5] [--task reach-v3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def timed(fn, steps: int) -> float:  # noqa: ANN001
    """Seconds per call, after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--task", default="reach-v3")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from envs.metaworld_video import RenderedMetaWorld
    from methods.video.action_model import ActionModel
    from methods.video.diffusion import (
        DiscreteDiffusionLoss,
        MaskReplaceSchedule,
        TokenLayout,
        assemble_log_x0,
        q_sample,
    )
    from methods.video.predictor import VideoPredictor
    from methods.video.pretrain_stage import local_video_ids, predictor_config
    from methods.video.tokenizer import VideoVQVAE, frames_to_clip, make_optimizer
    from methods.video.vpdd import ACTION_DIM, Policy, action_model_config
    from pipeline.config import load_from_files

    wf = load_from_files(overrides={"scale": args.scale, "papers": ["vpdd"]})
    job = next(j for j in wf.jobs("vpdd") if j.method == "vpdd")
    cfg = job.method_config()
    res, render = job.env_kwargs["resolution"], job.env_kwargs["render_size"]
    tok_settings = cfg.tokenizer_settings()
    tokenizer = VideoVQVAE(tok_settings.tokenizer_config())
    opt = make_optimizer(tokenizer)
    clips = torch.rand(cfg.tokenizer_batch, 3, cfg.frames, res, res) - 0.5

    def tokenizer_step() -> None:
        out = tokenizer(clips)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    rows = [("tokenizer training", "clips/s", cfg.tokenizer_batch / timed(tokenizer_step, args.steps))]

    tokenizer.eval()
    latent = tokenizer.latent_shape(cfg.frames, res, res)
    n_video, codebook = int(np.prod(latent)), tokenizer.codebook
    n_codes = codebook.shape[0]
    predictor = VideoPredictor(predictor_config(cfg.pretrain_settings(), n_codes, codebook.shape[1], n_video))
    popt = torch.optim.Adam(predictor.parameters(), lr=cfg.pretrain_lr)
    video_layout = TokenLayout(n_codes, 1)
    video_schedule = MaskReplaceSchedule(cfg.diffusion_steps, video_layout)
    video_only = torch.zeros(n_video, dtype=torch.bool)
    video_loss = DiscreteDiffusionLoss(video_schedule)
    b = cfg.pretrain_batch

    def pretrain_step() -> None:
        x0 = torch.randint(0, n_codes, (b, n_video))
        t = torch.randint(0, cfg.diffusion_steps, (b,))
        x_t = q_sample(video_schedule, x0, t, video_only)
        logits, _ = predictor(
            local_video_ids(x_t, video_layout),
            t,
            torch.randint(0, n_codes, (b, n_video)),
            torch.randn(b, cfg.prompt_dim),
            codebook,
        )
        out = video_loss(assemble_log_x0(video_layout, logits, None, video_only), x0, x_t, t, video_only)
        popt.zero_grad()
        out["loss"].backward()
        popt.step()

    rows.append(("video pre-training", "samples/s", b / timed(pretrain_step, args.steps)))

    from methods.video.actions import ActionTokenizer

    predictor.eval()
    action_model = ActionModel(action_model_config(cfg, n_video, predictor.cfg.width))
    actions = ActionTokenizer.fit(
        np.random.default_rng(0).uniform(-1, 1, (500, 4)), np.array([-1.0, 1.0]), cfg.action_bins
    )
    tok_state = {
        "config": tokenizer.cfg.__dict__,
        "state": tokenizer.state_dict(),
        "frames": cfg.frames,
        "latent_shape": list(latent),
    }
    tok_state["config"] = {**tok_state["config"], "downsample": list(tokenizer.cfg.downsample)}
    policy = Policy(cfg, tok_state, predictor, action_model, actions)
    aopt = torch.optim.Adam(action_model.parameters(), lr=cfg.lr)
    loss = DiscreteDiffusionLoss(policy.schedule)
    b = cfg.batch
    n_action = cfg.horizon * ACTION_DIM

    def finetune_step() -> None:
        x0 = torch.cat(
            [
                torch.randint(0, n_codes, (b, n_video)),
                torch.randint(0, cfg.action_bins, (b, n_action)) + policy.layout.action_offset,
            ],
            1,
        )
        t = torch.randint(0, cfg.diffusion_steps, (b,))
        x_t = q_sample(policy.schedule, x0, t, policy.is_action)
        history, prompt = torch.randint(0, n_codes, (b, n_video)), torch.randn(b, cfg.prompt_dim)
        with torch.no_grad():
            video = policy.video(x_t, t, history, prompt)
        out = loss(
            policy.log_x0_given_video(video, x_t, t, prompt), x0, x_t, t, policy.is_action, policy.is_action.float()
        )
        aopt.zero_grad()
        out["loss"].backward()
        aopt.step()

    rows.append(("action fine-tuning", "samples/s", b / timed(finetune_step, args.steps)))
    action_model.eval()
    gen = torch.Generator().manual_seed(0)
    for envs_at_once in (1, cfg.eval_episodes):
        history, prompt = torch.randint(0, n_codes, (envs_at_once, n_video)), torch.randn(envs_at_once, cfg.prompt_dim)
        latency = timed(lambda: policy.sample(history, prompt, gen), max(2, args.steps // 2))
        rows.append(
            (
                f"sampling one decision, {envs_at_once} env(s) at once (T = {cfg.diffusion_steps})",
                "s per env",
                latency / envs_at_once,
            )
        )

    env = RenderedMetaWorld(args.task, res, render, max_episode_steps=10**6)
    env.reset(0)
    window = [env.render()] * cfg.frames

    def env_step_render() -> None:
        env.step(np.zeros(4))
        window.append(env.render())

    def env_step_render_tokenise() -> None:
        env_step_render()
        with torch.no_grad():
            tokenizer.encode(frames_to_clip(np.stack(window[-cfg.frames :]))[None])

    rows.append((f"{args.task}: step + render ({render} -> {res})", "steps/s", 1 / timed(env_step_render, 50)))
    rows.append(
        (f"{args.task}: step + render + tokenise the window", "steps/s", 1 / timed(env_step_render_tokenise, 50))
    )
    env.close()
    print(f"VPDD at scale {args.scale} (1 torch thread):")
    for what, unit, value in rows:
        print(f"  {what:62s} {value:10.3f} {unit}")


if __name__ == "__main__":
    main()
