"""g. Keypoints (Fong & Vedaldi 2017, Sec. 5, animal parts): the heatmap's intensity at the evidence part (the
paper's eyes; benchmark v2's head) against a non-evidence part (the feet).

On the scenes it reads the main test split's keypoints, and the ground-truth evidence map is scored as a sanity
row; in the paper profile it is a separate pass (``keypoints_data``: ImageNet images with the Oxford animal-parts
keypoints), reported per class as the official ``animal_parts.ipynb`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics.keypoints import KeypointIntensity
from replications.fong2017.masks import MASK


@dataclass
class KeypointsConfig:
    """g. The window radius (None: the metric's default) and the two parts compared: the evidence part first
    (Fong's eyes; benchmark v2's head), then a non-evidence part (the feet)."""

    radius: int | None = None
    parts: list[str] = field(default_factory=lambda: ["eyes", "feet"])


def primary_keypoints(batch: dict, parts) -> dict:
    """The keypoints of the labelled object: benchmark v2 lists every object's (row j = object j; feet rows 2j,
    2j+1), the v1 scenes only the labelled creature's."""
    kp = batch["keypoints"]
    if "n_objects" not in batch:
        return kp
    per_object = {"head": 1, "feet": 2}
    return {p: kp[p][:, : per_object.get(p, kp[p].shape[1])] for p in parts}


class KeypointsExperiment(Experiment):
    name = "g_keypoints"

    def __init__(self, config: dict, methods: list[str], separate_pass: bool):
        super().__init__()
        self.parts = tuple(config["parts"])
        if len(self.parts) != 2:
            raise ValueError(f"keypoints.parts must name two parts (the evidence part, then a non-evidence part), "
                             f"got {self.parts}")
        self.methods = list(methods)
        self.separate_pass = separate_pass
        self.splits = ("keypoints",) if separate_pass else ("test",)
        self.metrics = nn.ModuleDict({m: KeypointIntensity(self.parts, radius=config["radius"])
                                      for m in self.methods + ["ground_truth"]})

    def update(self, ctx: BatchContext) -> None:
        if "keypoints" not in ctx.batch:  # data without part keypoints: nothing to score
            return
        labels, ids = ctx.labels, ctx.ids
        keypoints = primary_keypoints(ctx.batch, self.parts)
        for m in self.methods:
            self.metrics[m].update(ctx.map(m), keypoints, labels, ids=ids)
        evidence = ctx.evidence
        if evidence is not None:  # the scenes: the discriminative part is known
            self.metrics["ground_truth"].update(evidence.float(), keypoints, labels, ids=ids)

    def compute(self) -> dict:
        scored = [m for m in self.methods + ["ground_truth"] if self.metrics[m].update_count]
        r: dict = {"keypoints": {m: {k: float(x) for k, x in self.metrics[m].compute().items()} for m in scored}}
        if self.separate_pass and self.metrics[MASK].update_count:
            # the paper reports the animal-parts result per class (official animal_parts.ipynb)
            per = self.metrics[MASK].per_sample()
            classes, counts = torch.unique(per["classes"], return_counts=True)
            means = self.metrics[MASK].per_class()
            r["keypoints_per_class"] = [{"class": int(c), "images": int(n), **{p: means[p][int(c)] for p in per["names"]}}
                                        for c, n in zip(classes.tolist(), counts.tolist())]
        r["keypoint_parts"] = list(self.parts)
        r["keypoints_per_image"] = {m: {p: self.metrics[m].per_sample()["intensity"][:, i].cpu().tolist()
                                        for i, p in enumerate(self.parts)} for m in scored}
        return r

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import keypoints_claims

        return keypoints_claims(results)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 30


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [KeypointsExperiment(rep.kp_spec, rep.all_methods, separate_pass=bool(rep.kp_spec.get("data")))]
