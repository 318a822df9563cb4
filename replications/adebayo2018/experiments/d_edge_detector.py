"""d. The edge-detector comparison (Adebayo et al. 2018, Fig. 1, Sec. 5): how much each method's map of a trained
model resembles the Sobel edge detector's map of the same image, a map that uses neither model nor data.

It runs on every model of the model randomisation tests (the black box and the digit CNNs) whose methods include
the edge detector, on their original maps: the same maps, from the batch context, that a. and b. compare their
stages with.
"""

from __future__ import annotations

import torch.nn as nn

from lightning_modules.experiment import Experiment
from replications.adebayo2018.constants import EDGE_DETECTOR
from replications.adebayo2018.experiments.a_cascading_randomisation import TrainedModel
from replications.adebayo2018.maps import SanityContext, entry, similarity, update_similarity


class EdgeDetectorComparison(Experiment):
    """``models``: result key -> trained model; those without the edge detector among their methods are skipped."""

    name = "d_edge_detector"

    def __init__(self, models: dict[str, TrainedModel]):
        super().__init__()
        self.models = {k: m for k, m in models.items() if EDGE_DETECTOR in m.methods}
        self.splits = tuple(dict.fromkeys(m.split for m in self.models.values()))
        self.similarity = nn.ModuleDict({
            key: nn.ModuleDict({m: similarity() for m in spec.methods if m != EDGE_DETECTOR})
            for key, spec in self.models.items()})

    def update(self, ctx: SanityContext) -> None:
        for key, spec in self.models.items():
            if spec.split != ctx.split:
                continue
            trained = ctx.of(spec.key)
            edges = trained.map(EDGE_DETECTOR)
            for m, metric in self.similarity[key].items():
                update_similarity(metric, trained.map(m), edges, ctx.ids)

    def compute(self) -> dict:
        """``{"similarity_to_edge_detector": {model: {method: {summary, per_image}}}}``."""
        return {"similarity_to_edge_detector": {key: {m: entry(metric.per_sample()) for m, metric in sims.items()}
                                                for key, sims in self.similarity.items()}}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.adebayo2018.claims import edge_claims

        return edge_claims(results)


#: where it sees a batch among the experiments (``replication.AdebayoReplication`` runs them in this order)
ORDER = 40


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication (``rep``: the ``AdebayoReplication`` once its models are
    loaded): on the models of the model randomisation tests."""
    return [EdgeDetectorComparison(rep.randomised)]
