"""a. Artifacts (Fong & Vedaldi 2017, Sec. 4, Fig. 3).

On the first ``images`` test ids (selected by id, so the set does not depend on the process count), masks learned
without the regularisers (full resolution, no TV, no mask blur, no jitter; the optimiser's set-up, the
initialisation included, stays the paper's) against the run's masks: deleted area, suppression under the blur they
were learned with, transfer to the constant perturbation, spatial gradient, share of the deleted mass on the class
evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics import SampleValues
from lightning_modules.tasks.mask_learning import MaskConfig, learn_masks
from replications.fong2017.masks import mask_result, mean, perturbed_scores


@dataclass
class ArtifactsConfig:
    """a. The first ``images`` test ids; ``mask``: MaskConfig fields overriding the paper's mask (the regularisers
    removed)."""

    images: int = 4
    mask: dict[str, Any] = field(default_factory=lambda: {"mask_scale": 1, "mask_blur_sigma": 0.0, "tv_coeff": 0.0,
                                                           "jitter": 0})


def total_variation(m: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, per mask."""
    return ((m[..., 1:, :] - m[..., :-1, :]).abs().mean(dim=(1, 2, 3))
            + (m[..., :, 1:] - m[..., :, :-1]).abs().mean(dim=(1, 2, 3)))


class ArtifactsExperiment(Experiment):
    name = "a_artifacts"

    def __init__(self, config: dict, mask_config: MaskConfig):
        super().__init__()
        self.images = int(config["images"])
        self.mask_config = mask_config
        self.artifact_config = MaskConfig.from_dict({**asdict(mask_config), **config["mask"]})
        self.rows = SampleValues("area_reg", "area_art", "ns_reg_blur", "ns_art_blur", "ns_reg_constant",
                                 "ns_art_constant", "tv_reg", "tv_art", "head_share_reg", "head_share_art")
        self._examples: dict = {}

    def update(self, ctx: BatchContext) -> None:
        sel = ctx.ids < self.images
        if not sel.any():
            return
        res = mask_result(ctx)
        images, labels, ids, mask_reg = ctx.images[sel], ctx.labels[sel], ctx.ids[sel], res.mask[sel]
        head = ctx.evidence[sel].float() if ctx.evidence is not None else None
        art = learn_masks(ctx.model, images, labels, self.artifact_config)

        def share(m):
            if head is None:
                return torch.full((m.shape[0],), float("nan"), device=m.device)
            return ((1 - m) * head).flatten(1).sum(1) / (1 - m).flatten(1).sum(1).clamp_min(1e-12)

        def scores(m, kind):
            return perturbed_scores(ctx.model, images, m, kind, art.extras["classes"], self.mask_config)

        self.rows.update(
            ids,
            area_reg=(1 - mask_reg).mean(dim=(1, 2, 3)), area_art=(1 - art.mask).mean(dim=(1, 2, 3)),
            ns_reg_blur=scores(mask_reg, "blur"), ns_art_blur=scores(art.mask, "blur"),
            ns_reg_constant=scores(mask_reg, "constant"), ns_art_constant=scores(art.mask, "constant"),
            tv_reg=total_variation(mask_reg), tv_art=total_variation(art.mask),
            head_share_reg=share(mask_reg), head_share_art=share(art.mask),
        )
        if not self._examples:
            self._examples = {"images": images.cpu(), "reg": mask_reg.cpu(), "art": art.mask.cpu()}

    def compute(self) -> dict:
        art = {k: v for k, v in self.rows.compute().items() if k != "sample_ids"}
        summary = {k: mean(v) for k, v in art.items()}
        summary["n"] = int(art["area_reg"].numel())
        return {"artifacts": summary, "artifacts_per_image": {k: v.cpu().tolist() for k, v in art.items()}}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import artifacts_claims

        return artifacts_claims(results)

    def examples(self) -> dict:
        return self._examples


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 70


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [ArtifactsExperiment(rep.artifact_spec, rep.mask_config)]
