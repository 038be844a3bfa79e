"""Mechanism tests of RPE (rectified policy evaluation) and the soft-DQN / Munchausen-DQN
baselines (docs/papers/rpe.md). Exact quantities come from dynamic programming over
tiny enumerable DAGs: a tree (AR sequences), a PA-MDP and an HG-A hypergrid."""

from __future__ import annotations

import math

import pytest
import torch

from envs.hypergrid import HyperGrid
from envs.sequences import SequenceMDP
from methods.common.runapi import MemoryRun
from methods.gfn import core, mdqn, rpe, soft_dqn
from methods.common.replay import TransitionReplay
from resume import preempted_then_resumed


class ToySeq(SequenceMDP):
    """V = 3, L = 3, an arbitrary positive reward."""

    name = "toyseq"

    def _terminal_log_reward(self, tokens):
        v = self.tokens_value(tokens).double()
        return torch.log(0.2 + (v * 7 % 5) + 4.0 * (v == 11))


ENVS = {
    "tree": lambda: ToySeq(3, 3, mdp="ar"),
    "pa": lambda: ToySeq(3, 3, mdp="pa"),
    "hypergrid": lambda: HyperGrid(ndim=2, height=5, r0=1e-2),
}


class TableNet(torch.nn.Module):
    """A 'network' that looks states up in tables: forward logits, and log F(s) per state."""

    def __init__(self, env, states, log_f, logits=None):
        super().__init__()
        obs = env.obs(states).double()
        assert obs.shape[1] <= 50, "binary keys must stay exact in float64"
        self.weights = 2.0 ** torch.arange(obs.shape[1], dtype=torch.float64)
        keys = obs @ self.weights
        self.order = torch.argsort(keys)
        self.keys = keys[self.order]
        self.log_f = log_f
        self.logits = logits if logits is not None else torch.zeros(len(states), env.n_actions)
        self.n_back = env.n_backward_actions

    def forward(self, obs):
        i = self.order[torch.searchsorted(self.keys, obs.double() @ self.weights)]
        return self.logits[i], torch.zeros(len(i), self.n_back), self.log_f[i]


def exact_setup(name):
    env = ENVS[name]()
    exact = core.ExactDistribution(env)
    log_f = rpe.exact_log_flows(env, exact)
    target = core.exact_target(env, 1.0, exact.states)
    return env, exact, log_f, target


def uniform_batch(env, net, n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    actions = core.sample_trajectories(env, core.uniform_policy(env), n, gen)
    return core.evaluate_trajectories(env, net, actions)


# --------------------------------------------------------------------- the fixed point
@pytest.mark.parametrize("name", list(ENVS))
def test_exact_flows_zero_residual_and_exact_sampler(name):
    """With F = the uniform-P_B flow (DP), RPE's residual vanishes in both loss spaces and the
    sampler F(s')/|B(s')| hits R(x)/Z exactly — on any DAG, hypergrid included."""
    env, exact, log_f, target = exact_setup(name)
    net = TableNet(env, exact.states, log_f)
    batch = uniform_batch(env, net)
    for space in rpe.LOSS_SPACES:
        loss = rpe.RectifiedPolicyEvaluation(loss_space=space)
        loss.bind(env, net)
        res, sel = loss.residuals(batch)
        # value space: relative to the size of g(tau, s) F(s) (the rewards are float32)
        scale = (
            1.0
            if space == "log"
            else float((rpe.trajectory_log_g(env, batch)[:, :-1][sel] + batch.log_f[:, :-1][sel]).exp().max())
        )
        assert float(res.abs().max()) < 1e-5 * scale, space
    policy = rpe.ChildFlowPolicy(env, net)
    assert core.total_variation(exact.terminal_probs(policy), target) < 1e-6
    # the generic (stepping) path and the enumerated-table path give the same logits
    table = policy.exact_logits(exact)
    live = ~exact.forced
    direct = policy(exact.states[live]).double().masked_fill(~env.forward_mask(exact.states[live]), -math.inf)
    assert torch.allclose(direct, table[live])
    # the initial flow is the partition function of the DAG
    z = float(torch.logsumexp(env.log_reward(exact.states).double()[env.terminal_mask(exact.states)], 0))
    assert log_f[env.index(env.initial(1))].item() == pytest.approx(z, abs=1e-9)


def test_residual_by_hand_on_a_tree():
    """Root of the V = 3, L = 3 tree with log F = 0 everywhere below it except one child:
    target = log(e^2 + 1 + 1) since every child has |B| = 1."""
    env = ToySeq(3, 3, mdp="ar")
    exact = core.ExactDistribution(env)
    log_f = torch.zeros(len(exact.states), dtype=torch.float64)
    kids = exact.children[0][0]
    log_f[kids[0]] = 2.0
    log_f[env.index(env.initial(1))] = 0.5
    net = TableNet(env, exact.states, log_f)
    loss = rpe.RectifiedPolicyEvaluation()
    loss.bind(env, net)
    actions = torch.tensor([[0, 1, 2]])
    res, _ = loss.residuals(core.evaluate_trajectories(env, net, actions))
    assert float(res[0]) == pytest.approx(0.5 - math.log(math.exp(2) + 2), abs=1e-6)


# -------------------------------------------------------- path invariance (Thm 4.2 / §1.1)
def branching_ratios(env, exact):
    """g(s) over all paths by forward DP: (min, max) of log g(s) over a state's in-edges."""
    n = len(exact.states)
    lo = torch.full((n,), math.inf, dtype=torch.float64)
    hi = torch.full((n,), -math.inf, dtype=torch.float64)
    s0 = env.index(env.initial(1))
    lo[s0] = hi[s0] = 0.0
    log_a = env.forward_mask(exact.states).sum(-1).double().log()
    log_b = env.backward_mask(exact.states).sum(-1).clamp(min=1).double().log()
    for k, idx in enumerate(exact.levels):
        n_idx = idx[~exact.forced[idx]]
        if n_idx.numel() == 0:
            continue
        kids = exact.children[k]
        for lo_hi, red in ((lo, torch.minimum), (hi, torch.maximum)):
            cand = lo_hi[n_idx, None] + log_a[n_idx, None] - log_b[kids]
            for j in range(kids.shape[1]):
                lo_hi[kids[:, j]] = red(lo_hi[kids[:, j]], cand[:, j])
    return lo, hi, log_a


def markov_rectified_sampler(env, exact, log_g):
    """Evaluate pi_U with the *Markov* reward R'(x) = g(x) R(x) by DP and sample ∝ V(s')."""
    log_r = env.log_reward(exact.states).double()
    n = len(exact.states)
    log_v = torch.where(exact.forced, log_g + log_r, torch.full((n,), -math.inf, dtype=torch.float64))
    log_a = env.forward_mask(exact.states).sum(-1).double().log()
    logits = torch.zeros(n, env.n_actions, dtype=torch.float64)
    for k in reversed(range(len(exact.levels))):
        idx = exact.levels[k]
        n_idx = idx[~exact.forced[idx]]
        if n_idx.numel() == 0:
            continue
        child_v = log_v[exact.children[k]]
        if env.stop_action is not None:  # stop child x = s: g(x) = g(s) |A(s)|
            child_v = torch.cat([child_v, (log_g[n_idx] + log_a[n_idx] + log_r[n_idx])[:, None]], 1)
        log_v[n_idx] = torch.logsumexp(child_v, 1) - log_a[n_idx]
        moves = torch.tensor(exact.moves)
        logits[n_idx[:, None], moves[None]] = child_v[:, : len(exact.moves)]
        if env.stop_action is not None:
            logits[n_idx, env.stop_action] = child_v[:, -1]
    return log_v, logits


@pytest.mark.parametrize("name", ["tree", "pa"])
def test_rectified_value_equals_g_times_flow_where_path_invariant(name):
    env, exact, log_f, target = exact_setup(name)
    lo, hi, _ = branching_ratios(env, exact)
    assert torch.allclose(lo, hi)  # every path gives the same g
    if name == "pa":  # g = |V|^t on the PA-MDP
        assert torch.allclose(lo, env.level(exact.states).double() * math.log(3))
    log_v, logits = markov_rectified_sampler(env, exact, lo)
    assert torch.allclose(log_v, lo + log_f)  # V^{pi_U}(s) = g(s) F(s)
    assert core.total_variation(exact.terminal_probs(lambda s: logits[env.index(s)]), target) < 1e-6


def test_hypergrid_breaks_path_invariance_as_the_paper_says():
    env, exact, log_f, target = exact_setup("hypergrid")
    lo, hi, _ = branching_ratios(env, exact)
    assert float((hi - lo).max()) > 0.1  # some state is reached with different g
    # rectifying with a state-based g (any single choice: here the largest) breaks the sampler
    _, logits = markov_rectified_sampler(env, exact, hi)
    tv_markov = core.total_variation(exact.terminal_probs(lambda s: logits[env.index(s)]), target)
    assert tv_markov > 0.02
    # while the divided form RPE trains (uniform-P_B flow consistency) stays exact
    net = TableNet(env, exact.states, log_f)
    assert core.total_variation(exact.terminal_probs(rpe.ChildFlowPolicy(env, net)), target) < 1e-6


def test_target_network_and_config_checks():
    env = ENVS["hypergrid"]()
    net = core.PolicyNet(env.obs_dim, env.n_actions, env.n_backward_actions, 8, 1)
    loss = rpe.RectifiedPolicyEvaluation(target_tau=0.5)
    loss.bind(env, net)
    before = [p.clone() for p in loss.target.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    loss.after_step()
    for b, p_t, p in zip(before, loss.target.parameters(), net.parameters()):
        assert torch.allclose(p_t, 0.5 * b + 0.5 * p)
    with pytest.raises(ValueError, match="loss_space"):
        rpe.Config(loss_space="raw")


# --------------------------------------------------------------------------- soft DQN
def test_soft_dqn_targets_by_hand():
    """Q(s, .) = b (constant per action) on a 2-D, H = 4 grid; uniform P_B."""
    env = HyperGrid(ndim=2, height=4, r0=0.1)
    net = core.PolicyNet(env.obs_dim, env.n_actions, env.n_backward_actions, 4, 1)
    b_q = torch.tensor([0.3, -0.2, 1.0])
    with torch.no_grad():
        last = net.body[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[:3] = b_q
    cfg = mdqn.Config(env="hypergrid", env_kwargs={"ndim": 2, "height": 4, "r0": 0.1})
    learner = soft_dqn.SoftQLearning(cfg)
    learner.bind(env, net)
    # (1,1) -> move dim 0 -> (2,1): not terminal, |B(2,1)| = 2; then stop at (2,1)
    tr = soft_dqn.transitions(env, torch.tensor([[0, 1, 0, 2]]), 1.0)
    y = learner.td_target(tr)
    log_pi = torch.log_softmax(b_q, 0)
    lse = float(torch.logsumexp(b_q, 0))
    alpha = 0.15
    # s0=(0,0) -a0-> (1,0): |B| = 1
    assert float(y[0]) == pytest.approx(0.0 + lse + alpha * float(log_pi[0]), abs=1e-5)
    # (1,0) -a1-> (1,1): |B| = 2
    assert float(y[1]) == pytest.approx(-math.log(2) + lse + alpha * float(log_pi[1]), abs=1e-5)
    # (1,1) -a0-> (2,1): |B| = 2
    assert float(y[2]) == pytest.approx(-math.log(2) + lse + alpha * float(log_pi[0]), abs=1e-5)
    # (2,1) -stop-> x: terminal, P_B = 1, target log R(x)
    log_r = float(env.log_reward(torch.tensor([[2, 1]])))
    assert bool(tr["terminal"][3]) and not bool(tr["terminal"][2])
    assert float(y[3]) == pytest.approx(log_r + alpha * float(log_pi[2]), abs=1e-5)
    # the Munchausen bonus is clipped at l0
    cfg2 = mdqn.Config(munchausen_l0=-0.5)
    learner2 = soft_dqn.SoftQLearning(cfg2)
    learner2.bind(env, net)
    y2 = learner2.td_target(tr)
    assert float(y2[3]) == pytest.approx(log_r + alpha * max(float(log_pi[2]), -0.5), abs=1e-5)


@pytest.mark.parametrize("name", list(ENVS))
def test_soft_q_fixed_point_is_the_gflownet(name):
    """Q*(s, a) = log P_B(s|s') + log F(s') (R at terminal s') has zero TD error, and
    softmax(Q*) samples R(x)/Z: soft DQN and RPE share the uniform-P_B flow."""
    env, exact, log_f, target = exact_setup(name)
    live = ~exact.forced
    ch = rpe.children(env, exact.states[live])
    kid_f = log_f[env.index(ch.states.flatten(0, 1)).clamp(max=len(log_f) - 1)].view_as(ch.terminal)
    q = torch.zeros(len(exact.states), env.n_actions)
    q[live] = (torch.where(ch.terminal, ch.log_reward.double(), kid_f) - ch.log_n_parents.double()).float()
    net = TableNet(env, exact.states, log_f.float(), logits=q)
    cfg = soft_dqn.Config()
    learner = soft_dqn.SoftQLearning(cfg)
    learner.bind(env, net)
    gen = torch.Generator().manual_seed(0)
    actions = core.sample_trajectories(env, core.uniform_policy(env), 64, gen)
    _, td = learner.batch_loss(soft_dqn.transitions(env, actions, 1.0))
    assert float(td.abs().max()) < 1e-4
    assert core.total_variation(exact.terminal_probs(core.forward_head(env, net)), target) < 1e-5


def test_transition_replay_priorities_and_wraparound():
    buf = TransitionReplay(capacity=4, alpha=1.0)
    buf.add({"x": torch.arange(3)})
    idx = torch.tensor([0, 1, 2])
    buf.update_priorities(idx, torch.tensor([1.0, 0.0, 3.0]))
    assert buf.max_priority == pytest.approx(3.0)
    buf.add({"x": torch.tensor([10, 11])})  # one appended, one overwrites slot 0
    assert buf.data["x"].tolist() == [11, 1, 2, 10]
    assert buf.priority[0] == pytest.approx(3.0) and buf.priority[3] == pytest.approx(3.0)
    gen = torch.Generator().manual_seed(0)
    _, b = buf.sample(20_000, gen)
    freq = torch.bincount(b["x"], minlength=12).double() / 20_000
    # p ∝ (3, 1e-6, 3, 3): slot 1 almost never drawn, the others a third each
    assert float(freq[1]) < 1e-3
    assert float(freq[11]) == pytest.approx(1 / 3, abs=0.02)


# ----------------------------------------------------------------------- learning tests
HG = {"ndim": 2, "height": 6, "r0": 0.1}


def test_rpe_learns_the_hypergrid():
    """Calibrated: 300 rounds on a 6x6 grid (R0 = 0.1) reach exact TV 0.02-0.06 over seeds
    0-3, from 0.30-0.35 at initialisation."""
    cfg = rpe.Config(
        env="hypergrid", env_kwargs=HG, iterations=300, eval_every=300, hidden=64, lr=3e-3, online_batch=16
    )
    run = MemoryRun(seed=0)
    final = rpe.train(cfg, run)
    assert run.rows[0]["exact_tv"] > 0.2
    assert final["exact_tv"] < 0.1


@pytest.mark.parametrize("module,bound", [(soft_dqn, 0.15), (mdqn, 0.25)])
def test_soft_dqn_learns_the_hypergrid(module, bound):
    """Calibrated over seeds 0-3 (300 rounds): soft DQN 0.08-0.09, M-DQN 0.15-0.17 from
    0.54-0.60. M-DQN's fixed point is not exactly R/Z (the Munchausen term re-weights the
    entropy bonus), hence its looser bound."""
    cfg = module.Config(env="hypergrid", env_kwargs=HG, iterations=300, eval_every=300, hidden=64, transition_batch=64)
    run = MemoryRun(seed=0)
    final = module.train(cfg, run)
    assert run.rows[0]["exact_tv"] > 0.4
    assert final["exact_tv"] < bound


def test_soft_dqn_checkpoint_resume_is_exact():
    cfg = soft_dqn.Config(
        env="hypergrid", env_kwargs=HG, iterations=20, eval_every=5, checkpoint_every=10, hidden=16, transition_batch=16
    )
    full = MemoryRun(seed=1)
    soft_dqn.train(cfg, full)
    part, _ = preempted_then_resumed(soft_dqn.train, cfg, seed=1)
    assert repr(part.rows) == repr(full.rows)  # repr: NaN == NaN
