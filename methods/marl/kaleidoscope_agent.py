"""Kaleidoscope (Li, Pan, Zhang, NeurIPS 2024, arXiv 2410.08540) as an agent network for QMIX.

One shared "1R3" recurrent Q-network (obs ⊕ agent id → FC → GRU → FC → FC → FC) whose four fully
connected layers carry K learnable soft-threshold masks (STR, Kusupati et al. 2020), one per mask
owner: agent n uses mask n on MPE (K = n_agents); SMACv2 assigns masks by unit type, which the
``mask_ids`` argument of :meth:`KaleidoscopeAgent.forward` allows. The GRU is shared and
unmasked. Three things make the masks differ (the official code; docs/papers/kaleidoscope.md):

* the TD loss itself, which reaches both W and the thresholds S_k through the soft threshold;
* a diversity loss (:func:`diversity_loss`) on the hard masks, scaled by an adaptive coefficient
  (:class:`AdaptiveDiversityCoef`) so that it stays a fixed ratio β of the TD loss;
* periodic resets (:meth:`KaleidoscopeAgent.reset_`) that revive weights every mask has pruned.

The QMIX learner calls the hooks ``auxiliary_loss``, ``on_env_steps``, ``diagnostics`` and the
FLOP/parameter counters. The state a resumed run needs beyond the parameters (the coefficient's
loss histories, the step of the last reset) travels in the module's ``state_dict`` as
``_extra_state`` (:meth:`~KaleidoscopeAgent.get_extra_state`), so a checkpoint of the agent
network carries it; the target network's hard copy receives a harmless copy of it too.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from statistics import fmean
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.common.constraints import Bound, Constrained, at_least, within
from methods.common.flops import active_connections
from methods.common.masked import MaskedLinear, hard_masks
from methods.common.seeding import draw_device
from methods.marl.agents import AgentNetwork

MASKED_LAYERS = ("fc1", "fc2", "fc3", "fc4")
RESET_LAYERS = ("fc2", "fc3", "fc4")  # fc1 is never reset (official code, reset_layers)


# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------


@dataclass
class KaleidoscopeSettings(Constrained):
    """Kaleidoscope's own hyperparameters (MPE values of the official config as defaults).

    Attributes:
        div_coef: β, the target ratio of the diversity term to the TD loss (SMACv2: 5.0).
        reset_interval: R, env steps between resets; 0 switches resets off (ablation).
        reset_ratio: ρ, the Bernoulli probability of a reset flag per weight position.
        threshold_init: ``(scale, bias)`` of ``S = -(U(0,1)*scale + bias)``, at init and reset.
        layer_weights: c_l of fc1..fc4 in the diversity loss.
        deque_len: length of the loss histories the adaptive coefficient averages.
    """

    div_coef: float = 0.5
    reset_interval: int = 200_000
    reset_ratio: float = 0.1
    threshold_init: tuple[float, float] = (5.0, 5.0)
    layer_weights: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    deque_len: int = 100

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {
        "div_coef": at_least(0),
        "reset_interval": at_least(0),
        "reset_ratio": within(0, 1),
        "deque_len": at_least(1),
    }

    def __post_init__(self) -> None:
        # YAML gives lists; tuples keep the settings hashable and immutable
        self.threshold_init = tuple(float(v) for v in self.threshold_init)  # type: ignore[assignment]
        self.layer_weights = tuple(float(v) for v in self.layer_weights)
        self.check_values()
        if len(self.threshold_init) != 2:
            raise ValueError(f"threshold_init: must be (scale, bias) (got {self.threshold_init!r})")
        if len(self.layer_weights) != len(MASKED_LAYERS):
            raise ValueError(
                f"layer_weights: must have {len(MASKED_LAYERS)} entries, one per "
                f"masked layer (got {self.layer_weights!r})"
            )
        for name, values in (("threshold_init", self.threshold_init), ("layer_weights", self.layer_weights)):
            if any(not math.isfinite(v) or v < 0 for v in values):
                raise ValueError(f"{name}: entries must be finite and >= 0 (got {values!r})")


# ---------------------------------------------------------------------------------------------
# diversity loss and its adaptive coefficient
# ---------------------------------------------------------------------------------------------


def diversity_loss(layers: Sequence[MaskedLinear], layer_weights: Sequence[float]) -> Tensor:
    """``L_div = -Σ_l c_l Σ_{j,k} ‖M̃_j − M̃_k‖_1 / (K(K−1)·P)`` (ordered pairs; P = weights of
    the masked layers), with weighted hard masks ``M̃_k = 1[|W| > σ(S_k)] ⊙ |W|``.

    W is detached: the loss moves only the thresholds, through the straight-through Heaviside
    whose backward is tanh(upstream gradient) (methods/common/masked.py, :func:`hard_masks`).
    Masks that agree at a position give no gradient there (d|x|/dx = 0 at x = 0), so at init,
    when every mask is almost dense, the TD loss has to separate them first.
    """
    if len(layers) != len(layer_weights):
        raise ValueError(f"{len(layers)} layers but {len(layer_weights)} layer weights")
    n_masks = layers[0].n_masks
    if any(layer.n_masks != n_masks for layer in layers):
        raise ValueError("all layers must hold the same number of masks")
    if n_masks < 2:  # diversity between masks is undefined with one mask
        return layers[0].weight.new_zeros(())
    total = layers[0].weight.new_zeros(())
    n_weights = 0
    for layer, c in zip(layers, layer_weights):
        weighted = hard_masks(layer) * layer.weight.detach().abs()  # [K, out, in]
        flat = weighted.reshape(1, n_masks, -1)
        # pairwise L1 distances [K, K] without a [K, K, out*in] intermediate; its backward
        # equals that of |m_j - m_k|.sum() (zero where two masks agree)
        total = total + c * torch.cdist(flat, flat, p=1).sum()
        n_weights += layer.weight.numel()
    return -total / (n_masks * (n_masks - 1) * n_weights)


class AdaptiveDiversityCoef:
    """``β_t = |β · mean(L_base) / mean(L_div)|`` over the last ``maxlen`` updates, β itself
    while the mean diversity loss is 0 (identical masks) or nothing is recorded yet.

    β is thus the target ratio of the diversity term to the base loss, whatever the scale of the
    rewards; the abs() keeps β_t positive when L_base is negative (an actor's −Q).
    """

    def __init__(self, beta: float, maxlen: int = 100):
        self.beta = float(beta)
        self.maxlen = int(maxlen)
        self.base: deque[float] = deque(maxlen=self.maxlen)
        self.div: deque[float] = deque(maxlen=self.maxlen)

    def record(self, base_loss: float, div_loss: float) -> None:
        self.base.append(float(base_loss))
        self.div.append(float(div_loss))

    def value(self) -> float:
        """β_t from the histories as they stand."""
        if not self.div:
            return self.beta
        mean_div = fmean(self.div)
        if mean_div == 0:
            return self.beta
        return abs(self.beta * fmean(self.base) / mean_div)

    def update(self, base_loss: float, div_loss: float) -> float:
        """Record this update's losses, then return β_t (the official order: the current
        losses are part of the means)."""
        self.record(base_loss, div_loss)
        return self.value()

    def state_dict(self) -> dict[str, Any]:
        """Plain lists and floats: survives ``torch.load(weights_only=True)``."""
        return {"beta": self.beta, "maxlen": self.maxlen, "base": list(self.base), "div": list(self.div)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the histories (β and the length stay those of the constructor's settings)."""
        self.base = deque((float(v) for v in state["base"]), maxlen=self.maxlen)
        self.div = deque((float(v) for v in state["div"]), maxlen=self.maxlen)


@torch.no_grad()
def reset_pruned_(layers: Sequence[MaskedLinear], ratio: float, generator: torch.Generator | None = None) -> int:
    """Kaleidoscope's reset (the official code's mask reset), in place on ``layers``: a Bernoulli(``ratio``)
    share of the positions *every* mask has pruned gets W re-drawn from PyTorch's default Linear
    init (Kaiming-uniform, a = √5; drawn for the whole matrix, then selected) and S_k of all masks
    re-drawn from the init range. Positions some mask still uses, biases and the optimiser's
    state are left alone. Returns the number of positions reset."""
    device = draw_device(generator)
    n_reset = 0
    for layer in layers:
        w = layer.weight
        flags = torch.rand(w.shape, generator=generator, device=device).to(w.device) < ratio
        flags &= ~layer.active_mask().any(dim=0)  # before the thresholds change
        layer.reset_thresholds_(where=flags, generator=generator)
        fresh = torch.empty(w.shape, dtype=w.dtype, device=device)
        nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
        w[flags] = fresh.to(w.device)[flags]
        n_reset += int(flags.sum())
    return n_reset


# ---------------------------------------------------------------------------------------------
# the agent network
# ---------------------------------------------------------------------------------------------


def gru_cell_flops(cell: nn.GRUCell) -> int:
    """FLOPs of one GRUCell step for one sample, by methods/common/flops.py's conventions: 2 per
    multiply-add of the input and hidden projections plus their bias adds; the gates'
    element-wise operations are O(units) and not counted, like activations."""
    flops = 2 * (cell.weight_ih.numel() + cell.weight_hh.numel())
    if cell.bias:
        flops += cell.bias_ih.numel() + cell.bias_hh.numel()
    return flops


class KaleidoscopeAgent(AgentNetwork):
    """The 1R3 QMIX agent with K soft-threshold masks on fc1..fc4 (official Kalei_MPE agent).

    ``input → fc1 (in, H) ReLU → GRUCell(H) → fc2 (H, H) ReLU → fc3 (H, H) ReLU → fc4 (H, A)``.
    Inputs are built by the learner (obs ⊕ one-hot agent id: Kaleidoscope sits on FuPS+ID).

    Args:
        input_dim, n_actions, n_agents, hidden_dim: the network's sizes.
        settings: Kaleidoscope's hyperparameters.
        n_masks: K; defaults to ``n_agents`` (one mask per agent). With another owner (unit
            types), pass ``mask_ids`` to :meth:`forward`.
    """

    def __init__(
        self,
        input_dim: int,
        n_actions: int,
        n_agents: int,
        hidden_dim: int = 64,
        settings: KaleidoscopeSettings | None = None,
        n_masks: int | None = None,
    ):
        super().__init__()
        self.settings = settings if settings is not None else KaleidoscopeSettings()
        self.n_agents, self.n_actions, self.hidden_dim = n_agents, n_actions, hidden_dim
        self.n_masks = n_agents if n_masks is None else n_masks

        def masked(n_in: int, n_out: int) -> MaskedLinear:
            return MaskedLinear(
                n_in, n_out, self.n_masks, soft_threshold=True, threshold_init=self.settings.threshold_init
            )

        self.fc1 = masked(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
        self.fc2 = masked(hidden_dim, hidden_dim)
        self.fc3 = masked(hidden_dim, hidden_dim)
        self.fc4 = masked(hidden_dim, n_actions)
        self.coef = AdaptiveDiversityCoef(self.settings.div_coef, self.settings.deque_len)
        self.last_reset_t = 0  # env step of the last reset (0: none yet, as in the official code)

    @property
    def masked_layers(self) -> list[MaskedLinear]:
        return [getattr(self, name) for name in MASKED_LAYERS]

    @property
    def reset_layers(self) -> list[MaskedLinear]:
        return [getattr(self, name) for name in RESET_LAYERS]

    # -- forward ------------------------------------------------------------------------------
    def init_hidden(self, batch_size: int) -> Tensor:
        return self.fc1.weight.new_zeros(batch_size, self.n_agents, self.hidden_dim)

    def forward(self, inputs: Tensor, hidden: Tensor, mask_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``inputs [B, N, in]``, ``hidden [B, N, H]`` → ``q [B, N, A]``, new hidden ``[B, N, H]``.

        ``mask_ids``: LongTensor ``[B, N]`` (or ``[N]``, the same for every batch row) of the
        mask each row uses; None: row n of dim 1 uses mask n (needs K == N)."""
        B, N, _ = inputs.shape
        H = self.hidden_dim
        if mask_ids is None:
            if N != self.n_masks:
                raise ValueError(f"{N} agents but {self.n_masks} masks: pass mask_ids")
            # agent-major layout [N, B, ...]: mask n multiplies only agent n's B rows, one
            # batched matmul for all masks instead of K× the work of a per-row gather
            x = F.relu(self.fc1.forward_all(inputs.transpose(0, 1)))
            h = self.rnn(x.reshape(N * B, H), hidden.transpose(0, 1).reshape(N * B, H)).view(N, B, H)
            q = F.relu(self.fc2.forward_all(h))
            q = F.relu(self.fc3.forward_all(q))
            q = self.fc4.forward_all(q)
            return q.transpose(0, 1).contiguous(), h.transpose(0, 1).contiguous()
        ids = torch.broadcast_to(mask_ids.to(inputs.device).long(), (B, N))
        x = F.relu(self.fc1(inputs, ids))
        h = self.rnn(x.reshape(B * N, H), hidden.reshape(B * N, H)).view(B, N, H)
        q = F.relu(self.fc2(h, ids))
        q = F.relu(self.fc3(q, ids))
        return self.fc4(q, ids), h

    # -- learner hooks ------------------------------------------------------------------------
    def diversity_loss(self) -> Tensor:
        return diversity_loss(self.masked_layers, self.settings.layer_weights)

    def auxiliary_loss(self, td_loss: Tensor) -> Tensor:
        """``β_t · L_div``, added to the TD loss before backward. Both losses enter the
        coefficient's histories as floats, so β_t carries no gradient."""
        div = self.diversity_loss()
        beta_t = self.coef.update(float(td_loss.detach()), float(div.detach()))
        return beta_t * div

    def on_env_steps(self, t_env: int, t_max: int, generator: torch.Generator | None = None) -> bool:
        """Reset when more than R env steps have passed since the last reset and more than R
        remain before ``t_max`` (the official condition, strict on both sides). True if it ran."""
        interval = self.settings.reset_interval
        if interval <= 0:
            return False
        if t_env - self.last_reset_t > interval and t_max - t_env > interval:
            self.reset_(generator)
            self.last_reset_t = int(t_env)
            return True
        return False

    @torch.no_grad()
    def reset_(self, generator: torch.Generator | None = None, ratio: float | None = None) -> int:
        """Re-initialise, in fc2..fc4, a Bernoulli(ρ) share of the positions every mask has
        pruned (:func:`reset_pruned_`). Returns the number of positions reset."""
        ratio = self.settings.reset_ratio if ratio is None else ratio
        return reset_pruned_(self.reset_layers, ratio, generator)

    # -- diagnostics and counts ---------------------------------------------------------------
    @torch.no_grad()
    def sparsities(self) -> dict[str, float]:
        """Per layer, the fraction of zero entries of W_k averaged over the masks; ``sparsity``
        over all masked weights; ``sparsity_all_params`` relative to every non-threshold
        parameter (GRU and biases included), the official code's overall figure."""
        out: dict[str, float] = {}
        zeros, masked_total = 0.0, 0
        for name, layer in zip(MASKED_LAYERS, self.masked_layers):
            per_mask = 1.0 - layer.active_mask().float().mean(dim=(1, 2))  # [K]
            out[f"sparsity_{name}"] = per_mask.mean().item()
            zeros += out[f"sparsity_{name}"] * layer.weight.numel()
            masked_total += layer.weight.numel()
        all_params = sum(p.numel() for n, p in self.named_parameters() if not n.endswith("threshold"))
        out["sparsity"] = zeros / masked_total
        out["sparsity_all_params"] = zeros / all_params
        return out

    def diagnostics(self) -> dict[str, float]:
        out = self.sparsities()
        out["div_coef"] = self.coef.value()
        out["flops_ratio"] = self.inference_flops_per_agent() / self.dense_inference_flops_per_agent()
        return out

    def _agent_masks(self, mask_ids: Sequence[int] | None) -> list[int]:
        # MPE: agent n owns mask n; for other owners the caller passes each agent's mask, and
        # without it every mask counts once
        return list(range(self.n_masks)) if mask_ids is None else [int(k) for k in mask_ids]

    def _flops(self, mask_index: int, dense: bool = False) -> int:
        flops = gru_cell_flops(self.rnn)
        for layer in self.masked_layers:
            flops += 2 * active_connections(layer, mask_index, dense=dense) + layer.out_features
        return flops

    def _params(self, mask_index: int, dense: bool = False) -> int:
        params = sum(p.numel() for p in self.rnn.parameters())
        for layer in self.masked_layers:
            params += active_connections(layer, mask_index, dense=dense) + layer.out_features
        return params

    def inference_flops_per_agent(self, mask_ids: Sequence[int] | None = None) -> float:
        """Mean over agents of one forward step's FLOPs through that agent's sparse network:
        active connections of its mask in fc1..fc4 (2 per multiply-add, plus the bias adds) and
        the dense GRU (:func:`gru_cell_flops`)."""
        return fmean(self._flops(k) for k in self._agent_masks(mask_ids))

    def dense_inference_flops_per_agent(self) -> float:
        """The same count for a plain FuPS agent of the same sizes (every connection active)."""
        return float(self._flops(0, dense=True))

    @torch.no_grad()
    def nonzero_params_per_agent(self, mask_ids: Sequence[int] | None = None) -> float:
        """Mean over agents of the parameters its sparse network uses: active weights of its
        mask, the biases and the whole GRU (thresholds are training-time only)."""
        return fmean(self._params(k) for k in self._agent_masks(mask_ids))

    def dense_params_per_agent(self) -> float:
        return float(self._params(0, dense=True))

    # -- checkpointed state beyond the parameters ---------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"coef": self.coef.state_dict(), "last_reset_t": int(self.last_reset_t)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.coef.load_state_dict(state["coef"])
        self.last_reset_t = int(state["last_reset_t"])


def make_agent(
    settings: KaleidoscopeSettings,
    input_dim: int,
    n_actions: int,
    n_agents: int,
    hidden_dim: int = 64,
    n_masks: int | None = None,
) -> KaleidoscopeAgent:
    """The factory the QMIX learner calls."""
    return KaleidoscopeAgent(input_dim, n_actions, n_agents, hidden_dim, settings, n_masks)
