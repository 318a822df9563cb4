"""Fong & Vedaldi 2017, "Interpretable Explanations of Black Boxes by Meaningful Perturbation": the replication.

Everything runs in the Lightning test pass (``fit`` -> ``test``), one batch at a time, batched over the images
of the batch; DDP splits the images across processes and every number is a torchmetrics state keyed by the
sample id, so one process and N give the same tables.

- a. artifacts (Sec. 4): unregularised masks (full resolution, no TV, blur or jitter) vs the paper's masks:
  deleted area, suppression under blur, transfer to the constant perturbation;
- b. generalisation (Sec. 4): blur-learned masks, smoothed and binarised, applied with constant, noise and blur
  perturbations (normalised softmax), against the same binary mask moved elsewhere (same area);
- c. weak localisation (Table 1): value / energy / mean thresholds tuned on the held-out split;
- d. smallest suppressing box (Sec. 5);
- e./f. adversarial detection and label recovery (Sec. 5): :mod:`replications.fong2017.adversarial`;
- g. keypoints (Sec. 5, animal parts): heatmap intensity at the eyes vs the feet (the scenes' parts, or, in the
  paper profile, a separate pass over ImageNet images with the Oxford animal-parts keypoints: ``keypoints.data``);
- h. pointing game (Table 2) with the centre baseline (the scenes, or, in the paper profile, a separate pass over
  COCO val2014 with its own COCO classifier: ``pointing.data`` / ``pointing.model``);
- benchmark: time of the mask optimisation / (iterations x forward+backward at the same batch).

Where the data carries the class evidence (benchmark v2's ``evidence_mask`` / ``evidence_boxes``; the v1 scenes'
head), c., d. and h. also score two reference maps, the *oracle* (the evidence as a heatmap) and a *random* map
seeded by sample id, and Table 1 and the pointing game are scored against both ground truths: the object boxes (the
paper's) and the evidence. From those per-image values every protocol is judged for validity in the run
(``lightning_modules.reporting.validity``); claims on a protocol that is not valid there are reported as not valid.
"""

from __future__ import annotations

import time
import types
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from lightning_modules.benchmarks.validity import oracle_maps
from lightning_modules.data.schema import evidence_of
from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.baselines import id_seeded_random_maps
from lightning_modules.metrics import SampleValues
from lightning_modules.metrics.keypoints import KeypointIntensity
from lightning_modules.metrics.localisation import WeakLocalisation, tune_and_evaluate
from lightning_modules.metrics.localisation import box_iou, region_boxes
from lightning_modules.metrics.pointing import PointingGame, boxes_to_mask, center_heatmaps
from lightning_modules.metrics.suppression import SmallestSuppressingBox
from lightning_modules.tasks.mask_learning import (
    MaskConfig,
    compose,
    learn_masks,
    normalized_score,
    perturbation_substrate,
    upsample_mask,
)
from lightning_modules.reporting import pointing_specs, protocol_spec
from lightning_modules.utils import config_section
from replications.cli import ReplicationModule
from replications.fong2017 import paper as P
from replications.fong2017.paper import PAPER_KEY

MASK = "mask"
#: reference maps scored beside the methods where the data has the ground-truth evidence
REFERENCES = ("oracle", "random")
#: validity rule of weak localisation (as ``lightning_modules.benchmarks.validity``): the best method's error must
#: stay above this (not saturated); pointing: ``lightning_modules.reporting.validity.pointing_specs``
LOCALISATION_SATURATION = 0.02
THRESHOLDS = ("value", "energy", "mean")


@dataclass
class ArtifactsConfig:
    """a. The first ``images`` test ids; ``mask``: MaskConfig fields overriding the paper's mask (the regularisers
    removed)."""

    images: int = 4
    mask: dict[str, Any] = field(default_factory=lambda: {"mask_scale": 1, "mask_blur_sigma": 0.0, "tv_coeff": 0.0,
                                                           "jitter": 0})


@dataclass
class GeneralisationConfig:
    """b. The threshold of the binarised mask and the smoothing sigma (px at 224) of the smoothed one."""

    binarise_at: float = 0.5
    smooth_sigma: float = 10.0


@dataclass
class LocalisationConfig:
    """c. The IoU a localisation must reach with a box of the class (Table 1: 0.5)."""

    iou: float = 0.5


@dataclass
class SmallestBoxConfig:
    """d. The normalised-score level a box must suppress to, and the threshold grid (None: the official 100
    levels)."""

    level: float = 0.01
    alphas: list[float] | None = None


@dataclass
class KeypointsConfig:
    """g. The window radius (None: the metric's default) and the two parts compared: the evidence part first
    (Fong's eyes; benchmark v2's head), then a non-evidence part (the feet)."""

    radius: int | None = None
    parts: list[str] = field(default_factory=lambda: ["eyes", "feet"])


@dataclass
class AdversarialConfig:
    """e./f. I-FGSM (L-inf ``eps``, ``eps_step``, ``max_iter``) on the first ``images`` test ids, and the detector's
    training (``epochs``, ``hidden`` units, ``lr``, ``seed``)."""

    enabled: bool = False
    images: int = 10 ** 9
    eps: float = 8 / 255
    eps_step: float = 1 / 255
    max_iter: int = 10
    epochs: int = 30
    hidden: int = 256
    lr: float = 1e-3
    seed: int = 0


@dataclass
class MaskBenchmarkConfig:
    """The mask-learning benchmark: iterations, the batch (None: the data's batch size) and repeats."""

    iterations: int = 20
    batch: int | None = None
    repeats: int = 3


def _check_classes(model: nn.Module, n: int, what: str) -> None:
    out = getattr(model, "num_classes", None)
    if isinstance(out, int) and out != n:
        raise ValueError(f"the {what} data has {n} classes but its model has {out} outputs; set {what}_model "
                         f"(e.g. {{name: googlenet, checkpoint: ..., num_classes: {n}}})")


def _relu_modules(model: nn.Module) -> nn.Module:
    """torchvision's GoogLeNet applies ReLU functionally inside ``BasicConv2d`` (``F.relu``); guided backprop (Captum)
    and excitation backprop act on ``nn.ReLU`` modules. Give each ``BasicConv2d`` an ``nn.ReLU`` and a forward that
    uses it: the same function, the same weights (ReLU has no state), now hookable."""
    for m in model.modules():
        if type(m).__name__ == "BasicConv2d" and not isinstance(getattr(m, "relu", None), nn.ReLU):
            m.relu = nn.ReLU()
            m.forward = types.MethodType(lambda self, x: self.relu(self.bn(self.conv(x))), m)
    return model


def _primary_keypoints(batch, parts) -> dict:
    """The keypoints of the labelled object: benchmark v2 lists every object's (row j = object j; feet rows 2j,
    2j+1), the v1 scenes only the labelled creature's."""
    kp = batch["keypoints"]
    if "n_objects" not in batch:
        return kp
    per_object = {"head": 1, "feet": 2}
    return {p: kp[p][:, : per_object.get(p, kp[p].shape[1])] for p in parts}


def _mean(t: torch.Tensor) -> float:
    t = t.float()
    return float(torch.nanmean(t)) if t.numel() else float("nan")


class FongReplication(ReplicationModule):
    """Meaningful perturbation (see the module docstring). Constructor arguments = the config."""

    paper = "fong2017"
    title = "Interpretable Explanations of Black Boxes by Meaningful Perturbation"
    citation = "R. C. Fong and A. Vedaldi. Interpretable Explanations of Black Boxes by Meaningful Perturbation. ICCV 2017."

    def __init__(
        self,
        blackbox_profile: str = "default",
        model: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        methods: list[str] | None = None,
        explainer_kwargs: dict[str, dict] | None = None,
        mask: MaskConfig = MaskConfig(),  # noqa: B008 - read-only defaults, shown by --print_config
        artifacts: ArtifactsConfig = ArtifactsConfig(),  # noqa: B008
        generalisation: GeneralisationConfig = GeneralisationConfig(),  # noqa: B008
        localisation: LocalisationConfig = LocalisationConfig(),  # noqa: B008
        smallest_box: SmallestBoxConfig = SmallestBoxConfig(),  # noqa: B008
        keypoints: KeypointsConfig = KeypointsConfig(),  # noqa: B008
        keypoints_data: dict[str, Any] | None = None,
        keypoints_mask: dict[str, Any] | None = None,
        pointing_data: dict[str, Any] | None = None,
        pointing_model: dict[str, Any] | None = None,
        pointing_mask: dict[str, Any] | None = None,
        adversarial: AdversarialConfig = AdversarialConfig(),  # noqa: B008
        benchmark: MaskBenchmarkConfig = MaskBenchmarkConfig(),  # noqa: B008
        figure_images: int = 4,
    ):
        """
        Args:
            blackbox_profile: ``load_blackbox`` profile (``default``/``smoke``) when ``model`` is not given.
            model: ``{"name": ..., "checkpoint": ..., "num_classes": ...}`` for ``load_model`` (the paper profile).
            data: ``{"kind": "scenes", "profile": ..., "test_images": N, "heldout_images": M, "batch_size": B}``.
            methods: the saliency methods compared with the mask (explainer registry names).
            explainer_kwargs: per-method constructor arguments.
            mask: :class:`MaskConfig` of the main deletion masks (paper values, scaled to the image size).
            artifacts, generalisation, localisation, smallest_box, keypoints, adversarial, benchmark: typed
                sections (``ArtifactsConfig`` ... ``MaskBenchmarkConfig``): LightningCLI checks their types and
                ``--print_config`` shows their defaults.
            keypoints_data: a separate keypoint pass (``{"kind": "animal_parts", ...}``, paper profile); None: the
                main test split's keypoints (the scenes). ``keypoints_mask``: its MaskConfig overrides.
            pointing_data: a separate pointing-game pass (``{"kind": "coco", ...}``) with its own classifier
                ``pointing_model`` (a ``load_model`` spec; None: the main black box) and ``pointing_mask``
                (MaskConfig overrides); None: the pointing game runs on the main test split (the scenes).
            (Separate top-level arguments, not nested dicts, so ``--model.pointing_data.root DIR`` overrides one key.)
            figure_images: images shown in the figures.
        """
        super().__init__()
        self.save_hyperparameters()
        self.blackbox_profile = blackbox_profile
        self.model_spec = dict(model or {})
        self.data_spec = {"kind": "scenes", "profile": blackbox_profile, "test_images": 32, "heldout_images": 32,
                          "batch_size": 16, **(data or {})}
        self.methods = list(methods or ["gradient", "guided_backprop", "excitation_backprop",
                                        "contrastive_excitation_backprop", "gradcam", "occlusion"])
        self.explainer_kwargs = dict(explainer_kwargs or {})
        self.mask_config = MaskConfig.from_dict(mask)
        # the artifacts' masks are the paper's masks without the regularisers (TV, upsampling, mask blur, jitter);
        # the optimiser's set-up (the initialisation included) stays the paper's
        self.artifact_spec = asdict(config_section(artifacts, ArtifactsConfig, "artifacts"))
        self.artifact_config = MaskConfig.from_dict({**asdict(self.mask_config), **self.artifact_spec["mask"]})
        self.gen_spec = asdict(config_section(generalisation, GeneralisationConfig, "generalisation"))
        self.loc_spec = asdict(config_section(localisation, LocalisationConfig, "localisation"))
        self.box_spec = {k: v for k, v in asdict(config_section(smallest_box, SmallestBoxConfig, "smallest_box")).items()
                         if v is not None}
        self.kp_spec = asdict(config_section(keypoints, KeypointsConfig, "keypoints"))
        self.kp_parts = tuple(self.kp_spec["parts"])
        if len(self.kp_parts) != 2:
            raise ValueError(f"keypoints.parts must name two parts (the evidence part, then a non-evidence part), "
                             f"got {self.kp_parts}")
        extra = {"data": keypoints_data, "mask": keypoints_mask}
        self.kp_spec.update({k: v for k, v in extra.items() if v is not None})
        extra = {"data": pointing_data, "model": pointing_model, "mask": pointing_mask}
        self.pointing_spec = {k: v for k, v in extra.items() if v is not None}
        # separate passes (paper profile): their own data, and mask settings that may differ from Table 1's
        # (Fong's animal-parts and pointing masks explain the given class, Table 1's the top-5 classes)
        self.pass_mask_configs = {
            name: MaskConfig.from_dict({**asdict(self.mask_config), **spec.get("mask", {})})
            for name, spec in (("keypoints", self.kp_spec), ("pointing", self.pointing_spec)) if spec.get("data")
        }
        for name, spec in (("keypoints", self.kp_spec), ("pointing", self.pointing_spec)):
            if ("mask" in spec or "model" in spec) and not spec.get("data"):
                raise ValueError(f"{name}_mask / {name}_model need {name}_data (a separate pass); without data the "
                                 f"{name} experiment uses the main test split, its black box and mask")
        self.adv_spec = asdict(config_section(adversarial, AdversarialConfig, "adversarial"))
        # the benchmark times the run's own mask optimisation: its batch is the data's unless given
        self.bench_spec = asdict(config_section(benchmark, MaskBenchmarkConfig, "benchmark"))
        if self.bench_spec["batch"] is None:
            self.bench_spec["batch"] = self.data_spec["batch_size"]
        self.figure_images = figure_images
        self.all_methods = self.methods + [MASK]
        # the reference maps and the evidence ground truth exist where the data has the evidence (the scenes)
        kind = self.data_spec["kind"]
        self.references = list(REFERENCES) if kind in ("scenes", "scenes_v2") else []
        self.scored = self.all_methods + self.references

        self.blackbox: nn.Module | None = None
        self.pointing_model: nn.Module | None = None
        self._test_loader_names: list[str] = []
        self.explainers = {m: create_explainer(m, **self.explainer_kwargs.get(m, {})) for m in self.methods}
        mk = lambda: nn.ModuleDict({t: WeakLocalisation(t, iou_threshold=self.loc_spec["iou"]) for t in THRESHOLDS})  # noqa: E731
        self.loc_test = nn.ModuleDict({m: mk() for m in self.scored})
        self.loc_heldout = nn.ModuleDict({m: mk() for m in self.scored})
        self.loc_test_evidence = nn.ModuleDict({m: mk() for m in self.scored})
        self.loc_heldout_evidence = nn.ModuleDict({m: mk() for m in self.scored})
        self.pointing = nn.ModuleDict({m: PointingGame() for m in self.scored + ["center"]})
        self.pointing_evidence = nn.ModuleDict({m: PointingGame() for m in self.scored + ["center"]})
        self.keypoint_metrics = nn.ModuleDict({m: KeypointIntensity(self.kp_parts, radius=self.kp_spec["radius"])
                                               for m in self.all_methods + ["ground_truth"]})
        box_kwargs = {k: v for k, v in self.box_spec.items() if k in ("level", "alphas", "method")}
        self.boxes = nn.ModuleDict({m: SmallestSuppressingBox(**box_kwargs) for m in self.scored})
        self.point_labels = SampleValues("label")
        self.mask_rows = SampleValues("clean", "null", "final", "area", "init_radius", "loss_first", "loss_last")
        self.gen_rows = SampleValues(*[f"{s}_{p}" for s in ("smooth", "binary", "moved") for p in ("blur", "constant", "noise")])
        self.artifact_rows = SampleValues("area_reg", "area_art", "ns_reg_blur", "ns_art_blur", "ns_reg_constant",
                                        "ns_art_constant", "tv_reg", "tv_art", "head_share_reg", "head_share_art")
        # compactness of the main masks against the ground truth (the scenes): object box, evidence box
        self.compact_rows = SampleValues("box_area", "mass_in_box", "head_box_iou", "evidence_area", "mass_on_evidence")
        self.adversarial = None
        if self.adv_spec.get("enabled"):
            from replications.fong2017.adversarial import AdversarialExperiment

            self.adversarial = AdversarialExperiment(self.adv_spec)
            self.adv_rows = AdversarialExperiment.make_rows(self.all_methods)
        self.examples: dict = {}
        self.bench: dict = {}
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ setup / data
    def _load_blackbox(self, model_spec: dict | None = None) -> nn.Module:
        model_spec = self.model_spec if model_spec is None else model_spec
        if model_spec and "embedded_v2" in model_spec:
            from lightning_modules.embedded_v2 import load_embedded_v2

            spec = dict(model_spec)
            name = spec.pop("embedded_v2")
            if spec:
                raise ValueError(f"model.embedded_v2 takes no other keys, got {sorted(spec)}")
            model, _ = load_embedded_v2(name)
            model.num_classes = model.scenes_config.num_classes
        elif model_spec:
            from lightning_modules.models import load_model

            spec = dict(model_spec)
            model, _ = load_model(spec.pop("name"), freeze=True, **spec)
            model = _relu_modules(model)
        else:
            from lightning_modules.blackbox import load_blackbox

            model, _ = load_blackbox(self.blackbox_profile)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def setup(self, stage: str) -> None:
        super().setup(stage)  # DDP ``fit`` of a module with nothing trainable (ReplicationModule)
        if self.blackbox is None:
            # a plain attribute (not a submodule): the black box is frozen and not part of this module's state
            object.__setattr__(self, "blackbox", self._load_blackbox().to(self.device))
        if self.pointing_model is None:
            spec = self.pointing_spec.get("model")
            # the pointing game's classifier (COCO's 80 classes in the paper) or the main black box
            model = self._load_blackbox(spec).to(self.device) if spec else self.blackbox
            object.__setattr__(self, "pointing_model", model)
        if self.adversarial is not None:
            self.adversarial.setup(self)

    def _datasets(self) -> dict:
        """name -> dataset of every pass: ``test`` and ``heldout`` (main), ``pointing`` and ``keypoints`` when the
        config gives them their own data (see :mod:`replications.fong2017.data`)."""
        from replications.fong2017.data import main_datasets, pass_dataset

        out = main_datasets(self.data_spec)
        for name, spec in (("pointing", self.pointing_spec), ("keypoints", self.kp_spec)):
            if spec.get("data"):
                out[name] = pass_dataset({"batch_size": self.data_spec["batch_size"], **spec["data"]}, name)
        return out

    def _loaders(self, names: tuple[str, ...]) -> list[DataLoader]:
        from lightning_modules.data.schema import collate_batch

        datasets = self._datasets()
        self._test_loader_names = [n for n in names if n in datasets]
        return [DataLoader(datasets[n], batch_size=self.data_spec["batch_size"], shuffle=False, collate_fn=collate_batch)
                for n in self._test_loader_names]

    def train_dataloader(self):
        # nothing is trained by gradient descent on the module itself; the adversarial detector trains inside test
        return []

    def training_step(self, batch, batch_idx):  # pragma: no cover - no training batches
        return None

    def configure_optimizers(self):
        return None

    def test_dataloader(self):
        return self._loaders(("test", "heldout", "pointing", "keypoints"))

    def val_dataloader(self):
        # ``validate``: the black boxes classify every pass's images (no explanation is computed)
        loaders = self._loaders(("test", "pointing", "keypoints"))
        self._val_loader_names = list(self._test_loader_names)
        return loaders

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Top-1 accuracy of the black box on each pass's images (``val/acc``, ``val/pointing_acc``,
        ``val/keypoints_acc``); for COCO's multi-label images a hit is a top-1 class present in the image."""
        name = self._val_loader_names[dataloader_idx]
        model = self.pointing_model if name == "pointing" else self.blackbox
        with torch.no_grad():
            pred = model(batch["image"]).argmax(1)
        if "multilabel" in batch:
            _check_classes(model, batch["multilabel"].shape[1], name)
            correct = batch["multilabel"].gather(1, pred[:, None])[:, 0] > 0
        else:
            correct = pred == batch["label"]
        key = "val/acc" if name == "test" else f"val/{name}_acc"
        self.log(key, correct.float().mean(), batch_size=pred.shape[0], sync_dist=True, add_dataloader_idx=False)

    # ------------------------------------------------------------------------------------------ explanation
    def _heatmaps(self, images: torch.Tensor, targets: torch.Tensor, model: nn.Module | None = None,
                  mask_config: MaskConfig | None = None) -> tuple[dict, object]:
        model = self.blackbox if model is None else model
        maps = {}
        for m, ex in self.explainers.items():
            t0 = time.perf_counter()
            # Fong's thresholds need non-negative maps: signed methods are clamped at 0 (stated in the report)
            maps[m] = ex(model, images, targets).clamp(min=0)
            self.timings[m] = self.timings.get(m, 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        res = learn_masks(model, images, targets, mask_config or self.mask_config)
        self.timings[MASK] = self.timings.get(MASK, 0.0) + time.perf_counter() - t0
        maps[MASK] = (1 - res.mask).clamp(0, 1)  # the blur can overshoot 1 by rounding
        return maps, res

    def _pointing_update(self, batch, maps: dict) -> None:
        """h. every method and the centre baseline; the target region is the class's segmentation mask where the
        data has one of the target class (COCO), else the union of the class's boxes (the scenes)."""
        images, labels, ids = batch["image"], batch["label"], batch["id"]
        if "multilabel" in batch:
            _check_classes(self.pointing_model, batch["multilabel"].shape[1], "pointing")
        b, _, h, w = images.shape
        region = ({"masks": batch["mask"]} if self.pointing_spec.get("data") and "mask" in batch
                  else {"boxes": batch["boxes"], "box_labels": batch["box_labels"]})
        maps = {**maps, "center": center_heatmaps(b, h, w, images.device)}
        evidence = None if self.pointing_spec.get("data") else evidence_of(batch)
        for m in [x for x in self.scored if x in maps] + ["center"]:
            self.pointing[m].update(maps[m], labels, difficult=batch.get("difficult"), ids=ids, **region)
            if evidence is not None:  # the evidence of the label's object as the ground truth
                self.pointing_evidence[m].update(maps[m], labels, masks=evidence, difficult=batch.get("difficult"), ids=ids)
        self.point_labels.update(ids, label=labels)

    def _keypoints_update(self, batch, maps: dict) -> None:
        labels, ids = batch["label"], batch["id"]
        keypoints = _primary_keypoints(batch, self.kp_parts)
        for m in self.all_methods:
            self.keypoint_metrics[m].update(maps[m], keypoints, labels, ids=ids)
        evidence = evidence_of(batch)
        if evidence is not None:  # the scenes: the discriminative part is known
            self.keypoint_metrics["ground_truth"].update(evidence.float(), keypoints, labels, ids=ids)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        images, labels, ids = batch["image"], batch["label"], batch["id"]
        split = self._test_loader_names[dataloader_idx]
        if split in ("pointing", "keypoints"):  # separate passes of the paper profile
            model = self.pointing_model if split == "pointing" else self.blackbox
            maps, _ = self._heatmaps(images, labels, model, self.pass_mask_configs[split])
            (self._pointing_update if split == "pointing" else self._keypoints_update)(batch, maps)
            return
        maps, res = self._heatmaps(images, labels)
        evidence = evidence_of(batch)
        if self.references:
            maps["oracle"] = oracle_maps(evidence)
            maps["random"] = id_seeded_random_maps(ids, tuple(images.shape[-2:]), seed=self.mask_config.seed)
        loc = self.loc_test if split == "test" else self.loc_heldout
        loc_ev = self.loc_test_evidence if split == "test" else self.loc_heldout_evidence
        ev_boxes = batch.get("evidence_boxes")
        if ev_boxes is None and evidence is not None:  # v1: one evidence box (the head's) per image
            ev_boxes = region_boxes(evidence.float())
            ev_labels = labels[:, None]
        else:
            ev_labels = batch["box_labels"]
        for m in self.scored:
            for t in THRESHOLDS:
                loc[m][t].update(maps[m], labels, batch["boxes"], batch["box_labels"], ids=ids)
                if evidence is not None:
                    loc_ev[m][t].update(maps[m], labels, ev_boxes, ev_labels, ids=ids)
        if split == "heldout":
            return
        b, _, h, w = images.shape
        # h. pointing game (here unless it has its own pass)
        if not self.pointing_spec.get("data"):
            self._pointing_update(batch, maps)
        # g. keypoints (here where the main data has them: the scenes' eyes and feet)
        if not self.kp_spec.get("data") and "keypoints" in batch:
            self._keypoints_update(batch, maps)
        # d. smallest suppressing box (Fong's null image: blur sigma_0, scaled to the image size)
        for m in self.scored:
            self.boxes[m].blur_sigma = self.mask_config.scaled(min(h, w))["blur_sigma"]
            self.boxes[m].update(self.blackbox, images, maps[m], labels, ids=ids)
        # mask statistics
        it = res.loss_history.shape[0]
        k = max(1, min(5, it))
        self.mask_rows.update(ids, clean=res.clean_score, null=res.null_score, final=res.final_score,
                              area=(1 - res.mask).mean(dim=(1, 2, 3)),
                              init_radius=res.init_radius if res.init_radius is not None else torch.full_like(res.clean_score, float("nan")),
                              loss_first=res.loss_history[:k].mean(0) if it else res.final_score * float("nan"),
                              loss_last=res.loss_history[-k:].mean(0) if it else res.final_score * float("nan"))
        if evidence is not None:
            self._compactness(batch, res.mask, evidence)
        # b. generalisation of simplified masks
        self._generalisation(images, labels, ids, res)
        # a. artifacts on the first images (selected by id, so the set does not depend on the process count)
        sel = ids < int(self.artifact_spec["images"])
        if sel.any():
            head = evidence[sel].float() if evidence is not None else None
            self._artifacts(images[sel], labels[sel], ids[sel], res.mask[sel], res.mask_lowres[sel], head)
        # e./f. adversarial detection and label recovery
        if self.adversarial is not None:
            self.adversarial.update(self, batch, {m: maps[m] for m in self.all_methods})
        # figures and benchmark
        if batch_idx == 0:
            n = min(self.figure_images, b)
            self.examples = {"images": images[:n].cpu(), "labels": labels[:n].cpu(),
                             "maps": {m: maps[m][:n].cpu() for m in self.all_methods}, "mask": res.mask[:n].cpu(),
                             "substrate": res.extras["substrate"][:n].cpu(),
                             "head": (evidence if evidence is not None else batch.get("mask", torch.zeros_like(res.mask)))[:n].cpu(),
                             "final": res.final_score[:n].cpu(), "clean": res.clean_score[:n].cpu()}
            if not self.bench:
                self.bench = self._benchmark(images, labels)

    def _perturbed_scores(self, images, labels, masks: torch.Tensor, kind: str, classes) -> torch.Tensor:
        """Normalised softmax of ``Phi(x; m)`` under perturbation ``kind`` (normalised with that kind's null)."""
        px = self.mask_config.scaled(min(images.shape[-2:]))
        gen = torch.Generator().manual_seed(self.mask_config.seed + 1)
        sub = perturbation_substrate(images, kind, px["blur_sigma"], self.mask_config.noise_std, gen)
        with torch.no_grad():
            probs = self.blackbox(torch.cat([images, sub, compose(images, sub, masks)])).softmax(1)
        s = probs.gather(1, classes.repeat(3, 1)).sum(1).view(3, -1)
        return normalized_score(s[2], s[0], s[1])

    def _generalisation(self, images, labels, ids, res) -> None:
        h = min(images.shape[-2:])
        sigma = self.gen_spec["smooth_sigma"] * h / self.mask_config.reference_size
        smooth = upsample_mask(res.mask_lowres, images.shape[-2:], sigma + self.mask_config.scaled(h)["mask_blur_sigma"])
        binary = (res.mask > self.gen_spec["binarise_at"]).float()
        # control: the same binary mask moved by half the image (same area, elsewhere)
        moved = torch.roll(binary, shifts=(images.shape[-2] // 2, images.shape[-1] // 2), dims=(-2, -1))
        classes = res.extras["classes"]
        rows = {}
        for name, m in (("smooth", smooth), ("binary", binary), ("moved", moved)):
            for kind in ("blur", "constant", "noise"):
                rows[f"{name}_{kind}"] = self._perturbed_scores(images, labels, m, kind, classes)
        self.gen_rows.update(ids, **rows)

    def _compactness(self, batch, mask: torch.Tensor, evidence: torch.Tensor) -> None:
        """How much the deletion mask deletes against the ground truth: the object's box area (union of the
        class's boxes, fraction of the image), the share of the deleted mass 1 - m inside it, the evidence's area
        and the share of the deleted mass on it, and the IoU of the evidence's bounding box with the best object
        box of the class (the localisation protocol's target; < 0.5 means that a map finding exactly the evidence
        counts as a localisation error against the object boxes)."""
        labels = batch["label"]
        b, _, h, w = mask.shape
        inside = boxes_to_mask(batch["boxes"].float(), batch["box_labels"], labels, h, w).float()
        deleted = (1 - mask).clamp(0, 1)
        mass = deleted.flatten(1).sum(1)
        ev = evidence.float()
        head_box = region_boxes(ev)  # (B, 1, 4) bounding box of the evidence pixels
        of_class = (batch["box_labels"] == labels[:, None]).float()
        iou = box_iou(head_box, batch["boxes"].float())[:, 0] * of_class  # (B, N) against every box
        self.compact_rows.update(batch["id"], box_area=inside.flatten(1).mean(1),
                                 mass_in_box=(deleted * inside).flatten(1).sum(1) / mass.clamp_min(1e-12),
                                 head_box_iou=iou.max(1).values, evidence_area=ev.flatten(1).mean(1),
                                 mass_on_evidence=(deleted * ev).flatten(1).sum(1) / mass.clamp_min(1e-12))

    def _artifacts(self, images, labels, ids, mask_reg, lowres_reg, head=None) -> None:
        art = learn_masks(self.blackbox, images, labels, self.artifact_config)
        share = lambda m: (((1 - m) * head).flatten(1).sum(1) / (1 - m).flatten(1).sum(1).clamp_min(1e-12)  # noqa: E731
                           if head is not None else torch.full((m.shape[0],), float("nan"), device=m.device))
        classes = art.extras["classes"]
        tv = lambda m: ((m[..., 1:, :] - m[..., :-1, :]).abs().mean(dim=(1, 2, 3))  # noqa: E731
                        + (m[..., :, 1:] - m[..., :, :-1]).abs().mean(dim=(1, 2, 3)))
        self.artifact_rows.update(
            ids,
            area_reg=(1 - mask_reg).mean(dim=(1, 2, 3)), area_art=(1 - art.mask).mean(dim=(1, 2, 3)),
            ns_reg_blur=self._perturbed_scores(images, labels, mask_reg, "blur", classes),
            ns_art_blur=self._perturbed_scores(images, labels, art.mask, "blur", classes),
            ns_reg_constant=self._perturbed_scores(images, labels, mask_reg, "constant", classes),
            ns_art_constant=self._perturbed_scores(images, labels, art.mask, "constant", classes),
            tv_reg=tv(mask_reg), tv_art=tv(art.mask), head_share_reg=share(mask_reg), head_share_art=share(art.mask),
        )
        if "artifact" not in self.examples_extra:
            self.examples_extra["artifact"] = {"images": images.cpu(), "reg": mask_reg.cpu(), "art": art.mask.cpu()}

    @property
    def examples_extra(self) -> dict:
        if not hasattr(self, "_examples_extra"):
            self._examples_extra = {}
        return self._examples_extra

    def _benchmark(self, images, labels) -> dict:
        """min over repeats of: mask learning time / (iterations x one forward+backward of the same batch).

        Both loops are timed alternately (the machine is shared: the minimum is the least disturbed run); the
        mask run uses ``init='ones'`` so that only the optimisation loop is compared with the reference loop."""
        n = min(int(self.bench_spec["batch"]), images.shape[0])
        x, t = images[:n], labels[:n]
        it = int(self.bench_spec["iterations"])
        cfg = MaskConfig.from_dict({**asdict(self.mask_config), "iterations": it, "init": "ones"})
        model = self.blackbox

        def reference() -> float:
            xx = x.clone().requires_grad_(True)
            t0 = time.perf_counter()
            with torch.enable_grad():
                for _ in range(it):
                    xx.grad = None
                    model(xx).softmax(1).gather(1, t[:, None]).sum().backward()
            if x.is_cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        def timed_masks(net: nn.Module) -> float:
            t0 = time.perf_counter()
            learn_masks(net, x, t, cfg, record=False)
            if x.is_cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        # the pipeline's own work: the same optimisation with the network replaced by one linear layer
        with torch.no_grad():
            k = model(x[:1]).shape[1]
        linear = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), k)).to(x.device).eval()
        for p in linear.parameters():
            p.requires_grad_(False)

        def masks() -> float:
            return timed_masks(model)

        def pipeline() -> float:
            return timed_masks(linear)

        reference(); masks(); pipeline()  # warm-up
        refs, ms, pipe = [], [], []
        for _ in range(int(self.bench_spec["repeats"])):
            refs.append(reference())
            ms.append(masks())
            pipe.append(pipeline())
        return {"batch": n, "iterations": it, "mask_s": min(ms), "forward_backward_s": min(refs),
                "ratio": min(ms) / min(refs), "pipeline_s": min(pipe), "pipeline_share": min(pipe) / min(refs),
                "device": str(x.device)}

    # ------------------------------------------------------------------------------------------ results
    def on_test_epoch_end(self) -> None:
        r: dict = {"localisation": {}, "pointing": {}, "keypoints": {}, "boxes": {}}
        has_evidence = self.loc_test_evidence[MASK]["value"].update_count > 0
        r["localisation_evidence"] = {}
        for m in self.scored:
            r["localisation"][m] = {t: tune_and_evaluate(self.loc_heldout[m][t], self.loc_test[m][t]) for t in THRESHOLDS}
            if has_evidence:
                r["localisation_evidence"][m] = {t: tune_and_evaluate(self.loc_heldout_evidence[m][t],
                                                                      self.loc_test_evidence[m][t]) for t in THRESHOLDS}
        r["pointing_evidence"] = {}
        for m in self.scored + ["center"]:
            v = self.pointing[m].compute()
            r["pointing"][m] = {k: float(x) for k, x in v.items()}
            if self.pointing_evidence[m].update_count:
                r["pointing_evidence"][m] = {k: float(x) for k, x in self.pointing_evidence[m].compute().items()}
        for m in self.all_methods + ["ground_truth"]:
            if self.keypoint_metrics[m].update_count:
                r["keypoints"][m] = {k: float(x) for k, x in self.keypoint_metrics[m].compute().items()}
        if self.kp_spec.get("data") and self.keypoint_metrics[MASK].update_count:
            # the paper reports the animal-parts result per class (official animal_parts.ipynb)
            per = self.keypoint_metrics[MASK].per_sample()
            classes, counts = torch.unique(per["classes"], return_counts=True)
            means = self.keypoint_metrics[MASK].per_class()
            r["keypoints_per_class"] = [{"class": int(c), "images": int(n), **{p: means[p][int(c)] for p in per["names"]}}
                                        for c, n in zip(classes.tolist(), counts.tolist())]
        for key, tests, tuned in (("localisation", self.loc_test, r["localisation"]),
                                  ("localisation_evidence", self.loc_test_evidence, r["localisation_evidence"])):
            r[f"{key}_per_image"] = {}
            for m in tuned:
                r[f"{key}_per_image"][m] = {}
                for t in THRESHOLDS:
                    ps = tests[m][t].per_sample()
                    i = int(torch.nonzero(ps["alphas"] == tuned[m][t]["alpha"])[0, 0])
                    r[f"{key}_per_image"][m][t] = ps["errors"][:, i].cpu().tolist()
        r["pointing_per_image"] = {m: {"hits": self.pointing[m].per_sample()["hits"].cpu().tolist(),
                                       "difficult": self.pointing[m].per_sample()["difficult"].bool().cpu().tolist()}
                                   for m in self.scored + ["center"]}
        r["pointing_evidence_per_image"] = {m: {"hits": self.pointing_evidence[m].per_sample()["hits"].cpu().tolist()}
                                            for m in r["pointing_evidence"]}
        r["pointing_labels"] = [int(x) for x in self.point_labels.compute()["label"].cpu().tolist()]
        r["keypoint_parts"] = list(self.kp_parts)
        r["keypoints_per_image"] = {m: {p: self.keypoint_metrics[m].per_sample()["intensity"][:, i].cpu().tolist()
                                        for i, p in enumerate(self.kp_parts)}
                                    for m in self.all_methods + ["ground_truth"] if self.keypoint_metrics[m].update_count}
        r["boxes_per_image"] = {}
        for m in self.scored:
            r["boxes"][m] = float(self.boxes[m].compute())
            r["boxes_per_image"][m] = self.boxes[m].per_sample()["best_area"].cpu().tolist()
        r["mask"] = {k: _mean(v) for k, v in self.mask_rows.compute().items() if k != "sample_ids"}
        rows = self.mask_rows.compute()
        ns = normalized_score(rows["final"], rows["clean"], rows["null"])
        r["mask"]["normalized_score"] = _mean(ns)
        r["mask"]["n"] = int(rows["final"].numel())
        r["mask"]["n_defined"] = int(torch.isfinite(ns).sum())
        r["mask_per_image"] = {"normalised_score": ns.cpu().tolist(),
                               **{k: rows[k].cpu().tolist() for k in ("area", "loss_first", "loss_last")}}
        if self.compact_rows.update_count:
            comp = self.compact_rows.compute()
            r["compactness_per_image"] = {k: v.cpu().tolist() for k, v in comp.items() if k != "sample_ids"}
            r["mask"].update({k: _mean(v) for k, v in comp.items() if k != "sample_ids"})
        gen = self.gen_rows.compute()
        r["generalisation"] = {k: _mean(v) for k, v in gen.items() if k != "sample_ids"}
        r["generalisation_per_image"] = {k: v.cpu().tolist() for k, v in gen.items() if k != "sample_ids"}
        art = self.artifact_rows.compute()
        r["artifacts"] = {k: _mean(v) for k, v in art.items() if k != "sample_ids"}
        r["artifacts"]["n"] = int(art["area_reg"].numel())
        r["artifacts_per_image"] = {k: v.cpu().tolist() for k, v in art.items() if k != "sample_ids"}
        if self.adversarial is not None:
            r["adversarial"] = self.adversarial.compute(self)
        r["benchmark"] = self.bench
        r["timings_s"] = dict(self.timings)
        self.results = r

    def plain_results(self) -> dict:
        """Every number the claims read (``claims.build_claims``): the per-image values of every experiment (sorted
        by sample id; the same images for every method), their means, and the run's settings."""
        r = self.results
        out = {k: v for k, v in r.items() if k != "timings_s"}
        out["methods"] = list(self.methods)
        out["all_methods"] = list(self.all_methods)
        out["paper_keys"] = {m: PAPER_KEY.get(m, m) for m in self.all_methods}
        out["n_test"] = r["mask"]["n"]
        out["n_heldout"] = self.data_spec.get("heldout_images")
        out["num_classes"] = int(getattr(self.blackbox, "num_classes", 0) or 0)
        out["mask_config"] = {"l1_coeff": self.mask_config.l1_coeff, "objective": self.mask_config.objective,
                              "iterations": self.mask_config.iterations}
        out["box_level"] = self.box_spec["level"]
        out["n_box_alphas"] = int(self.boxes[MASK].alphas.numel())
        out["references"] = list(self.references)
        specs = self.validity_specs(r)
        if specs:
            out["protocol_validity"] = specs
        return out

    def validity_specs(self, r: dict) -> dict:
        """The inputs of every protocol's validity verdict (``lightning_modules.reporting.validity``): per-image
        values of the oracle, random and every method (the mask included) on the test images."""
        if not self.references:
            return {}
        names = self.scored
        specs = {}
        for gt, key in (("object", "localisation_per_image"), ("evidence", "localisation_evidence_per_image")):
            per = r.get(key) or {}
            if not per:
                continue
            for t in THRESHOLDS:
                specs[f"localisation_{gt}_{t}"] = protocol_spec({m: per[m][t] for m in names}, higher_is_better=False,
                                                                bound=LOCALISATION_SATURATION)
        specs["suppression"] = protocol_spec({m: r["boxes_per_image"][m] for m in names}, higher_is_better=False)
        flags = r["pointing_per_image"]["center"]["difficult"]
        for gt, key in (("object", "pointing_per_image"), ("evidence", "pointing_evidence_per_image")):
            per = r.get(key) or {}
            if per:
                specs.update(pointing_specs(gt, {m: per[m]["hits"] for m in names}, r["pointing_labels"], flags))
        return specs

    def build_report(self, report) -> None:
        from replications.fong2017.report import build_report

        build_report(self, report)
