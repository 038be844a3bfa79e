"""VPDD's mask-and-replace discrete diffusion (methods/video/diffusion.py), checked against explicit
transition matrices on tiny vocabularies."""

from __future__ import annotations

import math

import pytest
import torch

from methods.video.diffusion import (
    LOG_ZERO,
    DiscreteDiffusionLoss,
    ImportanceTimestepSampler,
    MaskReplaceSchedule,
    TokenLayout,
    assemble_log_x0,
    log_onehot,
    q_posterior_log_probs,
    q_sample,
    sample_tokens,
    truncate_log_x0,
)

LAYOUT = TokenLayout(video_vocab=3, action_vocab=2)  # K = 6, [MASK] = 5
# a schedule where replacement is not negligible (VPDD's keeps alpha_bar + gamma_bar = 1 - 1e-6)
SOFT = dict(alpha_bar_start=0.9, alpha_bar_end=0.05, gamma_bar_start=0.04, gamma_bar_end=0.6)


def _ids(layout: TokenLayout, action: bool) -> list[int]:
    return list(range(layout.video_vocab, layout.mask_id)) if action else list(range(layout.video_vocab))


def _step_matrix(sched: MaskReplaceSchedule, t: int, action: bool) -> torch.Tensor:
    """Q_t[i, j] = q(x_t = j | x_{t-1} = i) for one modality (identity on the other's rows, unused)."""
    k, ids = sched.layout.size, _ids(sched.layout, action)
    beta = (sched.beta_action if action else sched.beta_video)[t]
    q = torch.eye(k, dtype=torch.float64)
    for i in ids:
        q[i] = 0
        q[i, ids] = beta
        q[i, i] += sched.alpha[t]
        q[i, sched.layout.mask_id] = sched.gamma[t]
    return q


def _cum_matrix(sched: MaskReplaceSchedule, t: int, action: bool) -> torch.Tensor:
    """Qbar_t = Q_0 Q_1 ... Q_t (t = -1: identity), by matrix products, not by the closed form."""
    q = torch.eye(sched.layout.size, dtype=torch.float64)
    for s in range(t + 1):
        q = q @ _step_matrix(sched, s, action)
    return q


def _brute_posterior(sched, p_x0: torch.Tensor, x_t: int, t: int, action: bool) -> torch.Tensor:
    """sum_x0 p(x0) Q_t[k, x_t] Qbar_{t-1}[x0, k] / Qbar_t[x0, x_t], over k (VQ-Diffusion's marginal)."""
    q_step, q_prev, q_cum = (
        _step_matrix(sched, t, action),
        _cum_matrix(sched, t - 1, action),
        _cum_matrix(sched, t, action),
    )
    out = torch.zeros(sched.layout.size, dtype=torch.float64)
    for x0 in _ids(sched.layout, action):
        out += p_x0[x0] * q_step[:, x_t] * q_prev[x0] / q_cum[x0, x_t]
    return out


# --- 1. schedule ------------------------------------------------------------------------------


def test_schedule_endpoints_linear_and_products():
    sched = MaskReplaceSchedule(50, TokenLayout(2048, 256))
    assert sched.alpha_bar[0].item() == pytest.approx(0.99999, abs=1e-15)
    assert sched.alpha_bar[-1].item() == pytest.approx(0.000009, abs=1e-15)
    assert sched.gamma_bar[0].item() == pytest.approx(0.000009, abs=1e-15)
    assert sched.gamma_bar[-1].item() == pytest.approx(0.99999, abs=1e-15)
    for cum in (sched.alpha_bar, sched.gamma_bar):
        assert torch.allclose(cum.diff(n=2), torch.zeros(48, dtype=torch.float64), atol=1e-14)
    # per-step values compose back to the cumulative ones
    assert torch.allclose(torch.cumprod(sched.alpha, 0), sched.alpha_bar, rtol=1e-10)
    assert torch.allclose(1 - torch.cumprod(1 - sched.gamma, 0), sched.gamma_bar, rtol=1e-10)
    assert sched.alpha[0].item() == pytest.approx(0.99999) and sched.gamma[0].item() == pytest.approx(0.000009)
    for vocab, beta, beta_bar in (
        (2048, sched.beta_video, sched.beta_bar_video),
        (256, sched.beta_action, sched.beta_bar_action),
    ):
        assert torch.allclose(beta * vocab, 1 - sched.alpha - sched.gamma, rtol=1e-12)
        assert torch.allclose(beta_bar * vocab, 1 - sched.alpha_bar - sched.gamma_bar, rtol=1e-12)
        assert bool((beta > 0).all())


# --- 2. forward corruption ----------------------------------------------------------------------


def test_q_sample_marginals_per_modality():
    layout = TokenLayout(video_vocab=5, action_vocab=3)
    sched = MaskReplaceSchedule(10, layout, **SOFT)
    batch, n_half, t_step = 2000, 50, 6
    is_action = torch.tensor([False] * n_half + [True] * n_half)
    x0 = torch.where(is_action, layout.action_offset + 1, 2).expand(batch, -1).contiguous()
    t = torch.full((batch,), t_step)
    x_t = q_sample(sched, x0, t, is_action, torch.Generator().manual_seed(0))
    a_bar, g_bar = sched.alpha_bar[t_step].item(), sched.gamma_bar[t_step].item()
    for action, beta_bar, true_id in ((False, sched.beta_bar_video, 2), (True, sched.beta_bar_action, 6)):
        b_bar = beta_bar[t_step].item()
        tokens = x_t[:, is_action == action].flatten()
        total = tokens.numel()
        counts = torch.bincount(tokens, minlength=layout.size).double() / total
        for tok in range(layout.size):
            if tok == layout.mask_id:
                expected = g_bar
            elif tok == true_id:
                expected = a_bar + b_bar
            elif tok in _ids(layout, action):
                expected = b_bar
            else:
                expected = 0.0
            tol = 5 * math.sqrt(max(expected * (1 - expected), 1e-12) / total)
            assert abs(counts[tok].item() - expected) <= tol, (action, tok, counts[tok].item(), expected)


# --- 3. posterior ---------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule_kw", [SOFT, {}], ids=["soft", "vpdd"])
def test_posterior_matches_brute_force(schedule_kw):
    sched = MaskReplaceSchedule(6, LAYOUT, **schedule_kw)
    # one position per (modality, x_t) pair: video x_t in {0,1,2,M}, action x_t in {3,4,M}
    mask = LAYOUT.mask_id
    x_t_row = torch.tensor([0, 1, 2, mask, 3, 4, mask])
    is_action = torch.tensor([False] * 4 + [True] * 3)
    gen = torch.Generator().manual_seed(1)
    allowed = LAYOUT.modality_vocab_mask(is_action).T  # [K, N]
    rows = []  # (t, p(x0) [K, N])
    for t in range(sched.num_steps):
        for x0 in range(3):  # one-hot x0 (action positions use id 3 + x0 % 2)
            ids = torch.where(is_action, LAYOUT.action_offset + x0 % 2, x0)
            rows.append((t, torch.nn.functional.one_hot(ids, LAYOUT.size).T.double()))
        soft = torch.rand(LAYOUT.size, 7, generator=gen, dtype=torch.float64) * allowed
        rows.append((t, soft / soft.sum(0, keepdim=True)))
    t = torch.tensor([r[0] for r in rows])
    p_x0 = torch.stack([r[1] for r in rows])
    x_t = x_t_row.expand(len(rows), -1)
    log_x0 = torch.log(p_x0.clamp_min(1e-300)).clamp_min(LOG_ZERO)
    got = q_posterior_log_probs(sched, log_x0, x_t, t, is_action).exp()
    for b, (step, p) in enumerate(rows):
        for n in range(7):
            want = _brute_posterior(sched, p[:, n], x_t_row[n].item(), step, bool(is_action[n]))
            assert torch.allclose(got[b, :, n], want, atol=1e-6), (step, n, got[b, :, n], want)
    # the closed-form cumulative transition agrees with the matrix product too
    for step in range(sched.num_steps):
        cum = _cum_matrix(sched, step, action=True)
        assert cum[3, 3].item() == pytest.approx((sched.alpha_bar + sched.beta_bar_action)[step].item(), abs=1e-12)
        assert cum[3, 4].item() == pytest.approx(sched.beta_bar_action[step].item(), abs=1e-12)
        assert cum[3, mask].item() == pytest.approx(sched.gamma_bar[step].item(), abs=1e-12)


# --- 4. loss values -------------------------------------------------------------------------------


def _loss_case():
    sched = MaskReplaceSchedule(6, LAYOUT, **SOFT)
    is_action = torch.tensor([False, False, False, True, True])
    x0 = torch.tensor([[0, 2, 1, 3, 4], [1, 1, 0, 4, 4], [2, 0, 0, 3, 3], [0, 1, 2, 4, 3]])
    t = torch.tensor([0, 2, 5, 3])
    x_t = q_sample(sched, x0, t, is_action, torch.Generator().manual_seed(3))
    x_t[1, 0], x_t[2, 3] = LAYOUT.mask_id, 4  # make sure both kinds of x_t appear
    return sched, is_action, x0, t, x_t


def test_loss_zero_kl_for_perfect_prediction_and_brute_force_for_uniform():
    sched, is_action, x0, t, x_t = _loss_case()
    loss_fn = DiscreteDiffusionLoss(sched)
    # perfect x0 prediction: every KL term vanishes; only t = 0's decoder NLL ~ 0 remains
    perfect = loss_fn(log_onehot(x0, LAYOUT.size), x0, x_t, t, is_action)
    assert perfect["vlb"].abs().max().item() < 1e-5 and perfect["aux"].abs().max().item() < 1e-5
    vid_logits = 40.0 * torch.nn.functional.one_hot(x0[:, :3], 3).permute(0, 2, 1).float()
    act_logits = 40.0 * torch.nn.functional.one_hot(x0[:, 3:] - 3, 2).permute(0, 2, 1).float()
    near = loss_fn(assemble_log_x0(LAYOUT, vid_logits, act_logits, is_action), x0, x_t, t, is_action)
    assert near["loss"].item() < 1e-5

    # uniform x0 prediction: compare with the explicit matrices
    p_t = torch.tensor([0.1, 0.2, 0.3, 0.4])
    out = loss_fn(assemble_log_x0(LAYOUT, torch.zeros(4, 3, 3), None, is_action), x0, x_t, t, is_action, p_t=p_t)
    total = 0.0
    for b in range(4):
        step = t[b].item()
        vlb = aux = 0.0
        for n in range(5):
            action = bool(is_action[n])
            ids = _ids(LAYOUT, action)
            onehot = torch.zeros(LAYOUT.size, dtype=torch.float64)
            onehot[x0[b, n]] = 1
            uniform = torch.zeros(LAYOUT.size, dtype=torch.float64)
            uniform[ids] = 1 / len(ids)
            model = _brute_posterior(sched, uniform, x_t[b, n].item(), step, action)
            true = _brute_posterior(sched, onehot, x_t[b, n].item(), step, action)
            if step == 0:
                nll = -math.log(model[x0[b, n]].item())
                vlb, aux = vlb + nll, aux + nll
            else:
                keep = true > 0
                vlb += (true[keep] * (true[keep] / model[keep]).log()).sum().item()
                aux += math.log(len(ids))
        assert out["vlb"][b].item() == pytest.approx(vlb, rel=1e-5, abs=1e-6)
        assert out["aux"][b].item() == pytest.approx(aux, rel=1e-5)
        total += (vlb + 5e-4 * ((1 - step / 6) + 1) * aux) / p_t[b].item()
    assert out["loss"].item() == pytest.approx(total / x0.numel(), rel=1e-5)


# --- 5. loss mask ---------------------------------------------------------------------------------


def test_loss_mask_blocks_gradient_outside_mask():
    sched, is_action, x0, t, x_t = _loss_case()
    gen = torch.Generator().manual_seed(4)
    vid_logits = torch.randn(4, 3, 3, generator=gen, requires_grad=True)
    act_logits = torch.randn(4, 2, 2, generator=gen, requires_grad=True)
    loss_fn = DiscreteDiffusionLoss(sched)
    out = loss_fn(
        assemble_log_x0(LAYOUT, vid_logits, act_logits, is_action), x0, x_t, t, is_action, loss_mask=is_action
    )
    out["loss"].backward()
    assert torch.equal(vid_logits.grad, torch.zeros_like(vid_logits))
    assert act_logits.grad.abs().sum().item() > 0
    # normalised by the counted positions: the masked loss is the action part of the per-position sum
    with torch.no_grad():
        log_x0 = assemble_log_x0(LAYOUT, vid_logits, act_logits, is_action)
        full = loss_fn(log_x0, x0, x_t, t, is_action, loss_mask=torch.ones(5, dtype=torch.bool))
        plain = loss_fn(log_x0, x0, x_t, t, is_action)
        video = loss_fn(log_x0, x0, x_t, t, is_action, loss_mask=~is_action)
    assert full["loss"].item() == pytest.approx(plain["loss"].item(), rel=1e-6)
    assert (2 * out["loss"] + 3 * video["loss"]).item() == pytest.approx(5 * plain["loss"].item(), rel=1e-5)


# --- 6. importance sampler ----------------------------------------------------------------------


def test_importance_sampler_uniform_then_sqrt_ema():
    sampler = ImportanceTimestepSampler(4)
    losses = {0: 0.5, 1: 2.0, 2: 1.0, 3: 3.0}
    for _ in range(10):  # every t seen exactly 10 times: still uniform
        sampler.update(torch.tensor([0, 1, 2, 3]), torch.tensor([losses[s] for s in range(4)]))
    t, p_t = sampler.sample(64, torch.Generator().manual_seed(0))
    assert torch.allclose(p_t, torch.full((64,), 0.25))
    sampler.update(torch.tensor([0, 1, 2]), torch.tensor([losses[s] for s in range(3)]))
    assert torch.allclose(sampler.probs(), torch.full((4,), 0.25, dtype=torch.float64))  # t = 3 seen 10 times
    sampler.update(torch.tensor([3]), torch.tensor([losses[3]]))
    # 11 EMA updates from 0 with rate 0.1 of a constant L^2
    hist = torch.tensor([losses[s] ** 2 * (1 - 0.9**11) for s in range(4)], dtype=torch.float64)
    assert torch.allclose(sampler.history, hist, rtol=1e-6)
    root = hist.sqrt() + 1e-4
    root[0] = root[1]  # the decoder term borrows t = 1's weight
    want = root / root.sum()
    assert torch.allclose(sampler.probs(), want, rtol=1e-5)
    t, p_t = sampler.sample(20000, torch.Generator().manual_seed(1))
    assert torch.allclose(p_t.double(), want[t], rtol=1e-6)
    freq = torch.bincount(t, minlength=4).double() / 20000
    assert torch.allclose(freq, want, atol=0.015)


# --- 7. truncation and sampling ---------------------------------------------------------------


def test_truncation_keeps_top_mass():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3], dtype=torch.float64)
    log_p = probs.log()[None, :, None]
    cases = {0.88: [0.15, 0.5, 0.0, 0.3], 0.8: [0.0, 0.5, 0.0, 0.3], 0.5: [0.0, 1.0, 0.0, 0.0], 0.3: [0.0, 1.0, 0, 0]}
    for r, kept in cases.items():
        want = torch.tensor(kept, dtype=torch.float64)
        got = truncate_log_x0(log_p, r)[0, :, 0].exp()
        assert torch.allclose(got, want / want.sum(), atol=1e-12), (r, got)


def test_sample_tokens_fixed_denoiser_and_clamping():
    layout = TokenLayout(video_vocab=4, action_vocab=3)
    sched = MaskReplaceSchedule(8, layout)
    is_action = torch.tensor([False, False, False, False, True, True])
    target = torch.tensor([[3, 0, 1, 2, 5, 6], [0, 0, 2, 1, 4, 4], [1, 3, 3, 0, 6, 5]])
    out = sample_tokens(lambda x, t: log_onehot(target, layout.size), 3, is_action, sched)
    assert torch.equal(out, target)

    where = torch.tensor([False, True, False, False, True, False])
    values = torch.where(where, torch.tensor([0, 2, 0, 0, 6, 0]), 0).expand(3, -1)
    seen = []

    def denoise(x_t, t):
        seen.append(t[0].item())
        assert torch.equal(x_t[:, where], values[:, where])  # known tokens are fed in at every step
        return log_onehot(target, layout.size)

    out = sample_tokens(denoise, 3, is_action, sched, known=(where, values))
    assert seen == list(range(7, -1, -1))
    assert torch.equal(out[:, where], values[:, where]) and torch.equal(out[:, ~where], target[:, ~where])

    # a uniform denoiser still ends with no [MASK] and each position within its modality
    uniform = assemble_log_x0(layout, torch.zeros(3, 4, 4), torch.zeros(3, 3, 2), is_action)
    out = sample_tokens(lambda x, t: uniform, 3, is_action, sched, generator=torch.Generator().manual_seed(5))
    assert bool((out[:, :4] < 4).all()) and bool(((out[:, 4:] >= 4) & (out[:, 4:] < 7)).all())
