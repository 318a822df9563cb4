"""b. Pixel perturbation (Khakzar et al. 2019, Sec. 4): remove the least (LeRF) / most (MoRF) important pixels; the
target output should hold under LeRF and fall under MoRF (shared ``metrics.PixelPerturbation``, per image keyed by
sample id). Two outputs per method and order: the target logit (our primary output) and the softmax probability
(the official code's |p0 - p| / p0 measure is computed from it).

Pixels are ranked by the magnitude of each method's shared map of the batch (``ctx.map``), as ROAR's squared
estimator and the sanity checks' Spearman |.|: signed maps (PruneGrad keeps the sign) would otherwise rank strongly
negative evidence as "least relevant" while abs-reduced maps (gradient) cannot. Where the data has the class
evidence (v2: the label's evidence region; v1 scenes: the head), the oracle (the evidence as the map) is scored too,
and every method's evidence precision."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics import PixelPerturbation
from replications.khakzar2019.claims import ORACLE, pixel_validity_specs
from replications.khakzar2019.measures import EvidenceRows, evidence_precision, pixel_block

ORDERS = ("morf", "lerf")
OUTPUTS = ("logit", "prob")


@dataclass
class PixelConfig:
    """b. ``fractions``: the shares of pixels removed (0 first: the unmodified image); ``substrate``: what replaces
    them; ``output``: the primary output the report names (the logit)."""

    fractions: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
    substrate: str = "mean"
    output: str = "logit"


class PixelPerturbationExperiment(Experiment):
    name = "b_pixel_perturbation"

    def __init__(self, config: PixelConfig, methods: list[str]):
        super().__init__()
        self.config = config
        self.methods = list(methods)
        self.pixel = nn.ModuleDict({
            f"{m}__{order}__{out}": PixelPerturbation(order, config.fractions, config.substrate, out)
            for m in (*self.methods, ORACLE) for order in ORDERS for out in OUTPUTS
        })
        self.evidence = nn.ModuleDict({m: EvidenceRows() for m in self.methods})

    def update(self, ctx: BatchContext) -> None:
        images, targets, ids, evidence = ctx.images, ctx.targets, ctx.ids, ctx.evidence
        for m in self.methods:
            importance = ctx.map(m).abs()
            for order in ORDERS:
                for out in OUTPUTS:
                    self.pixel[f"{m}__{order}__{out}"].update(ctx.model, images, importance, targets, ids=ids)
            if evidence is not None:
                self.evidence[m].update(ids, evidence_precision(importance, evidence))
        if evidence is not None:
            # the oracle map: the ground-truth evidence as a heatmap (the protocols' validity reference)
            oracle = evidence.to(images.dtype)
            for order in ORDERS:
                for out in OUTPUTS:
                    self.pixel[f"{ORACLE}__{order}__{out}"].update(ctx.model, images, oracle, targets, ids=ids)

    def compute(self) -> dict:
        curves, ids = {}, None
        with_oracle = bool(self.pixel[f"{ORACLE}__morf__logit"].sample_ids)
        for m in (*self.methods, *((ORACLE,) if with_oracle else ())):
            curves[m] = {}
            for order in ORDERS:
                curves[m][order] = {}
                for out in OUTPUTS:
                    ps = self.pixel[f"{m}__{order}__{out}"].per_sample()
                    curves[m][order][out] = ps["curves"].cpu()
                    ids = ps["ids"] if ids is None else ids
                    if not torch.equal(ps["ids"], ids):
                        raise AssertionError("pixel-perturbation metrics saw different images")
        has_evidence = bool(self.evidence[self.methods[0]].sample_ids)
        evidence = {m: e.compute().cpu() for m, e in self.evidence.items()} if has_evidence else None
        return {"pixel": pixel_block(self.config.fractions, curves, evidence), "test_images": int(ids.numel())}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.khakzar2019.claims import build_claims

        return [c for c in build_claims(results, profile) if c.id.startswith("pixel")]

    @staticmethod
    def validity(models: dict) -> dict:
        """The inputs of the pixel-perturbation protocols' validity verdicts (every model's curves)."""
        return pixel_validity_specs(models)


#: where it sees a batch among the experiments (``replication.Khakzar2019Replication`` runs them in this order)
ORDER = 20


def build(rep) -> list[Experiment]:
    return [PixelPerturbationExperiment(rep.pixel_config, list(rep.explainers))]
