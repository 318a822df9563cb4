"""RISE replication (Petsiuk, Das & Saenko, BMVC 2018): the LightningModule that runs every experiment.

a. Deletion / insertion AUC (paper Sec. 4.1, Table 1) of RISE, Grad-CAM, sliding-window occlusion, LIME and the
   gradient, with the paper's protocol (``lightning_modules.metrics.causal``): pixels in decreasing saliency
   order, deletion to the model's mean colour (the paper's substrate) and, beside it, to a blurred copy;
   insertion from a Gaussian blur (kernel 11, sigma 5 at 224 px, scaled with the image side), softmax probability
   of the top-1 class. Two reference rows bound the metric: the *oracle* map (the ground-truth evidence of the
   target class: benchmark v2's ``evidence_mask``, the v1 scenes' head mask) and uniform random maps.
b. Pointing game (Sec. 4.2, Table 2; TorchRay's protocol), all and difficult samples, plus the centre baseline;
   on the embedded scenes against the object boxes of the target class (the paper's ground truth) and against the
   class evidence (benchmark v2: the valid test there), with the oracle and random maps as reference rows.
c. Stability of RISE: maps and AUCs vs the number of masks N and across mask seeds (the first n of the N
   i.i.d. masks are a RISE estimator with n masks, so one pass per seed gives every n).
d. Figures: mean deletion / insertion curves with their AUCs, example maps of every method.
Plus the RISE benchmark (time vs its N masked forward passes, peak memory vs the budget), measured in the run.

Every protocol with both reference rows is judged for validity in the run (``lightning_modules.reporting.validity``:
the oracle best, random worst, methods separated, not saturated, plus deletion's and insertion's first-step checks),
from the per-image values stored in ``protocol_validity``; a claim on a protocol that is not valid there is
reported as not valid, not as reproduced.

``fit`` learns nothing (RISE is training-free): ``training_step`` builds the RISE masks on the device, and
the CLI then runs ``test``, which evaluates everything and writes the report. ``validate`` (also run inside ``fit``
where the config does not set ``limit_val_batches: 0``, as the paper profiles) only runs the models on the data:
top-1 accuracy of the black box, and for the pointing model whether its top-1 class is present in the image.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from lightning_modules.data.schema import evidence_of
from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.baselines import id_seeded_random_maps
from lightning_modules.explainers.rise import RISE
from lightning_modules.metrics.causal import DeletionAUC, InsertionAUC, default_pixels_per_step
from lightning_modules.metrics.pointing import PointingGame, center_heatmaps, default_tolerance
from lightning_modules.metrics._progressive import trapezoid_auc
from lightning_modules.metrics import SampleValues
from lightning_modules.reporting import pointing_specs, protocol_spec
from lightning_modules.utils import config_section
from replications.cli import ReplicationModule
from replications.petsiuk2018 import paper as P
from replications.petsiuk2018.data import SCENE_SOURCES

#: the methods of Table 1 (+ the gradient, as the issue asks), in report order
DEFAULT_METHODS = {
    "rise": {"n_masks": 1000, "grid_size": 7, "p": 0.5, "seed": 0},
    "gradcam": {},
    "occlusion": {"window": 16, "stride": 4, "fill": 0.5, "output": "prob"},
    "lime": {"n_samples": 1000, "segmentation": "slic", "segmentation_kwargs": {"n_segments": 100}},
    "gradient": {},
}
PAPER_METHODS = ("rise", "lime", "gradcam", "occlusion")  # Table 1's order by deletion / insertion (ResNet50)
LABELS = {"rise": "RISE", "gradcam": "Grad-CAM", "occlusion": "sliding window", "lime": "LIME", "gradient": "gradient",
          "center": "centre baseline", "oracle": "oracle (ground-truth evidence)", "random": "random"}
#: the deletion substrates: the paper's mean colour, and a blurred copy (mean colour leaves a grey silhouette)
DELETION_SUBSTRATES = ("mean", "blur")
#: the pointing game's ground truths on the embedded scenes: the target class's object boxes (the paper's) and its
#: evidence (benchmark v2)
POINTING_GTS = ("object", "evidence")
#: validity rules of deletion / insertion (as ``lightning_modules.benchmarks.validity``; pointing:
#: ``lightning_modules.reporting.validity.pointing_specs``): after the first step at most this share of the best
#: method's mean drop / rise is done; one step at most this share of the mean evidence area; the blurred insertion
#: start at most this many times chance
MAX_FIRST_STEP_SHARE = 0.9
MAX_STEP_SHARE_OF_MEAN_EVIDENCE = 0.25
MAX_BLURRED_START_OVER_CHANCE = 3.0


@dataclass
class CausalConfig:
    """Deletion / insertion (Sec. 4.1): pixels per step (None: the paper's 28 steps), the insertion start's blur
    (None: the paper's kernel 11 / sigma 5 at 224 px scaled with the image side), the largest batch of perturbed
    images per forward pass, and the reference rows (``oracle``: the ground-truth evidence; ``random``)."""

    pixels_per_step: int | None = None
    blur_kernel: int | None = None
    blur_sigma: float | None = None
    max_batch: int = 256
    references: list[str] = field(default_factory=lambda: ["oracle", "random"])


@dataclass
class PointingConfig:
    """Pointing game (Sec. 4.2): the hit tolerance in pixels (None: 15 px at 224 px, scaled)."""

    tolerance: float | None = None


@dataclass
class StabilityConfig:
    """RISE vs the number of masks: the N values (each <= ``methods.rise.n_masks``), the mask seeds besides
    RISE's own, and the number of images."""

    n_values: list[int] = field(default_factory=lambda: [50, 100, 250, 500, 1000])
    seeds: list[int] = field(default_factory=lambda: [1, 2])
    n_images: int = 6


@dataclass
class BenchmarkConfig:
    """RISE's cost against its N masked forward passes, measured in the run."""

    n_images: int = 1
    repeats: int = 2
    enabled: bool = True


def scaled_blur(side: int) -> tuple[int, float]:
    """RISE's insertion blur (kernel 11, sigma 5 at 224 px) scaled with the image side: sigma = 5 * side / 224,
    the kernel the odd integer nearest 11 * side / 224 (at least 3)."""
    sigma = P.INSERTION_BLUR["sigma"] * side / 224
    k = max(3, 2 * int(round((P.INSERTION_BLUR["kernel"] * side / 224 - 1) / 2)) + 1)
    return k, float(sigma)


def evidence_precision(maps: torch.Tensor, evidence: torch.Tensor) -> torch.Tensor:
    """Per image: the share of the map's top-A pixels (A = the evidence's area; ties by pixel index, as the
    deletion order) that lie on the evidence. 1 for the oracle; what deletion with small steps rewards."""
    flat, ev = maps.flatten(1), evidence.flatten(1).bool()
    area = ev.sum(1, keepdim=True)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ((rank < area) & ev).sum(1).float() / area[:, 0].clamp_min(1).float()


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Pearson correlation of flattened maps ``(B, ...)``."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


class RiseReplication(ReplicationModule):
    """See the module docstring. Constructor arguments are the config's ``model:`` section.

    Args:
        model: the black box: ``{"blackbox": "default"}`` (the cached scenes network) or ``load_model`` kwargs
            (``{"name": "resnet50", "pretrained": true}``).
        pointing_model: the model of the pointing game (paper: VOC07 / COCO fine-tuned); None = ``model``.
        methods: explainer name -> constructor kwargs; must contain ``rise``.
        causal, pointing, stability, benchmark: typed sections (``CausalConfig``, ``PointingConfig``,
            ``StabilityConfig``, ``BenchmarkConfig``): LightningCLI checks their types and ``--print_config`` shows
            their defaults.
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
        bad_refs = set(self.causal_cfg["references"]) - {"oracle", "random"}
        if bad_refs:
            raise ValueError(f"causal.references must be among ['oracle', 'random'], got {sorted(bad_refs)}")
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
        self.timings: dict[str, float] = {}
        self.validation: dict = {}
        self._reset_state()

    def _reset_state(self):
        self.metrics = nn.ModuleDict()
        self.results: dict = {}
        self.examples: dict = {}
        self.stability: dict = {}
        self.bench: dict = {}
        self._bench_images = None
        self._image_size = None
        self._evidence_area: list[torch.Tensor] = []
        self._pointing_labels: list[int] = []
        self.causal_used: dict = {}

    # ------------------------------------------------------------------ models
    def _load(self, cfg: dict) -> nn.Module:
        cfg = dict(cfg)
        if "blackbox" in cfg:
            from lightning_modules.blackbox import load_blackbox

            model, _ = load_blackbox(cfg.pop("blackbox"), **cfg)
            self.blackbox_info = dict(getattr(model, "blackbox_info", {}) or {})
        elif "embedded_v2" in cfg:
            # benchmark v2's shipped, hash-checked models (lightning_modules.embedded_v2)
            from lightning_modules.embedded_v2 import load_embedded_v2

            name = cfg.pop("embedded_v2")
            if cfg:
                raise ValueError(f"model.embedded_v2 takes no other keys, got {sorted(cfg)}")
            model, _ = load_embedded_v2(name)
            self.blackbox_info = {"name": name, **dict(getattr(model, "embedded_info", {}) or {})}
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
            if self._scenes_source() or dataloader_idx == 0:
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

    # ------------------------------------------------------------------ evaluation
    def on_test_start(self) -> None:
        self._ensure_models()
        self._check_pointing_classes()
        self._reset_state()
        ckw = dict(self.causal_cfg)
        if ckw["blur_kernel"] is None or ckw["blur_sigma"] is None:
            size = self._input_size()
            if size is None:
                raise ValueError("the image size is unknown: set causal.blur_kernel and causal.blur_sigma")
            k, sigma = scaled_blur(min(size))
            ckw["blur_kernel"] = ckw["blur_kernel"] or k
            ckw["blur_sigma"] = ckw["blur_sigma"] or sigma
        self.causal_used = ckw
        m = {}
        for name in self.methods + self.references:
            for sub in DELETION_SUBSTRATES:
                m[f"del_{sub}_{name}"] = DeletionAUC(substrate=sub, **ckw)
            m[f"ins_{name}"] = InsertionAUC(**ckw)
            m[f"prec_{name}"] = SampleValues("precision")
        for name in self.methods + self.references + ["center"]:
            m[f"pg_{name}"] = PointingGame(tolerance=self.pointing_cfg["tolerance"])
            m[f"pg_evidence_{name}"] = PointingGame(tolerance=self.pointing_cfg["tolerance"])
        m["labels"] = SampleValues("label")  # the per-image target class (the validity's per-class means)
        self.metrics = nn.ModuleDict(m).to(self.device)
        self._test_started = time.time()

    def _timed(self, key: str, fn, *args):
        t0 = time.time()
        out = fn(*args)
        self.timings[key] = round(self.timings.get(key, 0.0) + time.time() - t0, 2)
        return out

    def _maps(self, model, images, targets, also: torch.Tensor | None = None) -> dict[str, tuple]:
        """Maps of every method for ``targets`` and, when given, for the second targets ``also`` (the pointing
        game's ground-truth class next to the top-1 class). RISE gives both from one pass (all classes);
        the others re-explain only the images whose two targets differ."""
        out = {}
        for name, ex in self.explainers.items():
            if name == "rise":
                scores = self._timed("rise_s", ex.class_scores, model, images)  # (B, N, K)
                size = images.shape[-2:]
                first = ex.maps_from_scores(scores.gather(2, targets.view(-1, 1, 1).expand(-1, scores.shape[1], 1))[..., 0], size)
                second = None
                if also is not None:
                    second = ex.maps_from_scores(scores.gather(2, also.view(-1, 1, 1).expand(-1, scores.shape[1], 1))[..., 0], size)
                out[name] = (first, second, scores)
                continue
            first = self._timed(f"{name}_s", ex, model, images, targets)
            second = None
            if also is not None:
                second = first.clone()
                differ = (also != targets).nonzero().flatten()
                if differ.numel():
                    second[differ] = self._timed(f"{name}_s", ex, model, images[differ], also[differ])
            out[name] = (first, second, None)
        return out

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        images = batch["image"].to(self.device)
        self._image_size = tuple(images.shape[-2:])
        scenes = self._scenes_source()
        ids = batch["id"].to(self.device)
        if scenes or dataloader_idx == 0:
            model = self.blackbox
            with torch.no_grad():
                preds = model(images).argmax(1)  # RISE evaluates the top-1 class of the unperturbed image
            labels = batch["label"].to(self.device) if scenes else None
            maps = self._maps(model, images, preds, also=labels)
            causal_maps = {name: v[0] for name, v in maps.items()}
            if "random" in self.references:
                # seeded by sample id: a sample's map does not depend on its batch or process
                causal_maps["random"] = id_seeded_random_maps(ids, tuple(images.shape[-2:])).to(images.dtype)
            if "oracle" in self.references:
                if self._evidence(batch) is None:
                    raise ValueError("the oracle reference needs the ground-truth evidence (the scenes' evidence_mask "
                                     "or head_mask); remove 'oracle' from causal.references for this data")
                causal_maps["oracle"] = self._oracle(batch)
            for name, m_map in causal_maps.items():
                for sub in DELETION_SUBSTRATES:
                    self._timed("deletion_insertion_s", self.metrics[f"del_{sub}_{name}"].update, model, images, m_map, preds, ids)
                self._timed("deletion_insertion_s", self.metrics[f"ins_{name}"].update, model, images, m_map, preds, ids)
            evidence = self._evidence(batch)
            if evidence is not None:
                self._evidence_area.append(evidence.flatten(1).sum(1).float())
                for name, m_map in causal_maps.items():
                    self.metrics[f"prec_{name}"].update(ids, precision=evidence_precision(m_map, evidence))
            if batch_idx == 0:
                self._first_batch(model, images, preds, batch, maps)
            if scenes:
                point_maps = {n: v[1] for n, v in maps.items()}
                if "random" in self.references:
                    point_maps["random"] = causal_maps["random"]
                if "oracle" in self.references:  # the evidence of the label (the pointing target)
                    point_maps["oracle"] = self._oracle(batch)
                self._pointing(batch, labels, point_maps, ids, use_mask=False)
        else:
            model = self.pointing_blackbox
            labels = batch["label"].to(self.device)
            maps = self._maps(model, images, labels)
            self._pointing(batch, labels, {n: v[0] for n, v in maps.items()}, ids, use_mask="mask" in batch)

    def _evidence(self, batch) -> torch.Tensor | None:
        """The ground-truth class evidence of the label's object on the module's device (``evidence_of``)."""
        evidence = evidence_of(batch)
        return None if evidence is None else evidence.to(self.device)

    def _oracle(self, batch) -> torch.Tensor:
        """The ground-truth evidence as a map: the evidence (1) over everything else (0); ties are broken by a
        faint blur of the mask, so the evidence's centre goes first and its surroundings before the far
        background."""
        evidence = self._evidence(batch).float()
        from torchvision.transforms.functional import gaussian_blur

        k, sigma = scaled_blur(evidence.shape[-1])
        return evidence + 1e-3 * gaussian_blur(evidence, [k, k], [sigma, sigma])

    def _pointing(self, batch, labels, maps: dict, ids, use_mask: bool):
        """Scenes: the boxes of the ground-truth class (VOC-style); paper data: the loaders' pointing mask (VOC:
        union of the class's boxes at the original resolution; COCO: segmentation), as TorchRay."""
        b, _, h, w = next(iter(maps.values())).shape
        kw = {"difficult": batch.get("difficult"), "ids": ids}
        if use_mask:
            kw["masks"] = batch["mask"].to(self.device)
        else:
            kw["boxes"] = batch["boxes"].to(self.device)
            kw["box_labels"] = batch["box_labels"].to(self.device)
        maps = {**maps, "center": center_heatmaps(b, h, w, self.device)}
        evidence = self._evidence(batch) if not use_mask else None
        for name, m in maps.items():
            self.metrics[f"pg_{name}"].update(m, labels, **kw)
            if evidence is not None:  # the evidence of the label's object as the ground truth
                self.metrics[f"pg_evidence_{name}"].update(m, labels, masks=evidence, difficult=kw["difficult"], ids=ids)
        self.metrics["labels"].update(ids, label=labels)

    def _first_batch(self, model, images, preds, batch, maps):
        """Examples for the figure, the stability study and the benchmark's images (rank zero reports them)."""
        k = min(self.n_example_images, images.shape[0])
        self.examples = {
            "images": images[:k].cpu(), "preds": preds[:k].cpu(), "labels": batch["label"][:k].cpu(),
            "maps": {n: v[0][:k].cpu() for n, v in maps.items()},
        }
        self._bench_images = images[: self.benchmark_cfg["n_images"]]
        self._bench_targets = preds[: self.benchmark_cfg["n_images"]]
        t0 = time.time()
        self._stability(model, images, preds, maps["rise"][2])
        self.timings["stability_s"] = round(time.time() - t0, 2)

    def _stability(self, model, images, preds, scores0):
        n_img = min(int(self.stability_cfg["n_images"]), images.shape[0])
        images, preds = images[:n_img], preds[:n_img]
        size = images.shape[-2:]
        pick = lambda s: s.gather(2, preds.view(-1, 1, 1).expand(-1, s.shape[1], 1))[..., 0]  # noqa: E731
        seeds = [self.rise.seed] + [int(s) for s in self.stability_cfg["seeds"]]
        explainers = {self.rise.seed: self.rise}
        per_seed_scores = {self.rise.seed: pick(scores0[:n_img])}
        for s in seeds[1:]:
            ex = RISE(**{**self.method_kwargs["rise"], "seed": s})
            explainers[s] = ex
            per_seed_scores[s] = pick(ex.class_scores(model, images))
        del_m, ins_m = self.metrics["del_mean_rise"], self.metrics["ins_rise"]
        n_values = [int(n) for n in self.stability_cfg["n_values"]]
        res = {"n_values": n_values, "seeds": seeds, "n_images": n_img, "deletion": {}, "insertion": {}, "seed_corr": {},
               "ref_corr": {}}
        ref = explainers[seeds[0]].maps_from_scores(per_seed_scores[seeds[0]], size)  # N_max, first seed
        maps_n = {}
        for n in n_values:
            maps_n[n] = {s: explainers[s].maps_from_scores(per_seed_scores[s], size, n) for s in seeds}
            res["deletion"][n] = [float(trapezoid_auc(del_m.curves(model, images, maps_n[n][s], preds)).mean()) for s in seeds]
            res["insertion"][n] = [float(trapezoid_auc(ins_m.curves(model, images, maps_n[n][s], preds)).mean()) for s in seeds]
            pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
            if not pairs:
                raise ValueError("the stability study needs at least one seed besides RISE's own: set stability.seeds")
            per_image = torch.stack([_pearson_rows(maps_n[n][a], maps_n[n][b]) for a, b in pairs]).mean(0)
            res.setdefault("seed_corr_per_image", {})[n] = per_image.tolist()
            res["seed_corr"][n] = float(per_image.mean())
            res["ref_corr"][n] = float(_pearson_rows(maps_n[n][seeds[0]], ref).mean())
        res["example_maps"] = {n: {s: maps_n[n][s][:1].cpu() for s in seeds[:2]} for n in n_values}
        res["example_image"] = images[:1].cpu()
        self.stability = res

    def on_test_epoch_end(self) -> None:
        res = {}
        for name in self.methods + self.references:
            r = {}
            for sub in DELETION_SUBSTRATES:
                key = "deletion" if sub == "mean" else f"deletion_{sub}"
                metric = self.metrics[f"del_{sub}_{name}"]
                r[f"{key}_per_image"] = metric.per_sample()["auc"].cpu().tolist()
                r[key] = sum(r[f"{key}_per_image"]) / len(r[f"{key}_per_image"])
                r[f"{key}_curve"] = metric.mean_curve().cpu()
            ins = self.metrics[f"ins_{name}"]
            r["insertion_per_image"] = ins.per_sample()["auc"].cpu().tolist()
            r["insertion"] = sum(r["insertion_per_image"]) / len(r["insertion_per_image"])
            r["insertion_curve"] = ins.mean_curve().cpu()
            r["n_causal"] = len(r["insertion_per_image"])
            prec = self.metrics[f"prec_{name}"]
            if prec.update_count:
                r["evidence_precision_per_image"] = prec.values("precision").cpu().tolist()
                r["evidence_precision"] = sum(r["evidence_precision_per_image"]) / r["n_causal"]
            res[name] = r
        for name in self.methods + self.references + ["center"]:
            for gt in POINTING_GTS:
                pg = self.metrics[f"pg_{name}" if gt == "object" else f"pg_evidence_{name}"]
                if pg.update_count == 0:  # no evidence ground truth (paper data)
                    continue
                vals = pg.compute()
                ps = pg.per_sample()
                key = "pointing" if gt == "object" else "pointing_evidence"
                res.setdefault(name, {}).update({
                    f"{key}_all": 100 * float(vals["all"]), f"{key}_difficult": 100 * float(vals["difficult"]),
                    # per image (sorted by sample id): the paired unit of the pointing claims
                    f"{key}_hits": ps["hits"].cpu().tolist(),
                })
                if gt == "object":
                    res[name].update({"n_pointing": int(ps["hits"].numel()), "n_difficult": int(ps["difficult"].sum()),
                                      "pointing_difficult_flags": ps["difficult"].cpu().bool().tolist()})
        if self.metrics["labels"].update_count:
            self._pointing_labels = [int(x) for x in self.metrics["labels"].values("label").cpu().tolist()]
        self.results = res
        self.timings["test_s"] = round(time.time() - self._test_started, 1)
        if self.benchmark_cfg["enabled"] and self._bench_images is not None and (self.trainer is None or self.trainer.is_global_zero):
            from lightning_modules.benchmarks.rise import benchmark_rise

            t0 = time.time()
            ex = RISE(**self.method_kwargs["rise"])
            self.bench = benchmark_rise(self.blackbox, self._bench_images, self._bench_targets, explainer=ex,
                                        repeats=int(self.benchmark_cfg["repeats"]))
            self.timings["benchmark_s"] = round(time.time() - t0, 1)

    # ------------------------------------------------------------------ report
    def _steps(self) -> tuple[int, int]:
        h, w = self._image_size or (0, 0)
        step = self.causal_cfg["pixels_per_step"] or default_pixels_per_step(h, w)
        return int(step), math.ceil(h * w / step)

    def plain_results(self) -> dict:
        """Every number the claims read (``claims.build_claims``): per method the mean and per-image AUCs (sorted
        by sample id, the same images for every method), per-image pointing hits, the stability study's per-image
        map correlations, the benchmark, and the protocol's settings."""
        step, n_steps = self._steps()
        per_method = {m: {k: v for k, v in r.items() if not k.endswith("_curve")} for m, r in self.results.items()}
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
            "benchmark": {k: v for k, v in self.bench.items() if isinstance(v, (int, float, str)) or v is None},
        }
        if self._evidence_area:
            area = torch.cat(self._evidence_area)
            out["evidence_area_px"] = {"median": float(area.median()), "min": float(area.min()),
                                       "max": float(area.max()), "n": int(area.numel())}
        specs = self._validity_specs(step)
        if specs:
            out["protocol_validity"] = specs
        s = self.stability
        if s:
            out["stability"] = {k: s[k] for k in ("n_values", "seeds", "n_images", "deletion", "insertion", "seed_corr",
                                                  "seed_corr_per_image", "ref_corr")}
        return out

    def _validity_specs(self, step: int) -> dict:
        """The inputs of every protocol's validity verdict (``lightning_modules.reporting.validity``): per-image
        values of the oracle, random and every method, and the protocol's own checks with this run's numbers."""
        if not {"oracle", "random"} <= set(self.references):
            return {}
        names = self.methods + ["oracle", "random"]
        res = self.results
        specs = {}
        evidence_mean = float(torch.cat(self._evidence_area).float().mean()) if self._evidence_area else math.nan
        n_classes = getattr(getattr(self.blackbox, "scenes_config", None), "num_classes", None)
        for protocol, key, higher in (("deletion", "deletion", False), ("deletion_blur", "deletion_blur", False),
                                      ("insertion", "insertion", True)):
            values = {n: res[n][f"{key}_per_image"] for n in names}
            sign = 1 if higher else -1
            best = max(self.methods, key=lambda n: sign * res[n][key])
            mc = res[best][f"{key}_curve"]
            span = float(mc[-1] - mc[0])
            first = float((mc[1] - mc[0]) / span) if span != 0 else math.nan
            checks = {"first_step": {"value": first, "op": "<=", "bound": MAX_FIRST_STEP_SHARE,
                                     "text": f"share of {best}'s mean {'rise' if higher else 'drop'} done by the first step"}}
            if not higher:
                checks["step_below_evidence"] = {
                    "value": step / evidence_mean, "op": "<=", "bound": MAX_STEP_SHARE_OF_MEAN_EVIDENCE,
                    "text": f"one step ({step} px) over the mean evidence area ({evidence_mean:.0f} px)"}
            elif n_classes:
                start = float(res["random"]["insertion_curve"][0])
                checks["blurred_start_uninformative"] = {
                    "value": start * n_classes, "op": "<=", "bound": MAX_BLURRED_START_OVER_CHANCE,
                    "text": f"the blurred start's score ({start:.3f}) over chance (1/{n_classes})"}
            specs[protocol] = protocol_spec(values, higher, checks=checks)
        flags = res["rise"].get("pointing_difficult_flags")
        for gt in POINTING_GTS:
            key = "pointing" if gt == "object" else "pointing_evidence"
            if f"{key}_hits" in res["rise"]:
                specs.update(pointing_specs(gt, {n: res[n][f"{key}_hits"] for n in names}, self._pointing_labels, flags))
        return specs

    def build_report(self, report) -> None:
        from replications.petsiuk2018 import figures, tables
        from replications.contract import plain

        results = plain(self.plain_results())
        report.add_section("Setting", self._setting_text(results))
        tables.add_tables(results, report)
        figures.add_figures(self, report)
        report.add_section("Deviations from the paper", self._deviations_text(results))
        report.metrics.update({"timings_s": self.timings, "blackbox": self.blackbox_info})
        if self.validation:
            report.metrics["validation"] = self.validation

    def _setting_text(self, res: dict) -> str:
        r = self.results["rise"]
        h, w = self._image_size or (0, 0)
        c = res["causal"]
        tol = self.pointing_cfg["tolerance"] or default_tolerance(h, w)
        bb = self.blackbox_info
        acc = bb.get("test_accuracy", bb.get("val_accuracy"))
        acc_txt = f" (test accuracy {acc:.3f})" if isinstance(acc, (int, float)) else ""
        if "blackbox" in self.model_cfg:
            model_txt = f"the shipped v1 synthetic-scenes black box `load_blackbox('{self.model_cfg['blackbox']}')`{acc_txt}"
        elif "embedded_v2" in self.model_cfg:
            model_txt = (f"benchmark v2's shipped `{self.model_cfg['embedded_v2']}` "
                         f"(`load_embedded_v2`, SHA-256-checked weights){acc_txt}, on the v2 scenes (24 classes)")
        else:
            model_txt = f"`load_model({self.model_cfg})`"
        rk = self.rise.__dict__
        ev = res.get("evidence_area_px")
        step_txt = (f"{c['pixels_per_step']} px per step ({c['n_steps']} steps)"
                    + (f"; the ground-truth evidence of the target class covers {ev['median']:g} px in the "
                       f"median image (min {ev['min']:g}), so one step is {c['pixels_per_step'] / ev['median']:.2f} of "
                       "it (rule: at most half the median evidence area, so the metric resolves the order "
                       "within the evidence; the paper's 224*8 px per step scaled to the image area would be "
                       f"{default_pixels_per_step(h, w)} px, {default_pixels_per_step(h, w) / ev['median']:.2f} of it)" if ev else ""))
        lines = [
            f"- Model: {model_txt}; images {h}x{w}; {r['n_causal']} images for deletion/insertion, "
            f"{r['n_pointing']} for the pointing game ({r['n_difficult']} difficult: "
            + ("a distractor object of another class, or a small primary object)." if self._source() == "scenes_v2"
               else "several objects or a small object)."),
            f"- RISE: N = {rk['n_masks']} masks, s = {rk['grid_size']}, p = {rk['p']}, seed {rk['seed']}, removed pixels = "
            f"{rk['baseline']} (the paper's zeros in normalised space), softmax scores; chunk = {self.rise.last_chunk_size} "
            f"masked images per forward pass (memory budget {rk['memory_budget_mb']:g} MB).",
            "- Other methods: " + "; ".join(f"{LABELS.get(m, m)} `{self.method_kwargs[m]}`" for m in self.methods if m != "rise") + ".",
            f"- Deletion / insertion: {step_txt}; deletion to the model's mean colour (the paper's substrate) and, as a "
            f"second column, to the blurred image; insertion from a Gaussian blur with kernel {c['blur_kernel']}, sigma "
            f"{c['blur_sigma']:.3g} ("
            + ("set in the config: the paper's 11 / 5 in pixels, not scaled, because benchmark v2's class textures "
               "have fixed periods of 4 and 8 px, as natural texture, and a blur scaled to the image side (sigma "
               f"{scaled_blur(h)[1]:.2f} px) would keep the 8-px gratings; the blurred start's score is one of the "
               "insertion protocol's validity checks" if self.causal_cfg["blur_sigma"] is not None
               else f"the paper's 11 / 5 at 224 px scaled with the image side, {h} / 224")
            + "); softmax "
            "probability of the model's top-1 class; AUC by the trapezoid rule on [0, 1]. Reference rows: "
            + ", ".join(LABELS[m] for m in self.references) + " (the oracle ranks the evidence of the target class "
            "first).",
            f"- Pointing game: TorchRay's protocol (argmax of the map within {tol:.2f} px of a box of the ground-truth "
            "class; 15 px at 224 px scaled); the table gives TorchRay's mean over classes, the claims compare per-image "
            "hit rates (the paired unit of the bootstrap).",
            f"- Stability: RISE maps of the first {self.stability.get('n_images', 0)} images for N in "
            f"{self.stability.get('n_values')} and mask seeds {self.stability.get('seeds')}.",
            "- Orderings between methods are judged by a paired bootstrap over the images (95% interval of the mean "
            "difference; inconclusive when it contains zero).",
            "- Timings (s, this run; the machine is shared with other engineers' jobs, so they are inflated): "
            + ", ".join(f"{k} {v}" for k, v in self.timings.items()) + ".",
        ]
        if self.validation:  # fit ran the validation loop (the paper profiles): the models read the data
            lines.append("- Validation (before the test): " + "; ".join(
                f"{k} = {v['value']:.4f} on {v['samples']} images"
                for k, v in self.validation.items()) + ".")
        return "\n".join(lines)

    def _source(self) -> str:
        dm = self.trainer.datamodule if self.trainer is not None else None
        return getattr(dm, "source", "scenes_v2")

    def _deviations_text(self, res: dict) -> str:
        if not self._scenes_source():  # real data and published models (paper*.yaml)
            return "\n".join([
                "- Images are resized to the model's square input (no crop) by the shared loaders; TorchRay's pointing "
                "benchmark resizes the shorter side to 224 px and keeps the aspect ratio.",
                "- The sliding window's size, stride and fill and LIME's settings are ours (the paper's exact settings were "
                "not available); the Table 1 values are unconfirmed (PAPERS.md), the pointing references are TorchRay's "
                "re-run, not the RISE paper's Table 2.",
            ])
        h, w = self._image_size or (0, 0)
        lime = res["lime"]
        n_img = res["per_method"]["rise"]["n_causal"]
        return "\n".join([
            f"- Data and model: synthetic scenes ({h}x{w}, "
            + (f"benchmark v2 with its shipped `{self.model_cfg['embedded_v2']}`" if "embedded_v2" in self.model_cfg
               else "the shipped black box") + ") instead of ImageNet val with "
            "ResNet50/VGG16 (the `paper` profile has that setting, for GPUs; it was not run here).",
            f"- {n_img} images instead of ImageNet val's 50,000; N = {res['rise']['n_masks']} masks "
            + ("as the paper" if res["rise"]["n_masks"] == res["rise"]["paper_n_masks"] else
               f"instead of the paper's {res['rise']['paper_n_masks']}, to fit the CPU budget")
            + f" (the paper's N is unconfirmed; TorchRay {P.RISE_TORCHRAY['n_masks']}); the stability table measures "
            "the maps' and AUCs' agreement across mask seeds up to its largest N.",
            f"- LIME: {lime.get('n_samples')} samples ("
            + ("RISE's N: both spend the same forward passes per image" if lime.get("n_samples") ==
               res["rise"]["n_masks"] else "") + ("; " if lime.get("n_samples") == res["rise"]["n_masks"] else "")
            + ("the lime package's default for images" if lime.get("n_samples") == 1000 else
               "the lime package's default is 1000")
            + "; the paper's LIME settings were not available), SLIC superpixels sized "
            "for the image (`" + str(lime.get("segmentation_kwargs")) + "`) instead of lime's quickshift, which is "
            "tuned for 224-px images; the sliding window and its grey occluder are ours (the paper's exact window "
            "settings were not available).",
            "- Deletion steps are smaller than the paper's 28 (see Setting) and a blurred substrate is reported beside "
            "the mean colour; the insertion blur is "
            + ("the paper's in pixels, not scaled (see Setting)." if self.causal_cfg["blur_sigma"] is not None
               else "scaled with the image side."),
            "- The paper's Table 1 numbers are unconfirmed (recalled, PAPERS.md); the pointing-game references are "
            "TorchRay's re-run, not the RISE paper's Table 2.",
        ])
