"""Hand-written mutation testing: does the suite notice when a mechanism is broken?

Each mutant replaces one snippet of the code (which must occur exactly once) by a broken
variant and runs the tests that should catch it. A mutant is *killed* when those tests fail,
*survives* when they pass (a gap in the tests), and is *stale* when its snippet no longer
exists (update the list). Mutants are applied in a scratch copy of the repository; the
working tree is never touched.

    <venv>/bin/python tests/mutants.py [--only SUBSTRING] [--keep-going]

Not part of CI (a few minutes); the survivors of the last run are listed in tests/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


GFN = ("tests/test_gfn_core.py", "tests/test_fm_subtb_bn.py", "tests/test_gfn_learners.py")
MUTANTS: list[Mutant] = [
    # ---------------------------------------------------------------- GFlowNet losses
    Mutant(
        "QGFN: p-greedy mixes the greedy action with weight 1 - p",
        "methods/gfn/qgfn.py",
        "return ((1.0 - p) * pf + p * greedy).log()",
        "return (p * pf + (1.0 - p) * greedy).log()",
        ("tests/test_qgfn.py",),
    ),
    Mutant(
        "QGFN: bootstrap one state too late",
        "methods/gfn/qgfn.py",
        "boot_at = (t[None] + n).clamp(max=L)",
        "boot_at = (t[None] + n + 1).clamp(max=L)",
        ("tests/test_qgfn.py",),
    ),
    Mutant(
        "QGFN: single instead of double DQN (lagged net picks the action)",
        "methods/gfn/qgfn.py",
        "best = q_online_next.masked_fill(",
        "best = q_lagged_next.masked_fill(",
        ("tests/test_qgfn.py",),
    ),
    Mutant(
        "QGFN: p-quantile drops the actions at the quantile",
        "methods/gfn/qgfn.py",
        "keep[..., a:b] = mb & (qb >= threshold)",
        "keep[..., a:b] = mb & (qb > threshold)",
        ("tests/test_qgfn.py",),
    ),
    Mutant(
        "QGFN: p-quantile over all actions, not per action type",
        "methods/gfn/qgfn.py",
        "for a, b in blocks or [(0, q.shape[-1])]:",
        "for a, b in [(0, q.shape[-1])]:",
        ("tests/test_qgfn.py",),
    ),
    Mutant(
        "GFlowNet: sampling copy never moves (frozen at init)",
        "methods/gfn/loop.py",
        "                polyak_(sampler, net, 1.0 - cfg.sampling_tau)",
        "                pass",
        ("tests/test_gfn_core.py",),
    ),
    Mutant(
        "GFlowNet: per-tensor clip clips the Q network too",
        "methods/gfn/loop.py",
        "            clip_gradients(cfg, opt, [*net.parameters(), *log_z.parameters()])",
        '            clip_gradients(cfg, opt, [p for g in opt.param_groups for p in g["params"]])',
        ("tests/test_gfn_core.py", "tests/test_qgfn.py"),
    ),
    Mutant(
        "GFlowNet: log Z MLP replaced by a scalar",
        "methods/gfn/core.py",
        '        if kind == "scalar":',
        "        if True:",
        ("tests/test_gfn_core.py",),
    ),
    Mutant(
        "bit sequences: only the first mode within the threshold is credited",
        "envs/bitseq.py",
        "        return torch.as_tensor(self.distances(self.to_strings(tokens)) <= self.mode_threshold)",
        "        return one_hot_modes(self._terminal_mode_index(tokens), self.n_modes)",
        ("tests/test_sequence_envs.py",),
    ),
    Mutant(
        "sEH: high-reward samples counted with repeats",
        "methods/gfn/metrics.py",
        "        return len(self.high_reward_states)",
        "        return self.n_seen",
        ("tests/test_sequence_envs.py",),
    ),
    # ---------------------------------------------------------------- guards and budgets
    Mutant(
        "guards: a baseline that did not learn is let through",
        "pipeline/guards.py",
        "        if base_fail:\n            if declared:",
        "        if False:\n            if declared:",
        ("tests/test_guards.py",),
    ),
    Mutant(
        "guards: a declared failing baseline excused at every scale",
        "pipeline/guards.py",
        "    if not source or (scales is not None and scale not in scales):",
        "    if not source:",
        ("tests/test_guards.py",),
    ),
    Mutant(
        "guards: step-0 'reproduced' not flagged",
        "pipeline/guards.py",
        '            holds = zero.get("verdict") == "reproduced" or (\n                zero.get("verdict") == "fact" and (zero.get("numbers") or {}).get("holds") is True\n            )\n',
        '            holds = False or (zero.get("verdict") == "fact" and (zero.get("numbers") or {}).get("holds") is True)\n',
        ("tests/test_guards.py", "tests/test_kaleidoscope.py"),
    ),
    Mutant(
        "guards: learning judged on the claim's metric, not its learning_metric",
        "pipeline/guards.py",
        "    lm = learning_metric(paper_cfg, metric)\n    final, before",
        "    lm = metric\n    final, before",
        ("tests/test_guards.py",),
    ),
    Mutant(
        "claims: extra claims share the paper's Holm family",
        "pipeline/claims.py",
        '    paper_family = [i for i in family if not recs[i].get("extra")]',
        "    paper_family = list(family)",
        ("tests/test_guards.py",),
    ),
    Mutant(
        "budget: RBS's paired rows not counted",
        "methods/gfn/goal/loop.py",
        "        budget.step(batch.actions.shape[0])",
        "        budget.step(cfg.batch_size)",
        ("tests/test_measured_budget.py",),
    ),
    Mutant(
        "confounds: measured differences never reported",
        "pipeline/confounds.py",
        "            if abs(ma - mb) > tolerance * max(abs(ma), abs(mb)):",
        "            if False:",
        ("tests/test_measured_budget.py",),
    ),
    Mutant(
        "budget: the sampled steps' FLOPs never counted",
        "methods/common/budget.py",
        "        self.flops_sampled += float(counter.get_total_flops())",
        "        self.flops_sampled += 0.0",
        ("tests/test_measured_budget.py",),
    ),
    Mutant(
        "confounds: a method's declared design difference ignored",
        "pipeline/confounds.py",
        '        named |= set(((method_differs or {}).get(side) or {}).get("differs_by") or [])',
        "        pass",
        ("tests/test_measured_budget.py",),
    ),
    Mutant(
        "evaluate: a config.yaml of another config accepted",
        "pipeline/cli.py",
        "    if trained.config_hash() != job.config_hash():",
        "    if False:",
        ("tests/test_crash_safety.py",),
    ),
    Mutant(
        "paper checks: scale placeholders never checked",
        "pipeline/paper_checks.py",
        "    for exp_id, kwarg in scale_placeholders(text):",
        "    for exp_id, kwarg in []:",
        ("tests/test_config_errors.py",),
    ),
    Mutant(
        "job server: the training child outlives a SIGKILLed job",
        "pipeline/jobserver.py",
        "            if not exited.is_set():\n                _kill_job(pid)",
        "            if not exited.is_set():\n                pass",
        ("tests/test_jobserver.py",),
    ),
    Mutant(
        "MATD3: others' actions from the current policies",
        "methods/marl/actor_critic/learner.py",
        '            joint = b["actions"].clone()',
        "            joint = (self.actor(inputs) * self.action_mask).detach()",
        ("tests/test_matd3.py",),
    ),
    Mutant(
        "MATD3: the baseline actor climbs the critics' mean",
        "methods/marl/actor_critic/learner.py",
        '            base = -(q[0] if self.cfg.actor_critics == "first" else q).mean()',
        "            base = -q.mean()",
        ("tests/test_matd3.py",),
    ),
    Mutant(
        "claims: MPE margin on the raw value, not the learning gain",
        "pipeline/claims.py",
        '        elif bv and claim.get("margin_basis") == "learning":',
        "        elif False:",
        ("tests/test_guards.py",),
    ),
    Mutant(
        "QGFN: Q network not in the optimiser",
        "methods/gfn/qgfn.py",
        "return list(self.q_net.parameters())",
        "return []",
        ("tests/test_qgfn.py",),
    ),
    Mutant(
        "QGFN: evaluation ignores the saved Q net",
        "methods/gfn/qgfn.py",
        '            self.q_net.load_state_dict(state["q_net"])\n            self.sampler',
        "            self.sampler",
        ("tests/test_qgfn.py", "tests/test_gfn_learners.py"),
    ),
    # ------------------------------------------------------------- multi-agent (QMIX, Kaleidoscope)
    Mutant(
        "QMIX: double Q takes the target network's argmax",
        "methods/marl/value/value_blocks.py",
        'best = online_next.masked_fill(~avail_next, -float("inf")).argmax(-1, keepdim=True)',
        'best = target_next.masked_fill(~avail_next, -float("inf")).argmax(-1, keepdim=True)',
        ("tests/test_marl.py",),
    ),
    Mutant(
        "QMIX: mixer weights not made non-negative (not monotonic)",
        "methods/marl/value/value_blocks.py",
        "w1 = self.hyper_w1(s).abs().view(",
        "w1 = self.hyper_w1(s).view(",
        ("tests/test_marl.py",),
    ),
    Mutant(
        "QMIX: TD(lambda) blends in the wrong order",
        "methods/marl/value/value_blocks.py",
        "((1 - lam) * next_q[:, t] + lam * later)",
        "(lam * next_q[:, t] + (1 - lam) * later)",
        ("tests/test_marl.py",),
    ),
    Mutant(
        "Kaleidoscope: diversity loss maximised with the wrong sign",
        "methods/marl/kaleidoscope_agent.py",
        "return -total / (n_masks * (n_masks - 1) * n_weights)",
        "return total / (n_masks * (n_masks - 1) * n_weights)",
        ("tests/test_kaleidoscope.py",),
    ),
    Mutant(
        "Kaleidoscope: resets positions some mask still uses",
        "methods/marl/kaleidoscope_agent.py",
        "flags &= ~layer.active_mask().any(dim=0)",
        "flags &= ~layer.active_mask().all(dim=0)",
        ("tests/test_kaleidoscope.py",),
    ),
    Mutant(
        "Kaleidoscope: adaptive coefficient inverted",
        "methods/marl/kaleidoscope_agent.py",
        "return abs(self.beta * fmean(self.base) / mean_div)",
        "return abs(self.beta * mean_div / fmean(self.base))",
        ("tests/test_kaleidoscope.py",),
    ),
    Mutant(
        "MAST: optimiser step taken on topology updates",
        "methods/marl/value/mast.py",
        "            self.last_moved = self.update_topology()  # RLx2: no optimiser step on a topology update\n",
        "            self.last_moved = self.update_topology()\n            self.opt.step()\n",
        ("tests/test_mast.py",),
    ),
    Mutant(
        "MAST: Soft Mellowmax without the softmax weights (alpha dropped)",
        "methods/marl/value/mast.py",
        "value = (lse(alpha + omega) - lse(alpha)) / omega",
        "value = (lse(omega) - lse(0.0)) / omega",
        ("tests/test_mast.py",),
    ),
    Mutant(
        "MAST: dual buffer takes no recent episodes",
        "methods/common/replay.py",
        "n_on = min(int(round(self.on_fraction * batch)), len(self.on))",
        "n_on = 0",
        ("tests/test_mast.py",),
    ),
    Mutant(
        "MAST: ER density from the whole grouped layer, not one agent's block",
        "methods/marl/value/mast.py",
        "shapes = [lay.block_shape for lay in layers]",
        "shapes = [(lay.out_features, lay.in_features) for lay in layers]",
        ("tests/test_mast.py",),
    ),
    Mutant(
        "TB: P_B added instead of subtracted",
        "methods/gfn/tb.py",
        "- batch.log_reward - log_pb.sum(1)",
        "- batch.log_reward + log_pb.sum(1)",
        GFN,
    ),
    Mutant(
        "DB: last transition ends in the flow head, not the reward",
        "methods/gfn/db.py",
        "log_f_dst = torch.where(batch.last, batch.log_reward[:, None], log_f_dst)",
        "log_f_dst = log_f_dst",
        GFN,
    ),
    Mutant(
        "SubTB: lambda^(i-j) instead of lambda^(j-i)",
        "methods/gfn/subtb.py",
        "logw = (k[None, :] - k[:, None]) *",
        "logw = (k[:, None] - k[None, :]) *",
        GFN,
    ),
    Mutant(
        "FM: leaf weight ignored",
        "methods/gfn/fm.py",
        "torch.full_like(res, self.leaf_coef)",
        "torch.ones_like(res)",
        GFN,
    ),
    Mutant(
        "masked logsumexp ignores its mask",
        "methods/gfn/policy.py",
        "return torch.logsumexp(x.masked_fill(~mask, -math.inf), dim=dim)",
        "return torch.logsumexp(x, dim=dim)",
        GFN,
    ),
    Mutant(
        "RPE: child flows not divided by |B(s')|",
        "methods/gfn/rpe.py",
        "return child_log_flows(self.env, self.net, ch) - ch.log_n_parents",
        "return child_log_flows(self.env, self.net, ch)",
        ("tests/test_rpe.py",),
    ),
    Mutant(
        "soft DQN: Munchausen term unclipped",
        "methods/gfn/soft_dqn.py",
        "log_pi.clamp(self.cfg.munchausen_l0, 0.0)",
        "log_pi",
        ("tests/test_rpe.py",),
    ),
    Mutant(
        "core: evaluation uses the forward head whatever the learner",
        "methods/gfn/core.py",
        "def method_policy(learner: Learner, env: Any, net: PolicyNet) -> Policy:\n"
        '    """The policy a trained model samples with (and whose exact distribution is measured)."""\n'
        "    return learner.policy(env, net)",
        "def method_policy(learner: Learner, env: Any, net: PolicyNet) -> Policy:\n    return forward_head(env, net)",
        ("tests/test_gfn_learners.py", "tests/test_rpe.py"),
    ),
    Mutant(
        "core: accuracy no longer capped at 1",
        "methods/gfn/loop.py",
        "accuracy=min(float((term * r_all).sum()) / expected_target, 1.0)",
        "accuracy=float((term * r_all).sum()) / expected_target",
        GFN + ("tests/test_rpe.py",),
    ),
    Mutant(
        "core: the after-step hook never called",
        "methods/gfn/loop.py",
        "            learner.after_step()\n",
        "",
        GFN + ("tests/test_rpe.py",),
    ),
    # ------------------------------------------------ goal-conditioned GFlowNets (RBS)
    Mutant(
        "RBS: backward path not reversed into a forward trajectory",
        "methods/gfn/goal/core.py",
        "src = (count[:, None] - 1 - j).clamp(min=0)",
        "src = j.expand(len(count), -1)",
        ("tests/test_rbs.py",),
    ),
    Mutant(
        "RBS: P_B regulariser added to the last transition too",
        "methods/gfn/goal/core.py",
        "res = res + torch.where(valid & ~last, pb_kl_coef",
        "res = res + torch.where(valid, pb_kl_coef",
        ("tests/test_rbs.py",),
    ),
    Mutant(
        "conditional DB: the stop transition keeps a P_B term",
        "methods/gfn/goal/core.py",
        "    move = valid & ~is_stop\n    back = env.backward_action(states[:, 1:], a)",
        "    move = valid\n    back = env.backward_action(states[:, 1:], a)",
        ("tests/test_rbs.py",),
    ),
    Mutant(
        "goal replay: sampled priorities never reset",
        "methods/gfn/goal/replay.py",
        "        if self.reset_sampled:\n",
        "        if False:\n",
        ("tests/test_rbs.py",),
    ),
    Mutant(
        "HER: relabelled trajectory keeps the original goal",
        "methods/gfn/goal/her.py",
        "return actions, achieved, torch.ones",
        "return actions, goals, torch.ones",
        ("tests/test_rbs.py",),
    ),
    Mutant(
        "goal grid: held-out goals drawn in training",
        "envs/goal_grid.py",
        "pool = self.heldout_goals if heldout else self.train_goals",
        "pool = self.heldout_goals if heldout else torch.cat([self.train_goals, self.heldout_goals])",
        ("tests/test_rbs.py",),
    ),
    Mutant(
        "EGFN: mutation with probability 1 - p",
        "methods/gfn/egfn.py",
        "generator=gen, device=gen.device)) < prob:",
        "generator=gen, device=gen.device)) > prob:",
        ("tests/test_egfn.py",),
    ),
    Mutant(
        "EGFN: tournament picks the worst draw",
        "methods/gfn/egfn.py",
        "(size,), generator=gen, device=gen.device).min())]",
        "(size,), generator=gen, device=gen.device).max())]",
        ("tests/test_egfn.py",),
    ),
    Mutant(
        "replay: keeps the lowest rewards",
        "methods/common/replay.py",
        "order = torch.sort(-lr, stable=True).indices[: self.size]",
        "order = torch.sort(lr, stable=True).indices[: self.size]",
        GFN + ("tests/test_egfn.py",),
    ),
    # ---------------------------------------------------------------- control
    Mutant(
        "TD3: target policy noise unclipped",
        "methods/control/td3.py",
        "        noise = (torch.randn(a_next.shape, generator=self.gen, device=a_next.device) * (c.policy_noise * m)).clamp(\n            -c.noise_clip * m, c.noise_clip * m\n        )\n",
        "        noise = torch.randn(a_next.shape, generator=self.gen, device=a_next.device) * (c.policy_noise * m)\n",
        ("tests/test_td3_sac.py", "tests/test_control.py"),
    ),
    Mutant(
        "TD3: actor updated every step",
        "methods/control/td3.py",
        "if self.n_updates % self.cfg.policy_delay == 0:",
        "if True:",
        ("tests/test_td3_sac.py", "tests/test_control.py"),
    ),
    Mutant(
        "SAC: no entropy bonus in the target",
        "methods/control/sac.py",
        "v_next = q_next.min(0).values - self.alpha * logp_next",
        "v_next = q_next.min(0).values",
        ("tests/test_td3_sac.py", "tests/test_control.py"),
    ),
    Mutant(
        "Polyak: target moves by 1 - tau",
        "methods/common/target.py",
        "list(online.parameters()), tau)",
        "list(online.parameters()), 1 - tau)",
        ("tests/test_td3_sac.py", "tests/test_rpe.py", "tests/test_control.py"),
    ),
    Mutant(
        "plasticity: events fire on every update of a step",
        "methods/control/plasticity.py",
        "return (agent.n_updates - 1) % agent.cfg.utd == 0",
        "return True",
        ("tests/test_td3_sac.py", "tests/test_control.py"),
    ),
    Mutant(
        "plasticity: an event after the last step",
        "methods/control/plasticity.py",
        "return step % interval == 0 and step < agent.cfg.iterations and",
        "return step % interval == 0 and",
        ("tests/test_td3_sac.py", "tests/test_control.py"),
    ),
    Mutant(
        "ReDo: scores not normalised by the layer mean",
        "methods/common/dormant.py",
        "    return mean_abs / denom\n",
        "    return mean_abs\n",
        ("tests/test_masked.py", "tests/test_common_blocks.py", "tests/test_control.py"),
    ),
    Mutant(
        "FLOPs: a MAC counted as one FLOP",
        "methods/common/flops.py",
        "per_sample += 2 * active_connections(layer, mask_index, dense)",
        "per_sample += active_connections(layer, mask_index, dense)",
        ("tests/test_masked.py", "tests/test_common_blocks.py", "tests/test_control.py"),
    ),
    Mutant(
        "OMNet: init not rescaled by 1/sqrt(keep)",
        "methods/control/omnet.py",
        "layer.weight.mul_(1.0 / math.sqrt(keep))",
        "layer.weight.mul_(1.0)",
        ("tests/test_common_blocks.py", "tests/test_control.py"),
    ),
    Mutant(
        "RigL: prune_and_grow grows nothing",
        "methods/common/prune_grow.py",
        "        grown = gradient_grow(layer, k, dense_grad, mask_index, init, exclude, generator)",
        "        grown = gradient_grow(layer, 0, dense_grad, mask_index, init, exclude, generator)",
        ("tests/test_masked.py", "tests/test_common_blocks.py", "tests/test_control.py"),
    ),
    Mutant(
        "NE: prune cap ignores omega",
        "methods/control/ne.py",
        "pruned = self.prune(layer, rows, int(math.floor(c.omega * n_grow)))",
        "pruned = self.prune(layer, rows, int(math.floor(0.4 * n_grow)))",
        ("tests/test_ne.py", "tests/test_masked.py", "tests/test_control.py"),
    ),
    Mutant(
        "NE: growth k not floored from phi * G_l",
        "methods/control/ne.py",
        "n_grow = int(math.floor(phi * self.growth_space[i]))",
        "n_grow = int(math.ceil(phi * self.growth_space[i]))",
        ("tests/test_ne.py", "tests/test_masked.py", "tests/test_control.py"),
    ),
    Mutant(
        "NE: fluctuation review compares windows of one update",
        "methods/control/ne.py",
        "return abs(sum(h[w:]) / w - sum(h[:w]) / w) > self.cfg.fluctuation_threshold",
        "return abs(h[-1] - h[0]) > self.cfg.fluctuation_threshold",
        ("tests/test_ne.py", "tests/test_masked.py", "tests/test_control.py"),
    ),
    # ---------------------------------------------------------------- verdicts
    Mutant(
        "Mann-Whitney: strict tail (p too small)",
        "pipeline/exact_tests.py",
        'p, method = float(np.mean(us >= u - 1e-9)), "exact (ties enumerated)"',
        'p, method = float(np.mean(us > u + 1e-9)), "exact (ties enumerated)"',
        ("tests/test_inference.py", "tests/test_calibration.py"),
    ),
    Mutant(
        "Holm: Bonferroni-free (no multiplier)",
        "pipeline/exact_tests.py",
        "running = max(running, min(1.0, (m - rank) * float(pvalues[i])))",
        "running = max(running, min(1.0, float(pvalues[i])))",
        ("tests/test_inference.py", "tests/test_claims.py", "tests/test_calibration.py"),
    ),
    Mutant(
        "BH: not monotone",
        "pipeline/exact_tests.py",
        "running = min(running, m * float(pvalues[i]) / rank)",
        "running = m * float(pvalues[i]) / rank",
        ("tests/test_inference.py", "tests/test_claims.py"),
    ),
    Mutant(
        "sign test: ties counted as successes",
        "pipeline/exact_tests.py",
        "above, below = int(np.sum((diff > 0) & ~tie)), int(np.sum((diff < 0) & ~tie))",
        "above, below = int(np.sum((diff >= 0))), int(np.sum((diff < 0) & ~tie))",
        ("tests/test_inference.py", "tests/test_claims.py"),
    ),
    Mutant(
        "claims: 'not reproduced' without evidence",
        "pipeline/claims.py",
        "        elif adj_against[j] <= alpha:",
        "        elif True:",
        ("tests/test_claims.py",),
    ),
    Mutant(
        "claims: saturation ignored",
        "pipeline/claims.py",
        '            if t.get("at_cap"):\n                rec.update(verdict="inconclusive", reason=f"{saturated}',
        '            if False:\n                rec.update(verdict="inconclusive", reason=f"{saturated}',
        ("tests/test_claims.py",),
    ),
    Mutant(
        "claims: non-inferiority margin dropped",
        "pipeline/claims.py",
        't["p_for"] = inf.mann_whitney(xs, ys, shift=margin)["p"]',
        't["p_for"] = inf.mann_whitney(xs, ys)["p"]',
        ("tests/test_claims.py",),
    ),
    Mutant("stats: IQM trims nothing", "pipeline/stats.py", "lo = int(0.25 * n)", "lo = 0", ("tests/test_stats.py",)),
    Mutant(
        "claims: no family-wise correction",
        "pipeline/claims.py",
        "    *,\n    alpha: float = ALPHA,\n    correction: str = CORRECTION,\n    settings: dict[str, list[dict]] | None = None,\n    guard: bool = True,\n",
        '    *,\n    alpha: float = ALPHA,\n    correction: str = "none",\n    settings: dict[str, list[dict]] | None = None,\n    guard: bool = True,\n',
        ("tests/test_claims.py", "tests/test_calibration.py"),
    ),
    Mutant(
        "Hodges-Lehmann: CI bounds from the wrong order statistics",
        "pipeline/exact_tests.py",
        "hi = None if c is None else float(d[d.size - c])",
        "hi = None if c is None else float(d[d.size - 1])",
        ("tests/test_inference.py", "tests/test_claims.py"),
    ),
    Mutant(
        "SePS-MATD3: every agent acts with cluster 0's network",
        "methods/marl/actor_critic/actors.py",
        "tanh(self.nets[int(self.clusters[agent])](inputs))",
        "tanh(self.nets[0](inputs))",
        ("tests/test_matd3.py",),
    ),
    Mutant(
        "SMAXBatch: an ended env's row keeps being overwritten",
        "envs/smax.py",
        "        rows = np.flatnonzero(live)\n",
        "        rows = np.arange(self.n_envs)\n",
        ("tests/test_smax.py",),
    ),
    Mutant(
        "SC2: SMAC's time limit reported as termination",
        "envs/sc2.py",
        "terminated = bool(ended) and not timed_out",
        "terminated = bool(ended)",
        ("tests/test_sc2.py",),
    ),
    Mutant(
        "SC2: Kaleidoscope's per-type masks drop the map's last unit type",
        "methods/marl/value/kaleidoscope.py",
        "return tuple(range(bits)), bits",
        "return tuple(range(bits - 1)), bits",
        ("tests/test_sc2.py",),
    ),
    Mutant(
        "SC2: Kaleidoscope's per-type masks refused off SMAX again",
        "methods/marl/value/kaleidoscope.py",
        'if self.env not in ("smax", "sc2"):',
        'if self.env not in ("smax",):',
        ("tests/test_sc2.py",),
    ),
    Mutant(
        "variants: an entry's settings left out of its runs' code hash",
        "pipeline/codehash.py",
        "    if entry:\n        digest = hashlib.sha256(",
        "    if False:\n        digest = hashlib.sha256(",
        ("tests/test_variants.py",),
    ),
    Mutant(
        "variants: a variant keeps its base's defaults",
        "methods/common/variants.py",
        'dataclasses.field(default=v)) for k, v in entry["settings"].items()]',
        'dataclasses.field(default=getattr(base.Config, k))) for k, v in entry["settings"].items()]',
        ("tests/test_variants.py",),
    ),
    Mutant(
        "costs: unmeasured runs estimated at the measured pairs' rate",
        "pipeline/costs.py",
        '        rate = (rates.get(pair_key(job)) or {}).get("s_per_iteration")',
        '        rate = next(iter(rates.values()), {}).get("s_per_iteration")',
        ("tests/test_costs.py",),
    ),
    Mutant(
        "costs: control updates counted through the warm-up",
        "methods/control/loop.py",
        "self.utd * max(0, self.iterations - self.start_steps)",
        "self.utd * self.iterations",
        ("tests/test_costs.py",),
    ),
    Mutant(
        "SC2: unit-type bits read from SMAC's registry on a SMACv2 map",
        "envs/sc2.py",
        'importlib.import_module(f"{_package(capability_config)}.env.starcraft2.maps")',
        'importlib.import_module("smac.env.starcraft2.maps")',
        ("tests/test_sc2.py",),
    ),
    # ---------------------------------------------------------------- VPDD and its stages
    Mutant(
        "stages: a shared (per_seed False) stage is trained once per seed",
        "pipeline/config.py",
        'seed=seed if spec["per_seed"] else int(spec["settings"].get("seed", 0)),',
        "seed=seed,",
        ("tests/test_vpdd.py",),
    ),
    Mutant(
        "VPDD: the EMA weights copy the live weights after the EMA starts",
        "methods/video/loop.py",
        "self.shadow[name].mul_(self.decay).add_(value, alpha=1 - self.decay)",
        "self.shadow[name].copy_(value)",
        ("tests/test_vpdd.py",),
    ),
    Mutant(
        "VPDD: the action model's attention is not causal",
        "methods/video/action_model.py",
        "attend(q, k, v, self.heads, p, causal=True)",
        "attend(q, k, v, self.heads, p, causal=False)",
        ("tests/test_vpdd_networks.py",),
    ),
    Mutant(
        "VPDD: a resumed stage forgets the curve sums since its last row",
        "methods/video/loop.py",
        'step, sums = ckpt["step"], ckpt["sums"]',
        'step, sums = ckpt["step"], {}',
        ("tests/test_vpdd.py",),
    ),
    Mutant(
        "VPDD: the forward corruption masks with probability 1 - alpha_bar instead of gamma_bar",
        "methods/video/diffusion.py",
        "torch.where(u < gamma_bar, layout.mask_id,",
        "torch.where(u < 1 - alpha_bar, layout.mask_id,",
        ("tests/test_vpdd_diffusion.py",),
    ),
    # ---------------------------------------------------------------- seed groups (issue 26)
    Mutant(
        "seed groups: every seed's exploration noise drawn from the first seed's generator",
        "methods/control/seed_batch.py",
        "noise = torch.stack([torch.randn(a.shape[1:], generator=g, device=a.device) for g in gens])",
        "noise = torch.stack([torch.randn(a.shape[1:], generator=gens[0], device=a.device) for g in gens])",
        ("tests/test_seed_group.py",),
    ),
    Mutant(
        "seed groups: a resumed env is reset without replaying the episode's actions",
        "methods/control/group_loop.py",
        "        for action in self.episode_actions:\n            obs, *_ = self.env.step(action)\n",
        "",
        ("tests/test_seed_group.py",),
    ),
    Mutant(
        "seed groups: the stacked critic's LayerNorm ignores its per-seed gain",
        "methods/common/stacked.py",
        "x = torch.addcmul(shift, F.layer_norm(x, x.shape[-1:], eps=self.norm_eps[i]), gain)",
        "x = F.layer_norm(x, x.shape[-1:], eps=self.norm_eps[i]) + shift",
        ("tests/test_seed_batch.py",),
    ),
    Mutant(
        "seed groups: adding a seed regroups every seed (groups counted from the last seed)",
        "pipeline/config.py",
        "return [tuple(range(i, min(i + k, n_seeds))) for i in range(0, n_seeds, k)]",
        "return [tuple(range(max(0, i - k), i)) for i in range(n_seeds, 0, -k)][::-1]",
        ("tests/test_seed_group.py",),
    ),
]


def run(mutant: Mutant, scratch: Path, python: str) -> str:
    target = scratch / mutant.path
    original = target.read_text()
    if original.count(mutant.old) != 1:
        return "stale"
    target.write_text(original.replace(mutant.old, mutant.new))
    try:
        env = dict(
            os.environ,
            PYTHONDONTWRITEBYTECODE="1",
            RLREPRO_DATA_MIRROR=os.environ.get("RLREPRO_DATA_MIRROR", str(ROOT.parent / "shared/data")),
        )
        proc = subprocess.run(
            [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        return "survived" if proc.returncode == 0 else "killed"
    finally:
        target.write_text(original)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the mutants whose name contains one of these comma-separated words")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlrepro-mutants-") as tmp:
        scratch = Path(tmp) / "repo"
        shutil.copytree(
            ROOT,
            scratch,
            ignore=shutil.ignore_patterns(
                ".git", "results", "work", "logs", "reports", ".snakemake", "mlruns", "__pycache__", ".dvc"
            ),
        )
        rows = []
        words = [w for w in args.only.split(",") if w]
        for m in MUTANTS:
            if words and not any(w in m.name for w in words):
                continue
            t0 = time.monotonic()
            outcome = run(m, scratch, sys.executable)
            rows.append((m, outcome))
            print(f"{outcome:9s} {time.monotonic() - t0:6.1f}s  {m.name}  ({m.path})", flush=True)
    survived = [m for m, o in rows if o == "survived"]
    stale = [m for m, o in rows if o == "stale"]
    killed = sum(o == "killed" for _, o in rows)
    print(f"\n{killed} killed, {len(survived)} survived, {len(stale)} stale of {len(rows)}")
    for m in survived:
        print(f"SURVIVED: {m.name} ({m.path})")
    for m in stale:
        print(f"STALE: {m.name} ({m.path})")
    return 1 if survived or stale else 0


if __name__ == "__main__":
    sys.exit(main())
