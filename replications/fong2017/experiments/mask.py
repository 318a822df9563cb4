"""The learned deletion masks themselves (Fong & Vedaldi 2017, Sec. 3, Eq. 3): the clean, null and masked scores,
the deleted area, the loss before and after learning, the initial mask's score and deleted area (what the
optimisation starts from: the circle initialisation already suppresses the class), and, where the data has the ground truth, how compact the
deleted region is against the object box and the class evidence. Keeps the first images for the figures.
"""

from __future__ import annotations

import torch

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics import SampleValues
from lightning_modules.metrics.localisation import box_iou, region_boxes
from lightning_modules.metrics.pointing import boxes_to_mask
from lightning_modules.tasks.mask_learning import normalized_score
from replications.fong2017.masks import mask_result, mean


class MaskExperiment(Experiment):
    name = "mask"

    def __init__(self, methods: list[str], figure_images: int):
        super().__init__()
        self.methods = list(methods)
        self.figure_images = figure_images
        self.rows = SampleValues("clean", "null", "final", "area", "init_radius", "loss_first", "loss_last",
                                 "init_score", "init_area")
        self.compact = SampleValues("box_area", "mass_in_box", "head_box_iou", "evidence_area", "mass_on_evidence")
        self._examples: dict = {}

    def update(self, ctx: BatchContext) -> None:
        res = mask_result(ctx)
        it = res.loss_history.shape[0]
        k = max(1, min(5, it))
        nan = res.final_score * float("nan")
        self.rows.update(ctx.ids, clean=res.clean_score, null=res.null_score, final=res.final_score,
                         area=(1 - res.mask).mean(dim=(1, 2, 3)),
                         init_radius=res.init_radius if res.init_radius is not None else torch.full_like(res.clean_score, float("nan")),
                         loss_first=res.loss_history[:k].mean(0) if it else nan,
                         loss_last=res.loss_history[-k:].mean(0) if it else nan,
                         init_score=res.extras["init_score"], init_area=res.extras["init_area"])
        evidence = ctx.evidence
        if evidence is not None:
            self._compactness(ctx.batch, res.mask, evidence)
        if ctx.batch_idx == 0:
            n = min(self.figure_images, ctx.images.shape[0])
            head = evidence if evidence is not None else ctx.batch.get("mask", torch.zeros_like(res.mask))
            self._examples = {"images": ctx.images[:n].cpu(), "labels": ctx.labels[:n].cpu(),
                              "maps": {m: ctx.map(m)[:n].cpu() for m in self.methods}, "mask": res.mask[:n].cpu(),
                              "substrate": res.extras["substrate"][:n].cpu(), "head": head[:n].cpu(),
                              "final": res.final_score[:n].cpu(), "clean": res.clean_score[:n].cpu()}

    def _compactness(self, batch, mask: torch.Tensor, evidence: torch.Tensor) -> None:
        """How much the deletion mask deletes against the ground truth: the object's box area (union of the
        class's boxes, fraction of the image), the share of the deleted mass 1 - m inside it, the evidence's area
        and the share of the deleted mass on it, and the IoU of the evidence's bounding box with the best object
        box of the class (the localisation protocol's target; < 0.5 means that a map finding exactly the evidence
        counts as a localisation error against the object boxes)."""
        labels = batch["label"]
        b, _, h, w = mask.shape
        inside = boxes_to_mask(batch["boxes"].float(), batch["box_labels"], labels, h, w).float()
        deleted = (1 - mask).clamp(0, 1)
        mass = deleted.flatten(1).sum(1)
        ev = evidence.float()
        head_box = region_boxes(ev)  # (B, 1, 4) bounding box of the evidence pixels
        of_class = (batch["box_labels"] == labels[:, None]).float()
        iou = box_iou(head_box, batch["boxes"].float())[:, 0] * of_class  # (B, N) against every box
        self.compact.update(batch["id"], box_area=inside.flatten(1).mean(1),
                            mass_in_box=(deleted * inside).flatten(1).sum(1) / mass.clamp_min(1e-12),
                            head_box_iou=iou.max(1).values, evidence_area=ev.flatten(1).mean(1),
                            mass_on_evidence=(deleted * ev).flatten(1).sum(1) / mass.clamp_min(1e-12))

    def compute(self) -> dict:
        rows = self.rows.compute()
        r: dict = {"mask": {k: mean(v) for k, v in rows.items() if k != "sample_ids"}}
        ns = normalized_score(rows["final"], rows["clean"], rows["null"])
        r["mask"]["normalized_score"] = mean(ns)
        r["mask"]["n"] = int(rows["final"].numel())
        r["mask"]["n_defined"] = int(torch.isfinite(ns).sum())
        ns0 = normalized_score(rows["init_score"], rows["clean"], rows["null"])
        r["mask"]["init_normalized_score"] = mean(ns0)
        r["mask_per_image"] = {"normalised_score": ns.cpu().tolist(), "init_normalised_score": ns0.cpu().tolist(),
                               **{k: rows[k].cpu().tolist() for k in ("area", "init_area", "loss_first", "loss_last")}}
        if self.compact.update_count:
            comp = self.compact.compute()
            r["compactness_per_image"] = {k: v.cpu().tolist() for k, v in comp.items() if k != "sample_ids"}
            r["mask"].update({k: mean(v) for k, v in comp.items() if k != "sample_ids"})
        return r

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import mask_claims

        return mask_claims(results)

    def examples(self) -> dict:
        return self._examples


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 50


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [MaskExperiment(rep.all_methods, rep.figure_images)]
