"""Adebayo et al. 2018, "Sanity Checks for Saliency Maps": model and data randomisation tests.

- Model randomisation (Sec. 3): cascading (logits down, cumulative) and independent (one layer at a time)
  re-initialisation of (a) the black box (the cached synthetic-scenes CNN; Inception v3 in the paper profile) and
  (b) the digit CNN trained here on true labels (the paper's MNIST notebooks); every method's map at every stage
  compared with the original map (Spearman rank correlation of absolute and of signed maps, SSIM, HOG
  similarity), mean and spread over images.
- Data randomisation (Sec. 4): per experiment (a dataset and an architecture), the model trained on the true
  labels and the same architecture trained on a fixed permutation of them (memorised on a fixed subset, see
  ``TrainingConfig.subset``); both models' train/test accuracy, and every method's map similarity between the
  two models. On the synthetic scenes the true-label model can be the cached black box itself
  (``true_labels: blackbox``), so the scenes architecture is not trained twice on the same labels.

Learning (the data randomisation models) happens in ``training_step``; ``validation_step`` runs the black box
and the data randomisation architectures on the evaluation images (accuracies; what ``validate`` checks); the
explanation passes in ``test_step``; the report in ``build_report``. The machinery is
``lightning_modules.tasks.randomization`` and ``lightning_modules.tasks.data_randomization``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from lightning_modules.reporting import Claim as _Claim, Relation
from lightning_modules.tasks.data_randomization import (
    TrainingConfig, accuracy, train_classifier, train_random_label_model,
)
from lightning_modules.tasks.randomization import MODES, ModelRandomizationTest, resolve_order
from lightning_modules.utils import torch_threads
from replications.cli import ReplicationModule
from replications.adebayo2018 import paper as P

#: The paper's methods (official notebook) plus the edge detector it compares with (Fig. 1).
DEFAULT_METHODS = [
    "gradient", "input_x_gradient", "smoothgrad", "vargrad", "integrated_gradients",
    "guided_backprop", "guided_gradcam", "gradcam", "sobel",
]
LABELS = {
    "gradient": "Gradient", "input_x_gradient": "Gradient⊙Input", "smoothgrad": "SmoothGrad",
    "vargrad": "VarGrad", "integrated_gradients": "Integrated Gradients", "guided_backprop": "Guided BackProp",
    "guided_gradcam": "Guided Grad-CAM", "gradcam": "Grad-CAM", "sobel": "Sobel edge detector",
}
DATA_LABELS = {"mnist": "real MNIST", "fashion_mnist": "Fashion-MNIST", "digits": "scikit-learn digits",
               "scenes": "synthetic scenes", "imagenet": "ImageNet val"}
ARCH_LABELS = {
    "mnist_cnn": "CNN (conv5x5-32, pool, conv5x5-64, pool, fc1024, fc10)",
    "mnist_mlp": "MLP (784-2500-1500-500-10)",
    "scenes_cnn": "scenes CNN (the black box's architecture)",
}
#: Similarity measure that the claims read (the paper's main curves: Spearman rank correlation of |maps|).
CLAIM_MEASURE = "spearman_abs"
#: the value of ``true_labels`` that makes the cached black box the true-label model (scenes only)
BLACKBOX = "blackbox"
#: the default data randomisation test: the paper's CNN on real MNIST (random labels memorised on a subset)
DEFAULT_DATA_RANDOMISATION = {
    "mnist": {"dataset": "mnist", "true_labels": {},
              "random_labels": {"max_epochs": 25, "lr": 3e-4, "batch_size": 32, "subset": 1000, "scheduler": "none"}},
}

#: Why a claim can fail in our setting (shown only when it fails; the measured numbers are filled in). Written
#: from the mechanism of each method in the small networks used here, not tuned to a run. Looked up by the end
#: of the claim id, most specific first.
DEVIATION_REASONS = {
    "guided_gradcam_more_invariant_than_gradcam": (
        "Guided Grad-CAM is Guided BackProp times the Grad-CAM map; in our small networks the coarse Grad-CAM factor "
        "(last conv block: 7x7 on MNIST, 16x16 on the scenes) decorrelates under randomisation and drags the product's "
        "ranks with it (measured {measured}); the paper shows this for Inception v3, whose Grad-CAM layer sits 16 blocks "
        "above the input"),
    "random_label_model_memorises": (
        "the random-label model did not memorise its permuted labels within the CPU budget ({measured}); the paper "
        "trains 100 epochs"),
    "data_gradient_gradcam_change": (
        "Grad-CAM of these CNNs is a coarse map of the last conv block (7x7 on MNIST, 16x16 on the scenes), upsampled: "
        "for both models it covers the object's strokes or edges (the ReLU features respond to contrast), so the rank "
        "correlation of the two maps stays high although the class evidence differs ({measured}); the gradient alone "
        "is the paper's clean pass here"),
    "gradient_gradcam_change": (
        "a map of the fully re-initialised network still correlates with the original above our threshold ({measured})"),
    "data_gbp_more_invariant_than_gradient": (
        "Guided BackProp stays similar across models where its map is dominated by the input's edges, which need "
        "neither model nor data; the true-label model's Guided BackProp map here is barely edge-like (`*_vs_edge`: "
        "Spearman(|map|) with the Sobel map), so it changes with the labels about as much as the gradient ({measured})"),
    "gbp_more_invariant_than_gradient": (
        "Guided BackProp decorrelated as fast as the gradient in this small network ({measured})"),
    "gbp_resembles_edge_detector": (
        "in this small network the gradient map is itself concentrated on the object's contours, so it correlates "
        "with the Sobel map as much as Guided BackProp's does ({measured})"),
}


def deviation_for(claim_id: str, measured: dict) -> str | None:
    for key, reason in DEVIATION_REASONS.items():
        if claim_id.endswith(key):
            return reason.format(measured=", ".join(f"{k}={v:.3f}" for k, v in measured.items()))
    return None


@dataclass
class DataRandomisationExperiment:
    """One data randomisation test (Sec. 4): ``dataset`` (a digits source or ``scenes``), the true-label model's
    training (``true``; None = the cached black box, scenes only) and the random-label model's (``random``)."""

    name: str
    dataset: str
    true: TrainingConfig | None
    random: TrainingConfig
    #: the methods compared (None = all of the replication's; e.g. no Grad-CAM for an MLP, which has no conv layer)
    methods: list[str] | None = None

    @property
    def model_name(self) -> str:
        return self.random.model_name

    @classmethod
    def parse(cls, name: str, spec: dict) -> "DataRandomisationExperiment":
        unknown = set(spec) - {"dataset", "true_labels", "random_labels", "methods"}
        if unknown or "dataset" not in spec:
            raise ValueError(f"data_randomisation.{name}: give dataset, true_labels and random_labels (and optionally "
                             f"methods); got {sorted(spec)}")
        true = spec.get("true_labels", {})
        if true == BLACKBOX:
            if spec["dataset"] != "scenes":
                raise ValueError(f"data_randomisation.{name}: true_labels: {BLACKBOX} reuses the scenes black box; "
                                 f"it needs dataset: scenes, not {spec['dataset']!r}")
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
        return cls(name, spec["dataset"], true_cfg, random_cfg, methods)


def _similarity():
    from lightning_modules.metrics.similarity import MapSimilarity

    return MapSimilarity()


def summarize_similarity(value) -> dict[str, dict[str, float]]:
    """MapSimilarity ``per_sample()`` values (or ``compute()`` means) -> measure -> {"mean", "std", "n",
    "undefined"}. A similarity is undefined (NaN) when a map is constant, e.g. a Grad-CAM map that the ReLU
    zeroes everywhere after randomisation: such a map keeps no rank information of the original, so it counts
    as similarity 0 (no agreement); ``undefined`` says how many samples that was."""
    out = {}
    for measure, v in dict(value).items():
        if measure == "ids":
            continue
        t = torch.as_tensor(v, dtype=torch.float64).flatten().cpu()
        undefined = int((~torch.isfinite(t)).sum())
        t = torch.where(torch.isfinite(t), t, torch.zeros_like(t))
        if t.numel() == 0:
            out[measure] = {"mean": float("nan"), "std": float("nan"), "n": 0, "undefined": 0}
            continue
        out[measure] = {
            "mean": float(t.mean()),
            "std": float(t.std(unbiased=False)) if t.numel() > 1 else 0.0,
            "n": int(t.numel()),
            "undefined": undefined,
        }
    return out


def Claim(id, experiment, text, relation, measured, paper=None, known_deviation=None):  # noqa: N802
    """A reporting Claim with this paper's written deviation reason attached (used only if it fails)."""
    return _Claim(id, experiment, text, relation, measured, paper or {},
                  known_deviation=known_deviation or deviation_for(id, measured))


def _get_acc(info: dict) -> str:
    for key in ("test_accuracy", "test_acc", "val_accuracy"):
        if key in info:
            return f"{float(info[key]):.3f}"
    return "n/a"


def _fmt(v: dict) -> str:
    text = f"{v['mean']:.3f} ± {v['std']:.3f}"
    return text + (f" ({v['undefined']} constant maps, counted as 0)" if v.get("undefined") else "")


class AdebayoReplication(ReplicationModule):
    """Sanity checks for saliency maps (see the module docstring). Constructor arguments = the config.

    ``data_randomisation``: experiment name -> ``{dataset, true_labels, random_labels}`` (TrainingConfig
    arguments; ``true_labels: blackbox`` on the scenes). ``model_randomisation``: the experiments whose true-label
    model also gets the model randomisation test, next to the black box (the paper's MNIST CNN notebooks).
    ``training_threads``: CPU threads of the nested trainings (pinned: the weights depend on it)."""

    paper = "adebayo2018"
    title = "Sanity Checks for Saliency Maps"
    citation = "J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim. Sanity Checks for Saliency Maps. NeurIPS 2018."

    def __init__(
        self,
        methods: list[str] | None = None,
        explainer_kwargs: dict[str, dict] | None = None,
        blackbox_profile: str = "default",
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
        change_threshold: float = 0.5,
    ):
        super().__init__()
        self.methods = list(methods or DEFAULT_METHODS)
        unknown_kw = set(explainer_kwargs or {}) - set(self.methods)
        if unknown_kw:
            raise ValueError(f"explainer_kwargs for methods not in methods: {sorted(unknown_kw)}")
        self.explainer_kwargs = dict(explainer_kwargs or {})
        self.blackbox_profile = blackbox_profile
        # The paper's setting: a pretrained model (e.g. inception_v3 from a local weight file) and its block order.
        self.blackbox_model = blackbox_model
        self.blackbox_order = list(blackbox_order) if blackbox_order else None
        self.modes = list(modes or MODES)
        for m in self.modes:
            if m not in MODES:
                raise ValueError(f"unknown mode {m!r}; use {list(MODES)}")
        self.init = init
        self.randomization_seed = randomization_seed
        self.keep_examples = keep_examples
        spec = DEFAULT_DATA_RANDOMISATION if data_randomisation is None else data_randomisation
        if not spec:
            raise ValueError("data_randomisation is empty; give at least one experiment (see configs/adebayo2018/default.yaml)")
        self.experiments = {name: DataRandomisationExperiment.parse(name, dict(s)) for name, s in spec.items()}
        for name, exp in self.experiments.items():
            if exp.methods is None:
                exp.methods = list(self.methods)
            elif not exp.methods or set(exp.methods) - set(self.methods):
                raise ValueError(f"data_randomisation.{name}.methods must be a non-empty subset of methods {self.methods}, "
                                 f"got {exp.methods}")
        if any(e.true is None for e in self.experiments.values()) and blackbox_model is not None:
            raise ValueError("true_labels: blackbox reuses the cached scenes black box, but blackbox_model="
                             f"{blackbox_model!r} replaces it; train the true-label model instead")
        if model_randomisation is None:
            model_randomisation = [n for n, e in self.experiments.items() if e.dataset != "scenes"][:1]
        bad = [n for n in model_randomisation if n not in self.experiments or self.experiments[n].true is None]
        if bad:
            raise ValueError(f"model_randomisation names {bad}: give data_randomisation experiments that train their "
                             f"true-label model ({[n for n, e in self.experiments.items() if e.true is not None]})")
        if {"scenes", "imagenet"} & set(model_randomisation):
            raise ValueError("the black box's model randomisation is always run under the key 'scenes' / 'imagenet'; "
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
        self.runners = nn.ModuleDict()
        self.data_similarity = nn.ModuleDict()
        self.edge_similarity = nn.ModuleDict()
        self.data_examples: dict[str, dict] = {}
        self.blackbox: nn.Module | None = None
        self.blackbox_info: dict = {}
        self.blackbox_key = "scenes"
        self.timings: dict[str, float] = {}
        self.validation_info: dict = {}

    # ------------------------------------------------------------------ models
    def _load_blackbox(self) -> nn.Module:
        """The black box: the cached scenes CNN, or a pretrained model from a local weight file (paper)."""
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
        else:
            from lightning_modules.blackbox import blackbox_info, load_blackbox

            if self.blackbox_key != "scenes":
                raise ValueError("the cached scenes black box explains the scenes; data.imagenet needs "
                                 "model.blackbox_model (e.g. inception_v3)")
            if getattr(dm, "scenes_profile", self.blackbox_profile) != self.blackbox_profile:
                raise ValueError(
                    f"model.blackbox_profile={self.blackbox_profile!r} but data.scenes_profile={dm.scenes_profile!r}: "
                    "the black box must be explained on the scenes it was trained on; set both to the same profile"
                )
            self.blackbox, _ = load_blackbox(self.blackbox_profile)
            self.blackbox_info = blackbox_info(self.blackbox_profile)
        self.blackbox = self.blackbox.to(self.device)
        return self.blackbox

    def _check_blackbox_architecture(self, exp: DataRandomisationExperiment) -> None:
        """``true_labels: blackbox``: the random-label model must be the black box's architecture."""
        from lightning_modules.blackbox import _config

        cfg = _config(self.blackbox_profile)
        if (exp.random.model_name, dict(exp.random.model_kwargs)) != (cfg.model_name, dict(cfg.model_kwargs)):
            raise ValueError(
                f"data_randomisation.{exp.name}: the true-label model is the black box ({cfg.model_name} "
                f"{dict(cfg.model_kwargs)}), so random_labels must train the same architecture; got "
                f"{exp.random.model_name} {dict(exp.random.model_kwargs)}")

    def _datasets_present(self, dm) -> None:
        names = set(dm.loader_names)
        missing = {n: e.dataset for n, e in self.experiments.items() if e.dataset not in names}
        if missing:
            raise ValueError(f"data_randomisation experiments {missing} need datasets that the data module does not "
                             f"load (it serves {sorted(names)}); add them to data.digits")

    # ------------------------------------------------------------------ learning
    def configure_optimizers(self):
        return None  # the data randomisation models are trained by their own ClassifierTasks (see training_step)

    def training_step(self, batch, batch_idx):
        dm = self.trainer.datamodule
        self._datasets_present(dm)
        kw = dict(seed=self.training_seed, accelerator="cpu" if self.device.type == "cpu" else "auto", devices=1)
        for name, exp in self.experiments.items():
            started = time.time()
            train, test = dm.train_tensors(exp.dataset), dm.test_tensors(exp.dataset)
            n_classes = dm.num_classes_of[exp.dataset]
            with torch_threads(self.training_threads if self.device.type == "cpu" else None):
                if exp.true is None:
                    self._check_blackbox_architecture(exp)
                    true_model = self._load_blackbox()
                    cfg = self.blackbox_info.get("config", {})
                    true_metrics = {
                        "train_accuracy": accuracy(true_model, *train), "test_accuracy": accuracy(true_model, *test),
                        "train_images": int(train[1].numel()), "epochs": cfg.get("max_epochs"),
                        "wall_s": self.blackbox_info.get("training_s"), "model": "cached black box",
                        "schedule": f"{cfg.get('optimizer')} lr {cfg.get('lr')}, cosine schedule with warm-up, batch "
                                    f"{cfg.get('batch_size')}, {cfg.get('max_epochs')} epochs, weight decay "
                                    f"{cfg.get('weight_decay')}, horizontal flips",
                    }
                else:
                    true_model, true_metrics = train_classifier(train, test, exp.true, n_classes, **kw)
                    true_metrics["schedule"] = self._cfg_text(exp.true)
                random_model, random_metrics = train_random_label_model(train, test, exp.random, n_classes, **kw)
                random_metrics["schedule"] = self._cfg_text(exp.random)
            for m in (true_model, random_model):
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
            self.trained[name] = {"true": true_model.to(self.device), "random": random_model.to(self.device)}
            self.training_metrics[name] = {"true": true_metrics, "random": random_metrics,
                                           "chance": 1.0 / n_classes, "dataset": exp.dataset, "model": exp.model_name}
            self.timings[f"{name}_training_s"] = round(time.time() - started, 1)
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

        for name, exp in self.experiments.items():
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
        for name, exp in self.experiments.items():
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
        missing = [n for n in self.experiments if n not in self.trained]
        if missing:
            raise RuntimeError(f"the data randomisation models {missing} are trained by `fit`; "
                               "run `python -m replications.adebayo2018 fit`")
        dm = self.trainer.datamodule
        self._datasets_present(dm)
        blackbox = self._load_blackbox()
        common = dict(modes=self.modes, init=self.init, seed=self.randomization_seed, similarity=_similarity,
                      keep_examples=self.keep_examples)
        runners = {self.blackbox_key: ModelRandomizationTest(self.explainers, resolve_order(blackbox, self.blackbox_order), **common)}
        for name in self.model_randomisation:
            explainers = {m: self.explainers[m] for m in self.experiments[name].methods}
            runners[name] = ModelRandomizationTest(explainers, resolve_order(self.trained[name]["true"]), **common)
        self.runners = nn.ModuleDict(runners).to(self.device)
        self.data_similarity = nn.ModuleDict({
            name: nn.ModuleDict({m: _similarity() for m in exp.methods}) for name, exp in self.experiments.items()
        }).to(self.device)
        # Fig. 1: how much each method's map of the trained model resembles the edge detector's map
        self.edge_similarity = nn.ModuleDict({
            key: nn.ModuleDict({m: _similarity() for m in runner.explainers if m != "sobel"})
            for key, runner in self.runners.items() if "sobel" in runner.explainers
        }).to(self.device)
        self.data_examples = {}

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        started = time.time()
        source = self.trainer.datamodule.loader_names[dataloader_idx]
        self._test_step(batch, dataloader_idx, source)
        key = f"{source}_explanations_s"
        self.timings[key] = round(self.timings.get(key, 0.0) + time.time() - started, 1)

    def _test_step(self, batch, dataloader_idx, source):
        images = batch["image"].to(self.device)
        ids = batch.get("id")
        originals: dict[int, tuple[torch.Tensor, dict]] = {}  # id(model) -> (targets, original maps)
        if dataloader_idx == 0:
            with torch.no_grad():
                targets = self.blackbox(images).argmax(1)  # the paper explains the original model's predicted class
            maps = self.runners[self.blackbox_key].update(self.blackbox, images, targets, ids)
            self._update_edge_similarity(self.blackbox_key, maps, ids)
            originals[id(self.blackbox)] = (targets, maps)
        for name, exp in self.experiments.items():
            if exp.dataset != source:
                continue
            true_model, random_model = self.trained[name]["true"], self.trained[name]["random"]
            if id(true_model) not in originals:
                with torch.no_grad():
                    targets = true_model(images).argmax(1)
                if name in self.runners:
                    maps = self.runners[name].update(true_model, images, targets, ids)
                    self._update_edge_similarity(name, maps, ids)
                else:
                    maps = {m: self.explainers[m](true_model, images, targets) for m in exp.methods}
                originals[id(true_model)] = (targets, maps)
            targets, original = originals[id(true_model)]
            # Data randomisation: the same logit (the true-label model's predicted class) of the random-label model.
            randomised = {m: self.explainers[m](random_model, images, targets) for m in exp.methods}
            for m in exp.methods:
                self.data_similarity[name][m].update(randomised[m], original[m], ids)
            if name not in self.data_examples:
                n = min(3, images.shape[0])
                self.data_examples[name] = {
                    "images": images[:n].cpu(), "labels": batch["label"][:n].cpu(), "targets": targets[:n].cpu(),
                    "methods": list(exp.methods),
                    "true": {m: original[m][:n].cpu() for m in exp.methods},
                    "random": {m: randomised[m][:n].cpu() for m in exp.methods},
                }

    def _update_edge_similarity(self, key: str, maps: dict[str, torch.Tensor], ids) -> None:
        if key in self.edge_similarity:
            for m, metric in self.edge_similarity[key].items():
                metric.update(maps[m], maps["sobel"], ids)

    def on_test_epoch_end(self) -> None:
        raw = {k: r.compute(per_sample=True) for k, r in self.runners.items()}
        self.results_model = {
            model: {mode: {stage: {m: summarize_similarity(v) for m, v in by_m.items()} for stage, by_m in by_stage.items()}
                    for mode, by_stage in res.items()}
            for model, res in raw.items()
        }
        self.results_data = {name: {m: summarize_similarity(sims[m].per_sample()) for m in self.experiments[name].methods}
                             for name, sims in self.data_similarity.items()}
        self.results_edge = {key: {m: summarize_similarity(metric.per_sample()) for m, metric in sims.items()}
                             for key, sims in self.edge_similarity.items()}

    # ------------------------------------------------------------------ report
    def model_label(self, key: str) -> str:
        if key == self.blackbox_key:
            return (f"{self.blackbox_model} black box ({DATA_LABELS.get(key, key)})" if self.blackbox_model
                    else "synthetic-scenes black box")
        exp = self.experiments[key]
        return f"{ARCH_LABELS.get(exp.model_name, exp.model_name)} on {DATA_LABELS.get(exp.dataset, exp.dataset)}"

    def _sim(self, model: str, mode: str, stage: str, method: str, measure: str = CLAIM_MEASURE) -> float:
        return self.results_model[model][mode][stage][method][measure]["mean"]

    def _mean_over_stages(self, model: str, mode: str, method: str, measure: str = CLAIM_MEASURE) -> float:
        stages = self.runners[model].order
        return sum(self._sim(model, mode, s, method, measure) for s in stages) / len(stages)

    def build_report(self, report) -> None:
        from replications.adebayo2018 import figures

        dm = self.trainer.datamodule if self.trainer is not None else None
        report.add_section("Setting", self._setting_text(dm))
        self._add_model_randomisation(report, figures)
        self._add_data_randomisation(report, figures)
        report.add_section("Deviations from the paper", self._deviations_text())
        report.metrics.update({
            "model_randomisation": self.results_model,
            "data_randomisation": self.results_data,
            "similarity_to_edge_detector": self.results_edge,
            "training": self.training_metrics,
            "timings_s": self.timings,
        })

    def _setting_text(self, dm) -> str:
        digits = getattr(dm, "digits_info", {}) if dm is not None else {}
        lines = [
            f"- Methods: {', '.join(LABELS.get(m, m) for m in self.methods)}; settings {self.explainer_kwargs or 'defaults'}. "
            "Each map explains the logit of the original (true-label) model's predicted class, kept fixed across stages "
            "and for the random-label model.",
            f"- Model randomisation ({', '.join(self.modes)}), re-initialisation with each layer's own initialiser "
            f"(`reset_parameters()`, init=`{self.init}`), seed {self.randomization_seed}, layer order from the logits down:",
        ]
        for key, runner in self.runners.items():
            if key == self.blackbox_key:
                src = (f"`load_model('{self.blackbox_model}', pretrained=True)`" if self.blackbox_model
                       else f"`load_blackbox('{self.blackbox_profile}')`, test accuracy {_get_acc(self.blackbox_info)}")
                what = f"test images ({DATA_LABELS.get(key, key)})"
            else:
                src = f"the true-label model of data randomisation experiment `{key}`"
                what = f"test images ({DATA_LABELS.get(self.experiments[key].dataset)})"
            lines.append(f"  - {self.model_label(key)} ({src}): {' → '.join(runner.order)}; {self._n_images(key)} {what};")
        for source, d in digits.items():
            lines.append(f"- {DATA_LABELS.get(source, source)}: {d.get('train_images')} train / {d.get('test_images')} test "
                         f"images; split: {d.get('split')}.")
        if dm is not None and getattr(dm, "blackbox_data", None) == "scenes":
            lines.append(f"- Synthetic scenes: profile `{dm.scenes_profile}` (the black box's training data: "
                         f"{self.training_metrics.get(self._scenes_experiment(), {}).get('true', {}).get('train_images', 'see black box')} "
                         f"training scenes), the first {self._n_images(self.blackbox_key)} test scenes explained.")
        lines.append("- Data randomisation (true labels vs a fixed permutation of the training labels, the same architecture; "
                     "test accuracy against the true test labels):")
        for name, exp in self.experiments.items():
            t, r = self.training_metrics[name]["true"], self.training_metrics[name]["random"]
            true_text = "the cached black box" if exp.true is None else "trained here"
            lines.append(
                f"  - `{name}`: {ARCH_LABELS.get(exp.model_name, exp.model_name)} on {DATA_LABELS.get(exp.dataset, exp.dataset)}. "
                f"True-label model: {true_text} on {t['train_images']} training images ({t.get('schedule')}) → train accuracy "
                f"{t['train_accuracy']:.3f}, test {t['test_accuracy']:.3f}. Random-label model: memorises a fixed permutation "
                f"of the labels of a fixed class-stratified subset of {r['train_images']} training images ({r.get('schedule')}) "
                f"→ train accuracy {r['train_accuracy']:.3f}, test {r['test_accuracy']:.3f} ({r['wall_s']} s); "
                f"{r['label_agreement']:.3f} of the permuted labels happen to equal the true ones. "
                f"Maps compared on {self._n_data_images(name)} test images.")
        lines += [
            f"- Similarity: Spearman rank correlation of |maps| (`spearman_abs`, the claims' measure) and of signed maps, "
            f"SSIM and HOG similarity (shared `MapSimilarity` metric); mean ± std over images; a constant map (e.g. an all-zero "
            f"Grad-CAM of a randomised network) has no rank information and counts as similarity 0. 'Changes' in a claim means "
            f"mean Spearman(|map|) below {self.change_threshold} (our threshold: the paper reads its curves visually).",
            f"- Nested trainings run at {self.training_threads or 'torch default'} CPU threads (pinned: the weights depend on it). "
            "Phases (wall seconds): " + ", ".join(f"{k} {v:.0f}" for k, v in self.timings.items()) + ".",
        ]
        return "\n".join(lines)

    def _scenes_experiment(self) -> str | None:
        return next((n for n, e in self.experiments.items() if e.dataset == "scenes"), None)

    def _n_images(self, model: str) -> int:
        stage = self.runners[model].order[0]
        first = next(iter(self.runners[model].explainers))
        return int(self.results_model[model][self.modes[0]][stage][first][CLAIM_MEASURE]["n"])

    def _n_data_images(self, name: str) -> int:
        return int(self.results_data[name][self.experiments[name].methods[0]][CLAIM_MEASURE]["n"])

    @staticmethod
    def _cfg_text(c: TrainingConfig) -> str:
        return (f"{c.optimizer} lr {c.lr:g}, {c.scheduler} schedule, batch {c.batch_size}, {c.max_epochs} epochs, "
                f"weight decay {c.weight_decay:g}")

    def _deviations_text(self) -> str:
        lines = []
        if self.blackbox_model is None:
            lines.append("- Inception v3 on ImageNet (200 validation images, 17 blocks) is replaced by the synthetic-scenes "
                         "black box (layer by layer) and by the digit CNN; `configs/adebayo2018/paper.yaml` holds the "
                         "published setting (Inception v3; MNIST and Fashion-MNIST with the CNN and the MLP).")
        for name, exp in self.experiments.items():
            r = self.training_metrics[name]["random"]
            subset = (f"a fixed subset ({r['train_images']} images)" if exp.random.subset is not None
                      else f"its whole training split ({r['train_images']} images)")
            lines.append(f"- `{name}`: the random-label model memorises {subset} with our schedule ({r.get('schedule')}; "
                         "PyTorch's default init, no L2 term); the paper: the whole training set, Adam 1e-4, batch 50, "
                         "100 epochs, L2 0.001, truncated-normal init.")
            if exp.true is None:
                lines.append(f"- `{name}`: the true-label model is the cached black box (trained once on the scenes' whole "
                             "training split, shared by every paper) rather than a second training of the same architecture.")
        if any(e.random.subset is not None for e in self.experiments.values()):
            lines.append("- Memorising random labels of a whole training set does not fit the CPU budget (measured on real "
                         "MNIST: 77% train accuracy after 40 epochs over 8,000 images, 9.5 min), hence the fixed subsets.")
        lines += [
            "- SmoothGrad / VarGrad / Integrated Gradients use fewer samples/steps than the PAIR defaults, to fit the CPU budget.",
        ]
        return "\n".join(lines)

    def _add_model_randomisation(self, report, figures) -> None:
        for model in self.runners:
            for mode in self.modes:
                rows = []
                for stage in self.runners[model].order:
                    for m in self.runners[model].explainers:
                        res = self.results_model[model][mode][stage][m]
                        row = {"stage (randomised)": stage, "method": LABELS.get(m, m)}
                        for meas in res:
                            row[meas] = _fmt(res[meas])
                        rows.append(row)
                report.add_table(
                    f"{model}_{mode}", rows,
                    caption=f"{mode.capitalize()} randomisation of the {self.model_label(model)}: similarity of each method's "
                    "map to the original map (mean ± std over images). Paper: curves in Fig. 4 (Inception v3).",
                )
                report.add_figure(f"{model}_{mode}_curves", figures.similarity_curves(self, model, mode),
                                  caption=f"{mode.capitalize()} randomisation, {self.model_label(model)}: similarity vs. "
                                          "randomised layer (mean ± std over images), as in the paper's Fig. 4.")
                if mode == "cascading" or model != self.blackbox_key:
                    report.add_figure(f"{model}_{mode}_grid", figures.stage_grid(self, model, mode),
                                      caption=f"{mode.capitalize()} randomisation, {self.model_label(model)}: rows methods; "
                                              "columns the input, the original map, then each stage (as in the paper's "
                                              "Fig. 2). |map|, normalised per map.")
        for model in self.runners:
            self._add_model_claims(report, model)
        self._add_edge_detector_comparison(report)

    def _add_edge_detector_comparison(self, report) -> None:
        """Paper Fig. 1 / Sec. 5: the maps of the failing methods resemble an edge detector's output."""
        for model, by_method in self.results_edge.items():
            rows = [{"method": LABELS.get(m, m), **{meas: _fmt(v) for meas, v in res.items()}} for m, res in by_method.items()]
            report.add_table(f"{model}_similarity_to_edge_detector", rows,
                             caption=f"{self.model_label(model)}: similarity of each method's map (original, trained model) "
                                     "to the Sobel edge detector's map of the same image (mean ± std over images). "
                                     "Paper: Fig. 1 (Inception v3), compared visually.")
            if {"guided_backprop", "gradient"} <= set(by_method):
                measured = {m: by_method[m][CLAIM_MEASURE]["mean"] for m in ("guided_backprop", "gradient")}
                report.add_claim(Claim(
                    f"{model}_gbp_resembles_edge_detector", f"edge detector comparison ({model})",
                    "Guided BackProp's map of the trained model resembles the edge detector's map more than the "
                    "gradient's does (Spearman(|map|) with the Sobel map)",
                    Relation.gt("guided_backprop", "gradient"), measured, paper={"sobel": P.EDGE_DETECTOR},
                ))

    def _add_model_claims(self, report, model: str) -> None:
        order = self.runners[model].order
        last = order[-1]
        exp = f"cascading model randomisation ({model})"
        have = set(self.runners[model].explainers)
        if "cascading" in self.modes and {"guided_backprop", "gradient"} <= have:
            measured = {
                "guided_backprop": self._mean_over_stages(model, "cascading", "guided_backprop"),
                "gradient": self._mean_over_stages(model, "cascading", "gradient"),
            }
            report.add_claim(Claim(
                f"{model}_gbp_more_invariant_than_gradient", exp,
                "Guided BackProp stays more similar to its original map than the gradient does under cascading "
                "randomisation (mean Spearman(|map|) over all stages)",
                Relation.gt("guided_backprop", "gradient"), measured,
                paper={"guided_backprop": P.GBP_INVARIANT, "gradient": P.GRADIENT_SENSITIVE},
            ))
        if "cascading" in self.modes and {"guided_gradcam", "gradcam"} <= have:
            measured = {
                "guided_gradcam": self._mean_over_stages(model, "cascading", "guided_gradcam"),
                "gradcam": self._mean_over_stages(model, "cascading", "gradcam"),
            }
            report.add_claim(Claim(
                f"{model}_guided_gradcam_more_invariant_than_gradcam", exp,
                "Guided Grad-CAM stays more similar to its original map than Grad-CAM does under cascading "
                "randomisation (mean Spearman(|map|) over all stages)",
                Relation.gt("guided_gradcam", "gradcam"), measured,
                paper={"guided_gradcam": P.GUIDED_GRADCAM_INVARIANT, "gradcam": P.GRADCAM_SENSITIVE},
            ))
        changing = [m for m in ("gradient", "gradcam") if m in have]
        if "cascading" in self.modes and changing:
            measured = {f"{m}_fully_randomised": self._sim(model, "cascading", last, m) for m in changing}
            report.add_claim(Claim(
                f"{model}_gradient_gradcam_change", exp,
                f"Gradient and Grad-CAM maps of the fully re-initialised network differ from the original maps "
                f"(Spearman(|map|) < {self.change_threshold}): they pass the check",
                Relation.all_of(*(Relation.lt(k, self.change_threshold) for k in measured)), measured,
                paper={"gradient": P.GRADIENT_SENSITIVE, "gradcam": P.GRADCAM_SENSITIVE},
            ))
        if "sobel" in have:
            sims = [self.results_model[model][mode][s]["sobel"][meas]["mean"]
                    for mode in self.modes for s in order for meas in self.results_model[model][mode][s]["sobel"]]
            report.add_claim(Claim(
                f"{model}_edge_detector_model_independent", f"model randomisation ({model})",
                "The Sobel edge detector's map is the same at every stage (similarity 1 on every measure): "
                "it is model-independent by construction",
                Relation.close("sobel_min_similarity", 1.0, atol=1e-6), {"sobel_min_similarity": min(sims)},
                paper={"sobel": P.EDGE_DETECTOR},
            ))

    def _add_data_randomisation(self, report, figures) -> None:
        rows = []
        for name, exp in self.experiments.items():
            for kind, label in (("true", "true labels"), ("random", "permuted labels")):
                t = self.training_metrics[name][kind]
                rows.append({"experiment": name, "model": f"{exp.model_name}, {label}",
                             "data": DATA_LABELS.get(exp.dataset, exp.dataset), "train images": t["train_images"],
                             "epochs": t["epochs"], "train accuracy": t["train_accuracy"],
                             "test accuracy": t["test_accuracy"], "wall (s)": t["wall_s"]})
        report.add_table("data_randomisation_accuracy", rows,
                         caption="Data randomisation: each architecture trained on true and on permuted labels (test "
                                 "accuracy against the true test labels; a cached black box's wall time is its original "
                                 "training's). Paper: random-label model fits its training set, test at chance.")
        for name, exp in self.experiments.items():
            self._add_data_experiment(report, figures, name, exp)

    def _add_data_experiment(self, report, figures, name: str, exp: DataRandomisationExperiment) -> None:
        data = DATA_LABELS.get(exp.dataset, exp.dataset)
        rows = []
        for m in exp.methods:
            row = {"method": LABELS.get(m, m)}
            for meas, v in self.results_data[name][m].items():
                row[meas] = _fmt(v)
            rows.append(row)
        report.add_table(f"{name}_data_randomisation_similarity", rows,
                         caption=f"Data randomisation, {ARCH_LABELS.get(exp.model_name, exp.model_name)} on {data}: "
                                 "similarity between the maps of the true-label and the random-label model (mean ± std "
                                 "over test images). Paper: Fig. 5 (rank correlation, MNIST).")
        report.add_figure(f"{name}_data_randomisation_maps", figures.data_randomisation_grid(self, name),
                          caption=f"Data randomisation ({data}): maps of the true-label model and of the random-label model "
                                  "for the same images and the same explained logit. |map|, normalised per map.")
        t, r = self.training_metrics[name]["true"], self.training_metrics[name]["random"]
        chance = self.training_metrics[name]["chance"]
        experiment = f"data randomisation ({name})"
        report.add_claim(Claim(
            f"{name}_random_label_model_memorises", experiment,
            f"The random-label model fits its (permuted) training labels (train accuracy >= 0.95) while its test "
            f"accuracy stays near chance (<= {2 * chance:g}, twice chance); the true-label model generalises (test >= 0.9)",
            Relation.all_of(Relation.at_least("random_train_accuracy", 0.95),
                            Relation.at_most("random_test_accuracy", 2 * chance),
                            Relation.at_least("true_test_accuracy", 0.9)),
            {"random_train_accuracy": r["train_accuracy"], "random_test_accuracy": r["test_accuracy"],
             "true_test_accuracy": t["test_accuracy"], "true_train_accuracy": t["train_accuracy"], "chance": chance},
            paper={"random_label_model": P.RANDOM_LABEL_FIT},
        ))
        sim = {m: self.results_data[name][m][CLAIM_MEASURE]["mean"] for m in exp.methods}
        if {"guided_backprop", "gradient"} <= set(sim):
            measured = {k: sim[k] for k in ("guided_backprop", "gradient")}
            # context (not in the relation): how edge-like the true-label model's maps are (Fig. 1 comparison)
            edge = self.results_edge.get(self.blackbox_key if exp.true is None else name, {})
            measured.update({f"{k}_vs_edge": edge[k][CLAIM_MEASURE]["mean"] for k in ("guided_backprop", "gradient") if k in edge})
            report.add_claim(Claim(
                f"{name}_data_gbp_more_invariant_than_gradient", experiment,
                "Guided BackProp maps of the two models are more similar than their gradient maps (Spearman(|map|))",
                Relation.gt("guided_backprop", "gradient"), measured,
                paper={"maps": P.DATA_RANDOMISATION},
            ))
        changing = [m for m in ("gradient", "gradcam") if m in sim]
        if changing:
            report.add_claim(Claim(
                f"{name}_data_gradient_gradcam_change", experiment,
                f"Gradient and Grad-CAM maps of the random-label model differ from the true-label model's "
                f"(Spearman(|map|) < {self.change_threshold}): they pass the data randomisation test",
                Relation.all_of(*(Relation.lt(m, self.change_threshold) for m in changing)), {m: sim[m] for m in changing},
                paper={"maps": P.DATA_RANDOMISATION},
            ))
        if "sobel" in sim:
            report.add_claim(Claim(
                f"{name}_data_edge_detector_model_independent", experiment,
                "The Sobel edge detector gives identical maps for both models (similarity 1)",
                Relation.close("sobel", 1.0, atol=1e-6), {"sobel": sim["sobel"]}, paper={"sobel": P.EDGE_DETECTOR},
            ))
