"""c. Weak localisation (Fong & Vedaldi 2017, Table 1).

Every scored map (the methods, the mask, and where the data has the evidence the oracle and random references) is
thresholded three ways (value, energy, mean); the threshold is tuned on the held-out split and the localisation
error (IoU < ``iou`` with every box of the class) read on the test split. Where the data carries the class evidence
the same maps are also scored against the evidence's boxes (the v1 scenes: the head's box).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics.localisation import WeakLocalisation, region_boxes, tune_and_evaluate

THRESHOLDS = ("value", "energy", "mean")


@dataclass
class LocalisationConfig:
    """c. The IoU a localisation must reach with a box of the class (Table 1: 0.5)."""

    iou: float = 0.5


class WeakLocalisationExperiment(Experiment):
    name = "c_weak_localisation"
    splits = ("test", "heldout")

    def __init__(self, config: dict, scored: list[str]):
        super().__init__()
        self.scored = list(scored)

        def metrics() -> nn.ModuleDict:
            return nn.ModuleDict({m: nn.ModuleDict({t: WeakLocalisation(t, iou_threshold=config["iou"])
                                                    for t in THRESHOLDS}) for m in self.scored})

        self.test = metrics()
        self.heldout = metrics()
        self.test_evidence = metrics()
        self.heldout_evidence = metrics()

    def update(self, ctx: BatchContext) -> None:
        batch, labels, ids = ctx.batch, ctx.labels, ctx.ids
        maps = ctx.maps(self.scored)
        evidence = ctx.evidence
        loc, loc_ev = ((self.test, self.test_evidence) if ctx.split == "test"
                       else (self.heldout, self.heldout_evidence))
        ev_boxes = batch.get("evidence_boxes")
        if ev_boxes is None and evidence is not None:  # v1: one evidence box (the head's) per image
            ev_boxes = region_boxes(evidence.float())
            ev_labels = labels[:, None]
        else:
            ev_labels = batch["box_labels"]
        for m in self.scored:
            for t in THRESHOLDS:
                loc[m][t].update(maps[m], labels, batch["boxes"], batch["box_labels"], ids=ids)
                if evidence is not None:
                    loc_ev[m][t].update(maps[m], labels, ev_boxes, ev_labels, ids=ids)

    def compute(self) -> dict:
        r: dict = {"localisation": {}, "localisation_evidence": {}}
        has_evidence = self.test_evidence["mask"]["value"].update_count > 0
        for m in self.scored:
            r["localisation"][m] = {t: tune_and_evaluate(self.heldout[m][t], self.test[m][t]) for t in THRESHOLDS}
            if has_evidence:
                r["localisation_evidence"][m] = {t: tune_and_evaluate(self.heldout_evidence[m][t],
                                                                      self.test_evidence[m][t]) for t in THRESHOLDS}
        for key, tests in (("localisation", self.test), ("localisation_evidence", self.test_evidence)):
            # the per-image errors at each method's tuned threshold: the samples of the claims
            r[f"{key}_per_image"] = {}
            for m, tuned in r[key].items():
                r[f"{key}_per_image"][m] = {}
                for t in THRESHOLDS:
                    ps = tests[m][t].per_sample()
                    i = int(torch.nonzero(ps["alphas"] == tuned[t]["alpha"])[0, 0])
                    r[f"{key}_per_image"][m][t] = ps["errors"][:, i].cpu().tolist()
        return r

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import localisation_claims

        return localisation_claims(results)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 10


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [WeakLocalisationExperiment(rep.loc_spec, rep.scored)]
