"""VPDD networks (methods/video/predictor.py, action_model.py, networks.py): output shapes, the
action model's causal order, the multiplicative conditioning formula, the video predictor's
dependences and batch independence, frozen use of the predictor, and the paper-size parameter
counts. Tiny sizes, CPU."""

from __future__ import annotations

import pytest
import torch

from methods.video.action_model import ActionModel, ActionModelConfig
from methods.video.networks import count_parameters, multiplicative_condition
from methods.video.predictor import PredictorConfig, VideoPredictor

B, NV, NH, VV, D, P = 3, 6, 5, 11, 8, 7
H, DA, VA = 3, 2, 9  # horizon, action dims, action bins

PCFG = PredictorConfig(
    n_video_codes=VV,
    code_dim=D,
    prompt_dim=P,
    width=32,
    n_latents=16,
    latent_blocks=2,
    heads=1,
    head_dim=16,
    max_history_tokens=NH,
    max_video_tokens=NV,
)
ACFG = ActionModelConfig(
    n_action_codes=VA,
    action_dim=DA,
    horizon=H,
    video_feature_dim=32,
    n_video_tokens=NV,
    prompt_dim=P,
    width=32,
    layers=2,
    heads=2,
    inner=64,
)


def _pos_nonzero(model: torch.nn.Module) -> None:
    """The positional embedding starts at zero (as officially); make it non-trivial for tests."""
    with torch.no_grad():
        model.pos_embedding.normal_()


def _predictor(seed: int = 0) -> VideoPredictor:
    torch.manual_seed(seed)
    m = VideoPredictor(PCFG).eval()
    _pos_nonzero(m)
    return m


def _action_model(seed: int = 0) -> ActionModel:
    torch.manual_seed(seed)
    m = ActionModel(ACFG).eval()
    _pos_nonzero(m)
    return m


def _predictor_inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    noisy = torch.randint(0, VV + 1, (B, NV), generator=g)
    noisy[:, 0] = VV  # at least one [MASK]
    t = torch.randint(0, 100, (B,), generator=g)
    hist = torch.randint(0, VV, (B, NH), generator=g)
    prompt = torch.randn(B, P, generator=g)
    codebook = torch.randn(VV, D, generator=g)
    return noisy, t, hist, prompt, codebook


def _action_inputs(seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(B, NV, 32, generator=g)
    acts = torch.randint(0, VA + 1, (B, H * DA), generator=g)
    t = torch.randint(0, 100, (B,), generator=g)
    prompt = torch.randn(B, P, generator=g)
    return feats, acts, t, prompt


def test_output_shapes():
    pred = _predictor()
    logits, feats = pred(*_predictor_inputs())
    assert logits.shape == (B, VV, NV)
    assert feats.shape == (B, NV, PCFG.width)
    act = _action_model()
    out = act(feats, _action_inputs()[1], *_action_inputs()[2:])
    assert out.shape == (B, VA, H * DA)
    assert torch.isfinite(logits).all() and torch.isfinite(out).all()


@pytest.mark.parametrize("j", [0, 3, H * DA - 1])
def test_action_tokens_are_causal(j):
    """Head reads the token's own position: logits at k < j are bit-identical when token j changes;
    some logits at k >= j change."""
    model = _action_model()
    feats, acts, t, prompt = _action_inputs()
    with torch.no_grad():
        base = model(feats, acts, t, prompt)
        acts2 = acts.clone()
        acts2[:, j] = (acts2[:, j] + 4) % (VA + 1)
        moved = model(feats, acts2, t, prompt)
    assert torch.equal(base[:, :, :j], moved[:, :, :j])
    diff = (base[:, :, j:] - moved[:, :, j:]).abs().amax(dim=(0, 1))
    assert diff[0] > 1e-6  # its own position
    assert (diff > 1e-6).all()  # and every later one


def test_video_features_and_prompt_reach_every_action_logit():
    model = _action_model()
    feats, acts, t, prompt = _action_inputs()
    with torch.no_grad():
        base = model(feats, acts, t, prompt)
        f2 = feats.clone()
        f2[:, NV - 1] += 1.0  # the last video token: only action tokens come after it
        by_video = (model(f2, acts, t, prompt) - base).abs().amax(dim=(0, 1))
        # (a constant shift of the prompt would vanish in its input LayerNorm)
        p2 = prompt.clone()
        p2[:, 0] += 1.0
        by_prompt = (model(feats, acts, t, p2) - base).abs().amax(dim=(0, 1))
        by_time = (model(feats, acts, t + 7, prompt) - base).abs().amax(dim=(0, 1))
    for diff in (by_video, by_prompt, by_time):
        assert (diff > 1e-6).all()


def test_multiplicative_conditioning_formula():
    """The pre-LayerNorm input is prompt * x * time + pos, for both networks."""
    # the helper itself on a hand case
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    t_emb, p_emb = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, 3.0]])
    pos = torch.tensor([[[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]])
    expect = torch.tensor([[[1.0 * 0.5 * 2 + 10, 2.0 * 3 * -1 + 20], [3.0 * 0.5 * 2 + 30, 4.0 * 3 * -1 + 40]]])
    assert torch.equal(multiplicative_condition(tokens, t_emb, p_emb, pos), expect)

    for model, args, parts in (
        (_predictor(), _predictor_inputs(), ("history_embed", "target_embed")),
        (_action_model(), _action_inputs(), ("video_proj", "action_embed")),
    ):
        seen = {}
        hooks = [model.embed_ln.register_forward_pre_hook(lambda m, a: seen.__setitem__("pre_ln", a[0]))]
        for name in ("time_embed", "prompt_embed", *parts):
            hooks.append(getattr(model, name).register_forward_hook(lambda m, a, o, n=name: seen.__setitem__(n, o)))
        with torch.no_grad():
            model(*args)
        t_emb, p_emb = seen["time_embed"], seen["prompt_embed"]
        rows = [seen[n] for n in parts]
        if isinstance(model, VideoPredictor):  # [MASK] targets use the learned vector
            rows[1] = torch.where(args[0][..., None] == VV, model.mask_embedding, rows[1])
        x = torch.cat([t_emb[:, None], p_emb[:, None], *rows], dim=1)
        pos = model.pos_embedding[:, : x.shape[1]]
        torch.testing.assert_close(seen["pre_ln"], p_emb[:, None] * x * t_emb[:, None] + pos, rtol=0, atol=1e-6)

        # zero the prompt path's output: every input row collapses to its positional embedding
        with torch.no_grad():
            model.prompt_embed[-1].weight.zero_()
            model.prompt_embed[-1].bias.zero_()
            model(*args)
        for h in hooks:
            h.remove()
        assert torch.equal(seen["pre_ln"], pos.expand_as(seen["pre_ln"]))


def test_predictor_depends_on_history_and_codebook():
    model = _predictor()
    noisy, t, hist, prompt, codebook = _predictor_inputs()
    with torch.no_grad():
        base, _ = model(noisy, t, hist, prompt, codebook)
        h2 = hist.clone()
        h2[:, 0] = (h2[:, 0] + 1) % VV
        by_hist = (model(noisy, t, h2, prompt, codebook)[0] - base).abs().amax()
        by_code = (model(noisy, t, hist, prompt, codebook + 0.5)[0] - base).abs().amax()
    assert by_hist > 1e-6 and by_code > 1e-6


def test_predictor_has_no_cross_batch_dependence():
    model = _predictor()
    noisy, t, hist, prompt, codebook = _predictor_inputs()
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        logits, feats = model(noisy, t, hist, prompt, codebook)
        logits_p, feats_p = model(noisy[perm], t[perm], hist[perm], prompt[perm], codebook)
    torch.testing.assert_close(logits_p, logits[perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feats_p, feats[perm], rtol=1e-5, atol=1e-5)


def test_frozen_predictor_feeds_action_model():
    pred = _predictor()
    inputs = _predictor_inputs()
    with torch.no_grad():
        f1 = pred(*inputs)[1]
        f2 = pred(*inputs)[1]
    assert torch.equal(f1, f2)

    # gradient flows into the action model, never into the predictor or the codebook
    codebook = inputs[4].clone().requires_grad_(True)
    feats = pred(*inputs[:4], codebook)[1].detach()
    act = _action_model().train()
    _, acts, t, prompt = _action_inputs()
    act(feats, acts, t, prompt).logsumexp(dim=1).sum().backward()
    assert all(p.grad is None for p in pred.parameters())
    assert codebook.grad is None
    assert all(p.grad is not None for p in act.parameters())


def test_codebook_gets_no_gradient_even_when_training_predictor():
    pred = _predictor().train()
    noisy, t, hist, prompt, codebook = _predictor_inputs()
    codebook.requires_grad_(True)
    logits, _ = pred(noisy, t, hist, prompt, codebook)
    logits.sum().backward()
    assert codebook.grad is None
    assert pred.latents.grad is not None and pred.head.weight.grad is not None


def test_bad_ids_are_rejected():
    pred, act = _predictor(), _action_model()
    noisy, t, hist, prompt, codebook = _predictor_inputs()
    with pytest.raises(ValueError):
        pred(noisy, t, torch.full_like(hist, VV), prompt, codebook)  # [MASK] is not a history id
    feats, acts, t2, prompt2 = _action_inputs()
    with pytest.raises(ValueError):
        act(feats, torch.full_like(acts, VA + 1), t2, prompt2)


def test_paper_size_parameter_counts():
    with torch.device("meta"):
        pred, act = VideoPredictor(PredictorConfig()), ActionModel(ActionModelConfig())
    n_pred, n_act = count_parameters(pred), count_parameters(act)
    print(f"paper-size parameters: VideoPredictor {n_pred:,}, ActionModel {n_act:,}")
    assert 6_000_000 < n_pred < 10_000_000
    assert 5_000_000 < n_act < 8_000_000
