"""Khakzar et al. 2019 (PruneGrad) with its three benchmarks: the replication module, which wires the experiments
of :mod:`replications.khakzar2019.experiments` to the data, the explained classifier and the methods.

a. Sanity checks (Adebayo et al. 2018's cascading randomisation): PruneGrad and the compared methods.
b. Pixel perturbation (Khakzar Sec. 4): remove the least (LeRF) / most (MoRF) important pixels.
c. ROAR (Hooker et al. 2019; ``lightning_modules.tasks.roar_benchmark``): remove, retrain, test accuracy vs t.

(a) and (b) run in the Lightning test pass, one batch at a time (the batch loop and the per-batch map cache are
:class:`lightning_modules.experiment.ExperimentReplication`'s; samples keyed by ``batch["id"]`` so a padded uneven
split counts each image once); each method's maps of a batch are computed once and shared. Every method explains the
classifier's predicted class. (c) retrains models under their own Trainers at the end of the test epoch.

The explained classifier is benchmark v2's shipped model (``embedded_v2: scenes_v2_vgg``, on the v2 scenes), the
cached v1 synthetic-scenes black box (``blackbox_profile``) or any ``load_model`` network (``classifier: {name:
torchvision/resnet50, pretrained: true}``, the published setting). Every setting is a typed section: ``sanity``,
``pixel``, ``roar: {<name>: {...}}`` and ``reference`` (see each experiment's file). ``validate`` reports the
classifier's accuracy on the validation data and reads the ROAR data: a cheap check that a configuration's model,
weights and datasets load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torchmetrics.aggregation import MeanMetric

from lightning_modules.experiment import BatchContext, ExperimentReplication
from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.baselines import id_seeded_random_maps
from lightning_modules.explainers.prunegrad import PruneGrad
from lightning_modules.models import load_model
from lightning_modules.tasks.roar_benchmark import instantiate_data, roar_tensors, weights_digest
from replications.cli import ReplicationModule
from replications.khakzar2019 import nets, paper  # noqa: F401  (nets registers roar_mnist_cnn)
from replications.khakzar2019.experiments import experiment_modules
from replications.khakzar2019.experiments.a_sanity_checks import SanityConfig
from replications.khakzar2019.experiments.b_pixel_perturbation import PixelConfig, PixelPerturbationExperiment
from replications.khakzar2019.experiments.c_roar import ReferenceConfig, RoarSection, roar_sections
from replications.khakzar2019.measures import DEFAULT_METHODS, make_explainer


@dataclass
class ClassifierSpec:
    """The explained classifier as a ``load_model`` network (``classifier: {name: torchvision/resnet50, pretrained:
    true}``, the published setting): its name, published weights or a checkpoint, and the architecture's own
    keyword arguments (``kwargs``); typed, so a misspelt or mistyped key fails when the config is parsed."""

    name: str
    pretrained: bool = False
    checkpoint: str | None = None
    num_classes: int | None = None
    in_chans: int | None = None
    weights_dir: str | None = None
    normalize_inputs: bool = True
    kwargs: dict[str, Any] | None = None

    @classmethod
    def of(cls, value) -> "ClassifierSpec":
        """From the CLI's parsed value or a plain dict (Python callers; an unknown key is refused, naming it)."""
        if isinstance(value, cls):
            return value
        values = dict(value if isinstance(value, dict) else vars(value))
        if "name" not in values:
            raise ValueError("classifier needs a 'name' (a load_model name, e.g. {name: torchvision/resnet50, pretrained: true})")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"classifier: unknown keys {unknown}; known: {[f.name for f in fields(cls)]} (architecture "
                             "arguments go under kwargs)")
        return cls(**values)

    def given(self) -> dict:
        """The settings given (those that differ from the defaults), as a plain dict."""
        defaults = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in asdict(self).items() if k == "name" or v != defaults[k]}

    def load(self):
        spec = self.given()
        return load_model(**{"freeze": True, **{k: v for k, v in spec.items() if k != "kwargs"}, **(spec.get("kwargs") or {})})


class KhakzarContext(BatchContext):
    """A batch of the test pass; ``targets``: the classifier's predicted classes (the paper explains them)."""

    @property
    def targets(self) -> torch.Tensor:
        def predict():
            with torch.no_grad():
                return self.model(self.images).argmax(1)

        return self.cached("targets", predict)


class Khakzar2019Replication(ExperimentReplication, ReplicationModule):
    """PruneGrad's three benchmarks (see the module docstring). Constructor arguments = the config."""

    paper = "khakzar2019"
    title = "Khakzar et al. 2019 — Improving Feature Attribution through Input-specific Network Pruning (PruneGrad)"
    citation = (
        "A. Khakzar, S. Baselizadeh, S. Khanduja, C. Rupprecht, S. T. Kim, N. Navab. Improving Feature Attribution "
        "through Input-specific Network Pruning. arXiv 1911.11081, 2019. ROAR: S. Hooker, D. Erhan, P.-J. Kindermans, "
        "B. Kim. A Benchmark for Interpretability Methods in Deep Neural Networks. NeurIPS 2019."
    )

    def __init__(
        self,
        blackbox_profile: str = "default",
        classifier: ClassifierSpec | None = None,
        embedded_v2: str | None = None,
        methods: dict[str, dict] | None = None,
        sanity: SanityConfig = SanityConfig(),  # noqa: B008 - read-only defaults, shown by --print_config
        pixel: PixelConfig = PixelConfig(),  # noqa: B008
        roar: dict[str, RoarSection] | None = None,
        reference: ReferenceConfig = ReferenceConfig(),  # noqa: B008
        work_dir: str | None = None,
    ):
        super().__init__()
        classifier = ClassifierSpec.of(classifier) if classifier is not None else None
        self.blackbox_profile, self.classifier, self.embedded_v2 = blackbox_profile, classifier, embedded_v2
        self.methods = dict(methods if methods is not None else DEFAULT_METHODS)
        if "prunegrad" not in self.methods:
            raise ValueError("methods must include 'prunegrad': it is the method this replication is about")
        self.sanity_config, self.pixel_config, self.reference_config = sanity, pixel, reference
        self.roar_sections = roar_sections(roar)
        self.work_dir = work_dir
        if classifier is not None and embedded_v2 is not None:
            raise ValueError(f"give either model.embedded_v2 ({embedded_v2!r}) or model.classifier ({classifier.given()!r}), not both")
        if embedded_v2 is not None:
            self.model, self.data_config = load_model(embedded_v2, weights="embedded")
        elif classifier is not None:
            self.model, self.data_config = classifier.load()
        else:
            self.model, self.data_config = load_model(f"blackbox_{blackbox_profile}", weights="embedded")
        self.explainers = {name: make_explainer(name, kw) for name, kw in self.methods.items()}
        self.explainers.setdefault("random", create_explainer("random"))
        pg = self.explainers["prunegrad"]
        self.pg_official = PruneGrad(getattr(pg, "percentile", 70.0), scope="all")
        self.pg_plain = PruneGrad(0.0)
        self.test_splits = ["test"]
        self.roar_info: dict[str, dict] = {}
        self._roar_data: dict = {}
        self.val_accuracy = MeanMetric()
        # every file of experiments/, in the order they see a batch
        self.add_experiments([e for module in experiment_modules() for e in module.build(self)])

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.check_data(self.trainer.datamodule)

    def check_data(self, dm) -> None:
        """A v2 model is explained on the v2 scenes it was trained on (a profile may have fewer scenes, e.g. smoke,
        but they must be drawn as the ones the model learned); the v1 black box on the v1 scenes."""
        if dm is None or self.classifier is not None:
            return
        from lightning_modules.data.scenes_v2 import ScenesV2DataModule

        if self.embedded_v2 is not None:
            if not isinstance(dm, ScenesV2DataModule):
                raise ValueError(f"model.embedded_v2={self.embedded_v2!r} is explained on the v2 scenes: set data "
                                 f"to lightning_modules.data.scenes_v2.ScenesV2DataModule (got {type(dm).__name__})")
            trained_on = self.model.scenes_config
            sizes = {f"{split}_size": getattr(trained_on, f"{split}_size") for split in ("train", "val", "test", "heldout")}
            if replace(dm.config, **sizes) != trained_on:
                raise ValueError(f"{self.embedded_v2} was trained on other v2 scenes than the data module's "
                                 "config; use a v2 profile that differs only in its split sizes")
        elif isinstance(dm, ScenesV2DataModule):
            raise ValueError("the v1 scenes black box (model.blackbox_profile) cannot explain v2 scenes: set "
                             "model.embedded_v2 (e.g. scenes_v2_vgg)")

    # ------------------------------------------------------------------ the data and the classifier for ROAR
    def roar_datamodule(self, name: str):
        """The DataModule of ROAR benchmark ``name``: its own (instantiated once) or the test DataModule."""
        section = self.roar_sections[name]
        if section.data is None:
            return self.trainer.datamodule
        if name not in self._roar_data:
            self._roar_data[name] = instantiate_data(section.data)
        return self._roar_data[name]

    def explained_id(self) -> str:
        """The explained classifier's name and weights (a ROAR cache key part: another model never reuses results)."""
        name = (json.dumps(self.classifier.given(), sort_keys=True) if self.classifier else f"embedded_v2:{self.embedded_v2}" if self.embedded_v2
                else f"blackbox:{self.blackbox_profile}")
        return name + ":" + weights_digest(self.model)

    def num_classes(self) -> int:
        n = getattr(self.model, "num_classes", None)
        if n:
            return int(n)
        with torch.no_grad():
            return int(self.model(torch.rand(1, *self.data_config.input_size, device=self.device)).shape[1])

    # ------------------------------------------------------------------ validate: does the configuration load?
    def validation_step(self, batch, batch_idx):
        with torch.no_grad():
            preds = self.model(batch["image"]).argmax(1)
        self.val_accuracy.update((preds == batch["label"]).float())

    def on_validation_epoch_end(self):
        self.log("val/acc", self.val_accuracy.compute(), sync_dist=False)
        self.val_accuracy.reset()
        if self.trainer.is_global_zero:
            for name, section in self.roar_sections.items():
                (x_train, _), (x_test, _) = roar_tensors(self.roar_datamodule(name), section.train_size, section.test_size)
                self.roar_info[name] = {"train_images": int(x_train.shape[0]), "test_images": int(x_test.shape[0])}

    # ------------------------------------------------------------------ (a) + (b): the test pass
    def batch_context(self, batch: dict, split: str, batch_idx: int) -> KhakzarContext:
        if batch.get("id") is None:
            raise ValueError("khakzar2019 needs batch['id'] (the sample's index in its split; docs/CONVENTIONS.md)")
        return KhakzarContext(batch, split, batch_idx, self.model, list(self.explainers), self.explain)

    def model_for(self, split: str):
        return self.model

    def methods_for(self, split: str) -> list[str]:
        return list(self.explainers)

    def explain(self, method: str, ctx: KhakzarContext) -> torch.Tensor:
        """One method's maps of a batch, explaining the predicted class (``random``: seeded by sample id)."""
        if method == "random":
            return id_seeded_random_maps(ctx.ids, tuple(ctx.images.shape[-2:])).to(ctx.images.dtype)
        return self.explainers[method](ctx.model, ctx.images, ctx.targets)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.roar_info = dict(self.results.get("roar_info") or {})

    # ------------------------------------------------------------------ results and report
    def plain_results(self) -> dict:
        """Every number the claims read (``claims.build_claims``): per model (``explained`` = the classifier of the test
        passes; ``<roar name>`` = a ROAR reference model) the sanity-check and pixel-perturbation results with their
        per-image values, PruneGrad's threshold-rule measurements, and per ROAR benchmark the accuracies per seed."""
        r = self.results
        models = {"explained": {"sanity": r["sanity"], "pixel": r["pixel"], "prunegrad_rules": r["prunegrad_rules"]}}
        for name, res in (r.get("reference_benchmarks") or {}).items():
            models[name] = {**res, "prunegrad_rules": self.roar_info.get(name, {}).get("prunegrad_rules")}
        out = {
            "methods": list(self.explainers), "pass_threshold": float(self.sanity_config.pass_threshold),
            "pixel_output": self.pixel_config.output, "classifier_test_accuracy": r["classifier_test_accuracy"],
            "test_images": r["test_images"], "models": models, "roar": r.get("roar") or {},
        }
        specs = PixelPerturbationExperiment.validity(models)
        if specs:
            out["protocol_validity"] = specs
        return out

    def report_config(self) -> dict:
        """The settings the report states (plain values): the report is a function of (results, this, examples)."""
        return {
            "profile": self.profile, "classifier": self.classifier.given() if self.classifier else None,
            "embedded_v2": self.embedded_v2,
            "blackbox_profile": self.blackbox_profile, "blackbox_name": getattr(self.data_config, "name", None),
            "num_classes": self.num_classes(), "methods": self.methods,
            "datamodule": type(self._trainer.datamodule).__name__ if self._trainer is not None else None,
            "sanity": asdict(self.sanity_config), "pixel": asdict(self.pixel_config),
            "reference": asdict(self.reference_config),
            "roar": {name: asdict(s) for name, s in self.roar_sections.items()}, "roar_info": self.roar_info,
        }
