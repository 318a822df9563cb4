"""c. Data randomisation (Adebayo et al. 2018, Sec. 4, Fig. 5): per test (a dataset and an architecture), the model
trained on the true labels and the same architecture trained on a fixed permutation of them (memorised on a fixed
subset, see ``TrainingConfig.subset``), and every method's map similarity between the two models. Two controls sit
beside the pair: the *control* model (true labels, the random-label model's subset and schedule), which separates
the effect of the labels from that of the subset and schedule, and a second control trained with another seed (the
seed noise floor of the similarity).

The models are loaded or trained by the module's ``training_step`` (``replications.adebayo2018.training``); here
each model's maps of the test images are compared. Every model's maps are its context's (``ctx.of(model)``), so the
true-label model's maps are those its model randomisation test and the edge-detector comparison read. Each model
explains its own predicted class (the claims' convention); the paper's comparison is also measured with both models
explaining the true-label model's class (``original``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from lightning_modules.experiment import Experiment
from lightning_modules.tasks.data_randomization import TrainingConfig
from lightning_modules.tasks.randomization import TARGET_CONVENTIONS
from replications.adebayo2018.constants import BLACKBOX, CLAIM_CONVENTION, MODEL_KINDS, PAIRS
from replications.adebayo2018.data import SCENE_SOURCES
from replications.adebayo2018.maps import SanityContext, entry, predicted, similarity, update_similarity

#: images of each test whose maps the figure shows
FIGURE_IMAGES = 3


@dataclass
class DataRandomisationConfig:
    """One data randomisation test (Sec. 4): ``dataset`` (a digits source or the scenes), the true-label model's
    training (``true``; None = the cached black box, scenes only) and the random-label model's (``random``)."""

    name: str
    dataset: str
    true: TrainingConfig | None
    random: TrainingConfig
    #: the methods compared (None = all of the replication's; e.g. no Grad-CAM for an MLP, which has no conv layer)
    methods: list[str] | None = None
    #: train the control and the noise-floor control beside the pair
    controls: bool = True

    @property
    def kinds(self) -> tuple[str, ...]:
        return MODEL_KINDS if self.controls else MODEL_KINDS[:2]

    @property
    def pairs(self) -> dict[str, tuple[str, str]]:
        return {p: ab for p, ab in PAIRS.items() if set(ab) <= set(self.kinds)}

    @property
    def model_name(self) -> str:
        return self.random.model_name

    def model_key(self, kind: str, blackbox_key: str) -> str:
        """The key of model ``kind`` in the batch context: the black box's own where it is the true-label model."""
        return blackbox_key if kind == "true" and self.true is None else f"{self.name}:{kind}"

    @classmethod
    def parse(cls, name: str, spec: dict) -> "DataRandomisationConfig":
        unknown = set(spec) - {"dataset", "true_labels", "random_labels", "methods", "controls"}
        if unknown or "dataset" not in spec:
            raise ValueError(f"data_randomisation.{name}: give dataset, true_labels and random_labels (and optionally "
                             f"methods, controls); got {sorted(spec)}")
        true = spec.get("true_labels", {})
        if true == BLACKBOX:
            if spec["dataset"] not in SCENE_SOURCES:
                raise ValueError(f"data_randomisation.{name}: true_labels: {BLACKBOX} reuses the scenes black box; "
                                 f"it needs dataset: one of {SCENE_SOURCES}, not {spec['dataset']!r}")
            true_cfg = None
        elif isinstance(true, dict):
            true_cfg = TrainingConfig(**true)
        else:
            raise ValueError(f"data_randomisation.{name}.true_labels must be a training config or {BLACKBOX!r}, got {true!r}")
        random_cfg = TrainingConfig(**spec.get("random_labels", {}))
        if true_cfg is not None and (true_cfg.model_name, true_cfg.model_kwargs) != (random_cfg.model_name, random_cfg.model_kwargs):
            raise ValueError(f"data_randomisation.{name}: the test compares the same architecture; got "
                             f"{true_cfg.model_name} {true_cfg.model_kwargs} and {random_cfg.model_name} {random_cfg.model_kwargs}")
        methods = list(spec["methods"]) if spec.get("methods") is not None else None
        return cls(name, spec["dataset"], true_cfg, random_cfg, methods, bool(spec.get("controls", True)))


def conventions(pair: str) -> tuple[str, ...]:
    """Both class conventions for the paper's comparison; the controls in the claims' convention only."""
    return TARGET_CONVENTIONS if pair == "random_vs_true" else (CLAIM_CONVENTION,)


class DataRandomisation(Experiment):
    """Every data randomisation test of the run (``tests``: name -> its config, methods resolved)."""

    name = "c_data_randomisation"

    def __init__(self, tests: dict[str, DataRandomisationConfig], blackbox_key: str):
        super().__init__()
        self.tests = dict(tests)
        self.blackbox_key = blackbox_key
        self.splits = tuple(dict.fromkeys(t.dataset for t in self.tests.values()))
        self.similarity = nn.ModuleDict({
            name: nn.ModuleDict({pair: nn.ModuleDict({conv: nn.ModuleDict({m: similarity() for m in t.methods})
                                                      for conv in conventions(pair)}) for pair in t.pairs})
            for name, t in self.tests.items()})
        self._examples: dict[str, dict] = {}

    def update(self, ctx: SanityContext) -> None:
        for name, t in self.tests.items():
            if t.dataset != ctx.split:
                continue
            keys = {kind: t.model_key(kind, self.blackbox_key) for kind in t.kinds}
            own = {kind: ctx.of(key) for kind, key in keys.items()}  # each model explains its own predicted class
            for pair, (a, b) in t.pairs.items():
                for conv in conventions(pair):
                    # original convention: both maps explain the reference model's (b's) predicted class
                    maps_a = own[a] if conv == "retaken" else ctx.of(keys[a], targets_of=keys[b])
                    for m in t.methods:
                        update_similarity(self.similarity[name][pair][conv][m], maps_a.map(m), own[b].map(m), ctx.ids)
            if name not in self._examples:
                n = min(FIGURE_IMAGES, ctx.images.shape[0])
                self._examples[name] = {
                    "images": ctx.images[:n].cpu(), "labels": ctx.labels[:n].cpu(),
                    "targets": {k: predicted(own[k])[:n].cpu() for k in ("true", "random")},
                    "methods": list(t.methods),
                    **{k: {m: own[k].map(m)[:n].cpu() for m in t.methods} for k in ("true", "random")},
                }

    def compute(self) -> dict:
        """``{"data_randomisation": {test: {dataset, model, methods, true_model_is_blackbox, pairs: pair -> convention
        -> method -> {summary, per_image}}}}`` (the module adds each model's training and accuracies)."""
        return {"data_randomisation": {
            name: {"dataset": t.dataset, "model": t.model_name, "methods": list(t.methods),
                   "true_model_is_blackbox": t.true is None,
                   "pairs": {pair: {conv: {m: entry(metric.per_sample()) for m, metric in by_m.items()}
                                    for conv, by_m in by_conv.items()}
                             for pair, by_conv in self.similarity[name].items()}}
            for name, t in self.tests.items()}}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.adebayo2018.claims import data_claims

        return [c for name in results["data_randomisation"] for c in data_claims(results, name)]

    def examples(self) -> dict:
        """Per test: the first images, their labels, and the true-label and random-label models' classes and maps."""
        return self._examples


#: where it sees a batch among the experiments (``replication.AdebayoReplication`` runs them in this order)
ORDER = 30


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication (``rep``: the ``AdebayoReplication`` once its models are
    loaded or trained): every data randomisation test of the config."""
    return [DataRandomisation(rep.data_tests, rep.blackbox_key)]
