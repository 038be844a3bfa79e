"""VPDD's VQ-VAE video tokenizer (methods/video/tokenizer.py): shapes, the EMA codebook on hand
cases (update, data-dependent init, dead-code restart), loss composition, a round trip on a
learnt clip, determinism, resuming from a state_dict, and the uint8 <-> clip conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from methods.video.tokenizer import (
    EMACodebook,
    SamePadConv3d,
    TokenizerConfig,
    VideoVQVAE,
    clip_to_frames,
    frames_to_clip,
    make_optimizer,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread than on cores shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_cfg(**overrides) -> TokenizerConfig:
    kw = dict(n_hiddens=16, n_res_layers=1, downsample=(1, 2, 2), embedding_dim=8, n_codes=32)
    kw.update(overrides)
    return TokenizerConfig(**kw)


def moving_squares(frames: int = 4, size: int = 16) -> torch.Tensor:
    """[3, T, H, W] in [-0.5, 0.5]: a red square moving right and a blue one moving left."""
    x = torch.full((3, frames, size, size), -0.4)
    for t in range(frames):
        x[0, t, 3:9, 2 + 2 * t : 8 + 2 * t] = 0.4
        x[2, t, 10:14, 10 - 2 * t : 14 - 2 * t] = 0.3
    return x


def codebook_with(codes: list[list[float]], decay: float = 0.99) -> EMACodebook:
    """An initialised codebook with the given code vectors, each with EMA cluster size 1."""
    cb = EMACodebook(len(codes), len(codes[0]), decay=decay)
    with torch.no_grad():
        cb.embeddings.copy_(torch.tensor(codes))
        cb.z_avg.copy_(torch.tensor(codes))
        cb.N.fill_(1.0)
        cb.initialised.fill_(True)
    return cb


def as_grid(rows: list[list[float]]) -> torch.Tensor:
    """Encodings [n, D] as a [1, D, 1, 1, n] latent."""
    return torch.tensor(rows).t()[None, :, None, None, :].contiguous()


def test_paper_defaults():
    cfg = TokenizerConfig()
    assert (cfg.n_hiddens, cfg.n_res_layers, cfg.downsample) == (256, 6, (4, 4, 4))
    assert (cfg.embedding_dim, cfg.n_codes, cfg.attn_heads, cfg.use_attention) == (256, 2048, 2, True)
    assert (cfg.ema_decay, cfg.commitment_cost, cfg.recon_scale, cfg.lr) == (0.99, 0.25, 0.06, 3e-4)
    for bad in (dict(downsample=(3, 2, 2)), dict(downsample=(1, 1, 1)), dict(n_hiddens=15), dict(attn_heads=3)):
        with pytest.raises(ValueError):
            tiny_cfg(**bad)


@pytest.mark.parametrize(
    "downsample, clip, latent",
    [
        ((4, 4, 4), (4, 96, 96), (1, 24, 24)),  # the paper: 576 tokens per 4-frame clip
        ((1, 2, 2), (4, 16, 16), (4, 8, 8)),
        ((2, 4, 8), (4, 16, 32), (2, 4, 4)),
        ((4, 2, 1), (8, 8, 8), (2, 4, 8)),
    ],
)
def test_latent_shape_matches_encode_and_decode_restores_the_clip_shape(downsample, clip, latent):
    torch.manual_seed(0)
    model = VideoVQVAE(tiny_cfg(n_hiddens=8, downsample=downsample)).eval()
    x = torch.rand(2, 3, *clip) - 0.5
    assert model.latent_shape(*clip) == latent
    idx = model.encode(x)
    assert idx.shape == (2, *latent) and idx.dtype == torch.long
    assert model.decode(idx).shape == x.shape
    assert model.codebook.shape == (32, 8) and not model.codebook.requires_grad


def test_same_padding_puts_the_odd_unit_in_front():
    """A stride-1 kernel-4 conv pads 3 per axis, 2 before and 1 after (as VideoGPT): with a one-hot
    kernel at tap (0, 0, 0) the output is the input shifted by 2 along T, H and W."""
    conv = SamePadConv3d(1, 1, 4)
    with torch.no_grad():
        conv.conv.weight.zero_()
        conv.conv.weight[0, 0, 0, 0, 0] = 1.0
        conv.conv.bias.zero_()
    x = torch.arange(1.0, 1.0 + 4 * 5 * 6).view(1, 1, 4, 5, 6)
    y = conv(x)
    assert y.shape == x.shape
    assert torch.equal(y[..., 2:, 2:, 2:], x[..., :-2, :-2, :-2])
    assert y[..., :2, :, :].abs().sum() == 0 and y[..., :, :2, :].abs().sum() == 0


def test_ema_update_matches_the_hand_formula():
    """Codes e0=(0,0), e1=(10,10), N=(1,1). Two encodings go to e0 (sum (1,1)), three to e1
    (sum (30,30)): N = .99 + .01 n = (1.01, 1.02); z_avg = .99 z_avg + .01 sum = (.01,.01), (10.2,10.2);
    Laplace-smoothed sizes w = (N + eps) / (sum N + K eps) * sum N; e = z_avg / w ~ (.0099, 10.0)."""
    cb = codebook_with([[0.0, 0.0], [10.0, 10.0]]).train()
    z = as_grid([[1.0, 0.0], [0.0, 1.0], [9.0, 10.0], [10.0, 9.0], [11.0, 11.0]])
    out = cb(z)
    assert out["indices"].flatten().tolist() == [0, 0, 1, 1, 1]
    # the quantised latents are the codes before the update
    assert torch.allclose(out["embeddings"][0, :, 0, 0, :].t(), torch.tensor([[0.0, 0.0]] * 2 + [[10.0, 10.0]] * 3))
    expect_commit = (1 + 1 + 1 + 1 + 2) / 10  # squared errors over 5 vectors x 2 dims
    assert out["commitment_loss"].item() == pytest.approx(expect_commit, rel=1e-6)

    eps = 1e-7
    n_cl = np.array([0.99 + 0.01 * 2, 0.99 + 0.01 * 3])
    z_avg = np.array([[0.01, 0.01], [0.99 * 10 + 0.01 * 30] * 2])
    w = (n_cl + eps) / (n_cl.sum() + 2 * eps) * n_cl.sum()
    expect = z_avg / w[:, None]
    assert np.allclose(cb.N.numpy(), n_cl, atol=1e-6)
    assert np.allclose(cb.z_avg.numpy(), z_avg, atol=1e-5)
    assert np.allclose(cb.embeddings.numpy(), expect, atol=1e-5)
    assert np.allclose(expect, [[0.01 / 1.01] * 2, [10.0, 10.0]], atol=1e-5)
    # perplexity of the assignment (2/5, 3/5)
    p = np.array([0.4, 0.6])
    assert out["perplexity"].item() == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-5)


def test_eval_mode_neither_initialises_nor_updates_the_codebook():
    cb = EMACodebook(4, 2).eval()
    before = {k: v.clone() for k, v in cb.state_dict().items()}
    cb(torch.randn(2, 2, 1, 3, 3))
    for k, v in cb.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_first_training_forward_initialises_codes_from_the_batch():
    """With decay 1 the EMA update leaves the init untouched, so the codes are exactly distinct
    encodings of the first batch; the `initialised` flag is state, so it is saved."""
    torch.manual_seed(0)
    cb = EMACodebook(5, 3, decay=1.0).train()
    z = torch.randn(2, 3, 1, 2, 3)  # 12 encodings >= 5 codes: drawn without replacement, no noise
    flat = z.movedim(1, -1).reshape(-1, 3)
    assert not bool(cb.initialised)
    cb(z)
    assert bool(cb.initialised) and bool(cb.state_dict()["initialised"])
    match = torch.cdist(cb.embeddings, flat).argmin(1)
    assert torch.allclose(cb.embeddings, flat[match], atol=1e-6)
    assert len(set(match.tolist())) == 5
    assert torch.equal(cb.N, torch.ones(5))

    # fewer encodings than codes: the batch is repeated with noise of std 0.01 / sqrt(D)
    cb = EMACodebook(8, 3, decay=1.0).train()
    z = torch.randn(1, 3, 1, 1, 3)
    flat = z.movedim(1, -1).reshape(-1, 3)
    cb(z)
    dist = torch.cdist(cb.embeddings, flat).min(1).values
    assert (dist < 0.05).all() and (dist > 0).all()


def test_dead_code_is_restarted_at_a_batch_encoding_and_live_codes_follow_the_ema():
    """Codes 0, 10, 1000 in 1-D; encodings 1, 2 -> code 0 and 9, 12 -> code 1; code 2 gets none, so
    its EMA size .99 < 1 marks it dead: it is overwritten by one of the encodings, while its N and
    z_avg keep their EMA values (VideoGPT does not reset them)."""
    torch.manual_seed(0)
    cb = codebook_with([[0.0], [10.0], [1000.0]]).train()
    encodings = [1.0, 2.0, 9.0, 12.0]
    out = cb(as_grid([[e] for e in encodings]))
    assert out["indices"].flatten().tolist() == [0, 0, 1, 1]

    eps = 1e-7
    n_cl = np.array([1.01, 1.01, 0.99])
    z_avg = np.array([0.01 * 3, 0.99 * 10 + 0.01 * 21, 0.99 * 1000])
    w = (n_cl + eps) / (n_cl.sum() + 3 * eps) * n_cl.sum()
    assert np.allclose(cb.embeddings[:2, 0].numpy(), (z_avg / w)[:2], atol=1e-5)
    assert cb.embeddings[2, 0].item() in encodings
    assert np.allclose(cb.N.numpy(), n_cl, atol=1e-6)
    assert np.allclose(cb.z_avg[:, 0].numpy(), z_avg, atol=1e-3)


def test_loss_is_scaled_mse_plus_weighted_commitment():
    torch.manual_seed(0)
    model = VideoVQVAE(tiny_cfg()).eval()
    x = moving_squares()[None]
    out = model(x)
    assert torch.allclose(out["recon_loss"], F.mse_loss(out["x_recon"], x) / 0.06)
    assert torch.allclose(out["loss"], out["recon_loss"] + 0.25 * out["commitment_loss"])
    with torch.no_grad():
        z = model.pre_vq_conv(model.encoder(x))
        codes = model.codebook[out["indices"]].movedim(-1, 1)
    assert torch.allclose(out["commitment_loss"], F.mse_loss(z, codes))
    assert torch.equal(out["indices"], model.encode(x))


def test_round_trip_of_a_learnt_clip():
    """200 Adam steps on two fixed moving-square clips; decode(encode(x)) must beat predicting the
    clip mean by far (seen: MSE 0.0045-0.0075 over 5 seeds vs 0.0375; threshold 0.015)."""
    torch.manual_seed(0)
    model = VideoVQVAE(tiny_cfg(use_attention=False, lr=2e-3))
    opt = make_optimizer(model)
    x = torch.stack([moving_squares(), moving_squares().flip(-1)])
    for _ in range(200):
        loss = model(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    recon = model.decode(model.encode(x))
    baseline = F.mse_loss(x.mean().expand_as(x), x).item()
    assert F.mse_loss(recon, x).item() < 0.4 * baseline
    assert torch.allclose(recon, model(x)["x_recon"], atol=1e-5)


def _train_steps(seed: int, steps: int) -> tuple[VideoVQVAE, torch.Tensor]:
    torch.manual_seed(seed)
    model = VideoVQVAE(tiny_cfg(n_hiddens=8, downsample=(2, 2, 2), use_attention=True))
    opt = make_optimizer(model)
    x = torch.rand(2, 3, 4, 8, 8) - 0.5
    for _ in range(steps):
        out = model(x)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return model, out["indices"]


def test_same_seed_gives_the_same_model():
    (m1, i1), (m2, i2) = _train_steps(3, 5), _train_steps(3, 5)
    assert torch.equal(i1, i2)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    s3 = _train_steps(4, 5)[0].state_dict()
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_state_dict_resumes_exactly():
    model, _ = _train_steps(0, 3)
    fresh = VideoVQVAE(model.cfg)
    assert not bool(fresh.quantizer.initialised)
    fresh.load_state_dict(model.state_dict())
    assert bool(fresh.quantizer.initialised)
    x = torch.rand(1, 3, 4, 8, 8) - 0.5
    torch.manual_seed(9)
    a = model(x)
    torch.manual_seed(9)
    b = fresh(x)  # a training step: must not re-initialise the codebook
    assert torch.equal(a["x_recon"], b["x_recon"])
    assert torch.equal(model.codebook, fresh.codebook)


def test_attention_switch():
    with_attn = VideoVQVAE(tiny_cfg(use_attention=True))
    without = VideoVQVAE(tiny_cfg(use_attention=False))
    assert any("attn" in k for k in with_attn.state_dict())
    assert not any("attn" in k for k in without.state_dict())


def test_frames_clip_round_trip_is_exact():
    frames = (np.arange(2 * 4 * 8 * 8 * 3) % 256).astype(np.uint8).reshape(2, 4, 8, 8, 3)
    clip = frames_to_clip(frames)
    assert clip.shape == (2, 3, 4, 8, 8) and clip.dtype == torch.float32
    assert clip.min().item() == -0.5 and clip.max().item() == 0.5
    assert clip[1, 2, 3, 4, 5].item() == pytest.approx(frames[1, 3, 4, 5, 2] / 255 - 0.5)
    back = clip_to_frames(clip)
    assert back.dtype == np.uint8 and np.array_equal(back, frames)
    # decoder outputs beyond the range saturate instead of wrapping
    assert clip_to_frames(torch.tensor([-2.0, 2.0]).view(1, 1, 1, 2)).ravel().tolist() == [0, 255]
