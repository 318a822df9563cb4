"""b. Generalisation of the blur-learned masks (Fong & Vedaldi 2017, Sec. 4).

The deletion masks learned with the blur perturbation, smoothed (``smooth_sigma`` px at 224) or binarised (at
``binarise_at``), are applied with the constant, noise and blur perturbations: the normalised softmax of each,
against the control of the same binary mask moved by half the image (same area, elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics import SampleValues
from lightning_modules.tasks.mask_learning import MaskConfig, upsample_mask
from replications.fong2017.masks import mask_result, mean, perturbed_scores

PERTURBATIONS = ("blur", "constant", "noise")


@dataclass
class GeneralisationConfig:
    """b. The threshold of the binarised mask and the smoothing sigma (px at 224) of the smoothed one."""

    binarise_at: float = 0.5
    smooth_sigma: float = 10.0


class GeneralisationExperiment(Experiment):
    name = "b_generalisation"

    def __init__(self, config: dict, mask_config: MaskConfig):
        super().__init__()
        self.config = config
        self.mask_config = mask_config
        self.rows = SampleValues(*[f"{s}_{p}" for s in ("smooth", "binary", "moved") for p in PERTURBATIONS])

    def update(self, ctx: BatchContext) -> None:
        images, res = ctx.images, mask_result(ctx)
        h = min(images.shape[-2:])
        sigma = self.config["smooth_sigma"] * h / self.mask_config.reference_size
        smooth = upsample_mask(res.mask_lowres, images.shape[-2:], sigma + self.mask_config.scaled(h)["mask_blur_sigma"])
        binary = (res.mask > self.config["binarise_at"]).float()
        # control: the same binary mask moved by half the image (same area, elsewhere)
        moved = torch.roll(binary, shifts=(images.shape[-2] // 2, images.shape[-1] // 2), dims=(-2, -1))
        classes = res.extras["classes"]
        rows = {}
        for name, m in (("smooth", smooth), ("binary", binary), ("moved", moved)):
            for kind in PERTURBATIONS:
                rows[f"{name}_{kind}"] = perturbed_scores(ctx.model, images, m, kind, classes, self.mask_config)
        self.rows.update(ctx.ids, **rows)

    def compute(self) -> dict:
        gen = {k: v for k, v in self.rows.compute().items() if k != "sample_ids"}
        return {"generalisation": {k: mean(v) for k, v in gen.items()},
                "generalisation_per_image": {k: v.cpu().tolist() for k, v in gen.items()}}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import generalisation_claims

        return generalisation_claims(results)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 60


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [GeneralisationExperiment(rep.gen_spec, rep.mask_config)]
