"""The multi-label black box of the pointing benchmark (issue 36): ``scenes_multilabel_vgg``, the v2 VGG-style
network (8 ReLU conv layers, ``models.vgg_resnet_v2``) trained from scratch with a per-class sigmoid loss on the
multi-label scenes (``lightning_modules.data.scenes_multilabel``), as the papers' VOC07 / COCO classifiers are, and
shipped in ``weights/`` with its SHA-256 (``models.shipped``).

``load_model("scenes_multilabel_vgg", weights="embedded")`` returns ``(model, data_config)``: frozen, eval, [0, 1]
inputs, logits (one per class; the class score of the perturbation methods is its sigmoid,
``model.score = "sigmoid"``); it never trains unless ``weights="retrain"``. ``python -m replications train-embedded
scenes_multilabel_vgg`` retrains and ships.
Training is deterministic (one seed, ``embedded_v2.TRAIN_THREADS`` CPU threads, no augmentation: a flip swaps the
45 and 135 degree classes).

Measured when trained (``model.embedded_info``): test mAP (macro over classes, torchmetrics), the AP of the small
objects (scale < ``SMALL_SCALE``; per class, positives = images where the class is present *and small*, negatives =
images without it), the AP with every object's evidence removed (re-rendered without the gratings: near the
frequency of each class when the model reads the evidence), and the training's wall and CPU time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from lightning_modules.data.scenes_multilabel import (PROFILES, MultiLabelScenes, MultiLabelScenesConfig,
                                                      MultiLabelScenesDataModule, render_split)
from lightning_modules.models.embedded_v2 import (TRAIN_THREADS, build_embedded, fit_embedded, forward_cost,
                                                   load_shipped_or_cached, save_trained, train_and_ship)
from lightning_modules.models.loader import architecture_version
from lightning_modules.models.registry import EmbeddedSpec, register_embedded
from lightning_modules.models.shipped import config_hash
from lightning_modules.utils import torch_threads

log = logging.getLogger(__name__)

#: objects below this scale (v2 units) are the "small" ones whose AP is reported separately
SMALL_SCALE = 0.8


@dataclass(frozen=True)
class EmbeddedMultiLabelConfig:
    """What decides a multi-label model's trained weights (hashed into its cache folder and manifest entry)."""

    scenes: MultiLabelScenesConfig = field(default_factory=MultiLabelScenesConfig)
    model_name: str = "scenes_vgg"
    model_kwargs: dict = field(default_factory=dict)
    max_epochs: int = 20
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.03
    seed: int = 0

    def content_hash(self) -> str:
        return config_hash(self, arch_version=architecture_version(self.model_name), kind="multilabel")


EMBEDDED_MULTILABEL: dict[str, EmbeddedMultiLabelConfig] = {
    "scenes_multilabel_vgg": EmbeddedMultiLabelConfig(model_kwargs={"width": 16}, max_epochs=20),
    # seconds: for tests of the training / loading path (never shipped)
    "scenes_multilabel_smoke": EmbeddedMultiLabelConfig(scenes=PROFILES["smoke"], model_kwargs={"width": 4},
                                                        max_epochs=1),
}
SHIPPED_MULTILABEL = ("scenes_multilabel_vgg",)


def embedded_multilabel_config(name: str | EmbeddedMultiLabelConfig) -> EmbeddedMultiLabelConfig:
    if isinstance(name, EmbeddedMultiLabelConfig):
        return name
    if name not in EMBEDDED_MULTILABEL:
        raise ValueError(f"unknown multi-label model {name!r}; known: {sorted(EMBEDDED_MULTILABEL)}")
    return EMBEDDED_MULTILABEL[name]


# --------------------------------------------------------------------------------------------- measurements
@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    return torch.cat([model(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])


def mean_average_precision(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Macro mAP over the classes with at least one positive (torchmetrics' ``multilabel_average_precision``).
    ``valid`` (N, K) bool: the (image, class) entries that count (others are ignored)."""
    from torchmetrics.functional.classification import multilabel_average_precision

    t = targets.long()
    if valid is not None:
        t = torch.where(valid, t, torch.full_like(t, -1))
    has_pos = (t == 1).any(0)
    ap = multilabel_average_precision(logits[:, has_pos], t[:, has_pos], num_labels=int(has_pos.sum()),
                                      average="none", ignore_index=-1)
    return float(ap.mean())


def evaluate(model: torch.nn.Module, dataset: MultiLabelScenes) -> dict:
    """Test mAP, the small objects' mAP, and the mAP with every object's evidence removed (see the docstring)."""
    images, targets = dataset.tensors()
    logits = predict_logits(model, images)
    d = dataset.data
    k = dataset.num_classes
    present = d["box_labels"] >= 0
    onehot = torch.nn.functional.one_hot(d["box_labels"].clamp(min=0), k).bool() & present[..., None]
    small = (onehot & (d["scale"] < SMALL_SCALE)[..., None]).any(1)
    large = (onehot & (d["scale"] >= SMALL_SCALE)[..., None]).any(1)
    # the same scenes with every grating at its mean colour
    no_evidence = render_split(dataset.config, dataset.split, len(d["image"]), omit=("evidence",))["image"]
    return {
        "n_images": int(images.shape[0]),
        "objects_per_image": float(present.sum(1).float().mean()),
        "map": mean_average_precision(logits, targets),
        "map_small_objects": mean_average_precision(logits, targets, valid=~large),
        "map_large_objects": mean_average_precision(logits, targets, valid=~small),
        "small_scale_below": SMALL_SCALE,
        "map_evidence_removed": mean_average_precision(predict_logits(model, no_evidence.float().div_(255)), targets),
        "label_frequency": float(targets.mean()),
    }


# --------------------------------------------------------------------------------------------- training
def train_embedded_multilabel(cfg: EmbeddedMultiLabelConfig, out_dir: Path | None = None,
                              root: str | Path | None = None, accelerator: str = "cpu") -> tuple:
    """Train ``cfg`` with ``ClassifierTask(multilabel=True)``; returns ``(net, info)`` and saves ``model.pt`` +
    ``info.json`` into ``out_dir`` when given."""
    with torch_threads(TRAIN_THREADS):
        return _train(cfg, out_dir, root, accelerator)


def _train(cfg: EmbeddedMultiLabelConfig, out_dir: Path | None, root, accelerator: str) -> tuple:
    dm = MultiLabelScenesDataModule(cfg.scenes, batch_size=cfg.batch_size, eval_batch_size=500, root=root)
    net, model, trainer, info = fit_embedded(cfg, dm, accelerator, multilabel=True)
    test = evaluate(model, MultiLabelScenes("test", cfg.scenes, root))
    info.update({
        "train_map_last_epoch": float(trainer.callback_metrics.get("train/map", float("nan"))),
        "val_map": mean_average_precision(*_val(model, cfg, root)),
        "test": test,
        "test_map": test["map"],
        "forward_cost": forward_cost(model, cfg.scenes.image_size),
    })
    save_trained(out_dir, net, info)
    log.info("%s (multi-label) trained in %.0f s (%.0f s CPU): test mAP %.4f", cfg.model_name, info["training_s"],
             info["training_cpu_s"], info["test_map"])
    return net, info


def _val(model, cfg: EmbeddedMultiLabelConfig, root) -> tuple[torch.Tensor, torch.Tensor]:
    images, targets = MultiLabelScenes("val", cfg.scenes, root).tensors()
    return predict_logits(model, images), targets


def _build(cfg: EmbeddedMultiLabelConfig, state: dict, info: dict):
    model, data_config = build_embedded(cfg, state, info)
    model.score = "sigmoid"  # independent per-class scores (the perturbation methods' class score)
    return model, data_config


def _load(name: str, retrain: bool = False, root: str | Path | None = None):
    """``(model, data_config)`` of a multi-label model (see the module docstring); shipped weights unless
    ``retrain=True`` (then trained into ``<data root>/embedded_multilabel/<config hash>/`` or reused from there)."""
    return load_shipped_or_cached(name, embedded_multilabel_config(name), retrain, root, folder="embedded_multilabel",
                                  what="multi-label model", shipped=SHIPPED_MULTILABEL,
                                  train=train_embedded_multilabel, build=_build)


def _ship(name: str, root: str | Path | None = None, accelerator: str = "cpu") -> Path:
    """Retrain a multi-label model from scratch and ship it (``weights/<name>.safetensors`` + SHA-256)."""
    return train_and_ship(name, SHIPPED_MULTILABEL, embedded_multilabel_config, train_embedded_multilabel, root,
                          accelerator)


def with_overrides(name: str, **changes) -> EmbeddedMultiLabelConfig:
    """A copy of a named config with fields changed (e.g. a reduced schedule for a quick check)."""
    return replace(embedded_multilabel_config(name), **changes)


for _name, _cfg in EMBEDDED_MULTILABEL.items():
    register_embedded(EmbeddedSpec(_name, "embedded_multilabel", _cfg, _load,
                                   partial(_ship, _name) if _name in SHIPPED_MULTILABEL else None,
                                   shipped=_name in SHIPPED_MULTILABEL, on_device=True))
