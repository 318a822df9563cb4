"""d. Example maps (the paper's qualitative figures): every method's maps of the model's top-1 class for the first
images of the first batch, read from the per-batch map cache (``ctx.map``: the maps deletion and insertion score, not
computed again). Nothing is measured: the tensors feed the example-maps figure of the report.
"""

from __future__ import annotations

from lightning_modules.experiment import BatchContext, Experiment
from replications.petsiuk2018.experiments.a_causal import top1


class ExampleMapsExperiment(Experiment):
    name = "d_examples"
    splits = ("test", "causal")

    def __init__(self, methods: list[str], n_images: int):
        super().__init__()
        self.methods = list(methods)
        self.n_images = int(n_images)
        self.example: dict = {}

    def update(self, ctx: BatchContext) -> None:
        if ctx.batch_idx != 0:
            return
        k = min(self.n_images, ctx.images.shape[0])
        self.example = {
            "images": ctx.images[:k].cpu(), "preds": top1(ctx)[:k].cpu(), "labels": ctx.labels[:k].cpu(),
            "maps": {m: ctx.map(m)[:k].cpu() for m in self.methods},
        }

    def compute(self) -> dict:
        return {}

    def examples(self) -> dict:
        return dict(self.example)


#: where it sees a batch among the experiments (``replication.RiseReplication`` runs them in this order)
ORDER = 40


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``RiseReplication``)."""
    return [ExampleMapsExperiment(rep.methods, rep.n_example_images)]
