"""Adversarial attacks on interpretations (Ghorbani et al. 2019): perturbations that keep the label and change the map."""

from lightning_modules.attacks.fragility import (
    ATTACKS,
    MEASURES,
    METHODS,
    NOTEBOOK_MEASURES,
    AttackResult,
    FragilityAttack,
    center_of_mass,
    linf_project,
    normalise_map,
    saliency,
    softplus_surrogate,
    topk_mask,
)

__all__ = ["ATTACKS", "MEASURES", "METHODS", "NOTEBOOK_MEASURES", "AttackResult", "FragilityAttack", "center_of_mass", "linf_project", "normalise_map",
           "saliency", "softplus_surrogate", "topk_mask"]
