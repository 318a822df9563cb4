"""The explained classifier's accuracy on the test images and PruneGrad's threshold rules on them: the share of
ReLU neurons whose NeuronMCT score is exactly zero, and whether the official global rule's map equals the plain
gradient (per image, keyed by sample id)."""

from __future__ import annotations

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.explainers.prunegrad import PruneGrad
from replications.khakzar2019.measures import TestRows, relu_neuron_count, rules_summary


class PruneGradRules(Experiment):
    name = "prunegrad_rules"

    def __init__(self, percentile: float):
        super().__init__()
        self.official = PruneGrad(percentile, scope="all")
        self.plain = PruneGrad(0.0)
        self.rows = TestRows()
        self._input_shape: tuple | None = None
        self._model = None

    def update(self, ctx: BatchContext) -> None:
        images, targets, model = ctx.images, ctx.targets, ctx.model
        self._input_shape = tuple(images.shape[1:])
        object.__setattr__(self, "_model", model)  # not a submodule: the classifier belongs to the replication
        official, plain = self.official(model, images, targets), self.plain(model, images, targets)
        self.rows.update(ctx.ids, targets == ctx.labels, self.official.score_sparsity(model, images, targets),
                         (official == plain).flatten(1).all(1))

    def compute(self) -> dict:
        rows = self.rows.compute()
        return {"classifier_test_accuracy": float(rows["correct"].mean()),
                "prunegrad_rules": rules_summary(rows["zero_share"], rows["official_equal"],
                                                 relu_neuron_count(self._model, self._input_shape))}


#: where it sees a batch among the experiments (``replication.Khakzar2019Replication`` runs them in this order)
ORDER = 5


def build(rep) -> list[Experiment]:
    return [PruneGradRules(getattr(rep.explainers["prunegrad"], "percentile", 70.0))]
