"""torchgfn side of the hypergrid TB throughput bench (run by bench/run_bench.py).

Runs in the *bench* venv (torchgfn 2.4.1 pins numpy<2, so it cannot share the project venv);
it imports nothing from the repository. Only torchgfn's public API is used: gfn.gym.HyperGrid,
gfn.preprocessors.KHotPreprocessor, gfn.utils.modules.MLP, gfn.estimators.DiscretePolicyEstimator,
gfn.gflownet.TBGFlowNet (its sample_trajectories / loss).

Usage: python bench/torchgfn_side.py '<json spec>'   -> prints one JSON object on stdout.
Spec keys: sizes [[ndim, height], ...], iterations, warmup, seeds, batch, hidden,
n_hidden_layers, lr, log_z_lr, r0, r1, r2, threads, modes. One fresh run per
(size, mode, seed); run_bench.py interleaves calls with our side and takes the medians.

Modes:
  onpolicy   sample_trajectories(save_logprobs=True) + loss(recalculate_all_logprobs=False):
             torchgfn's on-policy recipe (P_F log-probs kept from the rollout, with grad).
  recompute  sample_trajectories(save_logprobs=False) + loss(recalculate_all_logprobs=True):
             rollout without log-probs, then P_F and P_B re-evaluated over the stored
             trajectories -- the same structure as our loop (sample under no_grad, evaluate).
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def main() -> None:
    spec = json.loads(sys.argv[1])
    import torch

    torch.set_num_threads(int(spec.get("threads", 1)))
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)

    import gfn
    from gfn.estimators import DiscretePolicyEstimator
    from gfn.gflownet import TBGFlowNet
    from gfn.gym import HyperGrid
    from gfn.preprocessors import KHotPreprocessor
    from gfn.utils.modules import MLP

    def one_run(ndim: int, height: int, mode: str, seed: int) -> dict:
        torch.manual_seed(seed)
        env = HyperGrid(
            ndim=ndim, height=height, reward_fn_kwargs={"R0": spec["r0"], "R1": spec["r1"], "R2": spec["r2"]}
        )
        pre = KHotPreprocessor(height=height, ndim=ndim)
        # one shared trunk, two heads: the closest match to our PolicyNet (one body, heads
        # for P_F, P_B and log F; TB does not use the flow head)
        pf_module = MLP(
            input_dim=pre.output_dim,
            output_dim=env.n_actions,
            hidden_dim=spec["hidden"],
            n_hidden_layers=spec["n_hidden_layers"],
            activation_fn="leaky_relu",
        )
        pb_module = MLP(input_dim=pre.output_dim, output_dim=env.n_actions - 1, trunk=pf_module.trunk)
        pf = DiscretePolicyEstimator(pf_module, env.n_actions, preprocessor=pre, is_backward=False)
        pb = DiscretePolicyEstimator(pb_module, env.n_actions, preprocessor=pre, is_backward=True)
        gfn_ = TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)
        # pf_pb_parameters() lists the shared trunk twice (pf.* and pb.* names); dedupe
        seen, params = set(), []
        for p in gfn_.pf_pb_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        opt = torch.optim.Adam(
            [{"params": params, "lr": spec["lr"]}, {"params": gfn_.logz_parameters(), "lr": spec["log_z_lr"]}]
        )
        save = mode == "onpolicy"

        def step() -> torch.Tensor:
            traj = gfn_.sample_trajectories(env, n=spec["batch"], save_logprobs=save)
            loss = gfn_.loss(env, traj, recalculate_all_logprobs=not save)
            opt.zero_grad()
            loss.backward()
            opt.step()
            # actions taken per trajectory, exit action included (= our count incl. stop)
            return traj.terminating_idx

        for _ in range(spec["warmup"]):
            step()
        lens = []
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(spec["iterations"]):
            lens.append(step())
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        lens_t = torch.cat(lens).double()
        n_traj = int(lens_t.numel())
        n_trans = int(lens_t.sum())
        return {
            "ndim": ndim,
            "height": height,
            "mode": mode,
            "seed": seed,
            "seconds": dt,
            "cpu_seconds": cpu,
            "trajectories": n_traj,
            "transitions": n_trans,
            "traj_per_s": n_traj / dt,
            "trans_per_s": n_trans / dt,
            "traj_per_cpu_s": n_traj / cpu,
            "mean_len": float(lens_t.mean()),
        }

    out = {
        "torchgfn": getattr(gfn, "__version__", "?"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": [],
    }
    try:
        from importlib.metadata import version

        out["torchgfn"] = version("torchgfn")
        out["numpy"] = version("numpy")
    except Exception:
        pass
    for ndim, height in spec["sizes"]:
        for mode in spec["modes"]:
            for seed in spec["seeds"]:
                out["results"].append(one_run(ndim, height, mode, seed))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
