"""QMIX (Rashid et al. 2018) and VDN (Sunehag et al. 2018) as in EPyMARL (Papoudakis et al.
2021), with the Kaleidoscope MPE settings (LXXXXR/Kaleidoscope Kalei_MPE).

Data flow (EPyMARL's): an episode runner plays whole episodes on one env with ε-greedy over
the available actions (ε linear 1.0 → 0.05 over ``epsilon_anneal_steps`` env steps; greedy
at test) → an episode replay buffer (methods/common/replay.py: EpisodeReplay) → once at least
``batch_size`` episodes are stored, one learner step per collected episode:

    Q_i(τ_t, ·)         unrolled over the episode by the agent network (GRU hidden from zeros)
    a*_{t+1}            argmax over available actions of the *online* Q_i(τ_{t+1}, ·) (double Q)
    Q̄_tot(t+1)          target mixer over the target network's Q_i(τ_{t+1}, a*_{t+1}) and s_{t+1}
    y_t  = r_t + γ (1 - d_t) [(1-λ) Q̄_tot(t+1) + λ y_{t+1}]   (λ = 0: the 1-step target; the
           episode's last step bootstraps fully from Q̄_tot(t+1))
    L    = Σ_t filled_t (Q_tot(t) - y_t)² / Σ_t filled_t          (masked MSE)

with rewards standardised by a running mean/std, Adam (lr 5e-4), grad-norm clip 10 and a hard
target copy every ``target_update_interval`` learner steps. Mixers: ``qmix`` (monotonic
hypernetwork mixer on the state: w1, w_final = |hypernet(s)| with 2-layer hypernets, b1 linear,
V(s) 2-layer, ELU) and ``vdn`` (sum). Evaluation every ``eval_every`` env steps: the mean team
return of ``eval_episodes`` greedy episodes (``test_return``), on a fixed set of seeds.

Agent networks are initialised from torch's global generator, seeded with the run's seed just
before they are built. Pluggable agent network: :func:`entry_points` turns an agent-network factory
``make_agent_net(cfg, input_dim, n_agents, n_actions) -> AgentNetwork`` (methods/marl/agents.py)
into the ``train`` / ``evaluate`` a method module exposes; a module such as Kaleidoscope
subclasses :class:`Config` with its own fields (and its own ``agent_net`` name, with
``CONSTRAINTS = {"agent_net": one_of("kalei")}`` replacing the scheme list) and passes its
factory: ``train, evaluate = qmix.entry_points(make_kalei_net)``. The learner calls the
network's optional hooks (``auxiliary_loss``, ``on_env_steps``, ``diagnostics``, FLOP and
parameter counts). State a network keeps outside its parameters and buffers must travel in its
``state_dict`` (``get_extra_state`` / ``set_extra_state``) to be checkpointed.

Exact resume: checkpoints at episode boundaries (the first after each ``checkpoint_every``
env steps, or when the run is asked to stop) hold the networks, optimiser, reward statistics,
replay buffer and every random state; episodes are reset with seeds drawn from a checkpointed
generator, so a resumed run is bit-identical to an uninterrupted one on CPU.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from methods.common.budget import BudgetMeter
from methods.common.target import frozen_copy
from methods.common.method_config import MethodConfig
from methods.common.constraints import Bound, at_least, one_of, positive, within
from methods.common.replay import EpisodeReplay
from methods.common.runapi import Preempted, Run
from methods.common.seeding import restore_rng_states, rng_states, seeded
from methods.marl.agents import SCHEMES, AgentNetwork, dense_1r3_flops
# re-exported: the variants and tests reach the blocks and the runner through this module
from methods.marl.value.episodes import TASKS as TASKS
from methods.marl.value.episodes import TeamTask as TeamTask
from methods.marl.value.episodes import eval_seed as eval_seed
from methods.marl.value.episodes import greedy_episodes as greedy_episodes
from methods.marl.value.episodes import greedy_returns as greedy_returns
from methods.marl.value.episodes import make_task as make_task
from methods.marl.value.episodes import make_batch as make_batch
from methods.marl.value.episodes import run_episode as run_episode
from methods.marl.value.episodes import run_episodes as run_episodes
from methods.marl.value.value_blocks import QMixer as QMixer
from methods.marl.value.value_blocks import RunningMeanStd as RunningMeanStd
from methods.marl.value.value_blocks import VDNMixer as VDNMixer
from methods.marl.value.value_blocks import next_agent_values as next_agent_values
from methods.marl.value.value_blocks import select_actions as select_actions
from methods.marl.value.value_blocks import td_targets as td_targets

MIXERS = ("qmix", "vdn")
@dataclass
class Config(MethodConfig):
    """EPyMARL QMIX with Kaleidoscope's MPE settings: 1R3 GRU agent (hidden 64) with one-hot
    ids and full sharing, QMIX mixer (embed 32, hypernet 64), Adam 5e-4, γ 0.99, batch 32
    episodes, buffer 5000 episodes, 1-step double-Q targets, standardised rewards, hard target
    update every 200 learner steps, grad clip 10, ε 1 → 0.05 over 50k steps, t_max 3.05M env
    steps (``iterations``), evaluation every 50k steps with 100 episodes."""

    env: str = "mpe"
    env_kwargs: dict = field(default_factory=lambda: {"task": "spread"})
    iterations: int = 3_050_000          # t_max, environment steps
    eval_every: int = 50_000             # test_interval
    checkpoint_every: int = 50_000
    eval_episodes: int = 100             # test_nepisode
    agent_net: str = "fups_id"           # parameter-sharing scheme (methods/marl/agents.py)
    obs_agent_id: bool = True            # the learner appends the one-hot agent id
    obs_last_action: bool = False        # ... and the agent's previous action, one-hot (EPyMARL's
                                         # MPE configs: off; pymarl2/SMAC: on)
    hidden_dim: int = 64
    mixer: str = "qmix"
    mixing_embed_dim: int = 32
    hypernet_embed: int = 64
    lr: float = 5e-4
    gamma: float = 0.99
    batch_size: int = 32                 # episodes
    buffer_size: int = 5000              # episodes
    target_update_interval: int = 200    # learner steps
    grad_norm_clip: float = 10.0
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 50_000   # env steps
    double_q: bool = True
    td_lambda: float = 0.0               # 0: 1-step targets (EPyMARL); pymarl2 uses 0.6
    standardise_rewards: bool = True
    batch_size_run: int = 1              # envs run in lockstep, one learner step per batch of
                                         # episodes (pymarl2's parallel runner; SMACv2: 4)

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "iterations": at_least(1), "eval_every": at_least(1), "checkpoint_every": at_least(1),
        "eval_episodes": at_least(1), "agent_net": one_of(*SCHEMES), "hidden_dim": at_least(1),
        "mixer": one_of(*MIXERS), "mixing_embed_dim": at_least(1), "hypernet_embed": at_least(1),
        "lr": positive(), "gamma": within(0, 1), "batch_size": at_least(1), "buffer_size": at_least(1),
        "target_update_interval": at_least(1), "grad_norm_clip": positive(),
        "epsilon_start": within(0, 1), "epsilon_finish": within(0, 1), "epsilon_anneal_steps": at_least(1),
        "td_lambda": within(0, 1), "batch_size_run": at_least(1),
    }
    BUDGET_FIELDS: ClassVar[tuple[str, ...]] = ("batch_size", "buffer_size")

    def __post_init__(self) -> None:
        if self.env not in TASKS:
            raise ValueError(f"QMIX-family methods need env one of {sorted(TASKS)} (got {self.env!r})")
        super().__post_init__()
        if self.agent_net in ("fups", "fups_id") and self.obs_agent_id != (self.agent_net == "fups_id"):
            raise ValueError(f"obs_agent_id must be {self.agent_net == 'fups_id'} with agent_net "
                             f"{self.agent_net!r} (fups_id is FuPS with the one-hot id appended)")
        if self.buffer_size < self.batch_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size})")


AgentNetFactory = Callable[[Any, int, int, int], AgentNetwork]


def scheme_agent_net(cfg: Config, input_dim: int, n_agents: int, n_actions: int) -> AgentNetwork:
    """The default factory: the parameter-sharing scheme ``cfg.agent_net``."""
    return SCHEMES[cfg.agent_net](input_dim, n_agents, n_actions, cfg.hidden_dim)


# ------------------------------------------------------------------------------ small pieces
def epsilon_at(cfg: Config, t_env: int) -> float:
    """EPyMARL's linear schedule: start → finish over ``epsilon_anneal_steps`` env steps, then flat."""
    delta = (cfg.epsilon_start - cfg.epsilon_finish) / cfg.epsilon_anneal_steps
    return max(cfg.epsilon_finish, cfg.epsilon_start - delta * t_env)


def make_mixer(cfg: Config, n_agents: int, state_dim: int) -> nn.Module:
    if cfg.mixer == "vdn":
        return VDNMixer()
    return QMixer(n_agents, state_dim, cfg.mixing_embed_dim, cfg.hypernet_embed)


# ------------------------------------------------------------------------------ the learner
class QLearner:
    """Agent network + mixer, their targets and the optimiser; ``act`` for the runner and
    ``train`` for one learner step on a batch of episodes."""

    def __init__(self, cfg: Config, env: TeamTask, make_agent_net: AgentNetFactory, device: torch.device):
        self.cfg, self.device = cfg, device
        self.n_agents, self.n_actions = env.n_agents, env.n_actions
        self.input_dim = (env.obs_dim + (env.n_actions if cfg.obs_last_action else 0)
                          + (env.n_agents if cfg.obs_agent_id else 0))
        self.agent = make_agent_net(cfg, self.input_dim, env.n_agents, env.n_actions).to(device)
        self.mixer = make_mixer(cfg, env.n_agents, env.state_dim).to(device)
        # the interface's target: a deep copy, hard-copied with load_state_dict (masks travel)
        self.target_agent = frozen_copy(self.agent)
        self.target_mixer = frozen_copy(self.mixer)
        self.build_optimizer()
        self.reward_ms = RunningMeanStd()
        self.n_updates = 0
        self.t_env = 0                       # set by the runner before each learner step
        self.eye = torch.eye(env.n_agents, device=device)
        self.env_dims = (env.episode_limit, env.n_agents, env.obs_dim, env.state_dim, env.n_actions)

    # -- the hooks a learner variant overrides (MAST: methods/marl/value/mast.py; WQMIX: wqmix.py) -----
    def trainable_modules(self) -> list[nn.Module]:
        """The networks the optimiser trains (and the gradient norm is clipped over)."""
        return [self.agent, self.mixer]

    def build_optimizer(self) -> None:
        """A fresh Adam over :meth:`trainable_modules` (variants call it again after adding or
        replacing networks, before any step)."""
        self.params = [p for m in self.trainable_modules() for p in m.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=self.cfg.lr)

    def unmasked_forward_flops(self) -> float:
        """Per-sample forward FLOPs of trained networks a sparse variant leaves dense and does
        not otherwise count (none here; WQMIX's central Q̂*)."""
        return 0.0

    def make_buffer(self) -> EpisodeReplay:
        """The episode replay the runner fills and samples ``batch_size`` episodes from."""
        return EpisodeReplay(self.cfg.buffer_size, *self.env_dims, self.device)

    def bootstrap_values(self, online_next: Tensor, target_next: Tensor, avail_next: Tensor) -> Tensor:
        """Per-agent values (B, T, N) the target mixer bootstraps from: double Q or max."""
        return next_agent_values(online_next if self.cfg.double_q else None, target_next, avail_next)

    def current_td_lambda(self) -> float:
        return self.cfg.td_lambda

    def apply_gradients(self, total: Tensor) -> Tensor:
        """Backward, grad-norm clip and one optimiser step; returns the gradient norm."""
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_norm_clip)
        self.opt.step()
        return grad_norm

    def inputs(self, obs: Tensor, last_actions: Tensor) -> Tensor:
        """Agent inputs (EPyMARL's order): obs (..., N, obs_dim) ⊕ one-hot of ``last_actions``
        (..., N), -1 for none (the first step) ⊕ one-hot agent id, each part when configured."""
        parts = [obs]
        if self.cfg.obs_last_action:
            none = last_actions < 0
            onehot = F.one_hot(last_actions.clamp(min=0), self.n_actions).to(obs.dtype)
            parts.append(onehot.masked_fill(none.unsqueeze(-1), 0.0))
        if self.cfg.obs_agent_id:
            parts.append(self.eye.expand(*obs.shape[:-1], self.n_agents))
        return torch.cat(parts, -1) if len(parts) > 1 else obs

    @torch.no_grad()
    def act(self, obs: np.ndarray, avail: np.ndarray, hidden: Tensor, epsilon: float,
            gen: torch.Generator, last_actions: np.ndarray) -> tuple[np.ndarray, Tensor]:
        """ε-greedy actions of one env (obs (N, d)) or of a batch of envs (obs (B, N, d), the
        hidden state of B episodes)."""
        x = self.inputs(torch.as_tensor(obs, device=self.device),
                        torch.as_tensor(last_actions, device=self.device))
        one_env = x.dim() == 2
        q, hidden = self.agent(x.unsqueeze(0) if one_env else x, hidden)
        a = select_actions(q[0] if one_env else q, torch.as_tensor(avail, device=self.device).bool(), epsilon, gen)
        return a.cpu().numpy(), hidden

    def unroll(self, net: AgentNetwork, inputs: Tensor) -> Tensor:
        """Q values (B, T+1, N, A) of ``net`` over the episodes ``inputs`` (B, T+1, N, in)."""
        hidden = net.init_hidden(inputs.shape[0])
        qs = []
        for t in range(inputs.shape[1]):
            q, hidden = net(inputs[:, t], hidden)
            qs.append(q)
        return torch.stack(qs, 1)

    def train(self, b: dict[str, Tensor]) -> dict[str, float]:
        cfg = self.cfg
        rewards, filled = b["reward"], b["filled"]
        if cfg.standardise_rewards:
            self.reward_ms.update(rewards[filled > 0])
            rewards = self.reward_ms.normalise(rewards)
        # the action before step t: none at t = 0, then a_{t-1} (the bootstrap step sees the last)
        before = torch.full_like(b["actions"][:, :1], -1)
        inputs = self.inputs(b["obs"], torch.cat([before, b["actions"]], 1))
        q_all = self.unroll(self.agent, inputs)                               # (B, T+1, N, A)
        q_taken = q_all[:, :-1].gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)   # (B, T, N)
        loss, targets, td, extra = self.td_loss(b, rewards, inputs, q_all, q_taken)
        aux = self.agent.auxiliary_loss(loss)
        total = loss + aux if aux is not None else loss
        grad_norm = self.apply_gradients(total)
        self.n_updates += 1
        if self.n_updates % cfg.target_update_interval == 0:
            self.update_targets()
        n = filled.sum()
        loss, total, td, q_taken = loss.detach(), total.detach(), td.detach(), q_taken.detach()
        return {"loss": float(loss), "total_loss": float(total), "grad_norm": float(grad_norm),
                "td_error_abs": float(td.abs().sum() / n),
                "q_taken_mean": float((q_taken * filled.unsqueeze(-1)).sum() / (n * self.n_agents)),
                "target_mean": float((targets * filled).sum() / n), **extra}

    def td_loss(self, b: dict[str, Tensor], rewards: Tensor, inputs: Tensor, q_all: Tensor,
                q_taken: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        """QMIX's loss on a batch: (masked MSE, targets (B, T), masked TD errors (B, T), extra
        metrics). ``q_all`` (B, T+1, N, A) are the online agent Qs, ``q_taken`` (B, T, N)."""
        filled = b["filled"]
        with torch.no_grad():
            target_all = self.unroll(self.target_agent, inputs)[:, 1:]
            q_next = self.bootstrap_values(q_all.detach()[:, 1:], target_all, b["avail"][:, 1:])
            next_tot = self.target_mixer(q_next, b["state"][:, 1:])           # (B, T)
            targets = td_targets(rewards, b["terminated"], filled, next_tot, self.cfg.gamma,
                                 self.current_td_lambda())
        q_tot = self.mixer(q_taken, b["state"][:, :-1])
        td = (q_tot - targets) * filled
        return td.pow(2).sum() / filled.sum(), targets, td, {}

    def update_targets(self) -> None:
        self.target_agent.load_state_dict(self.agent.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())

    def diagnostics(self) -> dict[str, float]:
        """Learner-level values logged with each evaluation (averaged over the run as ``<k>_avg``)."""
        return {}

    def final_metrics(self) -> dict[str, float]:
        """Learner-level final metrics saved with the model (e.g. training FLOPs)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "mixer": self.mixer.state_dict(),
                "target_agent": self.target_agent.state_dict(), "target_mixer": self.target_mixer.state_dict(),
                "opt": self.opt.state_dict(), "reward_ms": self.reward_ms.state_dict(), "n_updates": self.n_updates}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.agent.load_state_dict(d["agent"])
        self.mixer.load_state_dict(d["mixer"])
        self.target_agent.load_state_dict(d["target_agent"])
        self.target_mixer.load_state_dict(d["target_mixer"])
        self.opt.load_state_dict(d["opt"])
        self.reward_ms.load_state_dict(d["reward_ms"])
        self.n_updates = d["n_updates"]


# ------------------------------------------------------------------------------ runner
def _hook_metrics(agent: AgentNetwork) -> dict[str, float]:
    return {k: float(v) for k, v in agent.diagnostics().items()}


def train_qmix(cfg: Config, run: Run, make_agent_net: AgentNetFactory = scheme_agent_net,
               learner_cls: type[QLearner] = QLearner) -> dict[str, float]:
    device = run.device
    torch.manual_seed(run.seed)
    env, test_env = make_batch(cfg), make_batch(cfg)
    learner = learner_cls(cfg, env, make_agent_net, device)
    buffer = learner.make_buffer()
    gen = torch.Generator(device=device).manual_seed(run.seed)       # exploration and sampling
    rng = np.random.default_rng(run.seed)                             # training episodes' seeds
    t_env, episodes, last_eval, last = 0, 0, float("nan"), {}
    train_returns: list[float] = []
    history: dict[str, list[float]] = {}
    timers = {"update": 0.0, "env": 0.0, "updates_at_log": 0, "steps_at_log": 0}

    budget = BudgetMeter(unit="episodes")
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        budget.load_state_dict(ckpt["budget"])
        learner.load_state_dict(ckpt["learner"])
        buffer.load_state_dict(ckpt["buffer"])
        restore_rng_states(ckpt, gen, rng)
        t_env, episodes, last = ckpt["t_env"], ckpt["episodes"], ckpt["last"]
        train_returns, history, timers = ckpt["train_returns"], ckpt["history"], ckpt["timers"]
    next_eval = (t_env // cfg.eval_every + 1) * cfg.eval_every
    next_ckpt = (t_env // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    averaged = ("test_return", "test_win_rate", *_hook_metrics(learner.agent), *learner.diagnostics())

    def model_state(final_return: float, averages: dict[str, float]) -> dict[str, Any]:
        return {"agent": learner.agent.state_dict(), "mixer": learner.mixer.state_dict(),
                "config": cfg.to_dict(), "final_return": final_return,
                "train_stats": {**averages, **learner.final_metrics()}}

    if ckpt is None:
        # before any update: the diagnostics' "averages" are their step-0 values
        at_start = {**_hook_metrics(learner.agent), **learner.diagnostics()}
        run.save_untrained_model(model_state(float("nan"), {f"{k}_avg": float(v) for k, v in at_start.items()}))
    while t_env < cfg.iterations:
        t0 = time.perf_counter()
        seeds = [int(rng.integers(2 ** 31)) for _ in range(cfg.batch_size_run)]
        epsilon = epsilon_at(cfg, t_env)
        for episode, ret in run_episodes(learner, env, seeds, epsilon, gen):
            buffer.add(episode)
            t_env += len(episode["reward"])
            budget.env_steps += len(episode["reward"])
            budget.collected += 1
            episodes += 1
            train_returns.append(ret)
        timers["env"] += time.perf_counter() - t0
        if len(buffer) >= cfg.batch_size:
            t0 = time.perf_counter()
            learner.t_env = t_env
            batch = buffer.sample(cfg.batch_size, gen)
            with budget.measure_flops():
                last = learner.train(batch)
            budget.step(int(batch["reward"].shape[0]))
            timers["update"] += time.perf_counter() - t0
        learner.agent.on_env_steps(t_env, cfg.iterations, gen)
        if t_env >= next_eval or t_env >= cfg.iterations:
            returns, wins = greedy_episodes(learner, test_env, run.seed, cfg.eval_episodes)
            last_eval = float(np.mean(returns))
            win_rate = {} if wins is None else {"test_win_rate": float(np.mean(wins))}
            updates = learner.n_updates - timers["updates_at_log"]
            row = {"test_return": last_eval, "test_return_std": float(np.std(returns)), **win_rate,
                   "train_return": float(np.mean(train_returns)), "epsilon": epsilon_at(cfg, t_env),
                   "episodes": float(episodes), "updates": float(learner.n_updates),
                   "time_updates_per_s": updates / timers["update"] if timers["update"] > 0 else float("nan"),
                   "time_env_steps_per_s": (t_env - timers["steps_at_log"]) / timers["env"],
                   **last, **_hook_metrics(learner.agent), **learner.diagnostics()}
            for k, v in row.items():
                if not k.startswith("time_"):
                    history.setdefault(k, []).append(float(v))
            run.log(t_env, row)
            train_returns = []
            timers = {"update": 0.0, "env": 0.0, "updates_at_log": learner.n_updates, "steps_at_log": t_env}
            next_eval = (t_env // cfg.eval_every + 1) * cfg.eval_every
        stop = run.should_stop()
        if (t_env >= next_ckpt or stop) and t_env < cfg.iterations:
            run.save_checkpoint({
                "learner": learner.state_dict(), "buffer": buffer.state_dict(), **rng_states(gen, rng),
                "t_env": t_env,
                "episodes": episodes, "last": dict(last), "train_returns": list(train_returns),
                "history": history, "timers": dict(timers), "budget": budget.state_dict()}, t_env)
            next_ckpt = (t_env // cfg.checkpoint_every + 1) * cfg.checkpoint_every
            if stop or run.should_stop():
                raise Preempted(f"stopped at env step {t_env}")
    # over-training averages of the test return (area under the curve per evaluation) and of
    # the agent network's diagnostics become final metrics
    averages = {f"{k}_avg": float(np.mean(history[k])) for k in averaged if history.get(k)}
    budget.target_updates = learner.n_updates // cfg.target_update_interval   # hard copies (QLearner.train)
    run.record_budget(budget.summary())
    run.save_model(model_state(last_eval, averages))
    return {"test_return": last_eval}


def evaluate_qmix(cfg: Config, model: dict[str, Any], seed: int, device: str | torch.device = "cpu",
                  make_agent_net: AgentNetFactory = scheme_agent_net,
                  learner_cls: type[QLearner] = QLearner) -> dict[str, Any]:
    """Final metrics of a saved model: the mean greedy team return over ``eval_episodes``
    test episodes (seeds as during training), the agent network's inference FLOPs per agent
    relative to a dense FuPS 1R3 agent of the same sizes, and its nonzero parameters per agent."""
    with seeded(seed):
        env = make_batch(cfg)
        learner = learner_cls(cfg, env, make_agent_net, torch.device(device))
        learner.agent.load_state_dict(model["agent"])
        learner.mixer.load_state_dict(model["mixer"])
        returns, wins = greedy_episodes(learner, env, seed, cfg.eval_episodes)
        agent = learner.agent
        dense = dense_1r3_flops(learner.input_dim, cfg.hidden_dim, agent.n_actions)  # the configured width
        metrics = {"test_return_mean": float(np.mean(returns)),
                   "test_return_final": float(model.get("final_return", float("nan"))),
                   "inference_flops_per_agent": float(agent.inference_flops_per_agent()),
                   "flops_ratio": float(agent.inference_flops_per_agent()) / dense,
                   "nonzero_params_per_agent": float(agent.nonzero_params_per_agent()),
                   **{k: float(v) for k, v in (model.get("train_stats") or {}).items()},
                   **_hook_metrics(agent)}
    per_episode = {"test_return": [float(r) for r in returns]}
    if wins is not None:
        metrics["test_win_rate_mean"] = float(np.mean(wins))
        per_episode["test_win"] = wins
    return {"metrics": metrics, "per_episode": per_episode, "n_episodes": len(returns)}


def entry_points(make_agent_net: AgentNetFactory = scheme_agent_net,
                 learner_cls: type[QLearner] = QLearner) -> tuple[Callable[..., dict[str, float]],
                                                                  Callable[..., dict[str, Any]]]:
    """The ``train`` and ``evaluate`` of a method module whose agent network comes from
    ``make_agent_net(cfg, input_dim, n_agents, n_actions)`` and whose learner is ``learner_cls``
    (a QLearner subclass overriding its hooks); everything else is this learner."""

    def train(cfg: Config, run: Run) -> dict[str, float]:
        return train_qmix(cfg, run, make_agent_net, learner_cls)

    def evaluate(cfg: Config, model: dict[str, Any], seed: int, device: str = "cpu",
                 assets_dir: Any = None) -> dict[str, Any]:
        return evaluate_qmix(cfg, model, seed, device, make_agent_net, learner_cls)

    return train, evaluate


train, evaluate = entry_points(scheme_agent_net)
