"""VPDD's data: Meta-World v3 corner2 frames (rendering, VPDD's rotate-crop-resize), scripted
demonstrations with action noise, task prompts and the stand-in text embedding
(envs/metaworld_video.py); the actionless Fetch/Adroit videos (envs/actionless_video.py).

Tiny settings throughout (32-pixel frames from 64-96 pixel renders, <= 60 steps): the whole module
runs in well under a minute on 2 cores with Mesa's software rasteriser."""

from __future__ import annotations

import gc
import os

from envs.offscreen import configure_headless_rendering

configure_headless_rendering()  # before anything imports mujoco's GL backends

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import envs.metaworld_video as mv  # noqa: E402
import envs.offscreen as offscreen  # noqa: E402
from envs.actionless_video import collect_actionless_videos  # noqa: E402

RES, RENDER = 32, 64


# ------------------------------------------------------------------------------------------------
# render libraries, environment variables
# ------------------------------------------------------------------------------------------------


def test_render_libraries_present_and_missing_one_is_named(monkeypatch):
    offscreen.check_render_libraries()  # this machine has them
    real = offscreen._find_render_library

    def without_egl(name):
        return None if name == "libEGL.so.1" else real(name)

    monkeypatch.setattr(offscreen, "_find_render_library", without_egl)
    with pytest.raises(RuntimeError) as err:
        offscreen.check_render_libraries()
    msg = str(err.value)
    assert "libegl1" in msg and "apt-get install" in msg
    assert "libegl-mesa0" not in msg and "libgl1-mesa-dri" not in msg  # only the missing one

    monkeypatch.setattr(offscreen, "_find_render_library", lambda name: None)
    with pytest.raises(RuntimeError) as err:
        offscreen.check_render_libraries()
    assert all(pkg in str(err.value) for pkg in ("libegl1", "libegl-mesa0", "libgl1-mesa-dri"))


def test_configure_headless_rendering_keeps_explicit_settings(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.delenv("GALLIUM_DRIVER", raising=False)
    assert offscreen.configure_headless_rendering() == "osmesa"
    assert os.environ["GALLIUM_DRIVER"] == "llvmpipe"


# ------------------------------------------------------------------------------------------------
# prompts, text embedding
# ------------------------------------------------------------------------------------------------


def test_task_prompts_cover_exactly_mt50():
    from metaworld.env_dict import MT50_V3

    assert set(mv.TASK_PROMPTS) == set(MT50_V3) and len(mv.TASK_PROMPTS) == 50
    prompts = list(mv.TASK_PROMPTS.values())
    assert all(p.strip() for p in prompts) and len(set(prompts)) == 50
    assert mv.mt50_task_names() == list(MT50_V3)
    assert mv.task_index("reach-v3") == list(MT50_V3).index("reach-v3")


def test_embed_text_deterministic_unit_norm_distinct():
    a = mv.embed_text("Push the button", 64)
    assert a.dtype == np.float32 and a.shape == (64,)
    assert np.array_equal(a, mv.embed_text("push  the BUTTON!", 64))  # case and punctuation ignored
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    assert mv.embed_text("x", 7).shape == (7,)
    vecs = np.stack([mv.embed_text(p, 256) for p in mv.TASK_PROMPTS.values()])
    cos = vecs @ vecs.T
    assert np.allclose(np.diag(cos), 1.0, atol=1e-5)
    assert cos[~np.eye(50, dtype=bool)].max() < 0.99  # all 50 prompts differ
    # word order matters a little (bigrams); shared words correlate, unrelated texts barely
    ab, ba = mv.embed_text("open the door", 256), mv.embed_text("door the open", 256)
    assert 0.5 < float(ab @ ba) < 0.999
    assert abs(float(mv.embed_text("open the door", 256) @ mv.embed_text("sweep puck", 256))) < 0.35
    assert abs(float(np.linalg.norm(mv.embed_text("", 16))) - 1.0) < 1e-5
    with pytest.raises(ValueError):
        mv.embed_text("a", 0)


# ------------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------------


def test_crop_bounds_match_vpdd_at_480():
    assert mv.crop_bounds(480) == (110, 370)
    lo, hi = mv.crop_bounds(96)
    assert (lo, hi) == (22, 74)


def test_rendered_frame_is_vpdd_rotated_crop():
    import metaworld  # noqa: F401
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from PIL import Image

    size = 96
    with mv.RenderedMetaWorld("reach-v3", resolution=RES, render_size=size) as env:
        env.reset(seed=3)
        raw = env.render_raw()
        frame = env.render()
        state = env.unwrapped.get_env_state()
        task_vec = env.unwrapped._last_rand_vec.copy()
    assert raw.shape == (size, size, 3) and raw.dtype == np.uint8
    assert frame.shape == (RES, RES, 3) and frame.dtype == np.uint8
    assert frame.std() > 10.0  # a scene, not a constant image
    lo, hi = mv.crop_bounds(size)
    by_hand = np.rot90(raw, 2)[lo:hi, lo:hi]
    by_hand = np.asarray(Image.fromarray(np.ascontiguousarray(by_hand)).resize((RES, RES), Image.Resampling.BILINEAR))
    assert np.array_equal(frame, by_hand)
    unrotated = np.asarray(Image.fromarray(np.ascontiguousarray(raw[lo:hi, lo:hi])).resize((RES, RES)))
    assert np.abs(frame.astype(int) - unrotated).mean() > 10.0

    # render_raw has gymnasium's orientation: compare with metaworld's own env.render() of the same
    # state (it keeps shadows and multisampling, so equal up to shading, far from the flipped one)
    cls = ALL_V3_ENVIRONMENTS["reach-v3"]
    gym_env = cls(render_mode="rgb_array", camera_name="corner2", width=size, height=size)
    try:
        gym_env._last_rand_vec = task_vec
        gym_env._partially_observable = False
        gym_env._set_task_called = True
        gym_env.reset()
        gym_env.set_env_state(state)
        ref = gym_env.render()
    finally:
        gym_env.close()
        del gym_env
        gc.collect()  # free gymnasium's GL objects now, not while another context is current
    same = np.abs(raw.astype(int) - ref).mean()
    flipped = np.abs(raw.astype(int) - ref[::-1, ::-1]).mean()
    assert same < 16.0 and flipped > 3 * same  # measured: 10.5 against 63.8


def test_two_envs_side_by_side_and_after_close():
    """Each env renders through its own GL context, made current per frame: frames do not depend
    on which other envs are alive or have been closed (gymnasium's renderer fails this)."""
    a = mv.RenderedMetaWorld("button-press-v3", resolution=RES, render_size=RENDER)
    b = mv.RenderedMetaWorld("button-press-v3", resolution=RES, render_size=RENDER)
    try:
        a.reset(seed=5)
        b.reset(seed=5)
        fa, fb = a.render(), b.render()
        assert np.array_equal(fa, fb) and fa.std() > 10.0
        a.close()
        gc.collect()
        assert np.array_equal(b.render(), fb)
        b.reset(seed=6)
        assert not np.array_equal(b.render(), fb)  # another seed, another scene
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------------------------------------
# demonstrations
# ------------------------------------------------------------------------------------------------


def _demos():
    return mv.collect_demonstrations(
        ["reach-v3"],
        episodes_per_task=2,
        max_steps=60,
        action_noise_std=mv.DEFAULT_ACTION_NOISE_STD,
        resolution=RES,
        render_size=RENDER,
        seed=0,
        stop_on_success_after=3,
    )


def test_collect_demonstrations_shapes_success_determinism():
    d = _demos()
    n = int(d["episode_lengths"].sum())
    assert d["frames"].shape == (n, RES, RES, 3) and d["frames"].dtype == np.uint8
    assert d["actions"].shape == (n, 4) and d["actions"].dtype == np.float32
    assert np.all(np.abs(d["actions"]) <= 1.0)
    assert d["observations"].shape == (n, 39)
    assert d["rewards"].shape == d["successes"].shape == d["step_episode"].shape == (n,)
    assert list(d["episode_starts"]) == [0, int(d["episode_lengths"][0])]
    assert list(d["task_names"]) == ["reach-v3"] and d["task_prompts"][0] == mv.TASK_PROMPTS["reach-v3"]
    assert list(d["episode_task_id"]) == [mv.task_index("reach-v3")] * 2
    assert len(set(d["episode_seeds"].tolist())) == 2
    # noise was applied, around the expert's action
    diff = d["actions"] - np.clip(d["expert_actions"], -1, 1)
    assert 0.05 < float(np.abs(diff).mean()) < 0.3
    # the expert succeeds (calibrated: seed 0's reach episodes succeed at steps 36 and 42); an
    # episode stops 3 steps after its first success
    assert d["episode_success"].any() and float(d["success_rate"]) == d["episode_success"].mean()
    for e, sl in enumerate(mv.episode_slices(d)):
        first = int(d["episode_first_success"][e])
        assert np.all(d["step_episode"][sl] == e)
        assert list(d["step_index"][sl]) == list(range(sl.stop - sl.start))
        if first >= 0:
            assert d["episode_lengths"][e] == first + 4 and d["successes"][sl][first]
            assert not d["successes"][sl][:first].any()
    # frames move
    assert np.abs(d["frames"][1:].astype(int) - d["frames"][:-1]).mean() > 0.05

    again = _demos()
    assert again.keys() == d.keys()
    for key in d:
        assert np.array_equal(d[key], again[key]), key


# ------------------------------------------------------------------------------------------------
# actionless videos
# ------------------------------------------------------------------------------------------------


def test_collect_actionless_videos_shapes_captions_determinism():
    def collect():
        return collect_actionless_videos(2, max_steps=12, resolution=RES, seed=1, render_size=RENDER)

    v = collect()
    assert list(v["episode_source"]) == ["fetch", "adroit"]
    assert list(v["episode_lengths"]) == [12, 12]
    assert v["frames"].shape == (24, RES, RES, 3) and v["frames"].dtype == np.uint8
    assert not any(key.endswith("actions") for key in v)  # actions are discarded
    assert all(len(c) > 10 for c in v["captions"])
    assert "robot" in v["captions"][0] and "hand" in v["captions"][1]
    for sl in mv.episode_slices(v):
        clip = v["frames"][sl].astype(int)
        assert clip.std() > 10.0 and np.abs(clip[-1] - clip[0]).mean() > 0.1  # a scene that moves
    again = collect()
    for key in v:
        assert np.array_equal(v[key], again[key]), key
    other = collect_actionless_videos(1, max_steps=4, resolution=RES, seed=2, render_size=RENDER, sources=("adroit",))
    assert list(other["episode_source"]) == ["adroit"]
    with pytest.raises(ValueError):
        collect_actionless_videos(1, max_steps=4, resolution=RES, seed=0, sources=("ego4d",))
