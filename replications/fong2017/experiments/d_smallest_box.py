"""d. The smallest suppressing box (Fong & Vedaldi 2017, Sec. 5, the deletion game).

For every scored map: the smallest box around the map thresholded at one of the official alpha levels whose
blurring (Fong's null image, blur sigma_0 scaled to the image size) brings the normalised softmax to ``level``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics.suppression import SmallestSuppressingBox
from lightning_modules.tasks.mask_learning import MaskConfig
from replications.fong2017.masks import MASK


@dataclass
class SmallestBoxConfig:
    """d. The normalised-score level a box must suppress to, and the threshold grid (None: the official 100
    levels)."""

    level: float = 0.01
    alphas: list[float] | None = None


class SmallestBoxExperiment(Experiment):
    name = "d_smallest_box"

    def __init__(self, config: dict, scored: list[str], mask_config: MaskConfig):
        super().__init__()
        self.scored = list(scored)
        self.mask_config = mask_config
        kwargs = {k: v for k, v in config.items() if k in ("level", "alphas", "method") and v is not None}
        self.boxes = nn.ModuleDict({m: SmallestSuppressingBox(**kwargs) for m in self.scored})

    def update(self, ctx: BatchContext) -> None:
        images = ctx.images
        sigma = self.mask_config.scaled(min(images.shape[-2:]))["blur_sigma"]
        for m in self.scored:
            self.boxes[m].blur_sigma = sigma
            self.boxes[m].update(ctx.model, images, ctx.map(m), ctx.labels, ids=ctx.ids)

    def compute(self) -> dict:
        return {"boxes": {m: float(self.boxes[m].compute()) for m in self.scored},
                "boxes_per_image": {m: self.boxes[m].per_sample()["best_area"].cpu().tolist() for m in self.scored},
                "n_box_alphas": int(self.boxes[MASK].alphas.numel())}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import boxes_claims

        return boxes_claims(results)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 40


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [SmallestBoxExperiment(rep.box_spec, rep.scored, rep.mask_config)]
