"""The multi-label black box of the pointing benchmark (issue 36): ``scenes_multilabel_vgg``, the v2 VGG-style
network (8 ReLU conv layers, ``lightning_modules.nets_v2``) trained from scratch with a per-class sigmoid loss on the
multi-label scenes (``lightning_modules.data.scenes_multilabel``), as the papers' VOC07 / COCO classifiers are, and
shipped in ``weights/`` with its SHA-256 (``lightning_modules.shipped``).

``load_embedded_multilabel(name)`` returns ``(model, data_config)``: frozen, eval, [0, 1] inputs, logits (one per
class; the class score of the perturbation methods is its sigmoid, ``model.score = "sigmoid"``); it never trains
unless ``retrain=True``. ``python -m replications train-embedded scenes_multilabel_vgg`` retrains and ships.
Training is deterministic (one seed, ``embedded_v2.TRAIN_THREADS`` CPU threads, no augmentation: a flip swaps the
45 and 135 degree classes).

Measured when trained (``model.embedded_info``): test mAP (macro over classes, torchmetrics), the AP of the small
objects (scale < ``SMALL_SCALE``; per class, positives = images where the class is present *and small*, negatives =
images without it), the AP with every object's evidence removed (re-rendered without the gratings: near the
frequency of each class when the model reads the evidence), and the training's wall and CPU time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from lightning_modules.data.scenes_multilabel import (PROFILES, MultiLabelScenes, MultiLabelScenesConfig,
                                                      MultiLabelScenesDataModule, render_split)
from lightning_modules.shipped import ShippedWeightsError, load_shipped, ship, shipped_entry
from lightning_modules.utils import atomic_write, data_root, file_lock, torch_threads

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
        from lightning_modules.models import architecture_version

        d = asdict(self)
        d["arch_version"] = architecture_version(self.model_name)
        d["kind"] = "multilabel"
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


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
    from lightning_modules.embedded_v2 import TRAIN_THREADS

    with torch_threads(TRAIN_THREADS):
        return _train(cfg, out_dir, root, accelerator)


def _train(cfg: EmbeddedMultiLabelConfig, out_dir: Path | None, root, accelerator: str) -> tuple:
    import lightning.pytorch as pl

    from lightning_modules.embedded_v2 import forward_cost
    from lightning_modules.models import load_model, unwrap
    from lightning_modules.tasks.classifier import ClassifierTask
    from lightning_modules.utils import seed_everything

    seed_everything(cfg.seed)
    dm = MultiLabelScenesDataModule(cfg.scenes, batch_size=cfg.batch_size, eval_batch_size=500, root=root)
    started = time.perf_counter()
    dm.prepare_data()
    data_s = time.perf_counter() - started
    task = ClassifierTask(cfg.model_name, cfg.scenes.num_classes, dict(cfg.model_kwargs), optimizer=cfg.optimizer,
                          lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_fraction=cfg.warmup_fraction,
                          hflip=False, validate_batches=False, multilabel=True)
    trainer = pl.Trainer(max_epochs=cfg.max_epochs, accelerator=accelerator, devices=1, logger=False,
                         enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                         deterministic="warn", num_sanity_val_steps=0, limit_val_batches=0)
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.fit(task, datamodule=dm)
    train_s, train_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    net = unwrap(task.model).cpu()
    model, _ = load_model(cfg.model_name, num_classes=cfg.scenes.num_classes, freeze=True, **dict(cfg.model_kwargs))
    unwrap(model).load_state_dict(net.state_dict())
    test = evaluate(model, MultiLabelScenes("test", cfg.scenes, root))
    info = {
        "config_hash": cfg.content_hash(),
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "scenes_generation_s": round(data_s, 2),
        "training_s": round(train_s, 2),
        "training_cpu_s": round(train_cpu_s, 2),
        "torch_threads": torch.get_num_threads(),
        "accelerator": accelerator,
        "train_images": cfg.scenes.train_size,
        "train_map_last_epoch": float(trainer.callback_metrics.get("train/map", float("nan"))),
        "val_map": mean_average_precision(*_val(model, cfg, root)),
        "test": test,
        "test_map": test["map"],
        "forward_cost": forward_cost(model, cfg.scenes.image_size),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(out_dir / "model.pt", "wb") as fh:
            torch.save(net.state_dict(), fh)
        with atomic_write(out_dir / "info.json") as fh:
            json.dump(info, fh, indent=2)
    log.info("%s (multi-label) trained in %.0f s (%.0f s CPU): test mAP %.4f", cfg.model_name, train_s, train_cpu_s,
             info["test_map"])
    return net, info


def _val(model, cfg: EmbeddedMultiLabelConfig, root) -> tuple[torch.Tensor, torch.Tensor]:
    images, targets = MultiLabelScenes("val", cfg.scenes, root).tensors()
    return predict_logits(model, images), targets


def _build(cfg: EmbeddedMultiLabelConfig, state: dict, info: dict):
    from lightning_modules.models import load_model, unwrap

    model, data_config = load_model(cfg.model_name, num_classes=cfg.scenes.num_classes, freeze=True,
                                    **dict(cfg.model_kwargs))
    unwrap(model).load_state_dict(state)
    model.scenes_config = cfg.scenes
    model.embedded_info = info
    model.score = "sigmoid"  # independent per-class scores (the perturbation methods' class score)
    return model, data_config


def load_embedded_multilabel(name: str = "scenes_multilabel_vgg", retrain: bool = False,
                             root: str | Path | None = None):
    """``(model, data_config)`` of a multi-label model (see the module docstring); shipped weights unless
    ``retrain=True`` (then trained into ``<data root>/embedded_multilabel/<config hash>/`` or reused from there)."""
    cfg = embedded_multilabel_config(name)
    if not retrain:
        if not isinstance(name, str) or shipped_entry(name) is None:
            raise ShippedWeightsError(
                f"no shipped weights for multi-label model {name!r} (shipped: {list(SHIPPED_MULTILABEL)}); pass "
                f"retrain=True to train it (or `python -m replications train-embedded {name}` to train and ship it)")
        state, info = load_shipped(name, config_hash=cfg.content_hash())
        return _build(cfg, state, info)
    out = (Path(root) if root is not None else data_root()) / "embedded_multilabel" / cfg.content_hash()
    with file_lock(out.parent / f".{out.name}.lock"):
        if not (out / "model.pt").is_file() or not (out / "info.json").is_file():
            train_embedded_multilabel(cfg, out, root)
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    return _build(cfg, state, json.loads((out / "info.json").read_text()))


def ship_embedded_multilabel(name: str, root: str | Path | None = None, accelerator: str = "cpu") -> Path:
    """Retrain a multi-label model from scratch and ship it (``weights/<name>.safetensors`` + SHA-256)."""
    if name not in SHIPPED_MULTILABEL:
        raise ValueError(f"only {SHIPPED_MULTILABEL} are shipped, not {name!r}")
    cfg = embedded_multilabel_config(name)
    net, info = train_embedded_multilabel(cfg, None, root, accelerator)
    return ship(name, net.state_dict(), info, config_hash=cfg.content_hash())


def with_overrides(name: str, **changes) -> EmbeddedMultiLabelConfig:
    """A copy of a named config with fields changed (e.g. a reduced schedule for a quick check)."""
    return replace(embedded_multilabel_config(name), **changes)
