"""Adebayo et al. 2018, "Sanity Checks for Saliency Maps": the replication module, which wires the experiments of
:mod:`replications.adebayo2018.experiments` (a. cascading and b. independent model randomisation, c. data
randomisation with its controls, d. the edge-detector comparison) to the data, the models and the saliency methods.

- The models: the black box (benchmark v2's shipped VGG, 8 ReLU conv layers; Inception v3 in the paper profile; the
  v1 scenes CNN on request) and, per data randomisation test, the true-label model, the random-label model and the
  two controls (:mod:`replications.adebayo2018.training`). The trained models that the report explains are shipped
  (``weights/adebayo2018_<profile>_<test>_<kind>``, hash-checked); ``trained_models: retrain`` trains and ships them
  again (``ship_missing``: only those not shipped), ``train`` trains per run without shipping (smoke and paper
  profiles).
- Learning (loading or training the data randomisation models) happens in ``training_step``; ``validation_step``
  runs the black box and the data randomisation architectures on the evaluation images; the explanation passes in
  ``test_step`` (:class:`lightning_modules.experiment.ExperimentReplication`'s batch loop), one pass per dataset:
  every model explained on a batch has its own context (:class:`replications.adebayo2018.maps.SanityContext`), so
  a model's maps are computed once per batch and shared by every experiment that reads them.
- Every map explains its model's own predicted class; the claims read the plain results (``plain_results``;
  ``claims.py``), the report is :func:`replications.adebayo2018.report.build_report` of (results, settings, figure
  tensors).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import torch
import torch.nn as nn

from lightning_modules.experiment import BatchContext, ExperimentReplication
from lightning_modules.tasks.randomization import MODES, resolve_order
from replications.adebayo2018.constants import (
    BLACKBOX, CLAIM_CONVENTION, CLAIM_MEASURE, DEFAULT_DATA_RANDOMISATION, DEFAULT_METHODS, SIGNED_METHODS,
    TRAINED_MODELS,
)
from replications.adebayo2018.data import SCENE_SOURCES  # the data sources served by the black box's scenes
from replications.adebayo2018.experiments import experiment_modules
from replications.adebayo2018.experiments.a_cascading_randomisation import RandomisationConfig, TrainedModel
from replications.adebayo2018.experiments.c_data_randomisation import DataRandomisationConfig
from replications.adebayo2018.maps import SanityContext, predicted
from replications.adebayo2018.training import blackbox_metrics, load_or_train
from replications.cli import ReplicationModule
from replications.contract import plain

class AdebayoReplication(ExperimentReplication, ReplicationModule):
    """Sanity checks for saliency maps (see the module docstring). Constructor arguments = the config.

    ``data_randomisation``: test name -> ``{dataset, true_labels, random_labels}`` (TrainingConfig arguments;
    ``true_labels: blackbox`` on the scenes; :class:`DataRandomisationConfig`). ``model_randomisation``: the tests
    whose true-label model also gets the model randomisation test, next to the black box (the paper's MNIST CNN
    notebooks). ``init``, ``randomization_seed``, ``keep_examples``: :class:`RandomisationConfig`.
    ``trained_models``: ``shipped`` (load the shipped weights, hash-checked), ``retrain`` (train and ship them),
    ``ship_missing`` (load those shipped, train and ship the others), ``train`` (train per run, ship nothing).
    ``training_threads``: CPU threads of the nested trainings (pinned: the weights depend on it)."""

    paper = "adebayo2018"
    title = "Sanity Checks for Saliency Maps"
    citation = "J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim. Sanity Checks for Saliency Maps. NeurIPS 2018."

    def __init__(
        self,
        methods: list[str] | None = None,
        explainer_kwargs: dict[str, dict] | None = None,
        blackbox_profile: str = "default",
        embedded_v2: str | None = None,
        blackbox_model: str | None = None,
        blackbox_order: list[str] | None = None,
        modes: list[str] | None = None,
        init: str = "default",
        randomization_seed: int = 0,
        keep_examples: int = 2,
        data_randomisation: dict[str, dict] | None = None,
        model_randomisation: list[str] | None = None,
        training_seed: int = 0,
        training_threads: int | None = 2,
        trained_models: str = "shipped",
        change_threshold: float = 0.5,
    ):
        super().__init__()
        self.methods = list(methods or DEFAULT_METHODS)
        unknown_kw = set(explainer_kwargs or {}) - set(self.methods)
        if unknown_kw:
            raise ValueError(f"explainer_kwargs for methods not in methods: {sorted(unknown_kw)}")
        # signed channel sums unless the config says otherwise (see SIGNED_METHODS)
        self.explainer_kwargs = {m: ({"reduction": "sum"} if m in SIGNED_METHODS else {}) | dict((explainer_kwargs or {}).get(m, {}))
                                 for m in self.methods}
        self.blackbox_profile = blackbox_profile
        # benchmark v2's shipped model (lightning_modules.models.embedded_v2) as the black box, on the v2 scenes
        self.embedded_v2 = embedded_v2
        if embedded_v2 is not None and blackbox_model is not None:
            raise ValueError(f"give either model.embedded_v2 ({embedded_v2!r}, benchmark v2's shipped black box) or "
                             f"model.blackbox_model ({blackbox_model!r}, a pretrained model), not both")
        # The paper's setting: a pretrained model (e.g. inception_v3 from a local weight file) and its block order.
        self.blackbox_model = blackbox_model
        self.blackbox_order = list(blackbox_order) if blackbox_order else None
        self.modes = list(modes or MODES)
        for m in self.modes:
            if m not in MODES:
                raise ValueError(f"unknown mode {m!r}; use {list(MODES)}")
        if trained_models not in TRAINED_MODELS:
            raise ValueError(f"trained_models must be one of {TRAINED_MODELS}, got {trained_models!r}")
        self.trained_models = trained_models
        self.randomisation = RandomisationConfig(init=init, seed=randomization_seed, keep_examples=keep_examples)
        spec = DEFAULT_DATA_RANDOMISATION if data_randomisation is None else data_randomisation
        if not spec:
            raise ValueError("data_randomisation is empty; give at least one experiment (see configs/adebayo2018/default.yaml)")
        self.data_tests = {name: DataRandomisationConfig.parse(name, dict(s)) for name, s in spec.items()}
        for name, exp in self.data_tests.items():
            if exp.methods is None:
                exp.methods = list(self.methods)
            elif not exp.methods or set(exp.methods) - set(self.methods):
                raise ValueError(f"data_randomisation.{name}.methods must be a non-empty subset of methods {self.methods}, "
                                 f"got {exp.methods}")
        if any(e.true is None for e in self.data_tests.values()) and blackbox_model is not None:
            raise ValueError("true_labels: blackbox reuses the cached scenes black box, but blackbox_model="
                             f"{blackbox_model!r} replaces it; train the true-label model instead")
        if model_randomisation is None:
            model_randomisation = [n for n, e in self.data_tests.items() if e.dataset not in SCENE_SOURCES][:1]
        bad = [n for n in model_randomisation if n not in self.data_tests or self.data_tests[n].true is None]
        if bad:
            raise ValueError(f"model_randomisation names {bad}: give data_randomisation experiments that train their "
                             f"true-label model ({[n for n, e in self.data_tests.items() if e.true is not None]})")
        if {*SCENE_SOURCES, "imagenet"} & set(model_randomisation):
            raise ValueError("the black box's model randomisation is always run under its data's key (scenes_v2, "
                             "scenes or imagenet); "
                             "rename the data randomisation experiment")
        self.model_randomisation = list(model_randomisation)
        self.training_seed = training_seed
        self.training_threads = training_threads
        self.change_threshold = change_threshold
        from lightning_modules.explainers import create_explainer

        self.explainers = {m: create_explainer(m, **self.explainer_kwargs.get(m, {})) for m in self.methods}
        self.automatic_optimization = False
        # Trained models are kept outside the module tree: the cached state of the replication is its results.
        self.trained: dict[str, dict[str, nn.Module]] = {}
        self.training_metrics: dict[str, dict[str, dict]] = {}
        #: the models of the model randomisation tests (result key -> TrainedModel), set when the test pass starts
        self.randomised: dict[str, TrainedModel] = {}
        self.blackbox: nn.Module | None = None
        self.blackbox_info: dict = {}
        self.blackbox_key = "scenes"
        self.validation_info: dict = {}
        self.digits_info: dict = {}

    # ------------------------------------------------------------------ models
    def _load_blackbox(self) -> nn.Module:
        """The black box: benchmark v2's shipped model (``embedded_v2``), the shipped v1 scenes CNN, or a pretrained
        model from a local weight file (paper)."""
        if self.blackbox is not None:
            return self.blackbox
        dm = self.trainer.datamodule
        self.blackbox_key = getattr(dm, "blackbox_data", "scenes")
        if self.blackbox_model is not None:
            from lightning_modules.models import load_model

            from replications.adebayo2018.relu import add_relu_modules_

            self.blackbox, _ = load_model(self.blackbox_model, pretrained=True)
            # Guided BackProp needs ReLU modules; torchvision's Inception v3 applies ReLU functionally.
            converted = add_relu_modules_(self.blackbox)
            self.blackbox_info = {"model": self.blackbox_model, "pretrained": True, "relu_modules_added": converted}
        elif self.embedded_v2 is not None:
            from lightning_modules.models import load_model

            if self.blackbox_key != "scenes_v2":
                raise ValueError(f"model.embedded_v2={self.embedded_v2!r} is explained on the v2 scenes; set "
                                 f"data.scenes_source: scenes_v2 (the data module serves {self.blackbox_key!r})")
            self.blackbox, _ = load_model(self.embedded_v2, weights="embedded")
            scenes, trained_on = getattr(getattr(dm, "_scenes", None), "config", None), self.blackbox.scenes_config
            sizes = {f"{split}_size": getattr(trained_on, f"{split}_size") for split in ("train", "val", "test", "heldout")}
            if scenes is not None and replace(scenes, **sizes) != trained_on:
                # a profile may have fewer scenes (smoke), but they must be drawn as the ones the model learned
                raise ValueError(f"{self.embedded_v2} was trained on other v2 scenes than data.scenes_profile="
                                 f"{dm.scenes_profile!r} gives; use a profile that differs only in its split sizes")
            self.blackbox_info = {"name": self.embedded_v2, **dict(self.blackbox.embedded_info or {})}
        else:
            from lightning_modules.models import blackbox_info, load_model

            if self.blackbox_key != "scenes":
                raise ValueError(f"the shipped v1 scenes black box explains the v1 scenes (data.scenes_source: scenes); "
                                 f"the data module serves {self.blackbox_key!r}: v2 scenes need model.embedded_v2 "
                                 "(e.g. scenes_v2_vgg), data.imagenet needs model.blackbox_model (e.g. inception_v3)")
            if getattr(dm, "scenes_profile", self.blackbox_profile) != self.blackbox_profile:
                raise ValueError(
                    f"model.blackbox_profile={self.blackbox_profile!r} but data.scenes_profile={dm.scenes_profile!r}: "
                    "the black box must be explained on the scenes it was trained on; set both to the same profile"
                )
            self.blackbox, _ = load_model(f"blackbox_{self.blackbox_profile}", weights="embedded")
            self.blackbox_info = blackbox_info(self.blackbox_profile)
        self.blackbox = self.blackbox.to(self.device)
        return self.blackbox

    def _check_blackbox_architecture(self, exp: DataRandomisationConfig) -> None:
        """``true_labels: blackbox``: the random-label model must be the black box's architecture, on its data."""
        if exp.dataset != self.blackbox_key:
            raise ValueError(f"data_randomisation.{exp.name}: true_labels: {BLACKBOX} reuses the black box, which is "
                             f"explained on {self.blackbox_key!r}; set its dataset to {self.blackbox_key!r}, not {exp.dataset!r}")
        if self.embedded_v2 is not None:
            from lightning_modules.models import embedded_v2_config

            cfg = embedded_v2_config(self.embedded_v2)
        else:
            from lightning_modules.models import blackbox_config

            cfg = blackbox_config(self.blackbox_profile)
        if (exp.random.model_name, dict(exp.random.model_kwargs)) != (cfg.model_name, dict(cfg.model_kwargs)):
            raise ValueError(
                f"data_randomisation.{exp.name}: the true-label model is the black box ({cfg.model_name} "
                f"{dict(cfg.model_kwargs)}), so random_labels must train the same architecture; got "
                f"{exp.random.model_name} {dict(exp.random.model_kwargs)}")

    def _datasets_present(self, dm) -> None:
        names = set(dm.loader_names)
        missing = {n: e.dataset for n, e in self.data_tests.items() if e.dataset not in names}
        if missing:
            raise ValueError(f"data_randomisation experiments {missing} need datasets that the data module does not "
                             f"load (it serves {sorted(names)}); add them to data.digits")

    # ------------------------------------------------------------------ learning
    def configure_optimizers(self):
        return None  # the data randomisation models are trained by their own ClassifierTasks (see training_step)

    def training_step(self, batch, batch_idx):
        dm = self.trainer.datamodule
        self._datasets_present(dm)
        kw = dict(accelerator="cpu" if self.device.type == "cpu" else "auto", devices=1)
        for name, exp in self.data_tests.items():
            started = time.time()
            train, test = dm.train_tensors(exp.dataset), dm.test_tensors(exp.dataset)
            n_classes = dm.num_classes_of[exp.dataset]
            models, metrics = {}, {}
            for kind in exp.kinds:
                if kind == "true" and exp.true is None:
                    models[kind] = self._load_blackbox()
                    self._check_blackbox_architecture(exp)
                    metrics[kind] = blackbox_metrics(models[kind], train, test, self.blackbox_info,
                                                     self.embedded_v2 or f"blackbox_{self.blackbox_profile}",
                                                     flips=not self.embedded_v2)
                else:
                    models[kind], metrics[kind] = load_or_train(
                        exp, kind, train, test, n_classes, profile=self.profile, trained_models=self.trained_models,
                        training_seed=self.training_seed, training_threads=self.training_threads, device=self.device,
                        trainer_kwargs=kw)
            for kind, m in models.items():
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
            self.trained[name] = {k: m.to(self.device) for k, m in models.items()}
            self.training_metrics[name] = {**metrics, "chance": 1.0 / n_classes, "dataset": exp.dataset,
                                           "model": exp.model_name}
            self.timings[f"{name}_models_s"] = round(time.time() - started, 1)
            for kind, m in metrics.items():  # the report's training times (results keep the settings and accuracies)
                for key in ("training_wall_s", "training_cpu_s"):
                    if m.get(key) is not None:
                        self.timings[f"{name}_{kind}_{key}"] = m[key]
        return None

    # ------------------------------------------------------------------ validation: run the models on the data
    def on_validation_start(self) -> None:
        """What ``validate`` checks end to end: the black box loads (pretrained file found and hash-checked), the
        randomisation orders resolve on it and on the digit architectures, and every model runs on its images."""
        dm = self.trainer.datamodule
        self._datasets_present(dm)
        blackbox = self._load_blackbox()
        self.validation_info = {"blackbox_order": resolve_order(blackbox, self.blackbox_order)}
        self._val_models = {}
        from lightning_modules.models import load_model

        for name, exp in self.data_tests.items():
            if name in self.trained:
                self._val_models[name] = self.trained[name]
                continue
            # Before fit: the untrained architecture (chance accuracy); validate checks it takes the images.
            net, _ = load_model(exp.model_name, num_classes=dm.num_classes_of[exp.dataset], **dict(exp.random.model_kwargs))
            self._val_models[name] = {"untrained": net.to(self.device)}
            if name in self.model_randomisation:
                self.validation_info[f"{name}_order"] = resolve_order(net)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        dm = self.trainer.datamodule
        source = dm.loader_names[dataloader_idx]
        images, labels = batch["image"].to(self.device), batch["label"].to(self.device)
        models = {}  # key -> (model, the methods it is explained with)
        if dataloader_idx == 0:
            models["blackbox"] = (self.blackbox, self.methods)
        for name, exp in self.data_tests.items():
            if exp.dataset == source:
                for kind, m in self._val_models[name].items():
                    if kind != "true" or exp.true is not None:
                        models[f"{name}_{kind}"] = (m, exp.methods)
        for key, (model, methods) in models.items():
            with torch.no_grad():
                logits = model(images)
            if logits.dim() != 2 or logits.shape[0] != images.shape[0]:
                raise ValueError(f"{key} gave logits of shape {tuple(logits.shape)} for {tuple(images.shape)} images")
            # random-label models: accuracy against the true labels (chance expected)
            self.log(f"val/{key}_acc", (logits.argmax(1) == labels).float().mean(), add_dataloader_idx=False,
                     batch_size=images.shape[0], on_epoch=True)
            if batch_idx == 0:
                # Every method runs once on this model (e.g. Grad-CAM's layer exists): config errors surface here,
                # not hours into a paper-scale fit.
                with torch.enable_grad():
                    for m in methods:
                        maps = self.explainers[m](model, images[:2], logits[:2].argmax(1))
                        if maps.shape != (min(2, images.shape[0]), 1, *images.shape[-2:]) or not torch.isfinite(maps).all():
                            raise ValueError(f"{m} on {key} gave maps of shape {tuple(maps.shape)} (finite: "
                                             f"{bool(torch.isfinite(maps).all())}) for images {tuple(images.shape)}")
                self.validation_info.setdefault("explained", []).append(key)

    # ------------------------------------------------------------------ explanation passes
    def on_test_start(self) -> None:
        missing = [n for n in self.data_tests if n not in self.trained]
        if missing:
            raise RuntimeError(f"the data randomisation models {missing} are loaded or trained by `fit`; "
                               "run `python -m replications.adebayo2018 fit`")
        dm = self.trainer.datamodule
        self._datasets_present(dm)
        blackbox = self._load_blackbox()
        self.test_splits = list(dm.loader_names)
        self.digits_info = dict(getattr(dm, "digits_info", {}) or {})
        # the models whose layers are re-initialised: the black box, then the named tests' true-label models
        self.randomised = {self.blackbox_key: TrainedModel(self.blackbox_key, self.blackbox_key,
                                                           resolve_order(blackbox, self.blackbox_order), list(self.methods))}
        for name in self.model_randomisation:
            exp = self.data_tests[name]
            self.randomised[name] = TrainedModel(exp.model_key("true", self.blackbox_key), exp.dataset,
                                                 resolve_order(self.trained[name]["true"]), list(exp.methods))
        # the experiments are built here, once the models (and so the randomisation stages) are known
        self.experiments = nn.ModuleDict()
        self.add_experiments([e for module in experiment_modules() for e in module.build(self)])
        self.experiments.to(self.device)

    def models_on(self, split: str) -> dict[str, tuple[nn.Module, list[str]]]:
        """The models explained on ``split``'s images (context key -> (model, its methods)): the black box on its
        pass, every model of the data randomisation tests on their dataset's."""
        models = {self.blackbox_key: (self.blackbox, list(self.methods))} if split == self.blackbox_key else {}
        for name, exp in self.data_tests.items():
            if exp.dataset == split:
                for kind in exp.kinds:
                    models.setdefault(exp.model_key(kind, self.blackbox_key), (self.trained[name][kind], list(exp.methods)))
        return models

    def batch_context(self, batch: dict, split: str, batch_idx: int) -> SanityContext:
        return SanityContext(batch, split, batch_idx, self.models_on(split), self.explain)

    def model_for(self, split: str) -> nn.Module:
        return next(iter(self.models_on(split).values()))[0]

    def methods_for(self, split: str) -> list[str]:
        return next(iter(self.models_on(split).values()))[1]

    def explain(self, method: str, ctx: BatchContext) -> torch.Tensor:
        """``method``'s maps of ``ctx``'s model, explaining its predicted class (or the class the context names)."""
        return self.explainers[method](ctx.model, ctx.images, predicted(ctx))

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        started = time.time()
        super().test_step(batch, batch_idx, dataloader_idx)
        key = f"{self.test_splits[dataloader_idx]}_explanations_s"
        self.timings[key] = round(self.timings.get(key, 0.0) + time.time() - started, 1)

    # ------------------------------------------------------------------ results and report
    def plain_results(self) -> dict:
        """Every number the claims read (``claims.build_claims``): per-image similarities of the model and data
        randomisation tests under both class conventions, the edge-detector comparison, and the models' accuracies;
        ``timings_s``: the run's times (not read by the claims)."""
        r = self.results
        by_mode = {mode: r[f"{mode}_randomisation"] for mode in self.modes}
        model_randomisation = {}
        for model, spec in self.randomised.items():
            convs = next(iter(by_mode.values()))[model]["by_convention"]
            model_randomisation[model] = {
                "order": list(spec.order), "methods": list(spec.methods),
                "agreement": {mode: res[model]["agreement"] for mode, res in by_mode.items()},
                "by_convention": {conv: {mode: res[model]["by_convention"][conv] for mode, res in by_mode.items()}
                                  for conv in convs}}
        data = {}
        for name, d in r["data_randomisation"].items():
            t = self.training_metrics[name]
            data[name] = {**d, "training": {k: {kk: vv for kk, vv in v.items() if kk not in ("training_wall_s", "training_cpu_s")}
                                            for k, v in t.items() if isinstance(v, dict)},
                          "chance": t["chance"]}
        return {
            "claim_measure": CLAIM_MEASURE,
            "claim_convention": CLAIM_CONVENTION,
            "change_threshold": self.change_threshold,
            "methods": list(self.methods),
            "modes": list(self.modes),
            "blackbox_key": self.blackbox_key,
            "model_randomisation": model_randomisation,
            "similarity_to_edge_detector": r["similarity_to_edge_detector"],
            "data_randomisation": data,
            "timings_s": dict(r.get("timings_s", self.timings)),
        }

    def report_config(self) -> dict:
        """The settings the report states (plain values): the report is a function of (results, this, examples)."""
        dm = self.trainer.datamodule if self.trainer is not None else None
        return plain({
            "methods": self.methods, "explainer_kwargs": self.explainer_kwargs, "modes": self.modes,
            "randomisation": asdict(self.randomisation), "blackbox_key": self.blackbox_key,
            "blackbox_model": self.blackbox_model, "embedded_v2": self.embedded_v2,
            "blackbox_profile": self.blackbox_profile, "blackbox_info": self.blackbox_info,
            "digits_info": self.digits_info, "blackbox_data": getattr(dm, "blackbox_data", None),
            "scenes_profile": getattr(dm, "scenes_profile", None),
            "data_randomisation": {name: {"dataset": t.dataset, "model_name": t.model_name, "methods": t.methods,
                                          "kinds": list(t.kinds), "pairs": list(t.pairs),
                                          "true_is_blackbox": t.true is None, "random_subset": t.random.subset}
                                   for name, t in self.data_tests.items()},
            "model_randomisation": self.model_randomisation, "change_threshold": self.change_threshold,
            "training_threads": self.training_threads, "trained_models": self.trained_models,
        })

