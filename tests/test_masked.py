"""Shared masked/sparse primitives (methods/common): batched masks, ER allocation, prune/grow,
ReDo, plasticity injection, non-zero counts."""

import torch

from methods.common import dormant, flops, mask_init, masked, prune_grow


def layer(n_masks=3, density=0.5, seed=0):
    torch.manual_seed(seed)
    lin = masked.MaskedLinear(6, 5, n_masks=n_masks)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k in range(n_masks):
            lin.masks[k] = mask_init.random_mask((5, 6), density, generator=g)
    return lin


def test_batched_forward_equals_separate_forwards():
    lin = layer()
    x = torch.randn(3, 4, 6)
    y = lin.forward_all(x)
    for k in range(3):
        assert torch.allclose(y[k], lin(x[k], k), atol=1e-6)
        w = lin.weight * lin.masks[k]
        assert torch.allclose(y[k], x[k] @ w.T + lin.bias, atol=1e-6)


def test_absent_connections_get_no_gradient():
    lin = layer(n_masks=1)
    lin(torch.randn(8, 6), 0).pow(2).sum().backward()
    assert (lin.weight.grad[lin.masks[0] == 0] == 0).all()
    assert (lin.weight.grad[lin.masks[0] == 1] != 0).any()


def test_random_mask_has_exact_count_and_er_budget():
    m = mask_init.random_mask((10, 20), 0.3, generator=torch.Generator().manual_seed(1))
    assert int(m.sum()) == 60
    shapes = [(256, 17), (256, 256), (1, 256)]
    d = mask_init.er_densities(shapes, 0.2)
    numel = [a * b for a, b in shapes]
    assert all(0 < x <= 1 for x in d)
    assert abs(sum(x * n for x, n in zip(d, numel)) / sum(numel) - 0.2) < 1e-6
    # ER gives the small layers more density than the big square one
    assert d[0] > d[1] and d[2] > d[1]


def test_magnitude_prune_removes_the_k_smallest_active():
    lin = layer(n_masks=1)
    active = lin.masks[0].bool().view(-1)
    w0 = lin.weight.detach().abs().view(-1).clone()
    before = int(active.sum())
    pos = prune_grow.magnitude_prune(lin, 3, 0)
    assert pos.numel() == 3 and int(lin.masks[0].sum()) == before - 3
    assert torch.allclose(torch.sort(w0[pos]).values, torch.sort(w0[active]).values[:3])
    assert (lin.weight.detach().view(-1)[pos] == 0).all()  # zeroed: no other mask uses them


def test_gradient_grow_picks_the_largest_absent_gradients():
    lin = layer(n_masks=1)
    grad = torch.randn(5, 6)
    absent = ~lin.masks[0].bool()
    expect = torch.topk(grad.abs().masked_fill(~absent, -1).view(-1), 4).indices
    pos = prune_grow.gradient_grow(lin, 4, grad, 0, init="zero")
    assert set(pos.tolist()) == set(expect.tolist())
    assert (lin.masks[0].view(-1)[pos] == 1).all()
    assert (lin.weight.detach().view(-1)[pos] == 0).all()  # init "zero"


def test_prune_and_grow_swaps_smallest_weights_for_largest_gradients():
    """RigL's constant-density step (NE's phase after growth): the k smallest-|W| active
    connections go, the k absent ones with the largest |dense grad| come (at zero), the density
    stays, and the optimizer state of every changed position is reset."""
    lin = layer(n_masks=1)
    opt = torch.optim.Adam([lin.weight])
    lin(torch.randn(8, 6), 0).pow(2).sum().backward()
    opt.step()
    lin.enforce_masks_()
    before, w0 = lin.masks[0].bool().clone(), lin.weight.detach().clone()
    grad = torch.randn(5, 6, generator=torch.Generator().manual_seed(3))
    change = prune_grow.prune_and_grow(lin, 4, grad, 0, optimizer=opt)
    after = lin.masks[0].bool()
    pruned = (before & ~after).view(-1).nonzero().squeeze(1)
    grown = (~before & after).view(-1).nonzero().squeeze(1)
    assert int(after.sum()) == int(before.sum())
    smallest = w0.abs().view(-1).masked_fill(~before.view(-1), float("inf")).argsort()[:4]
    largest = grad.abs().view(-1).masked_fill(before.view(-1), -1.0).argsort(descending=True)[:4]
    assert set(pruned.tolist()) == set(smallest.tolist()) == set(change.pruned.tolist())
    assert set(grown.tolist()) == set(largest.tolist()) == set(change.grown.tolist())
    assert (lin.weight.detach().view(-1)[torch.cat([pruned, grown])] == 0).all()
    state = opt.state[lin.weight]
    for key in ("exp_avg", "exp_avg_sq"):
        assert (state[key].view(-1)[change.changed] == 0).all()
        assert (state[key].view(-1)[after.view(-1)] != 0).sum() > 0


def test_redo_resets_exactly_the_dormant_units():
    torch.manual_seed(0)
    fc1, fc2 = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)
    opt = torch.optim.Adam(list(fc1.parameters()) + list(fc2.parameters()))
    fc2(torch.relu(fc1(torch.randn(16, 4)))).sum().backward()
    opt.step()
    w1, w2 = fc1.weight.detach().clone(), fc2.weight.detach().clone()
    dead = torch.tensor([False, True, False, False, True, False])
    n = dormant.redo_reset(fc1, fc2, dead, optimizer=opt)
    assert n == 2
    assert torch.equal(fc1.weight[~dead], w1[~dead]) and not torch.equal(fc1.weight[dead], w1[dead])
    assert (fc2.weight[:, dead] == 0).all() and torch.equal(fc2.weight[:, ~dead], w2[:, ~dead])
    st = opt.state[fc1.weight]
    assert (st["exp_avg"][dead] == 0).all() and (st["exp_avg_sq"][dead] == 0).all()
    assert (st["exp_avg"][~dead] != 0).any()


def test_dormant_scores_on_hand_built_activations():
    h = torch.tensor([[1.0, 0.0, 3.0], [1.0, 0.0, 1.0]])  # mean |h| per unit: 1, 0, 2 (mean 1)
    assert torch.allclose(dormant.dormant_scores(h), torch.tensor([1.0, 0.0, 2.0]))
    assert dormant.dormant_units(h, 0.1).tolist() == [False, True, False]


def test_plasticity_injection_leaves_output_unchanged():
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x = torch.randn(5, 4)
    before = head(x).detach()
    injected = dormant.inject(head)
    assert torch.allclose(injected(x), before, atol=1e-6)


def test_nonzero_params_counts_active_connections():
    lin = layer(n_masks=1)
    net = torch.nn.Sequential(lin)
    assert flops.nonzero_params(net) == int(lin.masks[0].sum()) + 5  # + bias
