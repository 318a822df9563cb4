"""The run's deletion masks as the experiments share them (Fong & Vedaldi 2017, Sec. 3-4).

One mask per image and pass is learned by the replication module when an experiment first asks for the map
``mask`` (:meth:`replications.fong2017.module.FongReplication.explain`); its full result (low-resolution mask, scores,
loss history) is kept in the batch context for every experiment after it. ``perturbed_scores`` is the normalised
softmax of an image under a mask and a perturbation (Sec. 4: masks learned with blur, applied with others).
"""

from __future__ import annotations

import torch

from lightning_modules.experiment import BatchContext
from lightning_modules.tasks.mask_learning import MaskConfig, MaskResult, compose, normalized_score, perturbation_substrate

MASK = "mask"
#: the key of the learned mask's full result in the batch context
MASK_RESULT = "mask_result"


def mask_result(ctx: BatchContext) -> MaskResult:
    """The batch's learned deletion masks (learned once, when the map ``mask`` is first asked for)."""
    ctx.map(MASK)
    return ctx.cached(MASK_RESULT, lambda: None)


def perturbed_scores(model, images: torch.Tensor, masks: torch.Tensor, kind: str, classes: torch.Tensor,
                     config: MaskConfig) -> torch.Tensor:
    """Normalised softmax of ``Phi(x; m)`` under perturbation ``kind`` (normalised with that kind's null)."""
    px = config.scaled(min(images.shape[-2:]))
    gen = torch.Generator().manual_seed(config.seed + 1)
    sub = perturbation_substrate(images, kind, px["blur_sigma"], config.noise_std, gen)
    with torch.no_grad():
        probs = model(torch.cat([images, sub, compose(images, sub, masks)])).softmax(1)
    s = probs.gather(1, classes.repeat(3, 1)).sum(1).view(3, -1)
    return normalized_score(s[2], s[0], s[1])


def mean(t: torch.Tensor) -> float:
    t = t.float()
    return float(torch.nanmean(t)) if t.numel() else float("nan")
