"""BenchMARL side of the QMIX throughput bench (run by bench/marl_bench.py).

Runs in the *bench* venv (BenchMARL 1.5.2, torchrl, mpe2; none of them is a project
dependency); it imports nothing from the repository. It trains BenchMARL's QMIX on its
PettingZoo ``simple_spread`` task through BenchMARL's public API (``Experiment``,
``ExperimentConfig``, ``QmixConfig``, ``PettingZooTask``, ``GruConfig``/``MlpConfig``/
``SequenceModelConfig``) and prints one JSON object on stdout.

Usage: python bench/benchmarl_side.py '<json spec>'
Spec keys (all optional): steps (env steps, default 3000), seed, threads, batch_episodes (32),
episode_len (25), hidden (64), mixing_embed (32), lr, gamma, grad_clip, target_update
(learner steps between hard target copies), epsilon_start, epsilon_finish, model ("gru_seq"
or "gru").

Settings, matched to our QMIX (methods/marl/value/qmix.py, EPyMARL defaults) where BenchMARL allows:

* task: PettingZoo MPE simple_spread_v3, N 3, local_ratio 0.5, max_cycles 25, discrete
  actions (``prefer_continuous_actions=False``), global state on. BenchMARL 1.5.2 builds it
  with torchrl 0.11's ``PettingZooEnv``, which looks the task up in ``pettingzoo.mpe``; since
  pettingzoo 1.25 that package only raises "MPE has been moved into mpe2". So before BenchMARL
  is imported this script registers mpe2 1.1.1's ``simple_spread_v3`` (the same MPE code our
  side runs) as torchrl's lookup table ``pettingzoo.utils.all_modules.all_environments``;
  torchrl then finds it by its module name. Nothing else of the env path is changed.
* one episode collected per iteration (``off_policy_collected_frames_per_batch`` 25, one env),
  then ``off_policy_n_optimizer_steps`` 1 on ``off_policy_train_batch_size`` 32*25 = 800
  frames; with a recurrent model BenchMARL stores whole 25-step sequences and samples
  800/25 = 32 of them, i.e. a batch of 32 episodes as in EPyMARL. BenchMARL trains from the
  first iteration (its sampler draws with replacement), ours from the 32nd episode; the cost
  of one update is the same.
* agent (``model`` "gru_seq", default): BenchMARL's ``SequenceModelConfig`` of an MLP with no
  hidden layer (one Linear obs -> 64) followed by ``GruConfig`` (hidden 64, 1 layer) whose
  head MLP is [64, 64] ReLU -> 5 Q-values: ours is FC64 ReLU -> GRUCell64 -> FC64 ReLU ->
  FC64 ReLU -> FC5. Differences: no ReLU between the first Linear and the GRU, and no
  one-hot agent id in the input (BenchMARL's shared parameters take the observation only).
  "gru": ``GruConfig`` alone (obs -> GRU64 -> [64, 64] ReLU -> 5, one layer fewer).
* mixer: BenchMARL's QMIX (torchrl ``QMixer``), mixing embed 32; its hypernetworks for w1 and
  w_final are single Linear layers (ours: 2-layer, hypernet embed 64).
* Adam lr 5e-4, gamma 0.99, grad-norm clip 10, hard target copy every 200 learner steps,
  epsilon 1.0 -> 0.05 annealed over the run's env steps, l2 loss, one env, 1 torch thread,
  CPU, no evaluation, no loggers, no checkpoints, no json.

Timing: BenchMARL's ``Experiment`` times every iteration itself and passes
``timers/collection_time`` (around ``next(collector)``: env steps + policy + epsilon-greedy)
and ``timers/training_time`` (replay extend + the optimizer steps + target update +
exploration annealing + collector weight sync) to ``Experiment.logger.log``. With no loggers
configured that call is a no-op; this script wraps the experiment's logger instance's ``log``
to record those two timers (and passes everything on unchanged). env_steps_per_s = frames /
sum(collection_time); updates_per_s = optimizer steps / sum(training_time); ``wall_s`` is the
wall time of ``Experiment.run()`` as a whole. The first ``warmup_iters`` iterations (default 0,
as our side, whose timers also cover the whole run) can be left out of both sums.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import types
import warnings

DEFAULTS = {
    "steps": 3000,
    "seed": 0,
    "threads": 1,
    "batch_episodes": 32,
    "episode_len": 25,
    "hidden": 64,
    "mixing_embed": 32,
    "lr": 5e-4,
    "gamma": 0.99,
    "grad_clip": 10.0,
    "target_update": 200,
    "epsilon_start": 1.0,
    "epsilon_finish": 0.05,
    "model": "gru_seq",
    "warmup_iters": 0,
}


def register_mpe2_for_torchrl() -> None:
    """Point torchrl's PettingZoo task lookup at mpe2's simple_spread_v3 (see the docstring)."""
    import mpe2.simple_spread_v3

    shim = types.ModuleType("pettingzoo.utils.all_modules")
    shim.all_environments = {"mpe/simple_spread_v3": mpe2.simple_spread_v3}
    sys.modules["pettingzoo.utils.all_modules"] = shim


def build_model(spec: dict):
    import torch
    from benchmarl.models import GruConfig, MlpConfig, SequenceModelConfig

    gru = GruConfig(
        hidden_size=spec["hidden"],
        n_layers=1,
        bias=True,
        dropout=0.0,
        compile=False,
        mlp_num_cells=[spec["hidden"], spec["hidden"]],
        mlp_layer_class=torch.nn.Linear,
        mlp_activation_class=torch.nn.ReLU,
    )
    if spec["model"] == "gru":
        return gru
    first = MlpConfig(num_cells=[], layer_class=torch.nn.Linear, activation_class=torch.nn.ReLU)
    return SequenceModelConfig(model_configs=[first, gru], intermediate_sizes=[spec["hidden"]])


def main() -> None:
    spec = dict(DEFAULTS, **(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
    import torch

    torch.set_num_threads(int(spec["threads"]))
    warnings.filterwarnings("ignore")
    register_mpe2_for_torchrl()

    from benchmarl.algorithms import QmixConfig
    from benchmarl.environments import PettingZooTask
    from benchmarl.experiment import Experiment, ExperimentConfig

    ep_len, batch_eps = spec["episode_len"], spec["batch_episodes"]
    task = PettingZooTask.SIMPLE_SPREAD.get_from_yaml()
    task.config.update({"max_cycles": ep_len, "N": 3, "local_ratio": 0.5})

    algo = QmixConfig.get_from_yaml()
    algo.mixing_embed_dim = spec["mixing_embed"]
    algo.delay_value = True
    algo.loss_function = "l2"

    cfg = ExperimentConfig.get_from_yaml()
    cfg.sampling_device = cfg.train_device = cfg.buffer_device = "cpu"
    cfg.share_policy_params = True
    cfg.prefer_continuous_actions = False
    cfg.gamma, cfg.lr = spec["gamma"], spec["lr"]
    cfg.adam_eps = 1e-8  # torch's default, as ours
    cfg.clip_grad_norm, cfg.clip_grad_val = True, spec["grad_clip"]
    cfg.soft_target_update, cfg.hard_target_update_frequency = False, spec["target_update"]
    cfg.exploration_eps_init, cfg.exploration_eps_end = spec["epsilon_start"], spec["epsilon_finish"]
    cfg.exploration_anneal_frames = spec["steps"]
    cfg.max_n_iters, cfg.max_n_frames = None, spec["steps"]
    cfg.off_policy_collected_frames_per_batch = ep_len
    cfg.off_policy_n_envs_per_worker = 1
    cfg.off_policy_n_optimizer_steps = 1
    cfg.off_policy_train_batch_size = batch_eps * ep_len
    cfg.off_policy_memory_size = 5000 * ep_len
    cfg.off_policy_init_random_frames = 0
    cfg.evaluation, cfg.render = False, False
    cfg.loggers, cfg.create_json = [], False
    cfg.checkpoint_interval, cfg.checkpoint_at_end = 0, False
    cfg.save_folder = tempfile.mkdtemp(prefix="benchmarl-bench-")

    model = build_model(spec)
    exp = Experiment(
        task=task, algorithm_config=algo, model_config=model, critic_model_config=model, seed=spec["seed"], config=cfg
    )

    timers: list[dict] = []
    original_log = exp.logger.log

    def recording_log(dict_to_log: dict, step: int | None = None) -> None:
        if "timers/collection_time" in dict_to_log:
            timers.append({k: float(v) for k, v in dict_to_log.items() if k.startswith(("timers/", "counters/"))})
        original_log(dict_to_log, step=step)

    exp.logger.log = recording_log
    t0 = time.perf_counter()
    exp.run()
    wall = time.perf_counter() - t0

    timed = timers[spec["warmup_iters"] :]
    frames = sum(t["counters/current_frames"] for t in timed)
    coll = sum(t["timers/collection_time"] for t in timed)
    train = sum(t["timers/training_time"] for t in timed)
    updates = len(timed) * cfg.off_policy_n_optimizer_steps
    n_params = (
        sum(p.numel() for p in exp.losses["agent"].parameters() if p.requires_grad) if "agent" in exp.losses else None
    )
    from importlib.metadata import version

    out = {
        "benchmarl": version("benchmarl"),
        "torchrl": version("torchrl"),
        "tensordict": version("tensordict"),
        "torch": torch.__version__,
        "pettingzoo": version("pettingzoo"),
        "mpe2": version("mpe2"),
        "threads": torch.get_num_threads(),
        "spec": spec,
        "groups": {g: list(a) for g, a in exp.group_map.items()},
        "iterations": len(timers),
        "timed_iterations": len(timed),
        "env_steps": int(sum(t["counters/current_frames"] for t in timers)),
        "timed_env_steps": int(frames),
        "collection_s": coll,
        "training_s": train,
        "wall_s": wall,
        "env_steps_per_s": frames / coll,
        "updates_per_s": updates / train,
        "transitions_per_update": cfg.off_policy_train_batch_size,
        "learner_transitions_per_s": updates * cfg.off_policy_train_batch_size / train,
        "loss_params": n_params,
        "model": spec["model"],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
