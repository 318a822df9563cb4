"""Adebayo et al. 2018, "Sanity Checks for Saliency Maps": model and data randomisation tests.

- Model randomisation (Sec. 3): cascading (logits down, cumulative) and independent (one layer at a time)
  re-initialisation of (a) the black box (benchmark v2's shipped VGG, 8 ReLU conv layers; Inception v3 in the paper
  profile; the v1 scenes CNN on request) and
  (b) the digit CNN trained on true labels (the paper's MNIST notebooks); every method's map at every stage
  compared with the original map (Spearman rank correlation of absolute and of signed maps, SSIM with Gaussian
  weights and the rank correlation of HOG features, as the official code), per image. Each randomised model's map
  explains its own predicted class, re-taken at every stage as the official notebooks do
  (``prediction_class = imglogits.argmax()`` inside the randomisation loop); the original model's class, kept
  fixed, is reported beside it.
- Data randomisation (Sec. 4): per experiment (a dataset and an architecture), the model trained on the true
  labels and the same architecture trained on a fixed permutation of them (memorised on a fixed subset, see
  ``TrainingConfig.subset``); both models' train/test accuracy, and every method's map similarity between the
  two models. Two controls sit beside it as rows of the same table: the *control* model (true labels, the random-label
  model's subset and schedule), which separates the effect of the labels from that of the subset and schedule, and
  a second control trained with another seed (the seed noise floor of the similarity).

The trained models that the report explains are shipped (``weights/adebayo2018_<profile>_<experiment>_<kind>``,
hash-checked, ``lightning_modules.shipped``; half precision, which halves the files): every machine explains the
same weights; ``trained_models: retrain`` trains and ships them again (``ship_missing``: only those not shipped),
``train`` trains per run without shipping (smoke and paper profiles).

Learning (loading or training the data randomisation models) happens in ``training_step``; ``validation_step``
runs the black box and the data randomisation architectures on the evaluation images; the explanation passes in
``test_step``; the plain results in ``plain_results`` (claims: ``claims.py``), tables and figures in
``build_report``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn

from lightning_modules.tasks.data_randomization import (
    TrainingConfig, accuracy, permuted_labels, stratified_subset, train_classifier,
)
from lightning_modules.tasks.randomization import MODES, TARGET_CONVENTIONS, ModelRandomizationTest, resolve_order
from lightning_modules.utils import torch_threads
from replications.adebayo2018.data import SCENE_SOURCES  # the data sources served by the black box's scenes
from replications.cli import ReplicationModule

#: The paper's methods (official notebook) plus the edge detector it compares with (Fig. 1).
DEFAULT_METHODS = [
    "gradient", "input_x_gradient", "smoothgrad", "vargrad", "integrated_gradients",
    "guided_backprop", "guided_gradcam", "gradcam", "sobel",
]
#: Methods whose per-channel attributions are summed with their sign (the official code's diverging maps sum the
#: channels, ``VisualizeImageDiverging``), so that Spearman of signed maps ("no abs") is computed on signed maps.
#: Input x gradient and Integrated Gradients sum their channels already; Grad-CAM and Sobel are non-negative.
SIGNED_METHODS = ("gradient", "smoothgrad", "vargrad", "guided_backprop", "guided_gradcam")
LABELS = {
    "gradient": "Gradient", "input_x_gradient": "Gradient⊙Input", "smoothgrad": "SmoothGrad",
    "vargrad": "VarGrad", "integrated_gradients": "Integrated Gradients", "guided_backprop": "Guided BackProp",
    "guided_gradcam": "Guided Grad-CAM", "gradcam": "Grad-CAM", "sobel": "Sobel edge detector",
}
DATA_LABELS = {"mnist": "real MNIST", "fashion_mnist": "Fashion-MNIST", "digits": "scikit-learn digits",
               "scenes": "synthetic scenes (v1)", "scenes_v2": "benchmark v2 scenes", "imagenet": "ImageNet val"}
ARCH_LABELS = {
    "mnist_cnn": "CNN (conv5x5-32, pool, conv5x5-64, pool, fc1024, fc10)",
    "mnist_mlp": "MLP (784-2500-1500-500-10)",
    "scenes_cnn": "scenes CNN (the v1 black box's architecture)",
    "scenes_vgg": "v2 VGG (8 ReLU conv layers; the black box's architecture)",
    "scenes_resnet": "v2 ResNet-18 layout (8 residual blocks; the black box's architecture)",
}
#: Similarity measure that the claims read (the paper's main curves: Spearman rank correlation of |maps|).
CLAIM_MEASURE = "spearman_abs"
#: Measures stored per image in the plain results (what the claims read; the tables give every measure's summary).
PER_IMAGE_MEASURES = ("spearman_abs",)
#: The class convention the claims read: the official notebooks' (each model's own predicted class).
CLAIM_CONVENTION = "retaken"
#: the value of ``true_labels`` that makes the cached black box the true-label model (scenes only)
BLACKBOX = "blackbox"
#: the models of one data randomisation experiment: the paper's pair and the two controls
MODEL_KINDS = ("true", "random", "control", "control_seed")
#: the compared pairs (maps of the first model vs maps of the second): the paper's comparison, then the controls
PAIRS = {
    "random_vs_true": ("random", "true"),
    "control_vs_true": ("control", "true"),
    "random_vs_control": ("random", "control"),
    "control_seed_vs_control": ("control_seed", "control"),
}
PAIR_LABELS = {
    "random_vs_true": "random labels vs true labels (the paper's test)",
    "control_vs_true": "control (true labels, the random-label subset and schedule) vs true labels",
    "random_vs_control": "random labels vs control (same subset and schedule: only the labels differ)",
    "control_seed_vs_control": "control, another training seed vs control (seed noise floor)",
}
#: the seed offset of the noise-floor control (same data and schedule as the control, another init and order)
NOISE_FLOOR_SEED_OFFSET = 1
TRAINED_MODELS = ("shipped", "retrain", "ship_missing", "train")
#: the default data randomisation test: the paper's CNN on real MNIST (random labels memorised on a subset)
DEFAULT_DATA_RANDOMISATION = {
    "mnist": {"dataset": "mnist", "true_labels": {},
              "random_labels": {"max_epochs": 25, "lr": 3e-4, "batch_size": 32, "subset": 1000, "scheduler": "none"}},
}


@dataclass
class DataRandomisationExperiment:
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

    @classmethod
    def parse(cls, name: str, spec: dict) -> "DataRandomisationExperiment":
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


def _similarity():
    """The official code's measures: Spearman (abs / signed), SSIM with Gaussian weights, Spearman of HOG features."""
    from lightning_modules.metrics.similarity import MapSimilarity

    return MapSimilarity(ssim_gaussian=True, ssim_kernel_size=11, hog_correlation="spearman")


def summarize_similarity(value) -> dict[str, dict[str, float]]:
    """MapSimilarity ``per_sample()`` values (or ``compute()`` means) -> measure -> {"mean", "std", "n",
    "undefined"}. A similarity is undefined (NaN) when a map is constant, e.g. a Grad-CAM map that the ReLU
    zeroes everywhere after randomisation: it has no ranks, so it is left out of the mean and counted in
    ``undefined``; ``n`` is the number of defined values (mean and std NaN when there is none)."""
    out = {}
    for measure, v in dict(value).items():
        if measure == "ids":
            continue
        t = torch.as_tensor(v, dtype=torch.float64).flatten().cpu()
        ok = torch.isfinite(t)
        d = t[ok]
        out[measure] = {
            "mean": float(d.mean()) if d.numel() else float("nan"),
            "std": (float(d.std(unbiased=False)) if d.numel() > 1 else 0.0) if d.numel() else float("nan"),
            "n": int(d.numel()),
            "undefined": int((~ok).sum()),
        }
    return out


def per_image(value) -> dict[str, list]:
    """The per-image values of the claims' measures as JSON lists (None where undefined)."""
    out = {}
    for measure in PER_IMAGE_MEASURES:
        t = torch.as_tensor(value[measure], dtype=torch.float64).flatten().cpu().tolist()
        out[measure] = [x if math.isfinite(x) else None for x in t]
    return out


def _entry(value) -> dict:
    return {"summary": summarize_similarity(value), "per_image": per_image(value)}


def _get_acc(info: dict) -> str:
    for key in ("test_accuracy", "test_acc", "val_accuracy"):
        if key in info:
            return f"{float(info[key]):.3f}"
    return "n/a"


def _fmt(v: dict) -> str:
    if not v.get("n"):
        return f"undefined ({v.get('undefined', 0)} constant maps)"
    text = f"{v['mean']:.3f} ± {v['std']:.3f}"
    return text + (f" ({v['undefined']} undefined: constant map)" if v.get("undefined") else "")


def _tensor_digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class AdebayoReplication(ReplicationModule):
    """Sanity checks for saliency maps (see the module docstring). Constructor arguments = the config.

    ``data_randomisation``: experiment name -> ``{dataset, true_labels, random_labels}`` (TrainingConfig
    arguments; ``true_labels: blackbox`` on the scenes). ``model_randomisation``: the experiments whose true-label
    model also gets the model randomisation test, next to the black box (the paper's MNIST CNN notebooks).
    ``trained_models``: ``shipped`` (load the shipped weights, hash-checked), ``retrain`` (train and ship them),
    ``ship_missing`` (load those shipped, train and ship the others),
    ``train`` (train per run, ship nothing). ``training_threads``: CPU threads of the nested trainings (pinned: the
    weights depend on it)."""

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
        # benchmark v2's shipped model (lightning_modules.embedded_v2) as the black box, on the v2 scenes
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
            model_randomisation = [n for n, e in self.experiments.items() if e.dataset not in SCENE_SOURCES][:1]
        bad = [n for n in model_randomisation if n not in self.experiments or self.experiments[n].true is None]
        if bad:
            raise ValueError(f"model_randomisation names {bad}: give data_randomisation experiments that train their "
                             f"true-label model ({[n for n, e in self.experiments.items() if e.true is not None]})")
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
            from lightning_modules.embedded_v2 import load_embedded_v2

            if self.blackbox_key != "scenes_v2":
                raise ValueError(f"model.embedded_v2={self.embedded_v2!r} is explained on the v2 scenes; set "
                                 f"data.scenes_source: scenes_v2 (the data module serves {self.blackbox_key!r})")
            self.blackbox, _ = load_embedded_v2(self.embedded_v2)
            scenes, trained_on = getattr(getattr(dm, "_scenes", None), "config", None), self.blackbox.scenes_config
            sizes = {f"{split}_size": getattr(trained_on, f"{split}_size") for split in ("train", "val", "test", "heldout")}
            if scenes is not None and replace(scenes, **sizes) != trained_on:
                # a profile may have fewer scenes (smoke), but they must be drawn as the ones the model learned
                raise ValueError(f"{self.embedded_v2} was trained on other v2 scenes than data.scenes_profile="
                                 f"{dm.scenes_profile!r} gives; use a profile that differs only in its split sizes")
            self.blackbox_info = {"name": self.embedded_v2, **dict(self.blackbox.embedded_info or {})}
        else:
            from lightning_modules.blackbox import blackbox_info, load_blackbox

            if self.blackbox_key != "scenes":
                raise ValueError(f"the shipped v1 scenes black box explains the v1 scenes (data.scenes_source: scenes); "
                                 f"the data module serves {self.blackbox_key!r}: v2 scenes need model.embedded_v2 "
                                 "(e.g. scenes_v2_vgg), data.imagenet needs model.blackbox_model (e.g. inception_v3)")
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
        """``true_labels: blackbox``: the random-label model must be the black box's architecture, on its data."""
        if exp.dataset != self.blackbox_key:
            raise ValueError(f"data_randomisation.{exp.name}: true_labels: {BLACKBOX} reuses the black box, which is "
                             f"explained on {self.blackbox_key!r}; set its dataset to {self.blackbox_key!r}, not {exp.dataset!r}")
        if self.embedded_v2 is not None:
            from lightning_modules.embedded_v2 import embedded_v2_config

            cfg = embedded_v2_config(self.embedded_v2)
        else:
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

    def _training_data(self, exp: DataRandomisationExperiment, kind: str, train):
        """What model ``kind`` of ``exp`` is trained on: ``(images, training labels, true labels, config without
        subset, training seed)``. The random-label model and both controls see the same fixed subset; the random-label
        model a fixed permutation of its labels; the noise-floor control only another training seed."""
        x, y = train
        cfg = exp.true if kind == "true" else exp.random
        if cfg.subset is not None:
            idx = stratified_subset(y, cfg.subset, self.training_seed)
            x, y = x[idx], y[idx]
        labels = permuted_labels(y, self.training_seed) if kind == "random" else y
        seed = self.training_seed + (NOISE_FLOOR_SEED_OFFSET if kind == "control_seed" else 0)
        return x, labels, y, TrainingConfig(**{**asdict(cfg), "subset": None}), seed

    def _shipped_name(self, exp_name: str, kind: str) -> str:
        return f"adebayo2018_{self.profile}_{exp_name}_{kind}"

    def _model(self, exp: DataRandomisationExperiment, kind: str, train, test, n_classes: int, kw: dict):
        """Model ``kind`` of ``exp`` and its metrics: loaded from the shipped weights, or trained (and shipped)."""
        from lightning_modules.models import load_model, unwrap
        from lightning_modules.shipped import ShippedWeightsError, load_shipped, ship, shipped_entry
        from lightning_modules.utils import data_root, file_lock

        x, labels, y_true, cfg, seed = self._training_data(exp, kind, train)
        config_hash = hashlib.sha256(json.dumps({
            "config": asdict(cfg), "seed": seed, "kind": kind, "dataset": exp.dataset, "classes": n_classes,
            "threads": self.training_threads, "data": _tensor_digest(x, labels)}, sort_keys=True).encode()).hexdigest()[:16]
        name = self._shipped_name(exp.name, kind)
        started, cpu = time.perf_counter(), time.process_time()
        source = "trained in this run"
        if self.trained_models == "shipped" or (self.trained_models == "ship_missing" and shipped_entry(name) is not None):
            try:
                state, info = load_shipped(name, config_hash=config_hash)
            except ShippedWeightsError as e:
                raise ShippedWeightsError(f"{e}; with model.trained_models: ship_missing (or retrain) the run trains and "
                                          f"ships {name}") from None
            model, _ = load_model(cfg.model_name, num_classes=n_classes, freeze=True, **dict(cfg.model_kwargs))
            unwrap(model).load_state_dict({k: v.float() for k, v in state.items()})
            source = f"shipped `weights/{name}.safetensors`"
        else:
            with torch_threads(self.training_threads if self.device.type == "cpu" else None):
                model, _ = train_classifier((x, labels), test, cfg, n_classes, seed, **kw)
            info = {"training_wall_s": round(time.perf_counter() - started, 1),
                    "training_cpu_s": round(time.process_time() - cpu, 1), "threads": self.training_threads}
            if self.trained_models in ("retrain", "ship_missing"):
                # Shipped in half precision (half the size); the run explains the shipped weights, as later runs will.
                # The lock keeps concurrent trainings from losing each other's manifest entries.
                with file_lock(data_root() / ".adebayo2018_ship.lock"):
                    ship(name, {k: v.half() for k, v in unwrap(model).state_dict().items()}, info, config_hash=config_hash)
                state, info = load_shipped(name, config_hash=config_hash)
                unwrap(model).load_state_dict({k: v.float() for k, v in state.items()})
                source = f"trained in this run and shipped as `weights/{name}.safetensors`"
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        metrics = {
            "train_accuracy": accuracy(model, x, labels), "test_accuracy": accuracy(model, *test),
            "train_images": int(x.shape[0]), "epochs": int(cfg.max_epochs), "seed": seed, "weights": source,
            "schedule": self._cfg_text(cfg), "training_wall_s": info.get("training_wall_s"),
            "training_cpu_s": info.get("training_cpu_s"),
        }
        if kind == "random":
            metrics["label_agreement"] = float((labels == y_true).float().mean())
        return model, metrics

    # ------------------------------------------------------------------ learning
    def configure_optimizers(self):
        return None  # the data randomisation models are trained by their own ClassifierTasks (see training_step)

    def training_step(self, batch, batch_idx):
        dm = self.trainer.datamodule
        self._datasets_present(dm)
        kw = dict(accelerator="cpu" if self.device.type == "cpu" else "auto", devices=1)
        for name, exp in self.experiments.items():
            started = time.time()
            train, test = dm.train_tensors(exp.dataset), dm.test_tensors(exp.dataset)
            n_classes = dm.num_classes_of[exp.dataset]
            models, metrics = {}, {}
            for kind in exp.kinds:
                if kind == "true" and exp.true is None:
                    models[kind] = self._load_blackbox()
                    self._check_blackbox_architecture(exp)
                    cfg = self.blackbox_info.get("config", {})
                    shipped = self.embedded_v2 or f"blackbox_{self.blackbox_profile}"
                    metrics[kind] = {
                        "train_accuracy": accuracy(models[kind], *train), "test_accuracy": accuracy(models[kind], *test),
                        "train_images": int(train[1].numel()), "epochs": cfg.get("max_epochs"),
                        "weights": f"shipped black box `weights/{shipped}.safetensors`",
                        "training_wall_s": self.blackbox_info.get("training_s"),
                        **({"seed": cfg["seed"]} if "seed" in cfg else {}),  # the black box's own training seed
                        "schedule": f"{cfg.get('optimizer')} lr {cfg.get('lr')}, cosine schedule with warm-up, batch "
                                    f"{cfg.get('batch_size')}, {cfg.get('max_epochs')} epochs, weight decay "
                                    f"{cfg.get('weight_decay')}"
                                    + ("" if self.embedded_v2 else ", horizontal flips"),
                    }
                else:
                    models[kind], metrics[kind] = self._model(exp, kind, train, test, n_classes, kw)
            for kind, m in models.items():
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
            self.trained[name] = {k: m.to(self.device) for k, m in models.items()}
            self.training_metrics[name] = {**metrics, "chance": 1.0 / n_classes, "dataset": exp.dataset,
                                           "model": exp.model_name}
            self.timings[f"{name}_models_s"] = round(time.time() - started, 1)
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
            raise RuntimeError(f"the data randomisation models {missing} are loaded or trained by `fit`; "
                               "run `python -m replications.adebayo2018 fit`")
        dm = self.trainer.datamodule
        self._datasets_present(dm)
        blackbox = self._load_blackbox()
        common = dict(modes=self.modes, init=self.init, seed=self.randomization_seed, similarity=_similarity,
                      keep_examples=self.keep_examples, conventions=TARGET_CONVENTIONS)
        runners = {self.blackbox_key: ModelRandomizationTest(self.explainers, resolve_order(blackbox, self.blackbox_order), **common)}
        for name in self.model_randomisation:
            explainers = {m: self.explainers[m] for m in self.experiments[name].methods}
            runners[name] = ModelRandomizationTest(explainers, resolve_order(self.trained[name]["true"]), **common)
        self.runners = nn.ModuleDict(runners).to(self.device)
        self.data_similarity = nn.ModuleDict({
            name: nn.ModuleDict({pair: nn.ModuleDict({conv: nn.ModuleDict({m: _similarity() for m in exp.methods})
                                                      for conv in self._conventions(pair)}) for pair in exp.pairs})
            for name, exp in self.experiments.items()
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

    def _explain(self, methods, model, images, targets) -> dict[str, torch.Tensor]:
        return {m: self.explainers[m](model, images, targets) for m in methods}

    def _test_step(self, batch, dataloader_idx, source):
        images = batch["image"].to(self.device)
        ids = batch.get("id")
        originals: dict[int, tuple[torch.Tensor, dict]] = {}  # id(model) -> (predicted classes, maps of them)
        if dataloader_idx == 0:
            with torch.no_grad():
                targets = self.blackbox(images).argmax(1)
            maps = self.runners[self.blackbox_key].update(self.blackbox, images, targets, ids)
            self._update_edge_similarity(self.blackbox_key, maps, ids)
            originals[id(self.blackbox)] = (targets, maps)
        for name, exp in self.experiments.items():
            if exp.dataset != source:
                continue
            models = self.trained[name]
            true_model = models["true"]
            if id(true_model) not in originals:
                with torch.no_grad():
                    targets = true_model(images).argmax(1)
                if name in self.runners:
                    maps = self.runners[name].update(true_model, images, targets, ids)
                    self._update_edge_similarity(name, maps, ids)
                else:
                    maps = self._explain(exp.methods, true_model, images, targets)
                originals[id(true_model)] = (targets, maps)
            # each model's own predicted class and its maps (the official convention); the true-label model's from above
            preds, own = {"true": originals[id(true_model)][0]}, {"true": originals[id(true_model)][1]}
            for kind in exp.kinds[1:]:
                with torch.no_grad():
                    preds[kind] = models[kind](images).argmax(1)
                own[kind] = self._explain(exp.methods, models[kind], images, preds[kind])
            for pair, (a, b) in exp.pairs.items():
                for conv in self._conventions(pair):
                    # original convention: both maps explain the reference model's (b's) predicted class
                    maps_a = own[a] if conv == "retaken" else self._explain(exp.methods, models[a], images, preds[b])
                    for m in exp.methods:
                        self.data_similarity[name][pair][conv][m].update(maps_a[m], own[b][m], ids)
            if name not in self.data_examples:
                n = min(3, images.shape[0])
                self.data_examples[name] = {
                    "images": images[:n].cpu(), "labels": batch["label"][:n].cpu(),
                    "targets": {k: preds[k][:n].cpu() for k in ("true", "random")},
                    "methods": list(exp.methods),
                    "true": {m: own["true"][m][:n].cpu() for m in exp.methods},
                    "random": {m: own["random"][m][:n].cpu() for m in exp.methods},
                }

    @staticmethod
    def _conventions(pair: str) -> tuple[str, ...]:
        """Both class conventions for the paper's comparison; the controls in the claims' convention only."""
        return TARGET_CONVENTIONS if pair == "random_vs_true" else (CLAIM_CONVENTION,)

    def _update_edge_similarity(self, key: str, maps: dict[str, torch.Tensor], ids) -> None:
        if key in self.edge_similarity:
            for m, metric in self.edge_similarity[key].items():
                metric.update(maps[m], maps["sobel"], ids)

    def on_test_epoch_end(self) -> None:
        self.results_model = {
            model: {conv: {mode: {stage: {m: _entry(v) for m, v in by_m.items()} for stage, by_m in by_stage.items()}
                           for mode, by_stage in r.compute(per_sample=True, convention=conv).items()}
                    for conv in r.conventions}
            for model, r in self.runners.items()
        }
        self.agreement = {model: r.compute_agreement() for model, r in self.runners.items()}
        self.results_data = {
            name: {pair: {conv: {m: _entry(metric.per_sample()) for m, metric in by_m.items()} for conv, by_m in by_conv.items()}
                   for pair, by_conv in by_pair.items()}
            for name, by_pair in self.data_similarity.items()
        }
        self.results_edge = {key: {m: _entry(metric.per_sample()) for m, metric in sims.items()}
                             for key, sims in self.edge_similarity.items()}
        # what the curves show: the claims' convention, summaries only
        self.summary_model = {model: {mode: {stage: {m: e["summary"] for m, e in by_m.items()} for stage, by_m in by_stage.items()}
                                      for mode, by_stage in res[CLAIM_CONVENTION].items()}
                              for model, res in self.results_model.items()}

    # ------------------------------------------------------------------ results and report
    def plain_results(self) -> dict:
        """Every number the claims read (``claims.build_claims``): per-image similarities of the model and data
        randomisation tests under both class conventions, the edge-detector comparison, and the models' accuracies."""
        return {
            "claim_measure": CLAIM_MEASURE,
            "claim_convention": CLAIM_CONVENTION,
            "change_threshold": self.change_threshold,
            "methods": list(self.methods),
            "modes": list(self.modes),
            "blackbox_key": self.blackbox_key,
            "model_randomisation": {
                model: {"order": list(self.runners[model].order), "methods": list(self.runners[model].explainers),
                        "agreement": self.agreement[model], "by_convention": self.results_model[model]}
                for model in self.runners
            },
            "similarity_to_edge_detector": self.results_edge,
            "data_randomisation": {
                name: {"dataset": exp.dataset, "model": exp.model_name, "methods": list(exp.methods),
                       "true_model_is_blackbox": exp.true is None, "pairs": self.results_data[name],
                       "training": {k: {kk: vv for kk, vv in v.items() if kk not in ("training_wall_s", "training_cpu_s")}
                                    for k, v in self.training_metrics[name].items() if isinstance(v, dict)},
                       "chance": self.training_metrics[name]["chance"]}
                for name, exp in self.experiments.items()
            },
        }

    def model_label(self, key: str) -> str:
        if key == self.blackbox_key:
            if self.blackbox_model:
                return f"{self.blackbox_model} black box ({DATA_LABELS.get(key, key)})"
            return f"{self.embedded_v2} black box (benchmark v2)" if self.embedded_v2 else "synthetic-scenes black box (v1)"
        exp = self.experiments[key]
        return f"{ARCH_LABELS.get(exp.model_name, exp.model_name)} on {DATA_LABELS.get(exp.dataset, exp.dataset)}"

    def build_report(self, report) -> None:
        from replications.adebayo2018 import figures

        dm = self.trainer.datamodule if self.trainer is not None else None
        report.add_section("Setting", self._setting_text(dm))
        self._add_model_randomisation(report, figures)
        self._add_data_randomisation(report, figures)
        report.add_section("Deviations from the paper", self._deviations_text())
        report.metrics.update({
            "training": self.training_metrics,
            "timings_s": self.timings,
        })

    def _n_images(self, model: str) -> int:
        r = self.results_model[model][CLAIM_CONVENTION]
        stage = self.runners[model].order[0]
        first = next(iter(self.runners[model].explainers))
        return len(r[self.modes[0]][stage][first]["per_image"][CLAIM_MEASURE])

    def _n_data_images(self, name: str) -> int:
        first = self.experiments[name].methods[0]
        return len(self.results_data[name]["random_vs_true"][CLAIM_CONVENTION][first]["per_image"][CLAIM_MEASURE])

    @staticmethod
    def _cfg_text(c: TrainingConfig) -> str:
        return (f"{c.optimizer} lr {c.lr:g}, {c.scheduler} schedule, batch {c.batch_size}, {c.max_epochs} epochs, "
                f"weight decay {c.weight_decay:g}")

    def _setting_text(self, dm) -> str:
        digits = getattr(dm, "digits_info", {}) if dm is not None else {}
        lines = [
            f"- Methods: {', '.join(LABELS.get(m, m) for m in self.methods)}; settings {self.explainer_kwargs}. "
            f"{', '.join(LABELS[m] for m in SIGNED_METHODS if m in self.methods)} sum their channels with their sign "
            "(the official code's diverging maps), so the signed and the absolute Spearman columns differ.",
            "- Which class a map explains: the claims read the official notebooks' convention (each randomised or "
            "random-label model explains its own predicted class, re-taken at every stage: `retaken`); the tables also "
            "give the original model's predicted class kept fixed (`original`) and how often the two agree.",
            f"- Model randomisation ({', '.join(self.modes)}), re-initialisation with each layer's own initialiser "
            f"(`reset_parameters()`, init=`{self.init}`), seed {self.randomization_seed}, layer order from the logits down:",
        ]
        for key, runner in self.runners.items():
            if key == self.blackbox_key:
                if self.blackbox_model:
                    src = f"`load_model('{self.blackbox_model}', pretrained=True)`"
                elif self.embedded_v2:
                    src = (f"`load_embedded_v2('{self.embedded_v2}')`, SHA-256-checked shipped weights, test accuracy "
                           f"{_get_acc(self.blackbox_info)}")
                else:
                    src = f"`load_blackbox('{self.blackbox_profile}')`, test accuracy {_get_acc(self.blackbox_info)}"
                what = f"test images ({DATA_LABELS.get(key, key)})"
            else:
                src = f"the true-label model of data randomisation experiment `{key}`"
                what = f"test images ({DATA_LABELS.get(self.experiments[key].dataset)})"
            lines.append(f"  - {self.model_label(key)} ({src}): {' → '.join(runner.order)}; {self._n_images(key)} {what};")
        for source, d in digits.items():
            lines.append(f"- {DATA_LABELS.get(source, source)}: {d.get('train_images')} train / {d.get('test_images')} test "
                         f"images; split: {d.get('split')}.")
        if dm is not None and getattr(dm, "blackbox_data", None) in SCENE_SOURCES:
            what = ("benchmark v2 scenes (64 px, 24 classes)" if dm.blackbox_data == "scenes_v2"
                    else "synthetic scenes (v1)")
            lines.append(f"- {what}: profile `{dm.scenes_profile}`, the first {self._n_images(self.blackbox_key)} "
                         "test scenes explained.")
        lines.append("- Data randomisation (the same architecture trained on the true labels, on a fixed permutation of "
                     "the labels, and two controls; test accuracy against the true test labels):")
        for name, exp in self.experiments.items():
            t = self.training_metrics[name]
            lines.append(f"  - `{name}`: {ARCH_LABELS.get(exp.model_name, exp.model_name)} on "
                         f"{DATA_LABELS.get(exp.dataset, exp.dataset)}; maps compared on {self._n_data_images(name)} test images.")
            for kind, label in (("true", "true labels"), ("random", "permuted labels"),
                                ("control", "control: true labels, the random-label model's subset and schedule"),
                                ("control_seed", "noise-floor control: the control with another training seed")):
                if kind not in t:
                    continue
                k = t[kind]
                extra = (f"; {k['label_agreement']:.3f} of the permuted labels happen to equal the true ones"
                         if "label_agreement" in k else "")
                lines.append(f"    - {label}: {k['train_images']} training images ({k['schedule']}; seed {k.get('seed', 'n/a')}), "
                             f"{k['weights']} → train accuracy {k['train_accuracy']:.3f}, test {k['test_accuracy']:.3f}{extra}.")
        lines.append(
            "- Similarity (shared `MapSimilarity`, the official code's measures): Spearman rank correlation of |maps| "
            "(`spearman_abs`, the claims' measure) and of signed maps (`spearman_no_abs`), SSIM with Gaussian weights "
            "(11 taps, sigma 1.5) of the [0, 1]-normalised |maps|, Spearman rank correlation of their HOG features. "
            "Mean ± std over images. A constant map (e.g. an all-zero Grad-CAM of a randomised network) has no ranks: "
            "its correlations are undefined, left out of the mean and counted in the tables; a claim compares methods "
            f"on the images where all its values are defined. 'Changes' in a claim means Spearman(|map|) below "
            f"{self.change_threshold} (our threshold: the paper reads its curves visually); orderings and thresholds are "
            "judged by a paired bootstrap over images.")
        lines.append(f"- Nested trainings run at {self.training_threads or 'torch default'} CPU threads (pinned: the weights "
                     "depend on it); `trained_models: "
                     f"{self.trained_models}`.")
        return "\n".join(lines)

    def _deviations_text(self) -> str:
        lines = []
        if self.blackbox_model is None:
            box = (f"benchmark v2's {self.embedded_v2} (in the stages listed under Setting)" if self.embedded_v2
                   else "the synthetic-scenes black box (layer by layer)")
            lines.append(f"- Inception v3 on ImageNet (200 validation images, 17 blocks) is replaced by {box} and by the "
                         "digit CNN; `configs/adebayo2018/paper.yaml` holds the published setting (Inception v3; MNIST "
                         "and Fashion-MNIST with the CNN and the MLP).")
        for name, exp in self.experiments.items():
            r = self.training_metrics[name]["random"]
            subset = (f"a fixed subset ({r['train_images']} images)" if exp.random.subset is not None
                      else f"its whole training split ({r['train_images']} images)")
            lines.append(f"- `{name}`: the random-label model memorises {subset} with our schedule ({r['schedule']}; "
                         "PyTorch's default init, no L2 term); the paper: the whole training set, Adam 1e-4, batch 50, "
                         "100 epochs, L2 0.001, truncated-normal init. The control rows measure what the subset and "
                         "schedule alone change.")
            if exp.true is None:
                lines.append(f"- `{name}`: the true-label model is the shipped black box (trained once on the scenes' "
                             "whole training split, shared by every paper) rather than a second training of the same "
                             "architecture.")
        lines += [
            "- SmoothGrad / VarGrad / Integrated Gradients use fewer samples/steps than the PAIR defaults, to fit the CPU "
            "budget.",
            "- On the 3-channel scenes the absolute map is |Σ_c a_c| (the absolute value of the signed channel sum); the "
            "official grayscale map is Σ_c |a_c|. On the 1-channel digits the two are the same.",
            "- SSIM: torchmetrics' Gaussian-window SSIM, not skimage's (their implementations differ slightly in the "
            "covariance normalisation and the border).",
        ]
        return "\n".join(lines)

    def _model_rows(self, model: str, mode: str) -> list[dict]:
        res = self.results_model[model]
        agree = self.agreement[model][mode]
        rows = []
        for stage in self.runners[model].order:
            for m in self.runners[model].explainers:
                off = res[CLAIM_CONVENTION][mode][stage][m]["summary"]
                org = res["original"][mode][stage][m]["summary"]
                row = {"stage (randomised)": stage, "method": LABELS.get(m, m)}
                for meas in off:
                    row[meas] = _fmt(off[meas])
                row["spearman_abs (original class)"] = _fmt(org[CLAIM_MEASURE])
                row["spearman_no_abs (original class)"] = _fmt(org["spearman_no_abs"])
                row["re-taken class = original"] = round(agree[stage], 4)
                rows.append(row)
        return rows

    def _add_model_randomisation(self, report, figures) -> None:
        for model in self.runners:
            for mode in self.modes:
                report.add_table(
                    f"{model}_{mode}", self._model_rows(model, mode),
                    caption=f"{mode.capitalize()} randomisation of the {self.model_label(model)}: similarity of each method's "
                    "map to the original map (mean ± std over images; each randomised model explains its own predicted "
                    "class, as the official notebooks), the Spearman columns with the original class kept fixed, and the "
                    "share of images whose re-taken class equals the original one. Paper: curves in Fig. 4 (Inception v3).",
                )
                report.add_figure(f"{model}_{mode}_curves", figures.similarity_curves(self, model, mode),
                                  caption=f"{mode.capitalize()} randomisation, {self.model_label(model)}: similarity vs. "
                                          "randomised layer (mean ± std over images; re-taken class), as in the paper's Fig. 4.")
                if mode == "cascading" or model != self.blackbox_key:
                    report.add_figure(f"{model}_{mode}_grid", figures.stage_grid(self, model, mode),
                                      caption=f"{mode.capitalize()} randomisation, {self.model_label(model)}: rows methods; "
                                              "columns the input, the original map, then each stage (as in the paper's "
                                              "Fig. 2; re-taken class). |map|, normalised per map.")
        for model, by_method in self.results_edge.items():
            rows = [{"method": LABELS.get(m, m), **{meas: _fmt(v) for meas, v in res["summary"].items()}}
                    for m, res in by_method.items()]
            report.add_table(f"{model}_similarity_to_edge_detector", rows,
                             caption=f"{self.model_label(model)}: similarity of each method's map (original, trained model) "
                                     "to the Sobel edge detector's map of the same image (mean ± std over images). "
                                     "Paper: Fig. 1 (Inception v3), compared visually.")

    def _add_data_randomisation(self, report, figures) -> None:
        rows = []
        for name, exp in self.experiments.items():
            for kind, label in (("true", "true labels"), ("random", "permuted labels"), ("control", "control (true labels)"),
                                ("control_seed", "control, another seed")):
                if kind not in exp.kinds:
                    continue
                t = self.training_metrics[name][kind]
                rows.append({"experiment": name, "model": f"{exp.model_name}, {label}",
                             "data": DATA_LABELS.get(exp.dataset, exp.dataset), "train images": t["train_images"],
                             "epochs": t["epochs"], "seed": t.get("seed"), "train accuracy": t["train_accuracy"],
                             "test accuracy": t["test_accuracy"]})
        report.add_table("data_randomisation_accuracy", rows,
                         caption="Data randomisation: each architecture trained on true and on permuted labels, and the two "
                                 "controls (test accuracy against the true test labels). Paper: random-label model fits its "
                                 "training set, test at chance.")
        for name, exp in self.experiments.items():
            data = DATA_LABELS.get(exp.dataset, exp.dataset)
            rows = []
            for pair in exp.pairs:
                for m in exp.methods:
                    off = self.results_data[name][pair][CLAIM_CONVENTION][m]["summary"]
                    row = {"comparison": PAIR_LABELS[pair], "method": LABELS.get(m, m)}
                    row.update({meas: _fmt(v) for meas, v in off.items()})
                    org = self.results_data[name][pair].get("original", {}).get(m)
                    row["spearman_abs (reference model's class)"] = _fmt(org["summary"][CLAIM_MEASURE]) if org else "–"
                    rows.append(row)
            report.add_table(f"{name}_data_randomisation_similarity", rows,
                             caption=f"Data randomisation, {ARCH_LABELS.get(exp.model_name, exp.model_name)} on {data}: "
                                     "similarity between the maps of two models (mean ± std over test images; each model "
                                     "explains its own predicted class; last column, the paper's comparison only: both explain the second model's class). "
                                     "First rows: the paper's test; then the controls: the subset and schedule alone, the "
                                     "labels alone at equal subset and schedule, and the seed noise floor. Paper: Fig. 5 "
                                     "(rank correlation, MNIST).")
            report.add_figure(f"{name}_data_randomisation_maps", figures.data_randomisation_grid(self, name),
                              caption=f"Data randomisation ({data}): maps of the true-label model and of the random-label "
                                      "model for the same images, each explaining its own predicted class. |map|, "
                                      "normalised per map.")
