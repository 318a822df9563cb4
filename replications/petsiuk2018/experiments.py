"""RISE replication (Petsiuk, Das & Saenko, BMVC 2018): the LightningModule that runs every experiment.

a. Deletion / insertion AUC (paper Sec. 4.1, Table 1) of RISE, Grad-CAM, sliding-window occlusion, LIME and the
   gradient, with the paper's protocol (``lightning_modules.metrics.causal``): pixels in decreasing saliency
   order, 28 steps (224*8 px per step at 224 px, scaled to the image area), deletion to the model's mean colour,
   insertion from a Gaussian blur (kernel 11, sigma 5), softmax probability of the top-1 class.
b. Pointing game (Sec. 4.2, Table 2; TorchRay's protocol), all and difficult samples, plus the centre baseline.
c. Stability of RISE: maps and AUCs vs the number of masks N and across mask seeds (the first n of the N
   i.i.d. masks are a RISE estimator with n masks, so one pass per seed gives every n).
d. Figures: mean deletion / insertion curves with their AUCs, example maps of every method.
Plus the RISE benchmark (time vs its N masked forward passes, peak memory vs the budget), measured in the run.

``fit`` learns nothing (RISE is training-free): ``training_step`` builds the RISE masks on the device, and
the CLI then runs ``test``, which evaluates everything and writes the report. ``validate`` (also run inside ``fit``
where the config does not set ``limit_val_batches: 0``, as the paper profiles) only runs the models on the data:
top-1 accuracy of the black box, and for the pointing model whether its top-1 class is present in the image.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn as nn

from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.rise import RISE
from lightning_modules.metrics.causal import DeletionAUC, InsertionAUC, default_pixels_per_step
from lightning_modules.metrics.pointing import PointingGame, center_heatmaps, default_tolerance
from lightning_modules.metrics._progressive import trapezoid_auc
from lightning_modules.metrics._samples import PerSampleMetric
from lightning_modules.reporting import Claim, Relation
from replications.cli import ReplicationModule
from replications.petsiuk2018 import paper as P

#: the methods of Table 1 (+ the gradient, as the issue asks), in report order
DEFAULT_METHODS = {
    "rise": {"n_masks": 1000, "grid_size": 7, "p": 0.5, "seed": 0},
    "gradcam": {},
    "occlusion": {"window": 16, "stride": 4, "fill": 0.5, "output": "prob"},
    "lime": {"n_samples": 200, "segmentation": "slic", "segmentation_kwargs": {"n_segments": 50}},
    "gradient": {},
}
PAPER_METHODS = ("rise", "lime", "gradcam", "occlusion")  # Table 1's order by deletion / insertion (ResNet50)
LABELS = {"rise": "RISE", "gradcam": "Grad-CAM", "occlusion": "sliding window", "lime": "LIME", "gradient": "gradient",
          "center": "centre baseline"}


class HitRate(PerSampleMetric):
    """Mean of a per-sample 0/1 outcome, kept per sample id so that DDP's padding duplicates count once."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._add_row_states("hits")

    def update(self, hits: torch.Tensor, ids: torch.Tensor) -> None:
        self._append_rows(ids, hits.shape[0], hits.device, hits=hits.float())

    def compute(self) -> torch.Tensor:
        return self._rows()["hits"].mean()

    def count(self) -> int:
        return int(self._rows()["hits"].numel())


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
        causal: deletion / insertion settings (``pixels_per_step`` None = 28 steps, ``substrate``, ``blur_kernel``,
            ``blur_sigma``, ``max_batch``).
        pointing: ``{"tolerance": None}`` (None = 15 px at 224 px, scaled).
        stability: ``n_values`` (masks), ``seeds`` (besides RISE's own), ``n_images``.
        benchmark: ``n_images``, ``repeats``, ``enabled``.
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
        causal: dict | None = None,
        pointing: dict | None = None,
        stability: dict | None = None,
        benchmark: dict | None = None,
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
        self.causal_cfg = {"pixels_per_step": None, "substrate": "mean", "blur_kernel": 11, "blur_sigma": 5.0,
                           "max_batch": 256, **(causal or {})}
        self.pointing_cfg = {"tolerance": None, **(pointing or {})}
        self.stability_cfg = {"n_values": [50, 100, 250, 500, 1000], "seeds": [1, 2], "n_images": 6, **(stability or {})}
        n_max = self.method_kwargs["rise"].get("n_masks", 4000)
        bad = [n for n in self.stability_cfg["n_values"] if not 1 <= int(n) <= n_max]
        if bad:
            raise ValueError(f"stability n_values {bad} must lie in [1, rise.n_masks={n_max}]; raise methods.rise.n_masks")
        self.benchmark_cfg = {"n_images": 1, "repeats": 2, "enabled": True, **(benchmark or {})}
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

    # ------------------------------------------------------------------ models
    def _load(self, cfg: dict) -> nn.Module:
        cfg = dict(cfg)
        if "blackbox" in cfg:
            from lightning_modules.blackbox import load_blackbox

            model, _ = load_blackbox(cfg.pop("blackbox"), **cfg)
            self.blackbox_info = dict(getattr(model, "blackbox_info", {}) or {})
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

    def training_step(self, batch, batch_idx):
        started = time.time()
        self._ensure_models()
        dm = self.trainer.datamodule
        size = getattr(getattr(self.blackbox, "scenes_config", None), "image_size", None)
        if size is None and getattr(dm, "imagenet", None) is not None:
            size = dm.imagenet.get("image_size", 224)
        if size is not None:
            size = (size, size) if isinstance(size, int) else tuple(size)
            self.rise.masks(size, self.device)
        self.timings["fit_masks_s"] = round(time.time() - started, 2)
        return None

    # ------------------------------------------------------------------ validate: the models read the data
    def _scenes_source(self) -> bool:
        return self.trainer.datamodule is None or getattr(self.trainer.datamodule, "source", "scenes") == "scenes"

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
        self.val_metrics = nn.ModuleDict({"acc": HitRate(), "pointing_top1_in_image": HitRate()}).to(self.device)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        """A cheap check that the models, their weights and preprocessing fit the data before the costly test:
        top-1 accuracy of the black box on the causal data (ImageNet val / the scenes; torchvision's ResNet50 V1
        weights: 76.13 %), and on the pointing loader the share of images whose top-1 class under the pointing model
        is one of the image's classes (each image counted once)."""
        images = batch["image"].to(self.device)
        with torch.no_grad():
            if self._scenes_source() or dataloader_idx == 0:
                preds = self.blackbox(images).argmax(1)
                self.val_metrics["acc"].update(preds == batch["label"].to(self.device), batch["id"].to(self.device))
            else:
                preds = self.pointing_blackbox(images).argmax(1)
                present = batch["multilabel"].to(self.device).gather(1, preds[:, None])[:, 0] > 0
                self.val_metrics["pointing_top1_in_image"].update(present, batch["image_index"].to(self.device))

    def on_validation_epoch_end(self) -> None:
        self.validation = {}
        for name, metric in self.val_metrics.items():
            if metric.update_count == 0:  # the scenes have no pointing loader
                continue
            value = metric.compute()
            # the metric is already synced across processes (de-duplicated by sample id)
            self.log(f"val/{name}", value, sync_dist=False, add_dataloader_idx=False)
            self.validation[name] = {"value": float(value), "samples": metric.count()}
            metric.reset()

    # ------------------------------------------------------------------ evaluation
    def on_test_start(self) -> None:
        self._ensure_models()
        self._check_pointing_classes()
        self._reset_state()
        ckw = {k: v for k, v in self.causal_cfg.items()}
        m = {}
        for name in self.methods:
            m[f"del_{name}"] = DeletionAUC(**ckw)
            m[f"ins_{name}"] = InsertionAUC(**ckw)
            m[f"pg_{name}"] = PointingGame(tolerance=self.pointing_cfg["tolerance"])
        m["pg_center"] = PointingGame(tolerance=self.pointing_cfg["tolerance"])
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
            for name, (m_pred, _, _) in maps.items():
                self._timed("deletion_insertion_s", self.metrics[f"del_{name}"].update, model, images, m_pred, preds, ids)
                self._timed("deletion_insertion_s", self.metrics[f"ins_{name}"].update, model, images, m_pred, preds, ids)
            if batch_idx == 0:
                self._first_batch(model, images, preds, batch, maps)
            if scenes:
                self._pointing(batch, labels, {n: v[1] for n, v in maps.items()}, ids, use_mask=False)
        else:
            model = self.pointing_blackbox
            labels = batch["label"].to(self.device)
            maps = self._maps(model, images, labels)
            self._pointing(batch, labels, {n: v[0] for n, v in maps.items()}, ids, use_mask="mask" in batch)

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
        for name, m in maps.items():
            self.metrics[f"pg_{name}"].update(m, labels, **kw)
        self.metrics["pg_center"].update(center_heatmaps(b, h, w, self.device), labels, **kw)

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
        del_m, ins_m = self.metrics["del_rise"], self.metrics["ins_rise"]
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
            res["seed_corr"][n] = float(torch.stack([_pearson_rows(maps_n[n][a], maps_n[n][b]) for a, b in pairs]).mean()) if pairs else float("nan")
            res["ref_corr"][n] = float(_pearson_rows(maps_n[n][seeds[0]], ref).mean())
        res["example_maps"] = {n: {s: maps_n[n][s][:1].cpu() for s in seeds[:2]} for n in n_values}
        res["example_image"] = images[:1].cpu()
        self.stability = res

    def on_test_epoch_end(self) -> None:
        res = {}
        for name in self.methods:
            res[name] = {
                "deletion": float(self.metrics[f"del_{name}"].compute()),
                "insertion": float(self.metrics[f"ins_{name}"].compute()),
                "deletion_curve": self.metrics[f"del_{name}"].mean_curve().cpu(),
                "insertion_curve": self.metrics[f"ins_{name}"].mean_curve().cpu(),
                "n_causal": int(self.metrics[f"del_{name}"].per_sample()["auc"].numel()),
            }
        for name in self.methods + ["center"]:
            pg = self.metrics[f"pg_{name}"]
            vals = pg.compute()
            ps = pg.per_sample()
            res.setdefault(name, {}).update({
                "pointing_all": 100 * float(vals["all"]), "pointing_difficult": 100 * float(vals["difficult"]),
                "n_pointing": int(ps["hits"].numel()), "n_difficult": int(ps["difficult"].sum()),
            })
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
    def build_report(self, report) -> None:
        from replications.petsiuk2018 import figures, claims

        report.add_section("Setting", self._setting_text())
        claims.add_causal(self, report)
        claims.add_pointing(self, report)
        claims.add_stability(self, report)
        claims.add_benchmark(self, report)
        figures.add_figures(self, report)
        report.add_section("Deviations from the paper", self._deviations_text())
        report.metrics.update({"results": {k: {kk: vv for kk, vv in v.items() if not kk.endswith("_curve")}
                                           for k, v in self.results.items()},
                               "timings_s": self.timings, "benchmark": self.bench, "blackbox": self.blackbox_info})
        if self.validation:
            report.metrics["validation"] = self.validation

    def _setting_text(self) -> str:
        r = self.results["rise"]
        h, w = self._image_size or (0, 0)
        step = self.causal_cfg["pixels_per_step"] or default_pixels_per_step(h, w)
        tol = self.pointing_cfg["tolerance"] or default_tolerance(h, w)
        bb = self.blackbox_info
        acc = bb.get("test_accuracy", bb.get("val_accuracy"))
        model_txt = (f"the cached synthetic-scenes black box `load_blackbox('{self.model_cfg['blackbox']}')`"
                     + (f" (test accuracy {acc:.3f})" if isinstance(acc, (int, float)) else "")
                     if "blackbox" in self.model_cfg else f"`load_model({self.model_cfg})`")
        rk = self.rise.__dict__
        lines = [
            f"- Model: {model_txt}; images {h}x{w}; {r['n_causal']} images for deletion/insertion, "
            f"{r['n_pointing']} for the pointing game ({r['n_difficult']} difficult: several objects or a small object).",
            f"- RISE: N = {rk['n_masks']} masks, s = {rk['grid_size']}, p = {rk['p']}, seed {rk['seed']}, removed pixels = "
            f"{rk['baseline']} (the paper's zeros in normalised space), softmax scores; chunk = {self.rise.last_chunk_size} "
            f"masked images per forward pass (memory budget {rk['memory_budget_mb']:g} MB).",
            "- Other methods: " + "; ".join(f"{LABELS.get(m, m)} `{self.method_kwargs[m]}`" for m in self.methods if m != "rise") + ".",
            f"- Deletion / insertion: {step} px per step ({math.ceil(h * w / step)} steps; the paper's 224*8 px at 224x224 "
            f"scaled to the image area), deletion substrate `{self.causal_cfg['substrate']}` (model mean colour), insertion "
            f"from a Gaussian blur (kernel {self.causal_cfg['blur_kernel']}, sigma {self.causal_cfg['blur_sigma']}); "
            "softmax probability of the model's top-1 class; AUC by the trapezoid rule on [0, 1].",
            f"- Pointing game: TorchRay's protocol (argmax of the map within {tol:.2f} px of a box of the ground-truth "
            "class; 15 px at 224 px scaled), mean over classes; the map is computed for the ground-truth class.",
            f"- Stability: RISE maps of the first {self.stability.get('n_images', 0)} images for N in "
            f"{self.stability.get('n_values')} and mask seeds {self.stability.get('seeds')}.",
            "- Timings (s, this run; the machine is shared with other engineers' jobs, so they are inflated): "
            + ", ".join(f"{k} {v}" for k, v in self.timings.items()) + ".",
        ]
        if self.validation:  # fit ran the validation loop (the paper profiles): the models read the data
            lines.append("- Validation (before the test): " + "; ".join(
                f"{k} = {v['value']:.4f} on {v['samples']} images"
                for k, v in self.validation.items()) + ".")
        return "\n".join(lines)

    def _deviations_text(self) -> str:
        if "blackbox" not in self.model_cfg:  # real data and published models (paper*.yaml)
            return "\n".join([
                "- Images are resized to the model's square input (no crop) by the shared loaders; TorchRay's pointing "
                "benchmark resizes the shorter side to 224 px and keeps the aspect ratio.",
                "- The sliding window's size, stride and fill and LIME's settings are ours (the paper's exact settings were "
                "not available); the Table 1 values are unconfirmed (PAPERS.md), the pointing references are TorchRay's "
                "re-run, not the RISE paper's Table 2.",
            ])
        return "\n".join([
            "- Data and model: synthetic scenes (64x64, 10 classes) and a small CNN instead of ImageNet val with "
            "ResNet50/VGG16 (the `paper` profile has that setting, for GPUs; it was not run here).",
            f"- Fewer images and masks than the paper (ImageNet val 50k images in Table 1, N = 4000 (unconfirmed) or 8000 "
            f"(TorchRay)): here N = {self.rise.n_masks} and a few dozen images, to fit the CPU budget; the stability "
            "study shows how far the maps and AUCs are from convergence at this N.",
            "- LIME uses SLIC superpixels sized for 64 px images instead of LIME's quickshift defaults for 224 px, and "
            "fewer samples; the sliding window is 16 px (1/4 of the image) with stride 4 and a grey (mean-colour) "
            "occluder: the paper's exact window settings were not available.",
            "- The paper's Table 1 numbers are unconfirmed (recalled, PAPERS.md); the pointing-game references are "
            "TorchRay's re-run, not the RISE paper's Table 2.",
        ])
