"""What the GFlowNet training loop (``core.train``) asks of a method: a learner.

Two kinds, told apart by type, never by which attributes happen to exist:

* ``TrajectoryLearner`` (the on-policy kind: TB, DB, SubTB, FM, BN, RPE): the core samples
  trajectories with the behaviour policy (mixed with the core's prioritised replay when
  ``replay_batch > 0``), evaluates them in one batched forward pass and calls
  ``loss(batch, log_z)``.
* ``TransitionLearner`` (the off-policy kind: soft DQN, M-DQN): it sees every round's
  trajectories through ``observe`` and draws its own batches from its own buffer in
  ``sample_loss``; the core's trajectory replay is unused.

Every other hook has a no-op default, so a method overrides only what it changes. The one
that matters most is ``policy``: both training-time metrics and ``evaluate`` sample with it,
so a method with its own sampler (RPE's child-flow policy) is measured with that sampler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from methods.gfn.policy import Policy, PolicyNet, forward_head

BEHAVIOURS = ("policy", "uniform")


class Learner(ABC):
    """Hooks shared by both kinds; the defaults do nothing."""

    # whether log Z is a trained parameter (its own Adam group at ``log_z_lr``)
    uses_log_z: ClassVar[bool] = True
    # who collects the training data: the learned policy, or the uniform policy (RPE's pi_U)
    behaviour: ClassVar[str] = "policy"
    # whether the learner samples from a lagged copy of its own (QGFN): the core then adds no
    # EMA sampling copy of its own (``sampling_tau``)
    owns_sampler: ClassVar[bool] = False

    env: Any = None
    net: PolicyNet | None = None

    def bind(self, env: Any, net: PolicyNet) -> None:
        """Called once after the network is built; losses that evaluate the network at other
        states (parents in FM/BN, children in RPE) or keep a target copy use the two."""
        self.env, self.net = env, net

    def policy(self, env: Any, net: PolicyNet) -> Policy:
        """The sampling policy of a trained model: the forward head unless the method says."""
        return forward_head(env, net)

    def after_step(self) -> None:
        """Called after every optimiser step (e.g. a Polyak target update)."""

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters of networks the learner owns that the core's optimiser trains with the
        policy network, at its learning rate (QGFN's Q network). Called after ``bind``."""
        return []

    def model_state(self) -> dict[str, Any]:
        """What a trained model needs besides the policy network to sample with the method's
        policy (QGFN's Q network and sampling copy); saved with the model."""
        return {}

    def load_model_state(self, state: dict[str, Any]) -> None:
        """Restore what ``model_state`` returned (at evaluation, after ``bind``)."""

    def state_dict(self) -> dict[str, Any]:
        """Learner state that a checkpoint must carry (target nets, buffers)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class TrajectoryLearner(Learner):
    """Trained on batches of whole trajectories that the core samples and evaluates."""

    @abstractmethod
    def loss(self, batch: Any, log_z: torch.Tensor) -> torch.Tensor:
        """The scalar objective of an evaluated batch (``core.EvaluatedBatch``)."""

    def __call__(self, batch: Any, log_z: torch.Tensor) -> torch.Tensor:
        return self.loss(batch, log_z)


class TransitionLearner(Learner):
    """Trained from its own transition buffer (an off-policy value learner)."""

    uses_log_z: ClassVar[bool] = False

    @abstractmethod
    def observe(self, actions: torch.Tensor) -> None:
        """Store the transitions of a round's trajectories (padded actions ``[B, L]``)."""

    @abstractmethod
    def sample_loss(self, gen: torch.Generator) -> torch.Tensor:
        """Draw a batch from the buffer and return its loss."""

    @abstractmethod
    def batch_transitions(self) -> int:
        """Transitions in the batch ``sample_loss`` draws (the measured budget counts them)."""


def check_learner(learner: Any) -> Learner:
    """The learner, or a TypeError naming what is wrong with it (before any training)."""
    if not isinstance(learner, (TrajectoryLearner, TransitionLearner)):
        raise TypeError(
            f"{type(learner).__name__} is not a GFlowNet learner: subclass "
            "methods.gfn.learner.TrajectoryLearner or TransitionLearner"
        )
    if learner.behaviour not in BEHAVIOURS:
        raise TypeError(f"{type(learner).__name__}.behaviour must be one of {BEHAVIOURS}, got {learner.behaviour!r}")
    return learner
