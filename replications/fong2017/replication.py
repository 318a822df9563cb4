"""Fong & Vedaldi 2017, "Interpretable Explanations of Black Boxes by Meaningful Perturbation": the replication
module, which wires the experiments of :mod:`replications.fong2017.experiments` to the data, the black boxes and
the saliency methods.

Everything runs in the Lightning test pass (``fit`` -> ``test``), one batch at a time; the batch loop and the
per-batch map cache are :class:`lightning_modules.experiment.ExperimentReplication`'s. Each method's maps and the
deletion mask (Sec. 3-4) are computed once per batch, when an experiment first asks for them. DDP splits the images
across processes and every number is a torchmetrics state keyed by the sample id, so one process and N give the
same tables.

Where the data carries the class evidence (benchmark v2's ``evidence_mask`` / ``evidence_boxes``; the v1 scenes'
head), c., d. and h. also score two reference maps, the *oracle* (the evidence as a heatmap) and a *random* map
seeded by sample id, and Table 1 and the pointing game are scored against both ground truths: the object boxes (the
paper's) and the evidence. From those per-image values every protocol is judged for validity in the run
(``lightning_modules.reporting.validity``); claims on a protocol that is not valid there are reported as not valid.
"""

from __future__ import annotations

import time
import types
from dataclasses import asdict
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from lightning_modules.benchmarks.validity import oracle_maps
from lightning_modules.experiment import BatchContext, ExperimentReplication
from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.baselines import id_seeded_random_maps
from lightning_modules.reporting import pointing_specs, protocol_spec
from lightning_modules.tasks.mask_learning import MaskConfig, learn_masks
from lightning_modules.utils import config_section
from replications.cli import ReplicationModule
from replications.fong2017.experiments import experiment_modules
from replications.fong2017.experiments.a_artifacts import ArtifactsConfig
from replications.fong2017.experiments.b_generalisation import GeneralisationConfig
from replications.fong2017.experiments.benchmark import MaskBenchmarkConfig
from replications.fong2017.experiments.c_weak_localisation import THRESHOLDS, LocalisationConfig
from replications.fong2017.experiments.d_smallest_box import SmallestBoxConfig
from replications.fong2017.experiments.e_adversarial_detection import AdversarialConfig
from replications.fong2017.experiments.g_keypoints import KeypointsConfig
from replications.fong2017.experiments.h_pointing_game import check_classes
from replications.fong2017.masks import MASK, MASK_RESULT
from replications.fong2017.paper import PAPER_KEY

#: reference maps scored beside the methods where the data has the ground-truth evidence
REFERENCES = ("oracle", "random")
#: validity rule of weak localisation (as ``lightning_modules.benchmarks.validity``): the best method's error must
#: stay above this (not saturated); pointing: ``lightning_modules.reporting.validity.pointing_specs``
LOCALISATION_SATURATION = 0.02
#: the splits whose explanation time the report shows (the adversarial images' maps are e.'s cost, not a method's)
TIMED_SPLITS = ("test", "heldout", "pointing", "keypoints")


def _relu_modules(model: nn.Module) -> nn.Module:
    """torchvision's GoogLeNet applies ReLU functionally inside ``BasicConv2d`` (``F.relu``); guided backprop (Captum)
    and excitation backprop act on ``nn.ReLU`` modules. Give each ``BasicConv2d`` an ``nn.ReLU`` and a forward that
    uses it: the same function, the same weights (ReLU has no state), now hookable."""
    for m in model.modules():
        if type(m).__name__ == "BasicConv2d" and not isinstance(getattr(m, "relu", None), nn.ReLU):
            m.relu = nn.ReLU()
            m.forward = types.MethodType(lambda self, x: self.relu(self.bn(self.conv(x))), m)
    return model


class FongReplication(ExperimentReplication, ReplicationModule):
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
        pointing_methods: list[str] | None = None,
        adversarial: AdversarialConfig = AdversarialConfig(),  # noqa: B008
        benchmark: MaskBenchmarkConfig = MaskBenchmarkConfig(),  # noqa: B008
        figure_images: int = 4,
    ):
        """
        Args:
            blackbox_profile: the black box ``blackbox_<profile>`` (``default``/``smoke``) when ``model`` is not given.
            model: ``{"name": ..., "checkpoint": ..., "num_classes": ...}`` for ``load_model`` (the paper profile).
            data: ``{"kind": "scenes", "profile": ..., "test_images": N, "heldout_images": M, "batch_size": B}``.
            methods: the saliency methods compared with the mask (explainer registry names).
            explainer_kwargs: per-method constructor arguments.
            mask: :class:`MaskConfig` of the main deletion masks (paper values, scaled to the image size).
            artifacts, generalisation, localisation, smallest_box, keypoints, adversarial, benchmark: the typed
                sections of the experiments (``ArtifactsConfig`` ... ``MaskBenchmarkConfig``, each in its
                experiment's file): LightningCLI checks their types and ``--print_config`` shows their defaults.
            keypoints_data: a separate keypoint pass (``{"kind": "animal_parts", ...}``, paper profile); None: the
                main test split's keypoints (the scenes). ``keypoints_mask``: its MaskConfig overrides.
            pointing_data: a separate pointing-game pass (``{"kind": "coco", ...}``) with its own classifier
                ``pointing_model`` (a ``load_model`` spec; None: the main black box) and ``pointing_mask``
                (MaskConfig overrides); None: the pointing game runs on the main test split (the scenes).
                ``{"kind": "scenes_multilabel", "profile": ..., "test_images": N}`` with ``pointing_model``
                ``{"embedded_multilabel": name}``: the embedded pointing game, as the paper's on COCO (one trial per
                (image, class), EBP's difficult rule, the class's object pixels and its evidence as ground truths).
            pointing_methods: the methods explained on a separate pointing pass besides the mask (None: every method).
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
        self.artifact_spec = asdict(config_section(artifacts, ArtifactsConfig, "artifacts"))
        self.gen_spec = asdict(config_section(generalisation, GeneralisationConfig, "generalisation"))
        self.loc_spec = asdict(config_section(localisation, LocalisationConfig, "localisation"))
        self.box_spec = {k: v for k, v in asdict(config_section(smallest_box, SmallestBoxConfig, "smallest_box")).items()
                         if v is not None}
        self.kp_spec = asdict(config_section(keypoints, KeypointsConfig, "keypoints"))
        extra = {"data": keypoints_data, "mask": keypoints_mask}
        self.kp_spec.update({k: v for k, v in extra.items() if v is not None})
        extra = {"data": pointing_data, "model": pointing_model, "mask": pointing_mask}
        self.pointing_spec = {k: v for k, v in extra.items() if v is not None}
        unknown = sorted(set(pointing_methods or []) - set(self.methods))
        if unknown:
            raise ValueError(f"pointing_methods {unknown} are not among the methods {self.methods}")
        self.pointing_methods = [m for m in self.methods if pointing_methods is None or m in pointing_methods]
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
        self.references = list(REFERENCES) if self.data_spec["kind"] in ("scenes", "scenes_v2") else []
        self.scored = self.all_methods + self.references

        self.blackbox: nn.Module | None = None
        self.pointing_model: nn.Module | None = None
        self.explainers = {m: create_explainer(m, **self.explainer_kwargs.get(m, {})) for m in self.methods}
        # every file of experiments/, in the order they see a batch
        self.add_experiments([e for module in experiment_modules() for e in module.build(self)])

    # ------------------------------------------------------------------------------------------ setup / data
    def _load_blackbox(self, model_spec: dict | None = None) -> nn.Module:
        from lightning_modules.models import load_model

        model_spec = self.model_spec if model_spec is None else model_spec
        # a shipped embedded model by kind: v2 (softmax) or the multi-label one of the embedded pointing game
        # (per-class sigmoid scores)
        kind = next((k for k in ("embedded_multilabel", "embedded_v2") if model_spec and k in model_spec), None)
        if kind is not None:
            spec = dict(model_spec)
            name = spec.pop(kind)
            if spec:
                raise ValueError(f"model.{kind} takes no other keys, got {sorted(spec)}")
            model, _ = load_model(name, weights="embedded")
            model.num_classes = model.scenes_config.num_classes
        elif model_spec:
            spec = dict(model_spec)
            model, _ = load_model(spec.pop("name"), freeze=True, **spec)
            model = _relu_modules(model)
        else:
            model, _ = load_model(f"blackbox_{self.blackbox_profile}", weights="embedded")
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
        self.test_splits = [n for n in names if n in datasets]
        return [DataLoader(datasets[n], batch_size=self.data_spec["batch_size"], shuffle=False, collate_fn=collate_batch)
                for n in self.test_splits]

    def train_dataloader(self):
        # nothing is trained by gradient descent on the module itself; the adversarial detector trains inside test
        return []

    def test_dataloader(self):
        return self._loaders(("test", "heldout", "pointing", "keypoints"))

    def val_dataloader(self):
        # ``validate``: the black boxes classify every pass's images (no explanation is computed)
        loaders = self._loaders(("test", "pointing", "keypoints"))
        self._val_loader_names = list(self.test_splits)
        return loaders

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Top-1 accuracy of the black box on each pass's images (``val/acc``, ``val/pointing_acc``,
        ``val/keypoints_acc``); for COCO's multi-label images a hit is a top-1 class present in the image."""
        name = self._val_loader_names[dataloader_idx]
        model = self.model_for(name)
        with torch.no_grad():
            pred = model(batch["image"]).argmax(1)
        if "multilabel" in batch:
            check_classes(model, batch["multilabel"].shape[1], name)
            correct = batch["multilabel"].gather(1, pred[:, None])[:, 0] > 0
        else:
            correct = pred == batch["label"]
        key = "val/acc" if name == "test" else f"val/{name}_acc"
        self.log(key, correct.float().mean(), batch_size=pred.shape[0], sync_dist=True, add_dataloader_idx=False)

    # ------------------------------------------------------------------------------------------ explanation
    def model_for(self, split: str) -> nn.Module:
        return self.pointing_model if split == "pointing" else self.blackbox

    def multilabel_pointing(self) -> bool:
        """The pointing game runs on the embedded multi-label scenes (a separate pass that has the evidence)."""
        return (self.pointing_spec.get("data") or {}).get("kind") == "scenes_multilabel"

    def methods_for(self, split: str) -> list[str]:
        # the reference maps need the class evidence: the main scenes and the multi-label pointing scenes have it
        if split in ("test", "heldout"):
            return self.scored
        if split == "pointing":
            return self.pointing_methods + [MASK] + (list(REFERENCES) if self.multilabel_pointing() else [])
        return self.all_methods

    def explain(self, method: str, ctx: BatchContext) -> torch.Tensor:
        """One method's maps of a batch: an explainer's (signed maps clamped at 0: Fong's thresholds need
        non-negative maps), the deletion mask's 1 - m (its full result kept in the context), or a reference map."""
        if method == "oracle":
            return oracle_maps(ctx.evidence)
        if method == "random":
            return id_seeded_random_maps(ctx.ids, tuple(ctx.images.shape[-2:]), seed=self.mask_config.seed)
        t0 = time.perf_counter()
        if method == MASK:
            config = self.pass_mask_configs.get(ctx.split, self.mask_config)
            res = ctx.cached(MASK_RESULT, lambda: learn_masks(ctx.model, ctx.images, ctx.labels, config))
            out = (1 - res.mask).clamp(0, 1)  # the blur can overshoot 1 by rounding
        else:
            out = self.explainers[method](ctx.model, ctx.images, ctx.labels).clamp(min=0)
        if ctx.split in TIMED_SPLITS:
            self.timings[method] = self.timings.get(method, 0.0) + time.perf_counter() - t0
        return out

    # ------------------------------------------------------------------------------------------ results
    def plain_results(self) -> dict:
        """Every number the claims read (``claims.build_claims``): the per-image values of every experiment (sorted
        by sample id; the same images for every method), their means, and the run's settings."""
        r = self.results
        out = dict(r)
        out["methods"] = list(self.methods)
        out["all_methods"] = list(self.all_methods)
        out["paper_keys"] = {m: PAPER_KEY.get(m, m) for m in self.all_methods}
        out["n_test"] = r["mask"]["n"]
        out["n_heldout"] = self.data_spec.get("heldout_images")
        out["num_classes"] = int(getattr(self.blackbox, "num_classes", 0) or 0)
        out["mask_config"] = {"l1_coeff": self.mask_config.l1_coeff, "objective": self.mask_config.objective,
                              "iterations": self.mask_config.iterations}
        out["box_level"] = self.box_spec["level"]
        out["references"] = list(self.references)
        specs = validity_specs(r, self.scored) if self.references else {}
        if specs:
            out["protocol_validity"] = specs
        return out

    def report_config(self) -> dict:
        """The settings the report states (plain values): the report is a function of (results, this)."""
        return {"model": self.model_spec, "blackbox_profile": self.blackbox_profile, "data": self.data_spec,
                "mask": asdict(self.mask_config), "explainer_kwargs": self.explainer_kwargs,
                "artifacts": self.artifact_spec, "generalisation": self.gen_spec, "smallest_box": self.box_spec,
                "adversarial": self.adv_spec, "pointing": self.pointing_spec, "methods": self.methods,
                "all_methods": self.all_methods, "references": self.references, "scored": self.scored,
                "blackbox_info": getattr(self.blackbox, "blackbox_info", None),
                "embedded_info": getattr(self.blackbox, "embedded_info", None)}


def validity_specs(r: dict, names: list[str]) -> dict:
    """The inputs of every protocol's validity verdict (``lightning_modules.reporting.validity``): per-image values
    of the oracle, random and every method (the mask included) on the test images."""
    specs = {}
    # Table 1 against the object boxes (all classes, and benchmark v2's coat classes alone) and the evidence boxes
    for gt, key in (("object", "localisation_per_image"), ("evidence", "localisation_evidence_per_image"),
                    ("object_coat", "localisation_coat_per_image")):
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
            # the multi-label pass: the (image, class) trials of one image are resampled together
            specs.update(pointing_specs(gt, {m: per[m]["hits"] for m in names if m in per}, r["pointing_labels"],
                                        flags, groups=r.get("pointing_image_index")))
    return specs
