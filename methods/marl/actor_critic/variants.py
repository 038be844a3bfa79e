"""The MATD3 family's thin variants: methods that differ from a registered one only in ``Config``
defaults (see methods/common/variants.py). One entry a method; everything not in ``settings``
is the base method's."""

from __future__ import annotations

from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "matd3_id": {
        "base": "matd3",
        "settings": {"obs_agent_id": True},
        "what": "MATD3 with FuPS+ID: the shared actor also sees the one-hot agent id.",
    },
    "matd3_ens": {
        "base": "matd3",
        "settings": {"n_critics": 5, "actor_critics": "mean"},
        "what": "MATD3 with a critic ensemble of 5 independent Q-networks instead of twin critics (the target "
        "takes the minimum over all 5, the actor the mean): the unmasked counterpart of Kaleidoscope's "
        "masked critic ensemble, to separate the ensemble's effect from the masks'.",
    },
    "matd3_nops": {
        "base": "matd3",
        "settings": {"actor_net": "nops"},
        "what": "MATD3 with no parameter sharing: one actor per agent (HARL's non-shared MATD3), each updated "
        "only on its own turn of the per-agent actor step: a parameter-sharing baseline of Kaleidoscope.",
    },
    "matd3_multih": {
        "base": "matd3",
        "settings": {"actor_net": "multih"},
        "what": "MATD3 with a multi-head actor (a shared trunk, one output layer per agent): a parameter-sharing "
        "baseline of Kaleidoscope.",
    },
    "matd3_snp": {
        "base": "matd3",
        "settings": {"actor_net": "snp_ps", "obs_agent_id": True},
        "what": "MATD3 with the SNP-PS actor (Kim & Sung, AAMAS 2023): the shared actor with a fixed random "
        "subset of hidden units per agent; with the one-hot id, as the QMIX version [unverified].",
    },
}
