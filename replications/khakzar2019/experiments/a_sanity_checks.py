"""a. Sanity checks (Khakzar et al. 2019, Sec. 4; Adebayo et al. 2018's cascading randomisation, the shared
``tasks.randomization`` code): PruneGrad and the compared methods, the similarity of every stage's maps to the
original maps, on the split's first ``images`` samples by id (the same set on any number of processes).

Each stage is a re-initialised copy of the explained classifier, explained by the test itself; its original maps
are the test's own (it explains the chosen images only)."""

from __future__ import annotations

from dataclasses import dataclass

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.tasks.randomization import ModelRandomizationTest, resolve_order
from replications.khakzar2019.measures import cascade_summary


@dataclass
class SanityConfig:
    """a. ``images``: the test split's first samples by id; ``init`` / ``std``: the re-initialisation (``normal``:
    N(0, std), the official code's); ``order``: the stages from the logits down (None: every layer; ``+`` joins a
    conv and its BatchNorm); ``stages``: only the first ones; ``pass_threshold``: the final-stage Spearman |.| a
    method must fall below to pass."""

    images: int = 32
    init: str = "normal"
    std: float = 0.1
    stages: int | None = None
    order: list[str] | None = None
    pass_threshold: float = 0.5


class SanityChecks(Experiment):
    name = "a_sanity_checks"

    def __init__(self, config: SanityConfig, explainers: dict, model):
        super().__init__()
        self.config = config
        order = resolve_order(model, config.order)
        if config.stages is not None:
            order = order[: config.stages]
        self.test = ModelRandomizationTest(
            {k: v for k, v in explainers.items() if k != "random"}, order, modes=("cascading",),
            init=config.init, std=config.std, seed=0, keep_examples=3,
        )

    def update(self, ctx: BatchContext) -> None:
        # The sanity images are the split's first ``images`` samples by id: the same set on any number of
        # processes (a per-process counter would pick a different set under a distributed sampler).
        chosen = ctx.ids < self.config.images
        if chosen.any():
            self.test.update(ctx.model, ctx.images[chosen], ctx.targets[chosen], ctx.ids[chosen])

    def compute(self) -> dict:
        return {"sanity": cascade_summary(self.test)}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.khakzar2019.claims import build_claims

        return [c for c in build_claims(results, profile) if c.id.startswith("sanity.")]

    def examples(self) -> dict:
        """The first images and their original maps (the maps figure)."""
        return dict(getattr(self.test, "examples", None) or {})


#: where it sees a batch among the experiments (``replication.Khakzar2019Replication`` runs them in this order)
ORDER = 10


def build(rep) -> list[Experiment]:
    return [SanityChecks(rep.sanity_config, rep.explainers, rep.model)]
