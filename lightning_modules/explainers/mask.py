"""Meaningful perturbation (Fong & Vedaldi, ICCV 2017) as an explainer.

The heatmap is what the learned mask perturbs: ``1 - m`` for the deletion game (high = deleting it suppresses
the class), ``m`` for the preservation game (high = needed to keep the class). The optimisation itself lives in
:mod:`lightning_modules.tasks.mask_learning`; every constructor argument is a :class:`MaskConfig` field.
"""

from __future__ import annotations

import torch

from lightning_modules.explainers.base import Explainer, register_explainer
from lightning_modules.tasks.mask_learning import MaskConfig, learn_masks


@register_explainer("meaningful_perturbation")
class MeaningfulPerturbation(Explainer):
    """``create_explainer("meaningful_perturbation", iterations=300, l1_coeff=1e-4, ...)``."""

    def __init__(self, **mask_settings):
        self.config = MaskConfig.from_dict(mask_settings)
        self.last_result = None

    def attribute(self, model, images, targets) -> torch.Tensor:
        res = learn_masks(model, images, targets, self.config)
        self.last_result = res
        return 1 - res.mask if self.config.game == "deletion" else res.mask
