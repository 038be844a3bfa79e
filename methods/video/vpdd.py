"""VPDD: "Learning an Actionable Discrete Diffusion Policy via Large-Scale Actionless Video
Pre-Training" (He et al., NeurIPS 2024; official code tinnerhrhe/VPDD). docs/papers/vpdd.md.

The algorithm as three jobs, each a stage of the DAG (methods/common/stages.py):

1. tokenizer (methods/video/tokenizer_stage.py): a VQ-VAE turns 4-frame clips into token grids;
   shared by every method and seed that agree on its settings.
2. video pre-training (methods/video/pretrain_stage.py): a Perceiver-IO learns, by mask-and-replace
   discrete diffusion, to predict the clip ``future_offset`` steps ahead from the current clip and
   a text, on robot clips and actionless "human" clips; one per seed.
3. fine-tuning (``train`` below): with the video model frozen, a causal GPT-2 action model learns
   the discretised 4-step action chunk by the same diffusion, reading the video model's features
   of the imagined future; the unified sequence is [future video tokens | action tokens] and only
   the action tokens carry loss.

Evaluation samples the whole sequence from all-[MASK] by the T reverse steps (truncated at
``truncation_r``), executes the first action of the chunk and replans at every step
(``evaluate``); it also scores the video model's predicted future clips on held-out
demonstrations (token accuracy and decoded-frame error: the offline stand-in for FVD).

Baselines from the same module: ``vpdd_no_human`` (pre-training without the actionless videos, the
paper's key ablation) and ``mt_diffusion_policy`` (no video pre-training: the video model starts
untrained and learns with the action model from the demonstrations only, same action model and
budget); methods/video/variants.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from methods.common.budget import BudgetMeter
from methods.common.constraints import Bound, at_least, positive, within
from methods.common.method_config import MethodConfig
from methods.common.runapi import UNTRAINED_KEY, Run
from methods.common.seeding import seeded
from methods.common.stages import StageSpec
from methods.video import pretrain_stage, tokenizer_stage
from methods.video.action_model import ActionModel, ActionModelConfig
from methods.video.actions import ActionTokenizer
from envs.video_episodes import Episodes, load_demonstrations
from methods.video.evaluation import future_clip_quality, rollouts
from methods.video.diffusion import (
    DiscreteDiffusionLoss,
    ImportanceTimestepSampler,
    MaskReplaceSchedule,
    TokenLayout,
    assemble_log_x0,
    q_sample,
    sample_tokens,
)
from methods.video.loop import EMAWeights, run_steps
from methods.video.pretrain_stage import load_predictor, local_video_ids, predictor_config, read_stage, text_table
from methods.video.predictor import VideoPredictor
from methods.video.tokenizer_stage import load_tokenizer

ACTION_DIM = 4  # Meta-World: dx, dy, dz, gripper


@dataclass
class Config(MethodConfig):
    """Defaults: the paper's official code (config/locomotion.py, README commands, the classes named
    in the field comments); sizes marked 'ours' are not in it."""

    CURVE_AXES = ("step",)
    BUDGET_FIELDS = ("batch", "grad_accum", "num_demos", "pretrain_steps", "pretrain_batch")
    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        **{
            name: at_least(1)
            for name in (
                "iterations",
                "eval_every",
                "checkpoint_every",
                "frames",
                "num_demos",
                "prompt_dim",
                "tokenizer_steps",
                "tokenizer_batch",
                "tokenizer_hiddens",
                "tokenizer_embedding_dim",
                "tokenizer_codes",
                "tokenizer_checkpoint_every",
                "pretrain_steps",
                "pretrain_batch",
                "pretrain_grad_accum",
                "pretrain_checkpoint_every",
                "predictor_width",
                "predictor_latents",
                "predictor_blocks",
                "ema_every",
                "log_every",
                "action_bins",
                "horizon",
                "action_width",
                "action_layers",
                "action_heads",
                "action_inner",
                "batch",
                "grad_accum",
                "eval_episodes",
                "eval_max_steps",
                "replan_every",
            )
        },
        **{
            name: at_least(0)
            for name in ("future_offset", "tokenizer_res_layers", "video_eval_clips", "ema_start", "pretrain_ema_start")
        },
        "diffusion_steps": at_least(2),
        "aux_weight": at_least(0),
        "lr": positive(),
        "pretrain_lr": positive(),
        "pretrain_human_fraction": within(0, 1),
        "ema_decay": within(0, 1),
        "dropout": within(0, 1, hi_open=True),
        "truncation_r": within(0, 1, lo_open=True),
    }

    env: str = "metaworld_video"
    env_kwargs: dict = field(default_factory=dict)
    iterations: int = 1_000_000  # fine-tuning steps (n_train_steps 1e6)
    eval_every: int = 50_000  # a curve row (training loss) every this many steps
    checkpoint_every: int = 50_000
    # ---- data (MetaDataset / MetaFinetuneDataset)
    frames: int = 4  # frames per clip
    future_offset: int = 20  # the predicted clip ends 20 env steps after the current one
    num_demos: int = 20  # demonstrations per task used for fine-tuning
    prompt_dim: int = 1024  # text feature width (CLIP-RN50's)
    # ---- stage 1: tokenizer (videogpt/vqvae.py, scripts/train_vqvae.py)
    tokenizer_steps: int = 20_000  # ours: the README trains 10 epochs of its data
    tokenizer_batch: int = 32
    tokenizer_hiddens: int = 256
    tokenizer_res_layers: int = 6
    tokenizer_embedding_dim: int = 256
    tokenizer_codes: int = 2048
    tokenizer_attention: bool = True
    tokenizer_actionless: bool = True
    tokenizer_checkpoint_every: int = 1000
    # ---- stage 2: video pre-training (pretrainModel)
    video_pretraining: bool = True  # False: no pre-training stage; the video model learns in fine-tuning
    pretrain_steps: int = 1_000_000
    pretrain_batch: int = 10
    pretrain_human_videos: bool = True
    pretrain_human_fraction: float = 0.5
    pretrain_lr: float = 2e-4
    pretrain_grad_accum: int = 2
    pretrain_ema_start: int = 2000
    pretrain_checkpoint_every: int = 10_000
    predictor_width: int = 256
    predictor_latents: int = 2048
    predictor_blocks: int = 6  # depth 12 // 2
    # ---- read by pre-training and fine-tuning alike (the fine-tuned action model must denoise
    # with the same process the frozen video model learnt)
    diffusion_steps: int = 100
    aux_weight: float = 5e-4
    ema_decay: float = 0.995
    ema_every: int = 10
    log_every: int = 100  # curve rows of the stages (fine-tuning logs every eval_every steps)
    # ---- stage 3: fine-tuning (MetaFinetuneModel_v1)
    action_bins: int = 48  # --act_classes 48: quantile bins of dx, dy, dz
    horizon: int = 4  # actions per chunk
    action_width: int = 256
    action_layers: int = 6
    action_heads: int = 2
    action_inner: int = 1024
    dropout: float = 0.1
    batch: int = 50  # README: batch 1 x 50 tasks
    grad_accum: int = 2
    lr: float = 2e-4
    ema_start: int = 2000
    finetune_predictor: bool = False  # True: the video model trains with the action model (no frozen prior)
    # ---- evaluation (scripts/test_finetune_meta.py)
    eval_episodes: int = 20  # per task
    eval_max_steps: int = 200
    truncation_r: float = 0.88
    replan_every: int = 1  # actions of each sampled chunk executed before replanning (paper: 1)
    video_eval_clips: int = 64  # held-out windows scored for the predicted future clip

    def __post_init__(self) -> None:
        if self.replan_every > self.horizon:
            raise ValueError(f"replan_every ({self.replan_every}) cannot exceed the chunk's horizon ({self.horizon})")
        human = self.video_pretraining and self.pretrain_human_videos
        if human and self.env_kwargs and not self.env_kwargs.get("actionless_episodes", 0):
            raise ValueError(
                "pretrain_human_videos needs actionless videos: set env_kwargs.actionless_episodes > 0 "
                "(or pretrain_human_videos: false)"
            )
        if self.finetune_predictor is False and self.video_pretraining is False:
            raise ValueError("video_pretraining=false needs finetune_predictor=true (a frozen untrained video model)")
        super().__post_init__()

    # ------------------------------------------------------------------ stages
    def tokenizer_settings(self) -> tokenizer_stage.Settings:
        return tokenizer_stage.Settings(
            seed=0,
            steps=self.tokenizer_steps,
            batch=self.tokenizer_batch,
            frames=self.frames,
            n_hiddens=self.tokenizer_hiddens,
            n_res_layers=self.tokenizer_res_layers,
            embedding_dim=self.tokenizer_embedding_dim,
            n_codes=self.tokenizer_codes,
            use_attention=self.tokenizer_attention,
            actionless=self.tokenizer_actionless,
            log_every=self.log_every,
            checkpoint_every=self.tokenizer_checkpoint_every,
        )

    def pretrain_settings(self) -> pretrain_stage.Settings:
        return pretrain_stage.Settings(
            steps=self.pretrain_steps,
            batch=self.pretrain_batch,
            grad_accum=self.pretrain_grad_accum,
            lr=self.pretrain_lr,
            diffusion_steps=self.diffusion_steps,
            aux_weight=self.aux_weight,
            width=self.predictor_width,
            n_latents=self.predictor_latents,
            latent_blocks=self.predictor_blocks,
            prompt_dim=self.prompt_dim,
            future_offset=self.future_offset,
            human_videos=self.pretrain_human_videos,
            human_fraction=self.pretrain_human_fraction,
            ema_decay=self.ema_decay,
            ema_every=self.ema_every,
            ema_start=self.pretrain_ema_start,
            log_every=self.log_every,
            checkpoint_every=self.pretrain_checkpoint_every,
        )

    def stages(self) -> tuple[StageSpec, ...]:
        tok = StageSpec("tokenizer", tokenizer_stage.__name__, _json(asdict(self.tokenizer_settings())), per_seed=False)
        if not self.video_pretraining:
            return (tok,)
        settings = {k: v for k, v in asdict(self.pretrain_settings()).items() if k != "seed"}
        return tok, StageSpec("pretrain", pretrain_stage.__name__, settings, per_seed=True, needs=("tokenizer",))

    def planned_work(self) -> dict[str, int]:
        # fine-tuning only: the stages are shared, and the cost plan counts each once (pipeline/costs.py)
        return {"iterations": self.iterations, "updates": self.iterations}


def _json(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ---------------------------------------------------------------------------------------- the policy
class Policy:
    """The tokenizer, video model and action model together, with the token layout they share."""

    def __init__(
        self, cfg: Config, tok: dict, predictor: VideoPredictor, action_model: ActionModel, actions: ActionTokenizer
    ):
        self.cfg, self.device = cfg, next(action_model.parameters()).device
        self.tokenizer = load_tokenizer(tok, self.device)
        self.codebook = self.tokenizer.codebook
        self.predictor, self.action_model, self.actions = predictor, action_model, actions
        self.tokenizer_frames = int(tok["frames"])
        self.latent_shape = tuple(tok["latent_shape"])
        self.n_video = int(np.prod(self.latent_shape))
        self.n_action = cfg.horizon * ACTION_DIM
        self.layout = TokenLayout(video_vocab=self.codebook.shape[0], action_vocab=cfg.action_bins)
        self.schedule = MaskReplaceSchedule(cfg.diffusion_steps, self.layout)
        self.is_action = torch.cat(
            [torch.zeros(self.n_video, dtype=torch.bool), torch.ones(self.n_action, dtype=torch.bool)]
        ).to(self.device)

    def video(
        self, x_t: torch.Tensor, t: torch.Tensor, history: torch.Tensor, prompt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The video model's logits ``[B, Vv, n_video]`` and features of the noisy future clip."""
        video = local_video_ids(x_t[:, : self.n_video], self.layout)
        return self.predictor(video, t, history, prompt, self.codebook)

    def log_x0_given_video(
        self,
        video: tuple[torch.Tensor, torch.Tensor],
        x_t: torch.Tensor,
        t: torch.Tensor,
        prompt: torch.Tensor,
    ) -> torch.Tensor:
        """log p(x0 | x_t) over the unified sequence ``[B, K, n_video + n_action]``, from the video
        model's output and the action model run on the noisy action tokens."""
        video_logits, features = video
        act = x_t[:, self.n_video :] - self.layout.action_offset
        act = torch.where(
            x_t[:, self.n_video :] == self.layout.mask_id, torch.full_like(act, self.cfg.action_bins), act
        )
        action_logits = self.action_model(features, act, t, prompt)
        return assemble_log_x0(self.layout, video_logits, action_logits, self.is_action)

    def log_x0(self, x_t: torch.Tensor, t: torch.Tensor, history: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        return self.log_x0_given_video(self.video(x_t, t, history, prompt), x_t, t, prompt)

    @torch.no_grad()
    def sample(self, history: torch.Tensor, prompt: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Sampled token ids ``[B, n_video + n_action]`` (future clip, action chunk)."""
        return sample_tokens(
            lambda x_t, t: self.log_x0(x_t, t, history, prompt),
            len(history),
            self.is_action,
            self.schedule,
            truncation_r=self.cfg.truncation_r,
            generator=gen,
        )

    def chunk(self, x: torch.Tensor) -> np.ndarray:
        """The continuous action chunk ``[B, horizon, 4]`` of sampled ids."""
        ids = (x[:, self.n_video :] - self.layout.action_offset).clamp(0, self.cfg.action_bins - 1)
        return self.actions.decode(ids.view(-1, self.cfg.horizon, ACTION_DIM).cpu().numpy())


def action_model_config(cfg: Config, n_video: int, feature_dim: int) -> ActionModelConfig:
    return ActionModelConfig(
        n_action_codes=cfg.action_bins,
        action_dim=ACTION_DIM,
        horizon=cfg.horizon,
        video_feature_dim=feature_dim,
        n_video_tokens=n_video,
        prompt_dim=cfg.prompt_dim,
        width=cfg.action_width,
        layers=cfg.action_layers,
        heads=cfg.action_heads,
        inner=cfg.action_inner,
        dropout=cfg.dropout,
    )


@dataclass
class FineTuneItems:
    """Every step of the fine-tuning demonstrations: history / target rows of the token table,
    the action chunk's tokens and the task text."""

    history: np.ndarray
    target: np.ndarray
    actions: np.ndarray  # [n, horizon * 4] token ids in [0, action_bins)
    text: np.ndarray
    texts: list[str]

    @classmethod
    def of(cls, demos: Episodes, ids: np.ndarray, cfg: Config, tokenizer: ActionTokenizer) -> FineTuneItems:
        pairs = pretrain_stage.ClipPairs.of(demos, np.zeros((0, 0)), ids, cfg.future_offset)
        chunks = []
        for e in ids:
            start, length = int(demos.starts[e]), int(demos.lengths[e])
            t = np.arange(length)[:, None] + np.arange(cfg.horizon)[None]
            chunks.append(demos.actions[start + np.minimum(t, length - 1)])  # [L, horizon, 4]
        tokens = tokenizer.encode(np.concatenate(chunks)).reshape(len(pairs), -1)
        return cls(pairs.history, pairs.target, tokens, pairs.text, pairs.texts)


def fit_action_tokenizer(demos: Episodes, ids: np.ndarray, bins: int) -> ActionTokenizer:
    rows = np.concatenate([np.arange(demos.starts[e], demos.starts[e] + demos.lengths[e]) for e in ids])
    return ActionTokenizer.fit(demos.actions[rows], demos.expert_gripper[rows], bins)


def build_networks(
    cfg: Config, tok: dict, pre: dict | None, n_codes_dim: tuple[int, int], device: torch.device
) -> tuple[VideoPredictor, ActionModel]:
    """The video model (pre-trained, or untrained where there is no pre-training) and a new action model."""
    n_video = int(np.prod(tok["latent_shape"]))
    if pre is not None:
        predictor = load_predictor(pre, device)
    else:
        predictor = VideoPredictor(
            predictor_config(cfg.pretrain_settings(), n_codes_dim[0], n_codes_dim[1], n_video)
        ).to(device)
    action_model = ActionModel(action_model_config(cfg, n_video, predictor.cfg.width)).to(device)
    return predictor, action_model


# ---------------------------------------------------------------------------------------- fine-tuning
def train(cfg: Config, run: Run) -> dict[str, float]:
    tok = read_stage(run.stage_dirs["tokenizer"])
    pre = read_stage(run.stage_dirs["pretrain"]) if cfg.video_pretraining else None
    demos = load_demonstrations(run.assets_dir)
    ids = demos.first_episodes_per_task(cfg.num_demos)
    action_tok = fit_action_tokenizer(demos, ids, cfg.action_bins)
    items = FineTuneItems.of(demos, ids, cfg, action_tok)
    codebook = load_tokenizer(tok).codebook
    torch.manual_seed(run.seed)
    predictor, action_model = build_networks(cfg, tok, pre, tuple(codebook.shape), run.device)
    policy = Policy(cfg, tok, predictor, action_model, action_tok)
    texts = text_table(items.texts, cfg.prompt_dim).to(run.device)
    token_rows = torch.as_tensor(tok["demo_tokens"].astype(np.int64))

    trainable = list(action_model.parameters()) + (list(predictor.parameters()) if cfg.finetune_predictor else [])
    opt = torch.optim.Adam(trainable, lr=cfg.lr)
    ema_action = EMAWeights(action_model, cfg.ema_decay, cfg.ema_start, cfg.ema_every)
    ema_video = EMAWeights(predictor, cfg.ema_decay, cfg.ema_start, cfg.ema_every) if cfg.finetune_predictor else None
    loss_fn = DiscreteDiffusionLoss(policy.schedule, aux_weight=cfg.aux_weight)
    sampler = ImportanceTimestepSampler(cfg.diffusion_steps)
    gen = torch.Generator(device=run.device).manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)
    budget = BudgetMeter(unit="transitions")
    loss_mask = policy.is_action.float()

    def model_state() -> dict[str, Any]:
        return {
            "config": cfg.to_dict(),
            "tokenizer": {k: tok[k] for k in ("config", "state", "frames", "latent_shape")},
            "predictor": {"config": asdict(predictor.cfg), "state": (ema_video or predictor).state_dict()},
            "action_model": {"config": asdict(action_model.cfg), "state": ema_action.state_dict()},
            "actions": action_tok.state_dict(),
        }

    def step_fn(step: int) -> dict[str, float]:
        predictor.train(cfg.finetune_predictor)
        action_model.train()
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(cfg.grad_accum):
            i = rng.integers(len(items.history), size=cfg.batch)
            history = token_rows[items.history[i]].to(run.device)
            x0 = torch.cat(
                [
                    token_rows[items.target[i]],
                    torch.as_tensor(items.actions[i]) + policy.layout.action_offset,
                ],
                dim=1,
            ).to(run.device)
            prompt = texts[torch.as_tensor(items.text[i])]
            t, p_t = sampler.sample(cfg.batch, gen, device=run.device)
            x_t = q_sample(policy.schedule, x0, t, policy.is_action, gen)
            if not cfg.finetune_predictor:  # the frozen video model: no graph, outside the counted step
                with torch.no_grad():
                    video = policy.video(x_t, t, history, prompt)
            with budget.measure_flops():
                if cfg.finetune_predictor:
                    video = policy.video(x_t, t, history, prompt)
                log_x0 = policy.log_x0_given_video(video, x_t, t, prompt)
                out = loss_fn(log_x0, x0, x_t, t, policy.is_action, loss_mask, p_t)
                (out["loss"] / cfg.grad_accum).backward()
            budget.step(cfg.batch)
            sampler.update(t, out["vlb"])
            total += out["loss"].item() / cfg.grad_accum
        opt.step()
        ema_action.update(action_model, step)
        if ema_video is not None:
            ema_video.update(predictor, step)
        return {"loss": total}

    # a resumed run's checkpoint brings back the untrained model saved here at its start. Its video
    # model is the pre-training stage's own step-0 model: before *any* of the method's training,
    # so the guards' "did it learn" covers pre-training too (the future-clip metrics are made by
    # the video model, which fine-tuning leaves frozen)
    untrained = model_state()
    if pre is not None and UNTRAINED_KEY in pre:
        untrained["predictor"] = pre[UNTRAINED_KEY]
    run.save_untrained_model(untrained)
    run_steps(
        run,
        steps=cfg.iterations,
        log_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        step_fn=step_fn,
        stateful={
            "predictor": predictor,
            "action_model": action_model,
            "opt": opt,
            "ema_action": ema_action,
            **({"ema_video": ema_video} if ema_video is not None else {}),
            "sampler": sampler,
            "budget": budget,
        },
        gen=gen,
        rng=rng,
    )
    run.record_budget(budget.summary())
    run.save_model(model_state())
    return {}


# ---------------------------------------------------------------------------------------- evaluation
def load_policy(cfg: Config, model: dict[str, Any], device: torch.device) -> Policy:
    predictor = load_predictor(model["predictor"], device)
    action_model = ActionModel(ActionModelConfig(**model["action_model"]["config"])).to(device)
    action_model.load_state_dict(model["action_model"]["state"])
    action_model.eval()
    return Policy(cfg, model["tokenizer"], predictor, action_model, ActionTokenizer.from_state_dict(model["actions"]))


def evaluate(
    cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu", assets_dir: Any = None
) -> dict[str, Any]:
    """Success rate on every task (``eval_episodes`` new initial states each, VPDD's protocol:
    replan every step, execute the chunk's first action, success if any step succeeds) and the
    video model's predicted future clips on held-out demonstrations. A pure function of (model, seed)."""
    with seeded(seed):
        dev = torch.device(device)
        policy = load_policy(cfg, model, dev)
        demos = load_demonstrations(assets_dir)
        gen = torch.Generator(device=dev).manual_seed(seed)
        per_task, returns = rollouts(policy, demos, seed, gen)
        video = future_clip_quality(policy, demos, seed, gen)  # methods/video/evaluation.py
    success = [float(np.mean(v)) for v in per_task.values()]
    metrics = {"success_rate": float(np.mean(success)), "return_mean": float(np.mean(returns)), **video}
    metrics.update({f"success_{name}": s for name, s in zip(per_task, success)})
    return {"metrics": metrics, "per_episode": {"return": returns}, "n_episodes": len(returns)}
