"""Meta-World v3 rendered from the ``corner2`` camera, as VPDD (He et al., NeurIPS 2024) sees it:
scripted-expert demonstrations with action noise, an evaluation wrapper, task prompts and a
stand-in text embedding.

What VPDD does (official code, ``scripts/test_finetune_meta.py``) and what is kept here:

* **Frames.** VPDD renders Meta-World v2 at 480x480 from ``corner2``, rotates the frame by 180
  degrees (``np.rot90(frame, 2)``; the camera is mounted upside down), crops ``[110:370, 110:370]``
  (the central 13/24 of the side) and resizes to 96x96. Here the render size ``render_size`` and
  the output ``resolution`` are arguments and the crop keeps the same fraction of the side
  (``round(R * 110/480)`` to ``round(R * 370/480)``); the crop is resized with Pillow's bilinear
  filter (which low-pass filters when downsampling; VPDD's ``F.interpolate`` does not). The
  default ``render_size=480`` is VPDD's own geometry (crop 260 pixels, resized to 96).
* **Rendering** is our own offscreen MuJoCo renderer (:class:`OffscreenRenderer`), not
  gymnasium's: gymnasium's renderer only makes its GL context current when an env holds more
  than one viewer, so with two envs alive, or after one env was closed and collected, frames come
  out black or from the wrong context. Ours makes its context current before every frame and
  frees its GL objects with its own context current. Shadows and reflections are switched off
  (the software rasteriser spends most of its time on shadows; the skybox, which gives the grey
  background of VPDD's frames, costs under 1 ms and stays on) and so is
  multisampling (``msaa_samples=0``: it doubles the cost; downsampling the 260-pixel crop to 96
  smooths the edges anyway). With these, a 480x480 frame costs about 14 ms on one CPU core
  (against about 80 ms with shadows); the frames look slightly different from VPDD's, which kept
  shadows.
* **Demonstrations** follow QueST's ``scripts/generate_metaworld_dataset.py`` (pairlab/QueST,
  the collection VPDD's Meta-World data follows): Meta-World's scripted expert, Gaussian noise
  added to its action, clipped to [-1, 1]. QueST's ``demo_noise`` is 0.2 (an absolute standard deviation on actions in
  [-1, 1], i.e. 10 % of the action range); that is our default ``action_noise_std``.
* **Versions.** PyPI's ``metaworld`` 3.x ships only the v3 tasks (VPDD used v2); names here are
  v3 (``reach-v3``).
* **Initial states.** An episode seed ``s`` draws the object and goal positions from the task's
  own reset distribution with the env's seeded generator (``env.seed(s)`` plus Meta-World's
  ``seeded_rand_vec`` mode), so every seed is a new random configuration (MT50 with random
  initial positions, as in the paper) and the same seed gives the same episode. The goal is part
  of the observation (Meta-World's MT setting), which the scripted experts need; the video policy
  never sees the state.
* **Text.** VPDD encodes the task description with a frozen CLIP text encoder. CLIP weights
  cannot be loaded offline; :func:`embed_text` is a fixed, deterministic bag-of-words-and-bigrams
  embedding standing in for it (a documented deviation). The prompts in :data:`TASK_PROMPTS` are
  our own wording.

Headless rendering (EGL, the offscreen renderer, the library check) is in envs/offscreen.py,
shared with the actionless videos (envs/actionless_video.py).
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from functools import lru_cache
from typing import Any

import numpy as np

from envs.offscreen import OffscreenRenderer, configure_headless_rendering

# ------------------------------------------------------------------------------------------------
# frame processing
# ------------------------------------------------------------------------------------------------

# VPDD's crop of its 480x480 corner2 frame: rows and columns 110..370
CROP_LO, CROP_HI = 110 / 480, 370 / 480
DEFAULT_RENDER_SIZE = 480  # VPDD's render size: crop 110..370, resized to the resolution


def crop_bounds(render_size: int) -> tuple[int, int]:
    """VPDD's crop ``[110:370]`` of a 480 frame, scaled to a ``render_size`` frame."""
    return int(round(render_size * CROP_LO)), int(round(render_size * CROP_HI))


def resize_square(img: np.ndarray, resolution: int) -> np.ndarray:
    """Resize a uint8 ``[S, S, 3]`` image to ``[resolution, resolution, 3]`` (Pillow bilinear,
    which low-pass filters when downsampling); returned as is when already that size."""
    if img.shape[0] == resolution and img.shape[1] == resolution:
        return np.ascontiguousarray(img)
    from PIL import Image

    out = Image.fromarray(np.ascontiguousarray(img)).resize((resolution, resolution), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def process_corner2_frame(raw: np.ndarray, resolution: int) -> np.ndarray:
    """VPDD's processing of a ``corner2`` frame (as ``env.render()`` returns it): rotate by 180
    degrees, crop the central 13/24 of the side, resize to ``resolution``."""
    size = raw.shape[0]
    if raw.shape[1] != size:
        raise ValueError(f"expected a square frame, got {raw.shape}")
    lo, hi = crop_bounds(size)
    rotated = raw[::-1, ::-1]  # np.rot90(raw, 2)
    return resize_square(rotated[lo:hi, lo:hi], resolution)


def center_square(raw: np.ndarray, resolution: int) -> np.ndarray:
    """Centre crop to a square, then resize to ``resolution`` (the actionless videos)."""
    h, w = raw.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return resize_square(raw[top : top + s, left : left + s], resolution)


# ------------------------------------------------------------------------------------------------
# tasks, prompts, text embedding
# ------------------------------------------------------------------------------------------------

# Our own one-line instruction for each MT50 task (VPDD wrote MT50 descriptions of its own; these
# are not copied from it).
TASK_PROMPTS: dict[str, str] = {
    "assembly-v3": "pick up the ring and slide it down onto the peg",
    "basketball-v3": "pick up the ball and drop it through the hoop",
    "bin-picking-v3": "move the puck from one bin into the other bin",
    "box-close-v3": "pick up the lid and put it on the box",
    "button-press-topdown-v3": "push the button down from above",
    "button-press-topdown-wall-v3": "reach past the wall and push the button down from above",
    "button-press-v3": "push the button on the front of the box",
    "button-press-wall-v3": "reach around the wall and push the button",
    "coffee-button-v3": "press the button on the coffee machine",
    "coffee-pull-v3": "slide the mug out from under the coffee machine",
    "coffee-push-v3": "slide the mug under the spout of the coffee machine",
    "dial-turn-v3": "turn the dial half a turn",
    "disassemble-v3": "lift the ring up and off the peg",
    "door-close-v3": "swing the open door shut",
    "door-lock-v3": "turn the lock on the door to lock it",
    "door-open-v3": "pull the door open by its handle",
    "door-unlock-v3": "turn the lock on the door to unlock it",
    "drawer-close-v3": "push the drawer shut",
    "drawer-open-v3": "pull the drawer open by its handle",
    "faucet-close-v3": "turn the faucet handle clockwise to shut it",
    "faucet-open-v3": "turn the faucet handle counter-clockwise to open it",
    "hammer-v3": "pick up the hammer and drive the nail into the wall",
    "hand-insert-v3": "move the gripper down into the hole in the table",
    "handle-press-side-v3": "push the handle on the side down",
    "handle-press-v3": "push the handle down",
    "handle-pull-side-v3": "pull the handle on the side up",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "swing the lever through a quarter turn",
    "peg-insert-side-v3": "pick up the peg and push it sideways into the hole",
    "peg-unplug-side-v3": "pull the peg sideways out of its socket",
    "pick-out-of-hole-v3": "lift the puck out of the hole in the table",
    "pick-place-v3": "pick up the puck and put it down at the goal",
    "pick-place-wall-v3": "pick up the puck, carry it over the wall and put it down at the goal",
    "plate-slide-back-side-v3": "slide the plate sideways back out of the cabinet",
    "plate-slide-back-v3": "slide the plate back out of the cabinet",
    "plate-slide-side-v3": "slide the plate sideways into the cabinet",
    "plate-slide-v3": "slide the plate forward into the cabinet",
    "push-back-v3": "pull the puck back toward the goal",
    "push-v3": "push the puck across the table to the goal",
    "push-wall-v3": "push the puck around the wall to the goal",
    "reach-v3": "move the gripper to the goal position",
    "reach-wall-v3": "reach over the wall to the goal position",
    "shelf-place-v3": "pick up the puck and set it on the shelf",
    "soccer-v3": "push the ball into the soccer goal",
    "stick-pull-v3": "grab the stick and use it to pull the box",
    "stick-push-v3": "grab the stick and use it to push the box",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the edge of the table",
    "window-close-v3": "slide the window shut",
    "window-open-v3": "slide the window open",
}


def mt50_task_names() -> list[str]:
    """The 50 MT50 v3 task names, in metaworld's order (the task index used in the data)."""
    from metaworld.env_dict import MT50_V3

    return list(MT50_V3)


def task_index(task: str) -> int:
    """Position of ``task`` in :func:`mt50_task_names` (raises KeyError when unknown)."""
    names = mt50_task_names()
    if task not in names:
        raise KeyError(f"{task!r} is not an MT50 v3 task")
    return names.index(task)


_BIGRAM_WEIGHT = 0.5


@lru_cache(maxsize=4096)
def _token_vector(token: str, dim: int) -> np.ndarray:
    """A standard Gaussian vector fixed by ``token``: SHAKE-256 of the token gives ``dim`` pairs of
    64-bit uniforms, turned into normals by Box-Muller (independent of numpy's generators, so the
    same on every platform and version)."""
    raw = hashlib.shake_256(token.encode("utf-8")).digest(16 * dim)
    u = np.frombuffer(raw, dtype="<u8").astype(np.float64).reshape(2, dim)
    u = (u + 0.5) / 2.0**64  # in (0, 1)
    vec = np.sqrt(-2.0 * np.log(u[0])) * np.cos(2.0 * np.pi * u[1])
    vec.setflags(write=False)
    return vec


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric word tokens (apostrophes dropped, everything else splits)."""
    out, word = [], []
    for ch in text.lower().replace("'", ""):
        if ch.isalnum():
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def embed_text(text: str, dim: int) -> np.ndarray:
    """Deterministic stand-in for VPDD's frozen CLIP text encoder (a deviation: CLIP's weights
    cannot be downloaded offline). Returns a float32 unit vector of length ``dim``.

    The text is split into lower-case word tokens (:func:`tokenize`); each word ``w`` contributes
    a fixed standard Gaussian vector keyed by ``"w:" + w`` and each pair of adjacent words
    ``(a, b)`` one keyed by ``"b:" + a + " " + b`` with weight 0.5 (so word order matters a
    little); the sum is L2-normalised. Gaussian vectors come from SHAKE-256 of the key
    (:func:`_token_vector`). Texts with no word map to the vector keyed ``"<empty>"``. Texts that
    share words get correlated vectors (cosine about the fraction of shared words), unrelated
    texts nearly orthogonal ones; there is no notion of synonyms."""
    if dim < 1:
        raise ValueError("dim must be >= 1")
    words = tokenize(text)
    if not words:
        vec = _token_vector("<empty>", dim).copy()
    else:
        vec = np.zeros(dim, dtype=np.float64)
        for w in words:
            vec += _token_vector("w:" + w, dim)
        for a, b in zip(words[:-1], words[1:]):
            vec += _BIGRAM_WEIGHT * _token_vector(f"b:{a} {b}", dim)
    norm = np.linalg.norm(vec)
    return (vec / norm).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# the rendered env
# ------------------------------------------------------------------------------------------------


class RenderedMetaWorld:
    """One Meta-World v3 task with ``corner2`` frames processed as VPDD's.

    Gymnasium-style: ``reset(seed) -> (obs, info)``, ``step(action) -> (obs, reward, terminated,
    truncated, info)`` (``truncated`` at Meta-World's 500 steps, or ``max_episode_steps`` if
    smaller); :meth:`render` gives the processed frame (uint8 ``[resolution, resolution, 3]``),
    :meth:`render_raw` the camera frame as ``env.render()`` would (``[render_size, render_size,
    3]``, upside down). ``success`` is the latest step's ``info["success"]`` (False after reset);
    ``ever_succeeded`` whether any step of the episode succeeded (VPDD's success measure).
    :meth:`expert_action` is Meta-World's scripted policy for the task. Close it explicitly
    (:meth:`close`, or use it as a context manager)."""

    _renderer = None  # class-level: close() works on an instance whose __init__ failed early
    _env = None

    def __init__(
        self,
        task: str,
        resolution: int = 96,
        render_size: int = DEFAULT_RENDER_SIZE,
        camera: str = "corner2",
        max_episode_steps: int | None = None,
    ):
        configure_headless_rendering()
        import metaworld  # noqa: F401 - registers the package
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.policies import ENV_POLICY_MAP
        from metaworld.types import Task

        if task not in ALL_V3_ENVIRONMENTS:
            raise KeyError(f"{task!r} is not a Meta-World v3 task")
        self.task = task
        self.task_id = task_index(task) if task in TASK_PROMPTS else -1
        self.prompt = TASK_PROMPTS.get(task, task)
        self.resolution = int(resolution)
        self.render_size = int(render_size)
        cls = ALL_V3_ENVIRONMENTS[task]
        self._env = cls()  # render_mode=None: frames come from our own renderer
        self.max_episode_steps = min(int(max_episode_steps or self._env.max_path_length), self._env.max_path_length)
        # set_task with the MT setting (goal in the observation); its rand_vec is never used, as
        # reset() draws a fresh one from the env's seeded generator
        space = self._env._random_reset_space
        data = dict(rand_vec=(space.low + space.high) / 2.0, env_cls=cls, partially_observable=False)
        self._env.set_task(Task(env_name=task, data=pickle.dumps(data)))
        self._policy = ENV_POLICY_MAP[task]()
        self._renderer = OffscreenRenderer(self._env.model, self.render_size, self.render_size, camera)
        self.obs: np.ndarray | None = None
        self.success = False
        self.ever_succeeded = False
        self.steps = 0

    @property
    def unwrapped(self):
        return self._env

    def reset(self, seed: int) -> tuple[np.ndarray, dict]:
        env = self._env
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True  # object/goal positions from env.np_random, seeded below
        env.seed(int(seed))
        obs, info = env.reset()
        self.obs = np.asarray(obs, dtype=np.float64)
        self.success = self.ever_succeeded = False
        self.steps = 0
        return self.obs, dict(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.obs is None:
            raise RuntimeError("call reset(seed) first")
        if self.steps >= self.max_episode_steps:
            raise RuntimeError("episode is over (truncated); call reset(seed)")
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self._env.step(action)
        self.steps += 1
        self.obs = np.asarray(obs, dtype=np.float64)
        self.success = bool(info.get("success", 0.0) > 1e-8)
        self.ever_succeeded |= self.success
        truncated = bool(truncated) or self.steps >= self.max_episode_steps
        return self.obs, float(reward), bool(terminated), truncated, dict(info)

    def expert_action(self, obs: np.ndarray | None = None) -> np.ndarray:
        """The scripted expert's action for ``obs`` (default: the current observation), in [-1, 1]."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Constant(s) may be too high": the env clips anyway
            a = self._policy.get_action(self.obs if obs is None else obs)
        return np.clip(np.asarray(a, dtype=np.float64), -1.0, 1.0)

    def render_raw(self) -> np.ndarray:
        return self._renderer.render(self._env.data)

    def render(self) -> np.ndarray:
        return process_corner2_frame(self.render_raw(), self.resolution)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------------------------
# demonstrations
# ------------------------------------------------------------------------------------------------

DEFAULT_ACTION_NOISE_STD = 0.2  # QueST's demo_noise: 10 % of the [-1, 1] action range


def episode_seed(seed: int, task_id: int, episode: int) -> int:
    """The seed of demonstration ``episode`` of task ``task_id`` (its MT50 index) in a collection
    seeded ``seed``: 31 bits from ``SeedSequence([seed, task_id, episode])``, so adding tasks or
    episodes leaves the other episodes unchanged."""
    state = np.random.SeedSequence([int(seed), int(task_id), int(episode)]).generate_state(1, dtype=np.uint32)
    return int(state[0] >> 1)


def collect_demonstrations(
    tasks: list[str] | tuple[str, ...],
    episodes_per_task: int,
    max_steps: int = 200,
    action_noise_std: float = DEFAULT_ACTION_NOISE_STD,
    resolution: int = 96,
    render_size: int = DEFAULT_RENDER_SIZE,
    seed: int = 0,
    stop_on_success_after: int | None = 10,
    camera: str = "corner2",
) -> dict[str, np.ndarray]:
    """Scripted-expert demonstrations with Gaussian action noise, rendered as VPDD's frames.

    Each episode resets with :func:`episode_seed` (random object and goal positions), then runs
    up to ``max_steps`` steps of ``clip(expert(obs) + N(0, action_noise_std^2), -1, 1)`` (noise
    from ``np.random.default_rng(episode_seed)``). An episode whose step ``t`` first reports
    success ends after step ``t + stop_on_success_after`` (``None``: always ``max_steps`` steps).
    Failed episodes are kept, marked in ``episode_success``.

    Storage is flat over steps with per-episode offsets: episode ``e`` is the rows
    ``episode_starts[e] : episode_starts[e] + episode_lengths[e]`` of the per-step arrays, and row
    ``t`` of an episode holds the frame observed *before* action ``t`` together with that action
    and its outcome (there is no frame after the last action).

    Returns (``N`` steps, ``E`` episodes, ``K = len(tasks)``):

    * ``frames`` uint8 ``[N, resolution, resolution, 3]``
    * ``actions`` float32 ``[N, 4]`` (executed: noisy, clipped); ``expert_actions`` float32 ``[N, 4]``
    * ``observations`` float32 ``[N, 39]`` (state before the action; goal included)
    * ``rewards`` float32 ``[N]``; ``successes`` bool ``[N]`` (``info["success"]`` after the step)
    * ``step_episode`` int32 ``[N]`` (episode of each row); ``step_index`` int32 ``[N]`` (t)
    * ``episode_starts``, ``episode_lengths`` int64 ``[E]``; ``episode_task`` int64 ``[E]`` (index into
      ``task_names``); ``episode_task_id`` int64 ``[E]`` (MT50 index); ``episode_seeds`` int64 ``[E]``;
      ``episode_success`` bool ``[E]``; ``episode_first_success`` int64 ``[E]`` (step, -1 if none)
    * ``task_names``, ``task_prompts`` str ``[K]``; ``task_success_rate`` float64 ``[K]``
    * ``success_rate`` float64 scalar (the expert's over all episodes)
    * scalars ``resolution``, ``render_size``, ``max_steps``, ``action_noise_std``, ``seed``,
      ``stop_on_success_after`` (-1 for None), ``camera`` (str)
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("no tasks")
    if episodes_per_task < 1 or max_steps < 1:
        raise ValueError("episodes_per_task and max_steps must be >= 1")
    frames, actions, expert_actions, observations, rewards, successes = [], [], [], [], [], []
    step_episode, step_index = [], []
    ep_start, ep_len, ep_task, ep_task_id, ep_seed, ep_succ, ep_first = [], [], [], [], [], [], []
    n_rows = 0
    for k, task in enumerate(tasks):
        env = RenderedMetaWorld(task, resolution=resolution, render_size=render_size, camera=camera)
        try:
            for ep in range(episodes_per_task):
                s = episode_seed(seed, env.task_id, ep)
                rng = np.random.default_rng(s)
                obs, _ = env.reset(s)
                first = -1
                t = 0
                e = len(ep_start)
                while t < max_steps:
                    frames.append(env.render())
                    expert = env.expert_action(obs)
                    act = np.clip(expert + rng.normal(0.0, action_noise_std, size=4), -1.0, 1.0)
                    observations.append(obs.astype(np.float32))
                    obs, rew, _, truncated, info = env.step(act)
                    actions.append(act.astype(np.float32))
                    expert_actions.append(expert.astype(np.float32))
                    rewards.append(np.float32(rew))
                    successes.append(env.success)
                    step_episode.append(e)
                    step_index.append(t)
                    if env.success and first < 0:
                        first = t
                    t += 1
                    if truncated:
                        break
                    if first >= 0 and stop_on_success_after is not None and t > first + stop_on_success_after:
                        break
                ep_start.append(n_rows)
                ep_len.append(t)
                n_rows += t
                ep_task.append(k)
                ep_task_id.append(env.task_id)
                ep_seed.append(s)
                ep_succ.append(first >= 0)
                ep_first.append(first)
        finally:
            env.close()
    ep_task_arr = np.asarray(ep_task, dtype=np.int64)
    ep_succ_arr = np.asarray(ep_succ, dtype=bool)
    task_rate = np.array([ep_succ_arr[ep_task_arr == k].mean() for k in range(len(tasks))], dtype=np.float64)
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "actions": np.stack(actions).astype(np.float32),
        "expert_actions": np.stack(expert_actions).astype(np.float32),
        "observations": np.stack(observations).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "successes": np.asarray(successes, dtype=bool),
        "step_episode": np.asarray(step_episode, dtype=np.int32),
        "step_index": np.asarray(step_index, dtype=np.int32),
        "episode_starts": np.asarray(ep_start, dtype=np.int64),
        "episode_lengths": np.asarray(ep_len, dtype=np.int64),
        "episode_task": ep_task_arr,
        "episode_task_id": np.asarray(ep_task_id, dtype=np.int64),
        "episode_seeds": np.asarray(ep_seed, dtype=np.int64),
        "episode_success": ep_succ_arr,
        "episode_first_success": np.asarray(ep_first, dtype=np.int64),
        "task_names": np.asarray(tasks, dtype=str),
        "task_prompts": np.asarray([TASK_PROMPTS.get(t, t) for t in tasks], dtype=str),
        "task_success_rate": task_rate,
        "success_rate": np.float64(ep_succ_arr.mean()),
        "resolution": np.int64(resolution),
        "render_size": np.int64(render_size),
        "max_steps": np.int64(max_steps),
        "action_noise_std": np.float64(action_noise_std),
        "seed": np.int64(seed),
        "stop_on_success_after": np.int64(-1 if stop_on_success_after is None else stop_on_success_after),
        "camera": np.asarray(camera, dtype=str),
    }


def episode_slices(data: dict[str, Any]) -> list[slice]:
    """Row slices of each episode in a collection's flat per-step arrays."""
    return [slice(int(s), int(s + n)) for s, n in zip(data["episode_starts"], data["episode_lengths"])]
