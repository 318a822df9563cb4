"""RISE replication (Petsiuk, Das & Saenko, BMVC 2018): the LightningModule that wires the experiments of
:mod:`replications.petsiuk2018.experiments` (a. deletion / insertion, b. pointing game, c. stability vs N, d. example
maps, the RISE benchmark) to the data, the models and the saliency methods (RISE, Grad-CAM, sliding-window occlusion,
LIME, the gradient, and the reference maps: the *oracle*, the ground-truth evidence, and *random*).

The batch loop and the per-batch map cache are :class:`lightning_modules.experiment.ExperimentReplication`'s: each
method's maps of a batch are computed once (:meth:`RiseReplication.explain`) and shared by every experiment that reads
them. Deletion and insertion explain the model's top-1 class; the pointing game the ground-truth class
(``<method>@label``), which RISE gives from the same all-classes pass and the other methods from the top-1 maps where
the two classes agree. The scenes have one test pass (``test``) that every experiment reads; the paper profile has
two, ImageNet val (``causal``) and VOC07 / COCO (``pointing``, its own classifier).

``fit`` learns nothing (RISE is training-free): ``training_step`` builds the RISE masks on the device, and the CLI
then runs ``test``, which evaluates everything and writes the report (``replications/petsiuk2018/report.py``, a
function of :meth:`plain_results`, :meth:`report_config` and the experiments' figure tensors, drawn by
``ReplicationModule.build_report`` and stored with the report, so ``python -m replications.petsiuk2018 report``
draws it again without a run). ``validate`` (also run
inside ``fit`` where the config does not set ``limit_val_batches: 0``, as the paper profiles) only runs the models on
the data: top-1 accuracy of the black box, and for the pointing model whether its top-1 class is in the image.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict

import torch
import torch.nn as nn

from lightning_modules.experiment import BatchContext, ExperimentReplication
from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.baselines import id_seeded_random_maps
from lightning_modules.explainers.rise import RISE
from lightning_modules.metrics import SampleValues
from lightning_modules.metrics.causal import default_pixels_per_step
from lightning_modules.utils import config_section
from replications.cli import ReplicationModule
from replications.petsiuk2018 import paper as P
from replications.petsiuk2018.data import SCENE_SOURCES
from replications.petsiuk2018.experiments import experiment_modules
from replications.petsiuk2018.experiments.a_causal import (
    DELETION_SUBSTRATES,
    ORACLE_TIE_ORDERS,
    REFERENCES,
    CausalConfig,
    scaled_blur,
    top1,
)
from replications.petsiuk2018.experiments.b_pointing import LABEL, PointingConfig, label_maps
from replications.petsiuk2018.experiments.benchmark import BenchmarkConfig
from replications.petsiuk2018.experiments.c_stability import StabilityConfig

#: the methods of Table 1 (+ the gradient, as the issue asks), in report order
DEFAULT_METHODS = {
    "rise": {"n_masks": 1000, "grid_size": 7, "p": 0.5, "seed": 0},
    "gradcam": {},
    "occlusion": {"window": 16, "stride": 4, "fill": 0.5, "output": "prob"},
    "lime": {"n_samples": 1000, "segmentation": "slic", "segmentation_kwargs": {"n_segments": 100}},
    "gradient": {},
}
PAPER_METHODS = ("rise", "lime", "gradcam", "occlusion")  # Table 1's order by deletion / insertion (ResNet50)
#: the per-batch key of RISE's all-classes scores ``(B, N, K)`` (``ctx.cached``)
RISE_SCORES = "rise_scores"


class RiseReplication(ExperimentReplication, ReplicationModule):
    """See the module docstring. Constructor arguments are the config's ``model:`` section.

    Args:
        model: the black box: ``{"blackbox": "default"}`` (the cached scenes network) or ``load_model`` kwargs
            (``{"name": "resnet50", "pretrained": true}``).
        pointing_model: the model of the pointing game (paper: VOC07 / COCO fine-tuned); None = ``model``.
        methods: explainer name -> constructor kwargs; must contain ``rise``.
        causal, pointing, stability, benchmark: typed sections (``CausalConfig``, ``PointingConfig``,
            ``StabilityConfig``, ``BenchmarkConfig``, each in its experiment's file): LightningCLI checks their types
            and ``--print_config`` shows their defaults.
        n_example_images: images in the example-maps figure.
        pointing_reference: the TorchRay column the pointing claims quote.
    """

    paper = "petsiuk2018"
    title = "RISE: Randomized Input Sampling for Explanation of Black-box Models"
    citation = ("V. Petsiuk, A. Das, K. Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. "
                "BMVC 2018.")

    def __init__(
        self,
        model: dict | None = None,
        pointing_model: dict | None = None,
        methods: dict[str, dict] | None = None,
        causal: CausalConfig = CausalConfig(),  # noqa: B008 - read-only defaults, shown by --print_config
        pointing: PointingConfig = PointingConfig(),  # noqa: B008
        stability: StabilityConfig = StabilityConfig(),  # noqa: B008
        benchmark: BenchmarkConfig = BenchmarkConfig(),  # noqa: B008
        n_example_images: int = 4,
        pointing_reference: str = "VOC07 ResNet50",
    ):
        super().__init__()
        self.model_cfg = dict(model or {"blackbox": "default"})
        self.pointing_model_cfg = dict(pointing_model) if pointing_model else None
        self.method_kwargs = {k: dict(v or {}) for k, v in (methods or DEFAULT_METHODS).items()}
        if "rise" not in self.method_kwargs:
            raise ValueError("methods must include 'rise' (the paper's method); add `rise: {n_masks: ...}`")
        self.methods = list(self.method_kwargs)
        self.causal_cfg = asdict(config_section(causal, CausalConfig, "causal"))
        bad_refs = set(self.causal_cfg["references"]) - set(REFERENCES)
        if bad_refs:
            raise ValueError(f"causal.references must be among {list(REFERENCES)}, got {sorted(bad_refs)}")
        self.references = list(self.causal_cfg.pop("references"))
        self.pointing_cfg = asdict(config_section(pointing, PointingConfig, "pointing"))
        self.stability_cfg = asdict(config_section(stability, StabilityConfig, "stability"))
        n_max = self.method_kwargs["rise"].get("n_masks", 4000)
        bad = [n for n in self.stability_cfg["n_values"] if not 1 <= int(n) <= n_max]
        if bad:
            raise ValueError(f"stability n_values {bad} must lie in [1, rise.n_masks={n_max}]; raise methods.rise.n_masks")
        self.benchmark_cfg = asdict(config_section(benchmark, BenchmarkConfig, "benchmark"))
        self.n_example_images = int(n_example_images)
        if pointing_reference not in P.POINTING_TORCHRAY:
            raise ValueError(f"pointing_reference must be one of {sorted(P.POINTING_TORCHRAY)}, got {pointing_reference!r}")
        self.pointing_reference = pointing_reference
        # validate every method name and its kwargs now (fails early with the known names)
        self.explainers = {m: create_explainer(m, **kw) for m, kw in self.method_kwargs.items()}
        self.automatic_optimization = False
        self.blackbox: nn.Module | None = None
        self.pointing_blackbox: nn.Module | None = None
        self.blackbox_info: dict = {}
        self.pointing_info: dict = {}
        self.validation: dict = {}
        #: deletion / insertion's settings with the blur resolved for the image size (``on_test_start``)
        self.causal_used: dict = {}
        self._image_size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ models
    def _load(self, cfg: dict) -> nn.Module:
        cfg = dict(cfg)
        if "blackbox" in cfg:
            from lightning_modules.models import load_model

            profile, retrain = cfg.pop("blackbox"), cfg.pop("retrain", False)
            model, _ = load_model(f"blackbox_{profile}", weights="retrain" if retrain else "embedded", **cfg)
            self.blackbox_info = dict(getattr(model, "blackbox_info", {}) or {})
        elif "embedded_v2" in cfg:
            # benchmark v2's shipped, hash-checked models (lightning_modules.models.embedded_v2)
            from lightning_modules.models import load_model

            name = cfg.pop("embedded_v2")
            if cfg:
                raise ValueError(f"model.embedded_v2 takes no other keys, got {sorted(cfg)}")
            model, _ = load_model(name, weights="embedded")
            self.blackbox_info = {"name": name, **dict(getattr(model, "embedded_info", {}) or {})}
        elif "embedded_multilabel" in cfg:
            # the multi-label black box of the embedded pointing game (lightning_modules.models.embedded_multilabel)
            from lightning_modules.models import load_model

            name = cfg.pop("embedded_multilabel")
            if cfg:
                raise ValueError(f"model.embedded_multilabel takes no other keys, got {sorted(cfg)}")
            model, _ = load_model(name, weights="embedded")
            self.pointing_info = {"name": name, **dict(getattr(model, "embedded_info", {}) or {})}
        elif "torchray" in cfg:
            # the pointing-game networks of Table 2 (Zhang et al.'s Caffe models, TorchRay's published files)
            from replications.petsiuk2018.pointing_models import load_torchray_model

            model = load_torchray_model(cfg.pop("torchray"), **cfg)
        else:
            from lightning_modules.models import load_model

            model, _ = load_model(**cfg)
        return model.to(self.device).eval()

    def _ensure_models(self):
        if self.blackbox is None:
            self.blackbox = self._load(self.model_cfg)
            self.pointing_blackbox = self._load(self.pointing_model_cfg) if self.pointing_model_cfg else self.blackbox

    @property
    def rise(self) -> RISE:
        return self.explainers["rise"]

    # ------------------------------------------------------------------ fit: nothing to learn but the masks
    def configure_optimizers(self):
        return None

    def _input_size(self) -> tuple[int, int] | None:
        dm = self.trainer.datamodule if self.trainer is not None else None
        size = getattr(getattr(self.blackbox, "scenes_config", None), "image_size", None)
        if size is None and getattr(dm, "imagenet", None) is not None:
            size = dm.imagenet.get("image_size", 224)
        if size is None:
            return None
        return (size, size) if isinstance(size, int) else tuple(size)

    def training_step(self, batch, batch_idx):
        started = time.time()
        self._ensure_models()
        size = self._input_size()
        if size is not None:
            self.rise.masks(size, self.device)
        self.timings["fit_masks_s"] = round(time.time() - started, 2)
        return None

    # ------------------------------------------------------------------ validate: the models read the data
    def _source(self) -> str:
        dm = self.trainer.datamodule if self.trainer is not None else None
        return getattr(dm, "source", "scenes_v2")

    def _scenes_source(self) -> bool:
        return self.trainer.datamodule is None or getattr(self.trainer.datamodule, "source", "scenes_v2") in SCENE_SOURCES

    def _check_pointing_classes(self) -> None:
        """The pointing model must score the pointing dataset's classes (VOC07: 20, COCO: 80)."""
        dm = self.trainer.datamodule
        if self._scenes_source() or not getattr(dm, "_paper", None):
            return
        n_data = dm._paper["pointing"].num_classes
        n_model = getattr(self.pointing_blackbox, "num_classes", None)
        if isinstance(n_model, int) and n_model != n_data:
            raise ValueError(f"the pointing model has {n_model} classes but {dm.pointing_dataset} has {n_data}: set "
                             f"model.pointing_model to a {dm.pointing_dataset} model (e.g. {{torchray: resnet50, "
                             f"dataset: {dm.pointing_dataset}}})")

    def on_validation_start(self) -> None:
        self._ensure_models()
        self._check_pointing_classes()
        self.val_metrics = nn.ModuleDict({"acc": SampleValues("hits"),
                                          "pointing_top1_in_image": SampleValues("hits")}).to(self.device)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        """A cheap check that the models, their weights and preprocessing fit the data before the costly test:
        top-1 accuracy of the black box on the causal data (ImageNet val / the scenes; torchvision's ResNet50 V1
        weights: 76.13 %), and on the pointing loader the share of images whose top-1 class under the pointing model
        is one of the image's classes (each image counted once)."""
        images = batch["image"].to(self.device)
        with torch.no_grad():
            if dataloader_idx == 0:
                preds = self.blackbox(images).argmax(1)
                self.val_metrics["acc"].update(batch["id"].to(self.device), hits=preds == batch["label"].to(self.device))
            else:
                preds = self.pointing_blackbox(images).argmax(1)
                present = batch["multilabel"].to(self.device).gather(1, preds[:, None])[:, 0] > 0
                self.val_metrics["pointing_top1_in_image"].update(batch["image_index"].to(self.device), hits=present)

    def on_validation_epoch_end(self) -> None:
        self.validation = {}
        for name, metric in self.val_metrics.items():
            if metric.update_count == 0:  # the scenes have no pointing loader
                continue
            value = metric.mean("hits")
            # the metric is already synced across processes (de-duplicated by sample id)
            self.log(f"val/{name}", value, sync_dist=False, add_dataloader_idx=False)
            self.validation[name] = {"value": float(value), "samples": metric.count()}
            metric.reset()

    # ------------------------------------------------------------------ test: the experiments
    def on_test_start(self) -> None:
        self._ensure_models()
        self._check_pointing_classes()
        self.results, self._image_size = {}, None
        ckw = dict(self.causal_cfg)
        if ckw["blur_kernel"] is None or ckw["blur_sigma"] is None:
            size = self._input_size()
            if size is None:
                raise ValueError("the image size is unknown: set causal.blur_kernel and causal.blur_sigma")
            k, sigma = scaled_blur(min(size))
            ckw["blur_kernel"] = ckw["blur_kernel"] or k
            ckw["blur_sigma"] = ckw["blur_sigma"] or sigma
        self.causal_used = ckw
        # the scenes: one loader whose batches serve every experiment; the paper data: ImageNet val, then VOC / COCO
        # (the scenes with the multi-label pointing pass: the scenes, then the (image, class) trials)
        if self._scenes_source():
            self.test_splits = ["test", "pointing"] if self.has_pointing_pass() else ["test"]
        else:
            self.test_splits = ["causal", "pointing"]
        # every file of experiments/, in the order they see a batch, with fresh state for this test run
        self.experiments = nn.ModuleDict()
        self.add_experiments([e for module in experiment_modules() for e in module.build(self)])
        self.experiments.to(self.device)
        self._test_started = time.time()

    def has_pointing_pass(self) -> bool:
        """The pointing game runs on its own data and model (the paper's VOC07 / COCO, the multi-label scenes)."""
        dm = self.trainer.datamodule if self._trainer is not None else None
        return bool(getattr(dm, "has_pointing_pass", False))

    def model_for(self, split: str) -> nn.Module:
        return self.pointing_blackbox if split == "pointing" else self.blackbox

    def methods_for(self, split: str) -> list[str]:
        if split == "pointing":  # the pointing pass: its methods, explained for the labels (+ the scenes' references)
            return self.pointing_methods() + (self.references if self._scenes_source() else [])
        extra = [label_maps(m) for m in self.methods] if split == "test" else []
        oracles = list(ORACLE_TIE_ORDERS) if "oracle" in self.references and split in ("test", "causal") else []
        return self.methods + self.references + oracles + extra

    def pointing_methods(self) -> list[str]:
        """The methods of the pointing game (``pointing.methods``; None: every method)."""
        chosen = self.pointing_cfg.get("methods")
        return list(self.methods) if chosen is None else [m for m in self.methods if m in chosen]

    def _timed(self, key: str, fn, *args):
        t0 = time.time()
        out = fn(*args)
        self.timings[key] = round(self.timings.get(key, 0.0) + time.time() - t0, 2)
        return out

    def rise_scores(self, ctx: BatchContext) -> torch.Tensor:
        """RISE's scores of every class under every mask ``(B, N, K)``: one pass per batch, shared by the maps of
        both targets and the stability study."""
        return ctx.cached(RISE_SCORES, lambda: self._timed("rise_s", self.rise.class_scores, ctx.model, ctx.images))

    def explain(self, method: str, ctx: BatchContext) -> torch.Tensor:
        """One map of the batch's cache: a reference map, or a method's maps of the model's top-1 class (the
        pointing pass: of the label), or with the ``@label`` suffix of the ground-truth class (the scenes' pointing
        game): RISE from its one all-classes pass, the others re-explain only the images whose two targets differ."""
        if method == "oracle":
            return self._oracle(ctx)
        if method.startswith("oracle__"):  # the shared oracle with a stated tie order (rules of judgement 6)
            from lightning_modules.explainers.baselines import oracle_map

            return oracle_map(ctx.evidence, method.split("__", 1)[1]).to(ctx.images.dtype)
        if method == "random":
            # seeded by sample id: a sample's map does not depend on its batch or process
            return id_seeded_random_maps(ctx.ids, tuple(ctx.images.shape[-2:])).to(ctx.images.dtype)
        of_label = method.endswith(LABEL)
        name = method[: -len(LABEL)] if of_label else method
        targets = ctx.labels if of_label or ctx.split == "pointing" else top1(ctx)
        if name == "rise":
            scores = self.rise_scores(ctx)
            picked = scores.gather(2, targets.view(-1, 1, 1).expand(-1, scores.shape[1], 1))[..., 0]
            return self.rise.maps_from_scores(picked, ctx.images.shape[-2:])
        explainer = self.explainers[name]
        if not of_label:
            return self._timed(f"{name}_s", explainer, ctx.model, ctx.images, targets)
        maps = ctx.map(name).clone()
        differ = (targets != top1(ctx)).nonzero().flatten()
        if differ.numel():
            maps[differ] = self._timed(f"{name}_s", explainer, ctx.model, ctx.images[differ], targets[differ])
        return maps

    def _oracle(self, ctx: BatchContext) -> torch.Tensor:
        """The ground-truth evidence as a map: the evidence (1) over everything else (0); ties are broken by a
        faint blur of the mask, so the evidence's centre goes first and its surroundings before the far
        background."""
        if ctx.evidence is None:
            raise ValueError("the oracle reference needs the ground-truth evidence (the scenes' evidence_mask "
                             "or head_mask); remove 'oracle' from causal.references for this data")
        evidence = ctx.evidence.float()
        from torchvision.transforms.functional import gaussian_blur

        k, sigma = scaled_blur(evidence.shape[-1])
        return evidence + 1e-3 * gaussian_blur(evidence, [k, k], [sigma, sigma])

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._image_size = tuple(batch["image"].shape[-2:])
        super().test_step(batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        for e in self.experiments.values():  # the experiments' own costs (deletion / insertion, stability, benchmark)
            self.timings.update({k: round(v, 2 if k != "benchmark_s" else 1) for k, v in getattr(e, "seconds", {}).items()})
        self.timings["test_s"] = round(time.time() - self._test_started, 1)
        self.results["timings_s"] = dict(self.timings)

    # ------------------------------------------------------------------ results and report
    def _steps(self) -> tuple[int, int]:
        h, w = self._image_size or (0, 0)
        step = self.causal_cfg["pixels_per_step"] or default_pixels_per_step(h, w)
        return int(step), math.ceil(h * w / step)

    def plain_results(self) -> dict:
        """Every number the claims read (``claims.build_claims``): per method the mean and per-image AUCs (sorted
        by sample id, the same images for every method), per-image pointing hits, the stability study's per-image
        map correlations, the benchmark, the protocol's settings, and the run's timings."""
        r = self.results
        step, n_steps = self._steps()
        causal, pointing = r.get("causal_per_method", {}), r.get("pointing_per_method", {})
        per_method = {n: {**causal.get(n, {}), **pointing.get(n, {})} for n in [*causal, *(p for p in pointing if p not in causal)]}
        out = {
            "model": {"embedded": "blackbox" in self.model_cfg, "is_vgg16": "vgg16" in str(self.model_cfg.get("name", "")),
                      "config": self.model_cfg},
            "methods": list(self.methods),
            "references": list(self.references),
            "paper_methods": [m for m in PAPER_METHODS if m in self.methods],
            "image_size": list(self._image_size or ()),
            "causal": {"pixels_per_step": step, "n_steps": n_steps, "substrates": list(DELETION_SUBSTRATES),
                       "blur_kernel": self.causal_used.get("blur_kernel"), "blur_sigma": self.causal_used.get("blur_sigma")},
            "per_method": per_method,
            "pointing_reference": self.pointing_reference,
            "rise": {"n_masks": int(self.rise.n_masks), "paper_n_masks": P.RISE_PAPER_TEXT["n_masks"]},
            "lime": dict(self.method_kwargs.get("lime", {})),
            "benchmark": dict(r.get("benchmark") or {}),
        }
        for key in ("evidence_area_px", "protocol_validity", "stability", "pointing_image_index", "pointing_tolerance_px"):
            if r.get(key):
                out[key] = r[key]
        out["timings_s"] = dict(r.get("timings_s") or self.timings)
        if self.validation:  # fit ran the validation loop (the paper profiles): the models read the data
            out["validation"] = dict(self.validation)
        return out

    def report_config(self) -> dict:
        """The settings the report states (plain values): the report is a function of (results, this, examples)."""
        rk = self.rise.__dict__
        return {
            "model": self.model_cfg, "pointing_model": self.pointing_model_cfg, "methods": self.method_kwargs,
            "causal": self.causal_cfg, "pointing": self.pointing_cfg, "stability": self.stability_cfg,
            "benchmark": self.benchmark_cfg, "n_example_images": self.n_example_images,
            "rise": {k: rk[k] for k in ("n_masks", "grid_size", "p", "seed", "baseline", "memory_budget_mb")}
            | {"last_chunk_size": self.rise.last_chunk_size},
            "data_source": self._source(), "scenes_source": self._scenes_source(), "blackbox_info": self.blackbox_info,
            "pointing_info": self.pointing_info,
        }
