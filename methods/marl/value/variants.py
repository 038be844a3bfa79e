"""The QMIX family's thin variants: methods that differ from a registered one only in ``Config``
defaults (see methods/common/variants.py). One entry a method; everything not in ``settings``
is the base method's."""

from __future__ import annotations

from typing import Any

_MAST_BASELINE = (
    "on QMIX with its double-Q 1-step targets and one replay buffer: no Soft Mellowmax, "
    "no hybrid TD(lambda), no dual buffer (Hu et al. 2024, Table 1)."
)

VARIANTS: dict[str, dict[str, Any]] = {
    "vdn": {
        "base": "qmix",
        "settings": {"mixer": "vdn"},
        "what": "VDN (Sunehag et al. 2018): Q_tot = sum_i Q_i, otherwise EPyMARL's QMIX setup (FuPS + one-hot "
        "id, 1-step double-Q targets, same hyper-parameters).",
    },
    "qmix_fups": {
        "base": "qmix",
        "settings": {"agent_net": "fups", "obs_agent_id": False},
        "what": "QMIX with full parameter sharing (one network for all agents, methods/marl/agents.py) and no "
        "one-hot agent id: a parameter-sharing baseline of Kaleidoscope.",
    },
    "qmix_nops": {
        "base": "qmix",
        "settings": {"agent_net": "nops", "obs_agent_id": False},
        "what": "QMIX with no parameter sharing (one network per agent) and no one-hot agent id: a "
        "parameter-sharing baseline of Kaleidoscope and MAST's dense reference.",
    },
    "qmix_multih": {
        "base": "qmix",
        "settings": {"agent_net": "multih", "obs_agent_id": False},
        "what": "QMIX with a shared trunk and one output head per agent, no one-hot agent id: a "
        "parameter-sharing baseline of Kaleidoscope.",
    },
    "qmix_ss": {
        "base": "mast",
        "settings": {"topology": "static", "soft_mellowmax": False, "hybrid_td": False, "dual_buffer": False},
        "what": "MAST's baseline Static Sparse: MAST's sparse networks at the same density with the initial "
        "ER/magnitude topology kept fixed, " + _MAST_BASELINE,
    },
    "qmix_set": {
        "base": "mast",
        "settings": {"topology": "set", "soft_mellowmax": False, "hybrid_td": False, "dual_buffer": False},
        "what": "MAST's baseline SET (Mocanu et al. 2018): magnitude drop and random growth, " + _MAST_BASELINE,
    },
    "qmix_rigl": {
        "base": "mast",
        "settings": {"topology": "rigl", "soft_mellowmax": False, "hybrid_td": False, "dual_buffer": False},
        "what": "MAST's baseline RigL (Evci et al. 2020): magnitude drop and gradient growth, " + _MAST_BASELINE,
    },
    "qmix_rlx2": {
        "base": "mast",
        "settings": {"topology": "rigl", "soft_mellowmax": False, "hybrid_td": True, "dual_buffer": False},
        "what": "MAST's baseline RLx2 (Tan et al., ICLR 2023) carried to QMIX: RigL topology evolution with "
        "RLx2's delayed multi-step target (1-step before T0, TD(lambda) after), double-Q bootstrap, one "
        "replay buffer. RLx2's dynamic buffer capacity is not implemented (config/papers/mast.yaml).",
    },
    "wqmix_nops": {
        "base": "wqmix",
        "settings": {"agent_net": "nops", "obs_agent_id": False},
        "what": "Dense OW-QMIX with per-agent networks (NoPS, no id): MAST's dense reference on WQMIX.",
    },
    "res_nops": {
        "base": "res",
        "settings": {"agent_net": "nops", "obs_agent_id": False},
        "what": "Dense RES-QMIX with per-agent networks (NoPS, no id): MAST's dense reference on RES.",
    },
}
