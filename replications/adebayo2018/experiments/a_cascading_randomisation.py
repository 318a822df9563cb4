"""a. Cascading model randomisation (Adebayo et al. 2018, Sec. 3.1, Fig. 2 and Fig. 4): the trained model's layers
re-initialised from the logits down, one more layer per stage, and every method's map at every stage compared with
the original map (the official code's measures, per image).

The trained models are the black box (its own pass) and the true-label models of the data randomisation tests named
in ``model_randomisation`` (the paper's MNIST notebooks). Their original maps are the shared ones of the batch
(``ctx.of(model)``: the edge-detector comparison and the data randomisation test read the same maps); each stage is
a deep copy of the model (``lightning_modules.tasks.randomization``), explained here. Each stage's map explains, in
the claims' convention, the stage's own predicted class, re-taken at every stage as the official notebooks do;
the original model's class, kept fixed, is measured beside it (``original``), with how often the two agree.

:class:`ModelRandomisationExperiment` is the test of one mode; b. (independent randomisation) is the same test with
another stage generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torchmetrics import MeanMetric

from lightning_modules.experiment import Experiment
from lightning_modules.tasks.randomization import INITS, TARGET_CONVENTIONS, randomization_stages
from replications.adebayo2018.maps import SanityContext, entry, predicted, similarity, update_similarity


@dataclass
class RandomisationConfig:
    """The model randomisation tests (cascading and independent): each layer re-initialised with its own
    initialiser (``init: default``, ``reset_parameters()`` as the official ``reinitlayerlist``) or N(0, 0.1)
    (``normal``), from a seed that depends only on ``seed`` and the layer's name; ``keep_examples``: the first
    images whose maps at every stage the figures show."""

    init: str = "default"
    seed: int = 0
    keep_examples: int = 2

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; use one of {INITS}")


@dataclass
class TrainedModel:
    """One trained model whose layers the test re-initialises: its key in the batch context (``ctx.of(key)``), the
    pass that serves its images, its stages (layers or ``+``-joined blocks, from the logits down) and its methods."""

    key: str
    split: str
    order: list[str]
    methods: list[str] = field(default_factory=list)


def _key(*parts: str) -> str:
    # ModuleDict keys may not contain dots; layer names do.
    return "|".join(p.replace(".", ":") for p in parts)


class ModelRandomisationExperiment(Experiment):
    """The model randomisation test of one ``mode`` on every trained model of ``models`` (result key -> model)."""

    mode, name = "cascading", "a_cascading_randomisation"

    def __init__(self, config: RandomisationConfig, models: dict[str, TrainedModel]):
        super().__init__()
        self.config = config
        self.models = dict(models)
        self.splits = tuple(dict.fromkeys(m.split for m in self.models.values()))
        self.similarity = nn.ModuleDict({
            _key(model): nn.ModuleDict({_key(conv, stage, m): similarity() for conv in TARGET_CONVENTIONS
                                        for stage in spec.order for m in spec.methods})
            for model, spec in self.models.items()})
        # the share of images whose re-taken class equals the original one, per stage
        self.agreement = nn.ModuleDict({_key(model): nn.ModuleDict({_key(stage): MeanMetric() for stage in spec.order})
                                        for model, spec in self.models.items()})
        self._examples: dict[str, dict] = {}

    def update(self, ctx: SanityContext) -> None:
        for model, spec in self.models.items():
            if spec.split == ctx.split:
                self._update_model(ctx, model, spec)

    def _update_model(self, ctx: SanityContext, model: str, spec: TrainedModel) -> None:
        trained = ctx.of(spec.key)
        images, targets, ids = ctx.images, predicted(trained), ctx.ids
        original = trained.maps(spec.methods)
        keep = model not in self._examples and self.config.keep_examples > 0
        n = min(self.config.keep_examples, images.shape[0])
        if keep:
            self._examples[model] = {"images": images[:n].detach().cpu(), "targets": targets[:n].detach().cpu(),
                                     "original": {k: v[:n].cpu() for k, v in original.items()}, "stages": {}}
        sims, agreement = self.similarity[_key(model)], self.agreement[_key(model)]
        stages = randomization_stages(trained.model, self.mode, order=spec.order, init=self.config.init,
                                      seed=self.config.seed)
        for stage in stages:
            for conv in TARGET_CONVENTIONS:
                if conv == "original":
                    stage_targets = targets
                else:
                    with torch.no_grad():
                        stage_targets = stage.model(images).argmax(1)
                    agreement[_key(stage.stage)].update((stage_targets == targets).float())
                maps = ctx.with_model(stage.model, spec.methods, stage_targets).maps(spec.methods)
                for m, value in maps.items():
                    update_similarity(sims[_key(conv, stage.stage, m)], value, original[m], ids)
                if keep and conv == TARGET_CONVENTIONS[-1]:
                    self._examples[model]["stages"][stage.stage] = {k: v[:n].cpu() for k, v in maps.items()}
            del stage

    def compute(self) -> dict:
        """``{"<mode>_randomisation": {model: {order, methods, agreement: stage -> share, by_convention: convention ->
        stage -> method -> {summary, per_image}}}}``."""
        out = {}
        for model, spec in self.models.items():
            sims, agreement = self.similarity[_key(model)], self.agreement[_key(model)]
            out[model] = {
                "order": list(spec.order), "methods": list(spec.methods),
                "agreement": {stage: float(agreement[_key(stage)].compute()) for stage in spec.order},
                "by_convention": {conv: {stage: {m: entry(sims[_key(conv, stage, m)].per_sample()) for m in spec.methods}
                                         for stage in spec.order} for conv in TARGET_CONVENTIONS},
            }
        return {f"{self.mode}_randomisation": out}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.adebayo2018.claims import model_claims

        return [c for model in results["model_randomisation"] for c in model_claims(results, model)
                if c.id.startswith(f"{model}_independent_") == (self.mode == "independent")]

    def examples(self) -> dict:
        """Per model: the first images, their original maps and every stage's maps (re-taken class)."""
        return self._examples

    @classmethod
    def build_for(cls, rep) -> list[Experiment]:
        """This mode's experiment, configured from the replication (``rep``: the ``AdebayoReplication`` once its models
        are loaded): on the black box and the named true-label models, when the config runs this mode."""
        return [cls(rep.randomisation, rep.randomised)] if cls.mode in rep.modes else []


class CascadingRandomisation(ModelRandomisationExperiment):
    """Stage k: the layers ``order[0..k]`` re-initialised (cumulative, from the logits down)."""

    mode, name = "cascading", "a_cascading_randomisation"


#: where it sees a batch among the experiments (``replication.AdebayoReplication`` runs them in this order)
ORDER = 10


#: this experiment, when the config runs cascading randomisation
build = CascadingRandomisation.build_for
