"""h. The pointing game (Fong & Vedaldi 2017, Table 2; EBP's protocol, TorchRay's definition) with the centre
baseline.

On the scenes it runs on the main test split, against the boxes of the class and, where the data carries it, the
class evidence; in the paper profile it is a separate pass (``pointing_data``: COCO val2014, its segmentation masks,
Zhang et al.'s difficult flags) explained on its own classifier (``pointing_model``).

The embedded default runs it as the paper does, on a separate pass: the multi-label scenes
(``pointing_data.kind: scenes_multilabel``; one trial per (image, present class), EBP's difficult rule) explained on
the multi-label black box, against the class's object pixels (as COCO's segmentation) and its evidence, with the
oracle and random reference maps, TorchRay's native tolerance (15 px at the ~500 x 375 native image, scaled:
``metrics.pointing.native_tolerance``), and the image as the unit of the claims and of the validity's bootstrap.
"""

from __future__ import annotations

import torch.nn as nn

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics import SampleValues
from lightning_modules.metrics.pointing import PointingGame, center_heatmaps


def check_classes(model: nn.Module, n: int, what: str) -> None:
    """The pass's data and its classifier must agree on the number of classes."""
    out = getattr(model, "num_classes", None)
    if isinstance(out, int) and out != n:
        raise ValueError(f"the {what} data has {n} classes but its model has {out} outputs; set {what}_model "
                         f"(e.g. {{name: googlenet, checkpoint: ..., num_classes: {n}}})")


class PointingGameExperiment(Experiment):
    name = "h_pointing_game"

    def __init__(self, scored: list[str], separate_pass: bool, native_tolerance: bool = False):
        super().__init__()
        self.scored = list(scored)
        self.separate_pass = separate_pass
        self.native_tolerance = native_tolerance
        self.splits = ("pointing",) if separate_pass else ("test",)
        tolerance = "native" if native_tolerance else None
        self.pointing = nn.ModuleDict({m: PointingGame(tolerance) for m in self.scored + ["center"]})
        self.pointing_evidence = nn.ModuleDict({m: PointingGame(tolerance) for m in self.scored + ["center"]})
        # the per-trial target class and its image (several trials per image on the multi-label pass)
        self.labels = SampleValues("label", "image_index")

    def update(self, ctx: BatchContext) -> None:
        """Every method and the centre baseline; the target region is the class's segmentation mask where the data
        has one of the target class (COCO), else the union of the class's boxes (the scenes)."""
        batch, images, labels, ids = ctx.batch, ctx.images, ctx.labels, ctx.ids
        if "multilabel" in batch:
            check_classes(ctx.model, batch["multilabel"].shape[1], "pointing")
        b, _, h, w = images.shape
        region = ({"masks": batch["mask"]} if self.separate_pass and "mask" in batch
                  else {"boxes": batch["boxes"], "box_labels": batch["box_labels"]})
        maps = {**ctx.maps([m for m in self.scored if m in ctx.methods]),
                "center": center_heatmaps(b, h, w, images.device)}
        evidence = ctx.evidence if (not self.separate_pass or "evidence_mask" in batch) else None
        for m in maps:
            self.pointing[m].update(maps[m], labels, difficult=batch.get("difficult"), ids=ids, **region)
            if evidence is not None:  # the evidence of the label's object as the ground truth
                self.pointing_evidence[m].update(maps[m], labels, masks=evidence, difficult=batch.get("difficult"),
                                                 ids=ids)
        self.labels.update(ids, label=labels, image_index=batch.get("image_index", ids))

    def compute(self) -> dict:
        r: dict = {"pointing": {}, "pointing_evidence": {}}
        for m in self.scored + ["center"]:
            r["pointing"][m] = {k: float(x) for k, x in self.pointing[m].compute().items()}
            if self.pointing_evidence[m].update_count:
                r["pointing_evidence"][m] = {k: float(x) for k, x in self.pointing_evidence[m].compute().items()}
        per = {m: self.pointing[m].per_sample() for m in self.scored + ["center"]}
        r["pointing_per_image"] = {m: {"hits": p["hits"].cpu().tolist(), "difficult": p["difficult"].bool().cpu().tolist()}
                                   for m, p in per.items()}
        r["pointing_evidence_per_image"] = {m: {"hits": self.pointing_evidence[m].per_sample()["hits"].cpu().tolist()}
                                            for m in r["pointing_evidence"]}
        rows = self.labels.compute()
        r["pointing_labels"] = [int(x) for x in rows["label"].cpu().tolist()]
        if self.separate_pass and "image_index" in rows:
            r["pointing_image_index"] = [int(x) for x in rows["image_index"].cpu().tolist()]
        if self.native_tolerance:
            r["pointing_tolerance_px"] = next(iter(self.pointing.values())).tolerance_px
        return r

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import pointing_claims

        return pointing_claims(results)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 20


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    separate = bool(rep.pointing_spec.get("data"))
    scored = rep.methods_for("pointing") if separate else rep.scored
    return [PointingGameExperiment(scored, separate_pass=separate, native_tolerance=rep.multilabel_pointing())]
