"""VPDD's baselines and ablations that differ from it only in ``Config`` defaults (see
methods/common/variants.py)."""

from __future__ import annotations

from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "vpdd_no_human": {
        "base": "vpdd",
        "settings": {"pretrain_human_videos": False},
        "what": "VPDD without the actionless human videos: the video model pre-trains on the robot clips "
        "alone (the paper's key ablation, 'VPDD w/o human data'); tokenizer, fine-tuning and budget as VPDD's.",
    },
    "mt_diffusion_policy": {
        "base": "vpdd",
        "settings": {"video_pretraining": False, "finetune_predictor": True},
        "what": "A multi-task discrete-diffusion policy with no video pre-training: the same video and action "
        "models start untrained and learn together from the demonstrations' action loss alone, with VPDD's "
        "fine-tuning budget (the paper's question: what does actionless pre-training add?).",
    },
    "vpdd_1demo": {
        "base": "vpdd",
        "settings": {"num_demos": 1},
        "what": "VPDD fine-tuned on 1 demonstration per task (the paper's demonstration-count ablation).",
    },
    "vpdd_5demos": {
        "base": "vpdd",
        "settings": {"num_demos": 5},
        "what": "VPDD fine-tuned on 5 demonstrations per task (the paper's demonstration-count ablation).",
    },
}
