"""EGFN's evolutionary mechanisms: elite preservation, mutation and crossover rates,
tournament selection, the population feeding the PRB, and checkpoint/resume."""

import torch

import envs
from methods.common.runapi import MemoryRun
from methods.gfn import core, egfn
from resume import preempted_then_resumed


def make_population(k=6, elites=2, **kw):
    env = envs.make("hypergrid", ndim=2, height=6)
    cfg = egfn.Config(env_kwargs=env.kwargs(), population_size=k, num_elites=elites, hidden=16, **kw)
    torch.manual_seed(0)
    return env, cfg, egfn.Population(env, cfg, torch.device("cpu"))


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_elites_are_preserved_unchanged():
    env, cfg, pop = make_population(k=8, elites=2)
    before = [snapshot(a) for a in pop.agents]
    fitness = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.2, 0.5, 0.4, 0.0])
    g = torch.Generator().manual_seed(1)
    new_elites = pop.evolve(fitness, g)
    assert len(new_elites) == 2
    # the two fittest (agents 1 and 3) now sit, unchanged, in the elite slots
    assert same(snapshot(pop.agents[new_elites[0]]), before[1])
    assert same(snapshot(pop.agents[new_elites[1]]), before[3])
    # every other agent changed (mutation prob 0.9 per tensor, 6 tensors: unchanged ~1e-6)
    for i in range(8):
        if i not in new_elites:
            assert not any(same(snapshot(pop.agents[i]), b) for b in before)


def test_mutation_rate_and_scale():
    torch.manual_seed(0)
    net = core.PolicyNet(12, 3, 2, hidden=8, n_hidden_layers=3)  # 8 tensors
    g = torch.Generator().manual_seed(0)
    mutated, n, deltas = 0, 0, []
    for _ in range(300):
        before = snapshot(net)
        egfn.mutate(net, prob=0.9, std=1.0, gen=g)
        for b, a in zip(before, snapshot(net)):
            n += 1
            if not torch.equal(a, b):
                mutated += 1
                deltas.append((a - b).flatten())
    assert abs(mutated / n - 0.9) < 0.03
    d = torch.cat(deltas)
    assert abs(float(d.std()) - 1.0) < 0.05 and abs(float(d.mean())) < 0.05
    before = snapshot(net)
    egfn.mutate(net, prob=0.0, std=1.0, gen=g)
    assert same(before, snapshot(net))


def test_crossover_swaps_whole_rows():
    torch.manual_seed(0)
    a = core.PolicyNet(12, 3, 2, hidden=16, n_hidden_layers=2)
    b = core.PolicyNet(12, 3, 2, hidden=16, n_hidden_layers=2)
    a0, b0 = snapshot(a), snapshot(b)
    egfn.crossover(a, b, torch.Generator().manual_seed(3))
    touched = 0
    for wa, wb, oa, ob in zip(snapshot(a), snapshot(b), a0, b0):
        for r in range(wa.shape[0]):
            if torch.equal(wa[r], oa[r]) and torch.equal(wb[r], ob[r]):
                continue  # untouched row
            touched += 1
            assert torch.equal(wa[r], wb[r])  # a copied row makes both equal
            assert torch.equal(wa[r], oa[r]) or torch.equal(wa[r], ob[r])
    assert touched > 0


def test_tournament_prefers_good_ranks_and_is_even():
    g = torch.Generator().manual_seed(0)
    rank = [7, 3, 5, 0, 1, 2, 4, 6]  # best first
    counts = torch.zeros(8)
    for _ in range(200):
        w = egfn.tournament(rank, 6, 4, g)
        assert len(w) % 2 == 0 and len(set(w)) >= len(w) - 1
        for i in set(w):
            counts[i] += 1
    assert counts[7] > counts[6]  # the best is selected far more often than the worst


def test_population_feeds_replay_not_metrics():
    env, cfg, pop = make_population(k=4, elites=1, eval_episodes=3)
    actions, log_r = pop.step(torch.Generator().manual_seed(0))
    assert actions.shape[0] == 12 and log_r.shape == (12,)
    assert pop.last_fitness.shape == (4,)
    cfg = egfn.Config(
        env_kwargs=dict(ndim=2, height=6),
        iterations=3,
        eval_every=3,
        hidden=16,
        population_size=4,
        num_elites=1,
        eval_episodes=3,
    )
    run = MemoryRun(seed=0)
    final = egfn.train(cfg, run)
    assert final["trajectories"] == 3 * cfg.online_batch  # the star's samples only


def test_egfn_resume_matches_uninterrupted_run():
    cfg = egfn.Config(
        env_kwargs=dict(ndim=2, height=6),
        iterations=30,
        eval_every=10,
        checkpoint_every=10,
        hidden=16,
        population_size=4,
        num_elites=1,
    )
    ref = MemoryRun(seed=2)
    ref_final = egfn.train(cfg, ref)
    run, final = preempted_then_resumed(egfn.train, cfg, seed=2)
    assert repr(run.rows) == repr(ref.rows) and repr(final) == repr(ref_final)


def test_no_mutation_ablation_keeps_selection_and_crossover(monkeypatch):
    from methods import load
    from methods.gfn import egfn_no_mutation

    assert load("egfn_no_mutation") is egfn_no_mutation and egfn_no_mutation.Config().mutation is False
    env = envs.make("hypergrid", ndim=2, height=6)
    cfg = egfn_no_mutation.Config(
        env_kwargs=env.kwargs(), population_size=8, num_elites=2, hidden=16, crossover_prob=1.0
    )
    torch.manual_seed(0)
    pop = egfn.Population(env, cfg, torch.device("cpu"))
    before = [snapshot(a) for a in pop.agents]

    def no_noise(*args, **kwargs):
        raise AssertionError("mutation called in the no-mutation ablation")

    monkeypatch.setattr(egfn, "mutate", no_noise)
    fitness = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.2, 0.5, 0.4, 0.0])
    pop.evolve(fitness, torch.Generator().manual_seed(1))
    changed = 0
    for agent in pop.agents:
        for t, param in enumerate(agent.parameters()):
            # every row is some agent's row from before: copied or crossed over, never perturbed
            pool = torch.cat([b[t].reshape(b[t].shape[0], -1) for b in before])
            rows = param.detach().reshape(param.shape[0], -1)
            assert all(bool((pool == r).all(1).any()) for r in rows)
        changed += not any(same(snapshot(agent), b) for b in before)
    assert changed > 0  # crossover still mixed parents
