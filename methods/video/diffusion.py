"""Mask-and-replace discrete diffusion over one token sequence holding two modalities (VPDD, He et al. 2024).

VPDD follows VQ-Diffusion (Gu et al. 2022). Token ids are global: video codes ``0..Vv-1``, action
codes ``Vv..Vv+Va-1`` and one ``[MASK] = Vv+Va``, so ``K = Vv+Va+1``. Every position belongs to one
modality (``is_action: [N]``) and only ever holds tokens of that modality or ``[MASK]``.

Step index convention (the official code's): ``t in {0..T-1}``; ``x_t`` is the sequence after
``t+1`` corruption steps, so ``t = 0`` is the least noisy latent and ``x_{-1}`` is the data ``x_0``.

One forward step from a token of modality m (vocabulary size K_m):
    keep               w.p. alpha_t + beta_t
    each other token   w.p. beta_t             (same modality only)
    [MASK]             w.p. gamma_t            ([MASK] is absorbing)
with beta_t = (1 - alpha_t - gamma_t) / K_m. After t+1 steps the same form holds with the cumulative
alpha_bar_t, gamma_bar_t, beta_bar_t. VPDD's schedule makes alpha_bar fall and gamma_bar rise linearly.

The network predicts p_theta(x_0 | x_t) (x0-parameterisation). The reverse step marginalises it:
    p_theta(x_{t-1} | x_t) = sum_{x0} q(x_{t-1} | x_t, x0) p_theta(x0 | x_t)
                           = q(x_t | x_{t-1}) * sum_{x0} q(x_{t-1} | x0) p_theta(x0 | x_t) / q(x_t | x0).
Training minimises the VLB (KL per step, decoder NLL at t = 0) plus a small auxiliary
cross-entropy on x0, with timesteps importance-sampled by the running size of each L_t.

Everything is in log space; a probability that is exactly zero is ``LOG_ZERO`` (finite, so
gradients never see ``inf - inf``), and posteriors are clamped to ``[LOG_EPS, 0]`` like VQ-Diffusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

LOG_EPS = -70.0  # floor that VQ-Diffusion/VPDD clamp log-probabilities to (exp(-70) ~ 4e-31)
LOG_ZERO = -1.0e4  # log of an exactly-zero probability; exp() underflows to 0 in float32


def _log(x: torch.Tensor) -> torch.Tensor:
    """log that maps 0 to a very negative finite number instead of -inf."""
    return torch.log(x.clamp_min(1e-300))


# ---------------------------------------------------------------------------------------------
# Token layout and noise schedule
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenLayout:
    """Global token ids: video ``[0, Vv)``, action ``[Vv, Vv+Va)``, then one ``[MASK]``."""

    video_vocab: int
    action_vocab: int

    @property
    def size(self) -> int:
        """K, the full vocabulary including [MASK]."""
        return self.video_vocab + self.action_vocab + 1

    @property
    def mask_id(self) -> int:
        return self.video_vocab + self.action_vocab

    @property
    def action_offset(self) -> int:
        return self.video_vocab

    def modality_vocab_mask(self, is_action: torch.Tensor) -> torch.Tensor:
        """``[N, K]`` bool: the non-mask ids each position may hold (its own modality's codes)."""
        ids = torch.arange(self.size, device=is_action.device)
        video_ids = ids < self.video_vocab
        action_ids = (ids >= self.video_vocab) & (ids < self.mask_id)
        return torch.where(is_action[:, None], action_ids[None, :], video_ids[None, :])

    def modality_vocab_size(self, is_action: torch.Tensor) -> torch.Tensor:
        """``[N]`` long: K_m of each position."""
        return torch.where(is_action, self.action_vocab, self.video_vocab)


class MaskReplaceSchedule:
    """Per-step and cumulative (keep, replace, mask) probabilities, float64, indexed by ``t in 0..T-1``.

    The cumulative ones are linear in t (VPDD's ``alpha_schedule``); the per-step ones are derived so
    that composing steps reproduces them exactly: alpha_t = alpha_bar_t / alpha_bar_{t-1} and
    1 - gamma_t = (1 - gamma_bar_t) / (1 - gamma_bar_{t-1}), with alpha_bar_{-1} = 1, gamma_bar_{-1} = 0.
    """

    def __init__(
        self,
        num_steps: int,
        layout: TokenLayout,
        alpha_bar_start: float = 0.99999,
        alpha_bar_end: float = 0.000009,
        gamma_bar_start: float = 0.000009,
        gamma_bar_end: float = 0.99999,
    ):
        if num_steps < 2:
            raise ValueError(f"num_steps must be >= 2 (the schedule interpolates between two ends), got {num_steps}")
        self.num_steps = num_steps
        self.layout = layout
        frac = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
        self.alpha_bar = alpha_bar_start + frac * (alpha_bar_end - alpha_bar_start)
        self.gamma_bar = gamma_bar_start + frac * (gamma_bar_end - gamma_bar_start)
        if not bool((self.alpha_bar + self.gamma_bar <= 1).all()):
            raise ValueError("alpha_bar + gamma_bar must stay <= 1")

        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        gamma_bar_prev = torch.cat([torch.zeros(1, dtype=torch.float64), self.gamma_bar[:-1]])
        self.alpha = self.alpha_bar / alpha_bar_prev
        self.gamma = 1 - (1 - self.gamma_bar) / (1 - gamma_bar_prev)

        replace = 1 - self.alpha - self.gamma  # total replacement mass, split uniformly within a modality
        replace_bar = 1 - self.alpha_bar - self.gamma_bar
        self.beta_video, self.beta_action = replace / layout.video_vocab, replace / layout.action_vocab
        self.beta_bar_video, self.beta_bar_action = replace_bar / layout.video_vocab, replace_bar / layout.action_vocab

        # log tables; the cumulative ones get an extra leading entry for t = -1 (the identity: keep w.p. 1)
        self._log_step = {
            "alpha": _log(self.alpha),
            "gamma": _log(self.gamma),
            "beta_video": _log(self.beta_video),
            "beta_action": _log(self.beta_action),
        }
        one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        self._log_cum = {
            "alpha": _log(torch.cat([one, self.alpha_bar])),
            "gamma": _log(torch.cat([zero, self.gamma_bar])),
            "beta_video": _log(torch.cat([zero, self.beta_bar_video])),
            "beta_action": _log(torch.cat([zero, self.beta_bar_action])),
        }

    @staticmethod
    def _per_position(table: dict, idx: torch.Tensor, is_action: torch.Tensor, dtype: torch.dtype):
        """(log keep, log beta, log mask), each ``[B, 1, N]``, for step indices ``idx: [B]``."""
        dev = idx.device
        pick = {name: v.to(dev)[idx].to(dtype)[:, None, None] for name, v in table.items()}
        log_beta = torch.where(is_action[None, None, :], pick["beta_action"], pick["beta_video"])
        n = is_action.numel()
        return pick["alpha"].expand(-1, 1, n), log_beta, pick["gamma"].expand(-1, 1, n)

    def log_step(self, t: torch.Tensor, is_action: torch.Tensor, dtype=torch.float32):
        """log (alpha_t, beta_t, gamma_t) of the single step x_{t-1} -> x_t, each ``[B, 1, N]``."""
        return self._per_position(self._log_step, t, is_action, dtype)

    def log_cumulative(self, t: torch.Tensor, is_action: torch.Tensor, dtype=torch.float32):
        """log (alpha_bar_t, beta_bar_t, gamma_bar_t) of x_0 -> x_t, ``t in -1..T-1`` (-1: identity)."""
        return self._per_position(self._log_cum, t + 1, is_action, dtype)


# ---------------------------------------------------------------------------------------------
# Forward process
# ---------------------------------------------------------------------------------------------


def log_onehot(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[B, N]`` ids -> ``[B, K, N]`` log one-hot (LOG_ZERO off the id)."""
    onehot = F.one_hot(x, num_classes).permute(0, 2, 1).bool()
    return torch.zeros(onehot.shape, device=x.device).masked_fill(~onehot, LOG_ZERO)


def q_sample(
    schedule: MaskReplaceSchedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    is_action: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) for ids ``x0: [B, N]`` and steps ``t: [B]`` (generator on x0's device)."""
    layout = schedule.layout
    dev = x0.device
    alpha_bar = schedule.alpha_bar.to(dev)[t][:, None]
    gamma_bar = schedule.gamma_bar.to(dev)[t][:, None]
    # one uniform decides the fate: [0, gamma_bar) -> mask, [gamma_bar, 1 - alpha_bar) -> uniform
    # same-modality token (mass K_m * beta_bar), the rest -> keep
    u = torch.rand(x0.shape, generator=generator, device=dev, dtype=torch.float64)
    k_mod = layout.modality_vocab_size(is_action).to(dev)
    offset = torch.where(is_action, layout.action_offset, 0).to(dev)
    v = torch.rand(x0.shape, generator=generator, device=dev, dtype=torch.float64)
    random_token = offset + torch.minimum((v * k_mod).long(), k_mod - 1)
    x_t = torch.where(u < gamma_bar, layout.mask_id, torch.where(u < 1 - alpha_bar, random_token, x0))
    return torch.where(x0 == layout.mask_id, x0, x_t)  # [MASK] is absorbing


# ---------------------------------------------------------------------------------------------
# Posterior q(x_{t-1} | x_t, x0) marginalised over a (soft) x0
# ---------------------------------------------------------------------------------------------


def _restrict(log_x0: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Zero the mass outside the position's modality (and on [MASK]) and renormalise over K."""
    log_x0 = log_x0.clamp_min(LOG_ZERO).masked_fill(~allowed, LOG_ZERO)
    return log_x0 - torch.logsumexp(log_x0, dim=1, keepdim=True)


def _log_lik_of_xt(x_t, log_keep, log_beta, log_gamma, allowed, mask_row):
    """log q(x_t | x_prev = k) for every k, ``[B, K, N]``, for a mask-and-replace transition."""
    is_xt = F.one_hot(x_t, allowed.shape[1]).permute(0, 2, 1).bool()
    # x_t a token: reached from itself (keep or replaced by itself) or replaced from any same-modality k
    from_token = torch.where(is_xt, torch.logaddexp(log_keep, log_beta), log_beta).masked_fill(~allowed, LOG_ZERO)
    # x_t = [MASK]: reached from any token by masking, and from [MASK] with probability 1
    from_mask = torch.where(mask_row, torch.zeros_like(log_gamma), log_gamma.masked_fill(~allowed, LOG_ZERO))
    xt_is_mask = (is_xt & mask_row).any(dim=1, keepdim=True)
    return torch.where(xt_is_mask, from_mask, from_token)


def _push_forward(log_p, log_keep, log_beta, log_gamma, allowed, mask_row):
    """log sum_k p[k] Qbar[k -> j] for every j, where p has no mass on [MASK] (it is a law of x0)."""
    log_total = torch.logsumexp(log_p, dim=1, keepdim=True)
    to_token = torch.logaddexp(log_p + log_keep, log_beta + log_total).masked_fill(~allowed, LOG_ZERO)
    return torch.where(mask_row, log_gamma + log_total, to_token)


def _posterior(schedule, log_x0, x_t, t, is_action):
    """Unclamped log p(x_{t-1} | x_t) = log sum_{x0} q(x_{t-1} | x_t, x0) p(x0), ``[B, K, N]``."""
    layout = schedule.layout
    dtype = torch.promote_types(log_x0.dtype, torch.float32)
    allowed = layout.modality_vocab_mask(is_action).T[None]  # [1, K, N]
    mask_row = torch.zeros(layout.size, 1, dtype=torch.bool, device=log_x0.device)
    mask_row[layout.mask_id] = True
    log_x0 = _restrict(log_x0.to(dtype), allowed)

    lik_bar = _log_lik_of_xt(x_t, *schedule.log_cumulative(t, is_action, dtype), allowed, mask_row)  # q(x_t|x0=k)
    ratio = (log_x0 - lik_bar).masked_fill(~allowed, LOG_ZERO)  # p(x0) / q(x_t | x0)
    prev = _push_forward(ratio, *schedule.log_cumulative(t - 1, is_action, dtype), allowed, mask_row)
    lik = _log_lik_of_xt(x_t, *schedule.log_step(t, is_action, dtype), allowed, mask_row)  # q(x_t|x_{t-1}=k)
    return lik + prev


def q_posterior_log_probs(
    schedule: MaskReplaceSchedule,
    log_x0: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    is_action: torch.Tensor,
) -> torch.Tensor:
    """log q(x_{t-1} | x_t, x0) with x0 ~ exp(log_x0) marginalised out, ``[B, K, N]``, clamped to [LOG_EPS, 0].

    ``log_x0: [B, K, N]`` (one-hot or a model's prediction; mass off the modality is ignored and the
    rest renormalised), ``x_t: [B, N]`` ids, ``t: [B]`` in 0..T-1 (t = 0 gives p(x_0 | x_t))."""
    return _posterior(schedule, log_x0, x_t, t, is_action).clamp(LOG_EPS, 0.0)


def assemble_log_x0(
    layout: TokenLayout,
    video_logits: torch.Tensor | None,
    action_logits: torch.Tensor | None,
    is_action: torch.Tensor,
) -> torch.Tensor:
    """Per-modality logits -> log p(x0 | x_t) over the global vocabulary, ``[B, K, N]``.

    ``video_logits: [B, Vv, Nv]`` in the order of the video positions, ``action_logits: [B, Va, Na]``
    likewise; ``None`` stands for a uniform prediction (VPDD's pre-training feeds zero action logits).
    Ids outside a position's modality and [MASK] get LOG_EPS."""
    given = video_logits if video_logits is not None else action_logits
    if given is None:
        raise ValueError("need video_logits or action_logits (for the batch size)")
    batch, dtype, dev = given.shape[0], torch.promote_types(given.dtype, torch.float32), given.device
    vid_pos = torch.nonzero(~is_action).squeeze(1).to(dev)
    act_pos = torch.nonzero(is_action).squeeze(1).to(dev)
    if video_logits is None:
        video_logits = torch.zeros(batch, layout.video_vocab, len(vid_pos), dtype=dtype, device=dev)
    if action_logits is None:
        action_logits = torch.zeros(batch, layout.action_vocab, len(act_pos), dtype=dtype, device=dev)
    if video_logits.shape[1:] != (layout.video_vocab, len(vid_pos)):
        raise ValueError(f"video_logits {tuple(video_logits.shape)} != [B, {layout.video_vocab}, {len(vid_pos)}]")
    if action_logits.shape[1:] != (layout.action_vocab, len(act_pos)):
        raise ValueError(f"action_logits {tuple(action_logits.shape)} != [B, {layout.action_vocab}, {len(act_pos)}]")

    out = torch.full((batch, layout.size, is_action.numel()), LOG_EPS, dtype=dtype, device=dev)
    out[:, : layout.video_vocab, vid_pos] = F.log_softmax(video_logits.to(dtype), dim=1)
    out[:, layout.action_offset : layout.mask_id, act_pos] = F.log_softmax(action_logits.to(dtype), dim=1)
    return out.clamp_min(LOG_EPS)


# ---------------------------------------------------------------------------------------------
# Timestep sampling and the loss
# ---------------------------------------------------------------------------------------------


class ImportanceTimestepSampler:
    """t ~ p_t with p_t proportional to sqrt(EMA of L_t^2), uniform until every t was seen > ``min_count`` times.

    As in VQ-Diffusion/VPDD: history starts at 0 and moves by ``ema`` (0.1) towards each new L_t^2;
    the t = 0 entry (decoder NLL, a different kind of term) is replaced by the t = 1 one."""

    def __init__(self, num_steps: int, ema: float = 0.1, min_count: int = 10, uniform: bool = False):
        self.num_steps, self.ema, self.min_count, self.uniform = num_steps, ema, min_count, uniform
        self.history = torch.zeros(num_steps, dtype=torch.float64)  # EMA of L_t^2
        self.count = torch.zeros(num_steps, dtype=torch.long)

    def probs(self) -> torch.Tensor:
        """``[T]`` float64 sampling probabilities."""
        if self.uniform or not bool((self.count > self.min_count).all()):
            return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)
        root = torch.sqrt(self.history + 1e-10) + 1e-4
        root[0] = root[1]
        return root / root.sum()

    def sample(self, batch: int, generator: torch.Generator | None = None, device=None):
        """``(t [B] long, p_t [B] float32)`` on ``device`` (the generator, if any, is a CPU one)."""
        # drawn where the generator lives (a CUDA generator cannot draw from a CPU tensor)
        p = self.probs().to(generator.device if generator is not None else "cpu")
        t = torch.multinomial(p, batch, replacement=True, generator=generator)
        return t.to(device), p[t].float().to(device)

    def update(self, t: torch.Tensor, per_sample_loss: torch.Tensor) -> None:
        """Feed each sample's L_t (``DiscreteDiffusionLoss`` 'vlb'), in batch order."""
        for step, loss in zip(t.tolist(), per_sample_loss.detach().double().cpu().tolist()):
            self.history[step] = (1 - self.ema) * self.history[step] + self.ema * loss**2
            self.count[step] += 1

    def state_dict(self) -> dict:
        return {"history": self.history.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.count = state["history"].clone(), state["count"].clone()


class DiscreteDiffusionLoss:
    """VLB + auxiliary x0 loss of VQ-Diffusion as VPDD trains it, importance-weighted by 1/p_t.

    Per position: t > 0: KL(q(x_{t-1}|x_t,x0) || p_theta(x_{t-1}|x_t)); t = 0: -log p_theta(x0|x_t).
    Auxiliary: KL(delta_x0 || p_theta(x0|x_t)) = -log p_theta(x0|x_t) at every (counted) position, replaced
    by the decoder NLL at t = 0, weighted ``aux_weight * ((1 - t/T) + 1)``. Both are summed over the
    positions in ``loss_mask``, divided by p_t, summed over the batch and divided by the number of
    counted positions (``normalize="counted"``) or by B*N (``"all"``, the official code's divisor,
    which has no loss mask)."""

    def __init__(
        self,
        schedule: MaskReplaceSchedule,
        aux_weight: float = 5e-4,
        adaptive_aux: bool = True,
        normalize: str = "counted",
    ):
        if normalize not in ("counted", "all"):
            raise ValueError(f"normalize must be 'counted' or 'all', got {normalize!r}")
        self.schedule, self.aux_weight, self.adaptive_aux, self.normalize = (
            schedule,
            aux_weight,
            adaptive_aux,
            normalize,
        )

    def __call__(
        self,
        log_x0_pred: torch.Tensor,
        x0: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        is_action: torch.Tensor,
        loss_mask: torch.Tensor | None = None,
        p_t: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``log_x0_pred: [B, K, N]``, ``x0, x_t: [B, N]``, ``t: [B]``, ``loss_mask: [N] or [B, N]``
        (bool/float, None = all), ``p_t: [B]`` (None = uniform 1/T). Returns 'loss' (scalar),
        'vlb' [B] (L_t per sample, for the timestep sampler) and 'aux' [B] (unweighted)."""
        sched, layout = self.schedule, self.schedule.layout
        num_steps = sched.num_steps
        log_model = q_posterior_log_probs(sched, log_x0_pred, x_t, t, is_action)
        log_true = q_posterior_log_probs(sched, log_onehot(x0, layout.size), x_t, t, is_action)
        kl = (log_true.exp() * (log_true - log_model)).sum(1)  # [B, N]
        decoder_nll = -log_model.gather(1, x0[:, None]).squeeze(1)
        allowed = layout.modality_vocab_mask(is_action).T[None]
        x0_ce = -_restrict(log_x0_pred, allowed).gather(1, x0[:, None]).squeeze(1)

        first = (t == 0)[:, None]
        vlb_pos = torch.where(first, decoder_nll, kl)
        aux_pos = torch.where(first, decoder_nll, x0_ce)

        weight = torch.ones_like(kl) if loss_mask is None else loss_mask.to(kl.dtype).expand_as(kl)
        vlb = (vlb_pos * weight).sum(1)
        aux = (aux_pos * weight).sum(1)
        aux_scale = self.aux_weight * (((1 - t.to(kl.dtype) / num_steps) + 1) if self.adaptive_aux else 1.0)
        if p_t is None:
            p_t = torch.full_like(vlb, 1.0 / num_steps)
        per_sample = (vlb + aux_scale * aux) / p_t.to(kl.dtype)
        count = weight.sum().clamp_min(1.0) if self.normalize == "counted" else kl.numel()
        return {"loss": per_sample.sum() / count, "vlb": vlb, "aux": aux}


# ---------------------------------------------------------------------------------------------
# Reverse sampling
# ---------------------------------------------------------------------------------------------


def truncate_log_x0(log_x0: torch.Tensor, truncation_r: float) -> torch.Tensor:
    """Keep, per position, the most probable ids until their mass reaches r ("top{r}r"), renormalised.

    The top id is always kept; id i (in descending order) is kept iff the mass before it is < r."""
    sorted_lp, order = log_x0.sort(dim=1, descending=True)
    mass = sorted_lp.exp().cumsum(dim=1)
    mass_before = torch.cat([torch.zeros_like(mass[:, :1]), mass[:, :-1]], dim=1)
    keep = torch.zeros_like(mass_before, dtype=torch.bool).scatter(1, order, mass_before < truncation_r)
    out = log_x0.masked_fill(~keep, LOG_ZERO)
    return out - torch.logsumexp(out, dim=1, keepdim=True)


@torch.no_grad()
def sample_tokens(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch: int,
    is_action: torch.Tensor,
    schedule: MaskReplaceSchedule,
    truncation_r: float = 0.88,
    generator: torch.Generator | None = None,
    known: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run the T reverse steps from all-[MASK]; returns ids ``[B, N]`` (no [MASK] left).

    ``denoise(x_t [B, N], t [B]) -> log p(x0 | x_t) [B, K, N]``. ``known = (where [N] or [B, N] bool,
    ids [B, N])`` clamps those positions (e.g. conditioning tokens) in x_t at every step and in the
    output. ``truncation_r >= 1`` disables truncation. The generator lives on ``is_action``'s device."""
    layout = schedule.layout
    dev = is_action.device
    x = torch.full((batch, is_action.numel()), layout.mask_id, dtype=torch.long, device=dev)

    def clamp_known(x: torch.Tensor) -> torch.Tensor:
        return x if known is None else torch.where(known[0].to(dev), known[1].to(dev), x)

    # a position can only ever hold its own modality's ids or [MASK]
    reachable = layout.modality_vocab_mask(is_action).T.clone()
    reachable[layout.mask_id] = True
    x = clamp_known(x)
    for step in reversed(range(schedule.num_steps)):
        t = torch.full((batch,), step, dtype=torch.long, device=dev)
        log_x0 = denoise(x, t)
        if truncation_r < 1:
            log_x0 = truncate_log_x0(log_x0, truncation_r)
        logits = _posterior(schedule, log_x0, x, t, is_action).masked_fill(~reachable[None], float("-inf"))
        if step == 0:  # the last step lands on data, which has no [MASK]
            logits[:, layout.mask_id] = float("-inf")
        u = torch.rand(logits.shape, generator=generator, device=dev, dtype=logits.dtype)
        gumbel = -torch.log(-torch.log(u.clamp(1e-30, 1.0 - 1e-7)))
        x = clamp_known((logits + gumbel).argmax(dim=1))
    return x
