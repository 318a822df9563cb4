"""Khakzar et al. 2019 (PruneGrad) with its three benchmarks, as one LightningModule.

a. Sanity checks (Adebayo et al. 2018's cascading randomisation, the shared ``tasks.randomization`` code):
   PruneGrad and the compared methods; similarity of every stage's maps to the original maps.
b. Pixel perturbation (Khakzar Sec. 4): remove the least (LeRF) / most (MoRF) important pixels; the target
   output should hold under LeRF and fall under MoRF (shared ``metrics.PixelPerturbation``).
c. ROAR (Hooker et al. 2019; shared ``tasks.roar``): remove the top-t pixels of the training and test sets by
   each method's attribution, retrain from scratch, test accuracy vs t, against a random ranking.

(a) and (b) run in ``test_step`` on the test batches (torchmetrics, DDP-synced; samples keyed by ``batch["id"]``
so a padded uneven split counts each image once). (c) retrains models under their own Trainers at the end of the
test epoch on global rank zero (each retraining is itself a Lightning run and can use GPUs through
``roar_accelerator``/``roar_devices``; under a multi-process test run the other ranks wait at a barrier); an empty
``roar_methods`` skips it.

The explained classifier is benchmark v2's shipped model (``embedded_v2: scenes_v2_vgg``, on the v2 scenes; the
default), the cached v1 synthetic-scenes black box (``blackbox_profile``, embedded profiles) or any ``load_model``
network (``classifier: {name: torchvision/resnet50, pretrained: true}``, the published setting).
ROAR runs on the test DataModule's train/test splits and explains with the classifier, or, given ``roar_data``
(e.g. CIFAR-10, real MNIST), on that DataModule and explains with the model retrained on its unmodified data (the
reference row; RoarTorch's protocol). The flat ``roar_*`` arguments define one ROAR benchmark (``roar_name``);
``roar_extra: {name: {key: value}}`` adds further ones that override any of its settings (``data``, ``model``,
``fractions``, ...), each with its own cache folder, table, figure and claims. ``reference_pixel_images`` /
``reference_sanity_images`` also run (b) and (a) on the reference models of the benchmarks with their own data
(e.g. the MNIST CNN). ``validate`` reports the classifier's accuracy on the validation data and reads the
ROAR data: a cheap check that a configuration's model, weights and datasets load.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from torchmetrics.aggregation import MeanMetric  # noqa: E402

from lightning_modules.blackbox import load_blackbox  # noqa: E402
from lightning_modules.data.schema import evidence_of  # noqa: E402
from lightning_modules.explainers import create_explainer  # noqa: E402
from lightning_modules.explainers.baselines import id_seeded_random_maps  # noqa: E402
from lightning_modules.explainers.prunegrad import PruneGrad  # noqa: E402
from lightning_modules.metrics import PerSampleMetric, PixelPerturbation  # noqa: E402
from lightning_modules.models import load_model  # noqa: E402
from lightning_modules.reporting import Report  # noqa: E402
from lightning_modules.tasks.randomization import ModelRandomizationTest, resolve_order  # noqa: E402
from lightning_modules.tasks.roar import (  # noqa: E402
    REFERENCE, RoarConfig, RoarPipeline, attribution_timing, cached_attributions, mask_only_name, random_attributions,
    remove_top_fraction,
)
from lightning_modules.utils import REPO_ROOT  # noqa: E402
from replications.cli import ReplicationModule  # noqa: E402
from replications.khakzar2019 import nets, paper  # noqa: E402,F401  (nets registers roar_mnist_cnn)
from replications.khakzar2019.claims import ORACLE, pixel_validity_specs  # noqa: E402

#: Explainer settings shared by the three benchmarks (names -> create_explainer kwargs; an ``explainer`` key names
#: the registered explainer when the method name differs, so PruneGrad can appear under both threshold rules).
#: ``prunegrad`` is the official rule (one global percentile over all ReLU neurons; the claims read it);
#: ``prunegrad_active`` takes the percentile over the neurons with a nonzero score only (``scope: active``), a side
#: row: in sparse small CNNs most scores are exactly zero and the official rule then prunes only neurons that carry
#: no gradient, so it equals the plain gradient (table ``prunegrad_threshold_rules`` measures this).
DEFAULT_METHODS = {
    "prunegrad": {"percentile": 70.0, "scope": "all"},
    "prunegrad_active": {"explainer": "prunegrad", "percentile": 70.0, "scope": "active"},
    "gradient": {},
    "input_x_gradient": {},
    "guided_backprop": {},
    "integrated_gradients": {"steps": 32},
    "gradcam": {},
}
DEFAULT_ROAR_METHODS = {
    "prunegrad": {"percentile": 70.0, "scope": "all"},
    "gradient": {},
    "integrated_gradients": {"steps": 16},
    "smoothgrad_sq": {"n_samples": 16, "stdev": 0.15},
    "vargrad": {"n_samples": 16, "stdev": 0.15},
    "guided_backprop": {},
    "gradcam": {},
    "random": {},
}


def make_explainer(name: str, kwargs: dict | None):
    """``create_explainer`` for a method entry: ``kwargs`` may name the registered explainer (``explainer: prunegrad``)."""
    kw = dict(kwargs or {})
    return create_explainer(kw.pop("explainer", name), **kw)


#: Settings of one ROAR benchmark (the flat ``roar_<key>`` arguments define the first; ``roar_extra`` entries
#: override any of them for further datasets).
ROAR_KEYS = ("data", "methods", "train_size", "test_size", "fractions", "seeds", "model", "model_kwargs", "epochs",
             "batch_size", "lr", "weight_decay", "optimizer", "scheduler", "downsample", "accelerator", "devices",
             "threads", "attribution_batch", "fill", "fill_noise", "mask_only_control", "reference_benchmarks")


#: bumped when the ROAR code changes what a cached (method, fraction, seed) result means
ROAR_CACHE_VERSION = 2


def _instantiate(spec):
    """A DataModule given as ``{class_path, init_args}`` (as in the YAML configs) or an instance."""
    if spec is None or isinstance(spec, pl.LightningDataModule):
        return spec
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"ROAR data must be a LightningDataModule or {{class_path: ..., init_args: {{...}}}}, got {spec!r}")
    module, _, cls = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), cls)(**dict(spec.get("init_args") or {}))


def cascade_summary(test: ModelRandomizationTest) -> dict:
    """Plain per-stage results of a cascading randomisation test: ``order``, ``means`` (stage -> method -> measure
    -> mean over the images whose map is defined), ``constant`` (stage -> method -> images whose map is constant)
    and ``final_spearman_abs`` (method -> per-image Spearman |.| at the last stage, ``None`` where undefined).

    A constant map (PruneGrad's all-zero map once its pruning cuts every path of a randomised network, Grad-CAM's
    all-zero ReLU) has no rank correlation with the original: its Spearman is undefined, neither a pass nor a
    failure, so it is left out of the means and counted; a stage where every map is constant has no mean (None)."""
    per = test.compute(per_sample=True)["cascading"]
    out: dict = {"order": list(test.order), "means": {}, "constant": {}}
    for stage, methods in per.items():
        out["means"][stage], out["constant"][stage] = {}, {}
        for m, vals in methods.items():
            row = {}
            for k in ("spearman_abs", "spearman_no_abs", "ssim", "hog"):
                v = vals[k].float()
                row[k] = float(v[~torch.isnan(v)].mean()) if (~torch.isnan(v)).any() else None
            out["means"][stage][m] = row
            out["constant"][stage][m] = int(torch.isnan(vals["spearman_abs"]).sum())
    last = per[test.order[-1]]
    out["final_spearman_abs"] = {m: [None if x != x else float(x) for x in vals["spearman_abs"].tolist()] for m, vals in last.items()}
    out["images"] = int(next(iter(last.values()))["ids"].numel())
    return out


def evidence_precision(importance: torch.Tensor, evidence: torch.Tensor) -> torch.Tensor:
    """(B,) share of each image's top-k pixels by ``importance`` that lie in ``evidence`` (k = its evidence pixels):
    how far a ranking puts the class evidence (the scenes' head, MNIST's strokes) first. Ties by pixel index."""
    imp, ev = importance.flatten(1), evidence.flatten(1).bool()
    k = ev.sum(1)
    order = imp.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(imp.shape[1], device=imp.device).expand_as(order))
    top = ranks < k[:, None]
    return (top & ev).sum(1).float() / k.clamp(min=1).float()


def mask_only_accuracy(train_masks: torch.Tensor, y_train: torch.Tensor, test_masks: torch.Tensor, y_test: torch.Tensor,
                       num_classes: int, ridge: float = 1.0) -> float:
    """Test accuracy of a linear classifier that sees only the removal masks (ridge regression on one-hot labels,
    closed form, with a bias): how much class information the removal *pattern* carries, with no pixel values. A
    lower bound for what a retrained CNN can read from it (the mask-only control of ROAR's leakage, Rong et al. 2022)."""
    def design(m):
        x = m.flatten(1).double()
        return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1)

    x = design(train_masks)
    y = torch.nn.functional.one_hot(y_train.long(), num_classes).double()
    w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
    return float((design(test_masks) @ w).argmax(1).eq(y_test.long()).double().mean())


class TestRows(PerSampleMetric):
    """Per test image (keyed by ``batch["id"]``, de-duplicated across processes): whether the prediction is correct,
    PruneGrad's zero-score share and whether the official rule's map equals the plain gradient."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._add_row_states("correct", "zero_share", "official_equal")

    def update(self, ids, correct, zero_share, official_equal) -> None:
        self._append_rows(ids, correct.shape[0], correct.device, correct=correct.float(), zero_share=zero_share.float(),
                          official_equal=official_equal.float())

    def compute(self) -> dict:
        return self._rows()


class EvidenceRows(PerSampleMetric):
    """Per test image: the evidence precision of one method's map (see ``evidence_precision``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._add_row_states("precision")

    def update(self, ids, precision) -> None:
        self._append_rows(ids, precision.shape[0], precision.device, precision=precision.float())

    def compute(self) -> torch.Tensor:
        return self._rows()["precision"]


def pixel_block(fractions, curves: dict, evidence: dict | None = None) -> dict:
    """Plain pixel-perturbation results of one model: ``curves`` = method -> {"morf"|"lerf" -> {"logit"|"prob" ->
    (N, K) per-image curves}} (same images, same order). The logit (our primary output) and the official code's
    measure |p0 - p_k| / p0 of the predicted class's softmax probability (RoarTorch ``pixel_perturbation_analysis``)
    per fraction (mean curve) and per image (mean over the fractions > 0: the claims' samples)."""
    fr = [float(f) for f in fractions]
    later = torch.tensor([f > 0 for f in fr])
    out: dict = {"fractions": fr, "curves": {"logit": {}, "dp": {}}, "per_image": {"logit": {}, "dp": {}}}
    for order in ("morf", "lerf"):
        for key in ("logit", "dp"):
            out["curves"][key][order], out["per_image"][key][order] = {}, {}
        for m, c in curves.items():
            logit, prob = c[order]["logit"].double(), c[order]["prob"].double()
            p0 = prob[:, :1]
            dp = ((p0 - prob) / p0).abs()
            for key, v in (("logit", logit), ("dp", dp)):
                out["curves"][key][order][m] = v.mean(0).tolist()
                out["per_image"][key][order][m] = v[:, later].mean(1).tolist()
    out["images"] = int(next(iter(curves.values()))["morf"]["logit"].shape[0])
    if evidence:
        out["evidence_precision"] = {m: v.double().tolist() for m, v in evidence.items()}
    return out


class Khakzar2019Replication(ReplicationModule):
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
        classifier: dict | None = None,
        embedded_v2: str | None = None,
        methods: dict[str, dict] | None = None,
        sanity_images: int = 32,
        sanity_init: str = "normal",
        sanity_std: float = 0.1,
        sanity_stages: int | None = None,
        sanity_order: list[str] | None = None,
        pass_threshold: float = 0.5,
        pixel_fractions: list[float] | None = None,
        pixel_substrate: str = "mean",
        pixel_output: str = "logit",
        roar_methods: dict[str, dict] | None = None,
        roar_data: pl.LightningDataModule | None = None,
        roar_train_size: int | None = 2000,
        roar_test_size: int | None = 500,
        roar_fractions: list[float] | None = None,
        roar_seeds: list[int] | None = None,
        roar_model: str = "scenes_cnn",
        roar_model_kwargs: dict | None = None,
        roar_epochs: int = 4,
        roar_batch_size: int = 64,
        roar_lr: float = 3e-3,
        roar_weight_decay: float = 1e-4,
        roar_optimizer: str = "adamw",
        roar_scheduler: str = "cosine",
        roar_downsample: int = 1,
        roar_accelerator: str = "cpu",
        roar_devices: int = 1,
        roar_attribution_batch: int = 100,
        roar_threads: int | None = 1,
        roar_fill: str = "mean",
        roar_fill_noise: float = 0.01,
        roar_mask_only_control: bool = False,
        roar_reference_benchmarks: bool = True,
        roar_name: str = "scenes",
        roar_extra: dict[str, dict] | None = None,
        reference_pixel_images: int = 0,
        reference_sanity_images: int = 0,
        work_dir: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["roar_data"])
        self.roar_data = roar_data
        self.methods = dict(methods if methods is not None else DEFAULT_METHODS)
        self.roar_methods = dict(roar_methods if roar_methods is not None else DEFAULT_ROAR_METHODS)
        if "prunegrad" not in self.methods:
            raise ValueError("methods must include 'prunegrad': it is the method this replication is about")
        self.pixel_fractions = list(pixel_fractions or [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
        self.roar_fractions = list(roar_fractions or [0.1, 0.3, 0.5, 0.7, 0.9])
        self.roar_seeds = list(roar_seeds or [0])
        self.roar_setups = self._resolve_roar_setups()
        if classifier is not None and embedded_v2 is not None:
            raise ValueError(f"give either model.embedded_v2 ({embedded_v2!r}) or model.classifier ({classifier!r}), not both")
        if embedded_v2 is not None:
            from lightning_modules.embedded_v2 import load_embedded_v2

            self.model, self.data_config = load_embedded_v2(embedded_v2)
        elif classifier is not None:
            if "name" not in classifier:
                raise ValueError("classifier needs a 'name' (a load_model name, e.g. {name: torchvision/resnet50, pretrained: true})")
            self.model, self.data_config = load_model(**{"freeze": True, **classifier})
        else:
            self.model, self.data_config = load_blackbox(profile=blackbox_profile)
        self.explainers = {name: make_explainer(name, kw) for name, kw in self.methods.items()}
        self.explainers.setdefault("random", create_explainer("random"))
        order = resolve_order(self.model, sanity_order)
        if sanity_stages is not None:
            order = order[:sanity_stages]
        self.sanity = ModelRandomizationTest(
            {k: v for k, v in self.explainers.items() if k != "random"}, order, modes=("cascading",),
            init=sanity_init, std=sanity_std, seed=0, keep_examples=3,
        )
        # (b) per method, order and output: the logit (our primary output) and the softmax probability (the official
        # code's |p0 - p| / p0 measure is computed from it)
        self.pixel = torch.nn.ModuleDict({
            f"{m}__{order}__{out}": PixelPerturbation(order, self.pixel_fractions, pixel_substrate, out)
            for m in (*self.explainers, ORACLE) for order in ("morf", "lerf") for out in ("logit", "prob")
        })
        self.evidence = torch.nn.ModuleDict({m: EvidenceRows() for m in self.explainers})
        self.roar_rows: dict[str, list[dict]] = {}
        self.roar_info: dict[str, dict] = {}
        self.roar_results: dict[str, dict] = {}
        #: (a) and (b) on the ROAR reference models (datasets with their own data, e.g. the MNIST CNN): name -> results
        self.reference_benchmarks: dict[str, dict] = {}
        # per test image: correct, PruneGrad's zero-score share, official rule == plain gradient (de-duplicated by id)
        self.test_rows = TestRows()
        pg = self.explainers["prunegrad"]
        self._pg_official = PruneGrad(getattr(pg, "percentile", 70.0), scope="all")
        self._pg_plain = PruneGrad(0.0)
        self.val_accuracy = MeanMetric()

    def _resolve_roar_setups(self) -> dict[str, dict]:
        """name -> ROAR settings: the flat ``roar_*`` arguments, then each ``roar_extra`` entry over them."""
        hp = self.hparams
        if not self.roar_methods:
            return {}  # ROAR switched off (roar_methods: {})
        first = {k: hp.get(f"roar_{k}") for k in ROAR_KEYS}
        first.update(data=self.roar_data, methods=self.roar_methods, fractions=self.roar_fractions, seeds=self.roar_seeds)
        setups = {hp.roar_name: first}
        for name, over in (hp.roar_extra or {}).items():
            unknown = sorted(set(over) - set(ROAR_KEYS))
            if unknown:
                raise ValueError(f"roar_extra[{name!r}]: unknown keys {unknown}; known: {list(ROAR_KEYS)}")
            if name in setups:
                raise ValueError(f"roar_extra[{name!r}] repeats the name of another ROAR benchmark (roar_name={hp.roar_name!r})")
            setups[name] = {**first, **over, "data": _instantiate(over.get("data"))}
        for name, s in setups.items():
            if s["data"] is not None and s["downsample"] != 1:
                raise ValueError(f"ROAR {name!r}: downsample must be 1 with its own data: the reference model explains the images at full resolution")
            s["fractions"], s["seeds"] = list(s["fractions"]), list(s["seeds"])
        return setups

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.check_data(self.trainer.datamodule)

    def check_data(self, dm) -> None:
        """A v2 model is explained on the v2 scenes it was trained on (a profile may have fewer scenes, e.g. smoke,
        but they must be drawn as the ones the model learned); the v1 black box on the v1 scenes."""
        if dm is None or self.hparams.classifier is not None:
            return
        from lightning_modules.data.scenes_v2 import ScenesV2DataModule

        if self.hparams.embedded_v2 is not None:
            if not isinstance(dm, ScenesV2DataModule):
                raise ValueError(f"model.embedded_v2={self.hparams.embedded_v2!r} is explained on the v2 scenes: set data "
                                 f"to lightning_modules.data.scenes_v2.ScenesV2DataModule (got {type(dm).__name__})")
            trained_on = self.model.scenes_config
            sizes = {f"{split}_size": getattr(trained_on, f"{split}_size") for split in ("train", "val", "test", "heldout")}
            if replace(dm.config, **sizes) != trained_on:
                raise ValueError(f"{self.hparams.embedded_v2} was trained on other v2 scenes than the data module's "
                                 "config; use a v2 profile that differs only in its split sizes")
        elif isinstance(dm, ScenesV2DataModule):
            raise ValueError("the v1 scenes black box (model.blackbox_profile) cannot explain v2 scenes: set "
                             "model.embedded_v2 (e.g. scenes_v2_vgg)")

    # ------------------------------------------------------------------ validate: does the configuration load?
    def validation_step(self, batch, batch_idx):
        with torch.no_grad():
            preds = self.model(batch["image"]).argmax(1)
        self.val_accuracy.update((preds == batch["label"]).float())

    def on_validation_epoch_end(self):
        self.log("val/acc", self.val_accuracy.compute(), sync_dist=False)
        self.val_accuracy.reset()
        if self.trainer.is_global_zero:
            for name, setup in self.roar_setups.items():
                (x_train, _), (x_test, _) = self._roar_tensors(setup)
                self.roar_info[name] = {"train_images": int(x_train.shape[0]), "test_images": int(x_test.shape[0])}

    # ------------------------------------------------------------------ (a) + (b): test passes
    def test_step(self, batch, batch_idx):
        images = batch["image"]
        self._input_shape = tuple(images.shape[1:])
        with torch.no_grad():
            logits = self.model(images)
        targets = logits.argmax(1)  # the paper explains the predicted class
        ids = batch.get("id")
        if ids is None:
            raise ValueError("khakzar2019 needs batch['id'] (the sample's index in its split; docs/CONVENTIONS.md)")
        official, plain = self._pg_official(self.model, images, targets), self._pg_plain(self.model, images, targets)
        self.test_rows.update(ids, targets == batch["label"], self._pg_official.score_sparsity(self.model, images, targets),
                              (official == plain).flatten(1).all(1))
        # The sanity images are the split's first ``sanity_images`` samples by id: the same set on any number of
        # processes (a per-process counter would pick a different set under a distributed sampler).
        chosen = ids < self.hparams.sanity_images
        if chosen.any():
            self.sanity.update(self.model, images[chosen], targets[chosen], ids[chosen])
        evidence = evidence_of(batch)  # v2: the label's evidence region; v1 scenes: the head
        for name, explainer in self.explainers.items():
            if name == "random":
                maps = id_seeded_random_maps(ids, tuple(images.shape[-2:])).to(images.dtype)
            else:
                maps = explainer(self.model, images, targets)
            # Pixels are ranked by the magnitude of the attribution (as ROAR's squared estimator and the sanity
            # checks' Spearman |.|): signed maps (PruneGrad keeps the sign) would otherwise rank strongly negative
            # evidence as "least relevant" while abs-reduced maps (gradient) cannot.
            importance = maps.abs()
            for order in ("morf", "lerf"):
                for out in ("logit", "prob"):
                    self.pixel[f"{name}__{order}__{out}"].update(self.model, images, importance, targets, ids=ids)
            if evidence is not None:
                self.evidence[name].update(ids, evidence_precision(importance, evidence))
        if evidence is not None:
            # the oracle map: the ground-truth evidence as a heatmap (the protocols' validity reference)
            oracle = evidence.to(images.dtype)
            for order in ("morf", "lerf"):
                for out in ("logit", "prob"):
                    self.pixel[f"{ORACLE}__{order}__{out}"].update(self.model, images, oracle, targets, ids=ids)

    def on_test_epoch_end(self):
        self.sanity_results = cascade_summary(self.sanity)
        curves, ids = {}, None
        with_oracle = bool(self.pixel[f"{ORACLE}__morf__logit"].sample_ids)
        for m in (*self.explainers, *((ORACLE,) if with_oracle else ())):
            curves[m] = {}
            for order in ("morf", "lerf"):
                curves[m][order] = {}
                for out in ("logit", "prob"):
                    ps = self.pixel[f"{m}__{order}__{out}"].per_sample()
                    curves[m][order][out] = ps["curves"].cpu()
                    ids = ps["ids"] if ids is None else ids
                    if not torch.equal(ps["ids"], ids):
                        raise AssertionError("pixel-perturbation metrics saw different images")
        has_evidence = bool(self.evidence[next(iter(self.explainers))].sample_ids)
        evidence = {m: e.compute().cpu() for m, e in self.evidence.items()} if has_evidence else None
        self.pixel_results = pixel_block(self.pixel_fractions, curves, evidence)
        self.n_test_images = int(ids.numel())
        self.n_sanity_images = self.sanity_results["images"]
        rows = self.test_rows.compute()
        self.classifier_accuracy = float(rows["correct"].mean())
        zero = rows["zero_share"]
        self.prunegrad_rules = {"explained": {
            "zero_score_share_mean": float(zero.mean()), "zero_score_share_min": float(zero.min()),
            "zero_score_share_max": float(zero.max()),
            "official_equals_gradient_share": float(rows["official_equal"].mean()),
            "relu_neurons": self._relu_neuron_count(self.model, self._input_shape), "images": int(zero.numel()),
        }}
        if self.trainer.is_global_zero:
            self.roar_rows = {name: self.run_roar(name, setup) for name, setup in self.roar_setups.items()}
        self.trainer.strategy.barrier("roar")

    # ------------------------------------------------------------------ (c): ROAR
    def _roar_datamodule(self, setup: dict) -> pl.LightningDataModule:
        return setup["data"] if setup["data"] is not None else self.trainer.datamodule

    def _roar_tensors(self, setup: dict) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """(train, test) images in [0, 1] and labels of the ROAR data, the first train/test_size of each."""
        dm = self._roar_datamodule(setup)
        out = []
        for split, size in (("train", setup["train_size"]), ("test", setup["test_size"])):
            if hasattr(dm, "dataset"):  # the synthetic scenes
                ds = dm.dataset(split)
            else:
                dm.setup("fit")
                datasets = getattr(dm, "datasets", None)
                if not isinstance(datasets, dict) or split not in datasets:
                    raise TypeError(f"ROAR needs a DataModule with .dataset(split) or .datasets[split] (e.g. CIFAR10DataModule); got {type(dm).__name__}")
                ds = datasets[split]
            if not hasattr(ds, "tensors"):
                raise TypeError(f"the ROAR {split} dataset {type(ds).__name__} has no tensors(); use an in-memory dataset")
            x, y = ds.tensors()
            n = x.shape[0] if size is None else min(size, x.shape[0])
            out.append((x[:n], y[:n]))
        return out[0], out[1]

    def _roar_key(self, setup: dict, dm) -> str:
        """Hash of everything that decides a ROAR benchmark's results except fractions and seeds (results are cached
        per (method, fraction, seed) under this key, so changing a setting never reuses stale results)."""
        hp = self.hparams
        if setup["data"] is None:
            data = repr(getattr(dm, "config", type(dm).__name__))
        else:
            data = type(dm).__name__ + json.dumps({k: v for k, v in sorted(vars(dm).items()) if isinstance(v, (str, int, float, bool, Path)) and not k.startswith("_")}, default=str)
        explained = ("reference" if setup["data"] is not None else json.dumps(hp.classifier, sort_keys=True) if hp.classifier
                     else f"embedded_v2:{hp.embedded_v2}" if hp.embedded_v2 else f"blackbox:{hp.blackbox_profile}")
        if setup["data"] is None:  # the explained weights themselves: another black box never reuses stale results
            digest = hashlib.sha256()
            for k, v in sorted(self.model.state_dict().items()):
                digest.update(k.encode())
                digest.update(v.detach().cpu().contiguous().numpy().tobytes())
            explained += ":" + digest.hexdigest()[:16]
        keys = ("methods", "train_size", "test_size", "model", "model_kwargs", "epochs", "batch_size", "lr", "weight_decay",
                "optimizer", "scheduler", "downsample", "threads")
        blob = json.dumps({"version": ROAR_CACHE_VERSION, "data": data, "explained": explained, **{k: setup[k] for k in keys}},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def _work_dir(self, name: str, key: str) -> Path:
        root = Path(self.hparams.work_dir) if self.hparams.work_dir else REPO_ROOT / "data" / "roar"
        return root / f"khakzar2019-{self.profile}-{name}-{key}"

    def _attributions(self, setup: dict, work: Path, name: str, model, images: torch.Tensor, targets: torch.Tensor, split: str) -> torch.Tensor:
        def compute() -> torch.Tensor:
            if name == "random":
                return random_attributions((images.shape[0], 1, *images.shape[-2:]), seed=1 if split == "train" else 2)
            if name == ORACLE:  # the ground-truth evidence as the ranking (the protocol's validity reference)
                evidence = self._evidence_maps(setup, split, images)
                if evidence is None:
                    raise ValueError(f"ROAR method {ORACLE!r} needs data with ground-truth evidence (v2/v1 scenes, MNIST)")
                return evidence[1].float()
            explainer = make_explainer(name, setup["methods"][name])
            bs = setup["attribution_batch"]
            device = self.device
            chunks = [
                explainer(model, images[i : i + bs].to(device), targets[i : i + bs].to(device)).cpu()
                for i in range(0, images.shape[0], bs)
            ]
            return torch.cat(chunks)

        path = work / "attributions" / f"{split}_{name}.pt"
        if path.is_file():  # reused: count what it cost when it was computed
            self._reused.append(attribution_timing(path))
        return cached_attributions(path, compute)

    def _prunegrad_rules(self, model, images: torch.Tensor, targets: torch.Tensor) -> dict:
        """PruneGrad's zero-score share and whether the official rule equals the plain gradient, on ``images``."""
        bs = self.hparams.roar_attribution_batch
        zero, equal = [], []
        for i in range(0, images.shape[0], bs):
            x, t = images[i : i + bs].to(self.device), targets[i : i + bs].to(self.device)
            zero.append(self._pg_official.score_sparsity(model, x, t).cpu())
            equal.append((self._pg_official(model, x, t) == self._pg_plain(model, x, t)).flatten(1).all(1).float().cpu())
        zero, equal = torch.cat(zero), torch.cat(equal)
        return {"zero_score_share_mean": float(zero.mean()), "zero_score_share_min": float(zero.min()),
                "zero_score_share_max": float(zero.max()), "official_equals_gradient_share": float(equal.mean()),
                "relu_neurons": self._relu_neuron_count(model, tuple(images.shape[1:])), "images": int(images.shape[0])}

    def run_roar(self, name: str, setup: dict) -> list[dict]:
        dm = self._roar_datamodule(setup)
        train, test = self._roar_tensors(setup)
        work = self._work_dir(name, self._roar_key(setup, dm))
        num_classes = int(getattr(dm, "num_classes", 0) or self._num_classes())
        cfg = RoarConfig(
            model_name=setup["model"], model_kwargs=dict(setup["model_kwargs"] or {}),
            fractions=tuple(setup["fractions"]), seeds=tuple(setup["seeds"]), max_epochs=setup["epochs"],
            batch_size=setup["batch_size"], lr=setup["lr"], weight_decay=setup["weight_decay"], optimizer=setup["optimizer"],
            scheduler=setup["scheduler"], downsample=setup["downsample"], accelerator=setup["accelerator"],
            devices=setup["devices"], threads=setup["threads"], fill=setup["fill"], fill_noise=setup["fill_noise"],
            mask_only_control=bool(setup["mask_only_control"]),
        )
        pipeline = RoarPipeline(cfg, work, num_classes=num_classes)
        # Results are cached per (method, fraction, seed): say how many this run reused (its wall time excludes them)
        # and what they cost when they were computed (recorded beside them).
        cached_before = len(list((work / "results").glob("*.json")))
        self._reused: list[dict] = []
        if setup["data"] is None:
            explained = self.model  # the classifier was trained on these scenes
        else:
            # RoarTorch: the attributions come from the model trained on the unmodified data (the reference row).
            pipeline.run_reference(train, test)
            explained = pipeline.trained_model(REFERENCE, 0.0, setup["seeds"][0]).to(self.device)
        # Attributions explain the explained model's prediction on each image (as for the test passes).
        with torch.no_grad():
            predict = lambda x: torch.cat([explained(x[i : i + 256].to(self.device)).argmax(1).cpu() for i in range(0, x.shape[0], 256)])  # noqa: E731
            t_train, t_test = predict(train[0]), predict(test[0])
        attributions = {
            m: (self._attributions(setup, work, m, explained, train[0], t_train, "train"),
                self._attributions(setup, work, m, explained, test[0], t_test, "test"))
            for m in setup["methods"]
        }
        info = {"cache": work.name, "train_images": int(train[0].shape[0]), "test_images": int(test[0].shape[0]),
                "image_size": list(train[0].shape[1:]), "explained_model_test_accuracy": float((t_test == test[1]).float().mean()),
                "num_classes": num_classes, "runs_reused_from_cache": cached_before,
                "data": type(dm).__name__, "split": getattr(dm, "split_info", None) or None}
        if setup["data"] is not None and "prunegrad" in setup["methods"]:
            info["prunegrad_rules"] = self._prunegrad_rules(explained, test[0], t_test)
        if setup["data"] is not None and setup["reference_benchmarks"] and (self.hparams.reference_pixel_images or self.hparams.reference_sanity_images):
            self.reference_benchmarks[name] = self._reference_benchmarks(explained, test[0], t_test)
        self.roar_info[name] = info
        rows = pipeline.run(train, test, attributions)
        info["runs"] = len(rows)
        reused = self._reused + [pipeline.timing(r) for r in pipeline.reused]
        info["reused_attributions"] = len(self._reused)
        info["reused_wall_s"] = sum(t.get("wall_s", 0.0) for t in reused)
        info["reused_cpu_s"] = sum(t.get("cpu_s", 0.0) for t in reused)
        info["retraining_wall_s"] = sum(pipeline.timing(r).get("wall_s", 0.0) for r in rows)
        info["retraining_cpu_s"] = sum(pipeline.timing(r).get("cpu_s", 0.0) for r in rows)
        self.roar_results[name] = self._roar_plain(setup, rows, train, test, attributions, self._roar_evidence(setup, dm, test[0]), num_classes)
        return rows

    def _roar_evidence(self, setup: dict, dm, images: torch.Tensor) -> tuple[str, torch.Tensor] | None:
        return self._evidence_maps(setup, "test", images)

    def _evidence_maps(self, setup: dict, split: str, images: torch.Tensor) -> tuple[str, torch.Tensor] | None:
        """The class evidence of the first ``len(images)`` ROAR ``split`` images, (kind, (N, 1, H, W) bool): the v2
        scenes' evidence masks (v1: the head masks), or the strokes (pixels > 0) of a single-channel black-background
        dataset (MNIST); None for other data."""
        dm = self._roar_datamodule(setup)
        if setup["data"] is None and hasattr(dm, "dataset"):  # the synthetic scenes of the test DataModule
            batch = dm.dataset(split).__getitems__(list(range(images.shape[0])))
            evidence = evidence_of(batch)
            if evidence is not None:
                return ("evidence" if "evidence_mask" in batch else "head"), evidence.bool()
        if images.shape[1] == 1:
            return "stroke", images > 0
        return None

    def _roar_plain(self, setup: dict, rows: list[dict], train, test, attributions: dict, evidence, num_classes: int) -> dict:
        """Plain ROAR results of one benchmark: test accuracy per method, fraction and seed (the seeds' order), the
        reference row per seed, and two measured mechanisms at the highest fraction: the share of the class evidence
        the removal erases (``evidence``), and how well the removal mask *alone* predicts the class
        (a ridge-regression classifier fitted on the training masks, applied to the test masks): class information that a
        retrained model can read from the removal pattern instead of from the kept pixels (Rong et al. 2022)."""
        seeds, fractions = list(setup["seeds"]), [float(f) for f in setup["fractions"]]
        by = {(r["method"], float(r["fraction"]), int(r["seed"])): float(r["test_accuracy"]) for r in rows}
        out = {
            "fractions": fractions, "seeds": seeds, "methods": list(attributions), "num_classes": num_classes,
            "reference": [by[(REFERENCE, 0.0, s)] for s in seeds if (REFERENCE, 0.0, s) in by],
            "accuracy": {m: {str(f): [by[(m, f, s)] for s in seeds] for f in fractions} for m in attributions},
            "evidence": evidence[0] if evidence else None, "fill": setup["fill"],
        }
        if setup["mask_only_control"]:
            # the retrained mask-only control: a model of the benchmark's architecture trained on the removal mask alone
            out["mask_only_retrained"] = {m: {str(f): [by[(mask_only_name(m), f, s)] for s in seeds] for f in fractions}
                                          for m in attributions}
        hi = max(fractions)
        ones = lambda x: torch.ones(x.shape[0], 1, *x.shape[-2:])  # noqa: E731
        y_train, y_test = train[1], test[1]
        out["evidence_removed"], out["evidence_all_removed"], out["mask_only_accuracy"] = {}, {}, {}
        for m, (a_train, a_test) in attributions.items():
            # the removed pixels: remove_top_fraction on an all-ones image with fill 0 (the pipeline's own ranking)
            removed_test = remove_top_fraction(ones(a_test), a_test, hi, torch.zeros(1)) == 0
            removed_train = remove_top_fraction(ones(a_train), a_train, hi, torch.zeros(1)) == 0
            if evidence:
                ev = evidence[1]
                n_ev = ev.flatten(1).sum(1).clamp(min=1)
                gone = (removed_test & ev).flatten(1).sum(1)
                out["evidence_removed"][m] = float((gone / n_ev).mean())
                out["evidence_all_removed"][m] = float((gone == ev.flatten(1).sum(1)).float().mean())
            out["mask_only_accuracy"][m] = mask_only_accuracy(removed_train, y_train, removed_test, y_test, num_classes)
        return out

    def _reference_benchmarks(self, model, images: torch.Tensor, targets: torch.Tensor) -> dict:
        """(a) sanity checks and (b) pixel perturbation on a ROAR reference model (e.g. the MNIST CNN), with the
        ``methods`` of the test passes, on the first ``reference_sanity_images`` / ``reference_pixel_images`` test
        images; batched in chunks of ``roar_attribution_batch``. The evidence of a single-channel image (MNIST) is
        its strokes (pixels > 0)."""
        hp = self.hparams
        out: dict = {}
        bs = hp.roar_attribution_batch
        n_pixel = min(hp.reference_pixel_images, images.shape[0])
        if n_pixel:
            curves, evidence = {}, {}
            for m, explainer in self.explainers.items():
                metrics = {(o, k): PixelPerturbation(o, self.pixel_fractions, hp.pixel_substrate, k).to(self.device)
                           for o in ("morf", "lerf") for k in ("logit", "prob")}
                prec = []
                for i in range(0, n_pixel, bs):
                    x, t = images[i : min(i + bs, n_pixel)].to(self.device), targets[i : min(i + bs, n_pixel)].to(self.device)
                    ids = torch.arange(i, i + x.shape[0], device=self.device)
                    maps = id_seeded_random_maps(ids, tuple(x.shape[-2:])).to(x.dtype) if m == "random" else explainer(model, x, t)
                    for metric in metrics.values():
                        metric.update(model, x, maps.abs(), t, ids=ids)
                    if x.shape[1] == 1:
                        prec.append(evidence_precision(maps.abs(), x > 0).cpu())
                curves[m] = {o: {k: metrics[(o, k)].per_sample()["curves"].cpu() for k in ("logit", "prob")} for o in ("morf", "lerf")}
                if prec:
                    evidence[m] = torch.cat(prec)
            if images.shape[1] == 1:  # the oracle: the strokes (pixels > 0) as the map
                metrics = {(o, k): PixelPerturbation(o, self.pixel_fractions, hp.pixel_substrate, k).to(self.device)
                           for o in ("morf", "lerf") for k in ("logit", "prob")}
                for i in range(0, n_pixel, bs):
                    x, t = images[i : min(i + bs, n_pixel)].to(self.device), targets[i : min(i + bs, n_pixel)].to(self.device)
                    ids = torch.arange(i, i + x.shape[0], device=self.device)
                    for metric in metrics.values():
                        metric.update(model, x, (x > 0).to(x.dtype), t, ids=ids)
                curves[ORACLE] = {o: {k: metrics[(o, k)].per_sample()["curves"].cpu() for k in ("logit", "prob")} for o in ("morf", "lerf")}
            out["pixel"] = pixel_block(self.pixel_fractions, curves, evidence or None)
        n_sanity = min(hp.reference_sanity_images, images.shape[0])
        if n_sanity:
            test = ModelRandomizationTest(
                {k: v for k, v in self.explainers.items() if k != "random"}, resolve_order(model), modes=("cascading",),
                init=hp.sanity_init, std=hp.sanity_std, seed=0, keep_examples=0,
            ).to(self.device)
            x, t = images[:n_sanity].to(self.device), targets[:n_sanity].to(self.device)
            test.update(model, x, t, torch.arange(n_sanity, device=self.device))
            out["sanity"] = cascade_summary(test)
        return out

    @staticmethod
    def _relu_neuron_count(model, input_shape: tuple) -> int:
        """ReLU output elements per image (PruneGrad's neurons) for inputs of ``input_shape`` (C, H, W)."""
        from lightning_modules.explainers.prunegrad import relu_modules

        counts: list[int] = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: counts.append(out[0].numel())) for m in relu_modules(model)]
        try:
            with torch.no_grad():
                model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
        finally:
            for h in hooks:
                h.remove()
        return int(sum(counts))

    def _num_classes(self) -> int:
        n = getattr(self.model, "num_classes", None)
        if n:
            return int(n)
        with torch.no_grad():
            return int(self.model(torch.rand(1, *self.data_config.input_size, device=self.device)).shape[1])

    # ------------------------------------------------------------------ results and report
    def plain_results(self) -> dict:
        """Every number the claims read (``claims.build_claims``): per model (``explained`` = the classifier of the test
        passes; ``<roar name>`` = a ROAR reference model) the sanity-check and pixel-perturbation results with their
        per-image values, PruneGrad's threshold-rule measurements, and per ROAR benchmark the accuracies per seed."""
        hp = self.hparams
        models = {"explained": {"sanity": self.sanity_results, "pixel": self.pixel_results,
                                "prunegrad_rules": self.prunegrad_rules["explained"]}}
        for name, res in self.reference_benchmarks.items():
            models[name] = {**res, "prunegrad_rules": self.roar_info.get(name, {}).get("prunegrad_rules")}
        out = {
            "methods": list(self.explainers), "pass_threshold": float(hp.pass_threshold), "pixel_output": hp.pixel_output,
            "classifier_test_accuracy": self.classifier_accuracy, "test_images": self.n_test_images, "models": models,
            "roar": self.roar_results,
        }
        specs = pixel_validity_specs(models)
        if specs:
            out["protocol_validity"] = specs
        return out

    def build_report(self, report: Report) -> None:
        from replications.khakzar2019 import tables

        tables.build(self, report, self.plain_results())
