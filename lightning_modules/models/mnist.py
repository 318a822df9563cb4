"""The embedded real-MNIST model: a ``mnist_cnn`` (Adebayo et al. 2018's CNN: conv5x5-32, pool, conv5x5-64,
pool, fc1024, fc10) trained once on the shipped real MNIST (``data/mnist``; without the official training images,
the fixed seeded 8,000 / 2,000 stratified split of the official test set, see ``lightning_modules.data.mnist``)
and shipped in ``weights/`` (``mnist_cnn_<profile>``), or cached under ``<data root>/mnist_model/<config hash>/``
when retrained, like ``models.blackbox`` does for the scenes black box.

``load_model("mnist_cnn_<profile>", weights="embedded")`` returns ``(model, data_config)``: frozen, eval, [0, 1]
inputs (the wrapper applies MNIST's mean / std), the shipped, hash-checked weights. ``weights="retrain"`` (or
``trained_mnist_model(config)`` for a config of one's own) trains it into the cache (a file lock makes concurrent
callers wait); later calls load ``model.pt`` (a plain state dict, ``weights_only=True``). ``model.mnist_info`` holds what
was measured when it was trained: train / test accuracy on the split, training wall and CPU time, the split.

Training runs at a fixed thread count (``TRAIN_THREADS``), as the scenes black box does: CPU reductions depend
on the thread count, so the same seed gives the same weights only at the same count.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from lightning_modules.models.loader import load_model, unwrap
from lightning_modules.models.registry import EmbeddedSpec, register_embedded
from lightning_modules.models.shipped import config_hash, load_shipped, ship, shipped_entry
from lightning_modules.utils import atomic_write, data_root, file_lock, torch_threads

log = logging.getLogger(__name__)

#: CPU threads of the training (see the module docstring); the same value as the scenes black box's
TRAIN_THREADS = 2


@dataclass(frozen=True)
class MnistModelConfig:
    """What decides the trained weights (hashed into the cache folder name)."""

    model_name: str = "mnist_cnn"
    max_epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 128
    optimizer: str = "adam"
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    #: images of the training split used (None = all of it); the smoke profile trains on a few hundred
    train_subset: int | None = None
    #: size of the training part of the test-set-only split (the DataModule's ``test_only_train_size``)
    test_only_train_size: int = 8000
    split_seed: int = 0
    seed: int = 0

    def content_hash(self) -> str:
        return config_hash(self)


MNIST_MODEL_PROFILES: dict[str, MnistModelConfig] = {
    "default": MnistModelConfig(),
    # seconds: for tests and smoke profiles (its accuracy is whatever it reaches, recorded, never claimed)
    "smoke": MnistModelConfig(max_epochs=1, train_subset=600, batch_size=64),
}


def mnist_model_config(profile: str | MnistModelConfig) -> MnistModelConfig:
    if isinstance(profile, MnistModelConfig):
        return profile
    if profile not in MNIST_MODEL_PROFILES:
        raise ValueError(f"unknown MNIST model profile {profile!r}; known: {sorted(MNIST_MODEL_PROFILES)}")
    return MNIST_MODEL_PROFILES[profile]


def mnist_model_dir(profile: str | MnistModelConfig = "default", root: str | Path | None = None) -> Path:
    cfg = mnist_model_config(profile)
    return (Path(root) if root is not None else data_root()) / "mnist_model" / cfg.content_hash()


def mnist_datamodule(profile: str | MnistModelConfig = "default", mnist_root: str | Path | None = None, **kwargs):
    """The MNIST DataModule (same split) the model of ``profile`` was trained on."""
    from lightning_modules.data.mnist import MNISTDataModule

    cfg = mnist_model_config(profile)
    return MNISTDataModule(root=None if mnist_root is None else str(mnist_root), seed=cfg.split_seed,
                           test_only_train_size=cfg.test_only_train_size, **kwargs)


def train_mnist_model(cfg: MnistModelConfig, out_dir: Path, mnist_root: str | Path | None = None) -> dict:
    """Train ``cfg`` at ``TRAIN_THREADS`` threads; save ``model.pt`` (the bare net's state dict) + ``info.json``."""
    from lightning_modules.tasks.data_randomization import TrainingConfig, train_classifier

    dm = mnist_datamodule(cfg, mnist_root)
    dm.setup("fit")
    train, test = dm.datasets["train"].tensors(), dm.datasets["test"].tensors()
    training = TrainingConfig(model_name=cfg.model_name, max_epochs=cfg.max_epochs, lr=cfg.lr,
                              batch_size=cfg.batch_size, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
                              scheduler=cfg.scheduler, subset=cfg.train_subset)
    started, cpu_started = time.perf_counter(), time.process_time()
    with torch_threads(TRAIN_THREADS):
        model, metrics = train_classifier(train, test, training, num_classes=10, seed=cfg.seed)
    info = {
        "profile_hash": cfg.content_hash(),
        "config": asdict(cfg),
        "model_name": cfg.model_name,
        "train_accuracy": metrics["train_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "train_images": metrics["train_images"],
        "test_images": int(test[1].numel()),
        "epochs": metrics["epochs"],
        "training_s": round(time.perf_counter() - started, 2),
        # CPU seconds of this process (all threads): on a shared machine the wall time overstates the work
        "training_cpu_s": round(time.process_time() - cpu_started, 2),
        "torch_threads": TRAIN_THREADS,
        "split": dict(dm.split_info),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / "model.pt", "wb") as fh:
        torch.save(model.net.state_dict(), fh)
    with atomic_write(out_dir / "info.json") as fh:
        json.dump(info, fh, indent=2)
    log.info("MNIST model trained in %.0f s: test accuracy %.4f", info["training_s"], info["test_accuracy"])
    return info


def shipped_name(profile: str | MnistModelConfig) -> str | None:
    """The name of a named profile's shipped weights (``weights/mnist_cnn_<profile>.safetensors``)."""
    if isinstance(profile, str):
        return f"mnist_cnn_{profile}"
    named = [k for k, v in MNIST_MODEL_PROFILES.items() if v == profile]
    return f"mnist_cnn_{named[0]}" if named else None


def trained_mnist_model(profile: str | MnistModelConfig = "default", root: str | Path | None = None,
                        mnist_root: str | Path | None = None, retrain: bool = False):
    """The real-MNIST CNN of ``profile`` (a name or a config of one's own) trained into the cache as
    ``(model, data_config)``: frozen, eval, [0, 1] inputs; an earlier training there is reused unless ``retrain``.
    ``root`` is the cache's data root (default ``data/``), ``mnist_root`` where the idx files are (default
    ``data/mnist``); ``default`` takes about a minute on 2 CPU cores, ``smoke`` seconds."""
    cfg = mnist_model_config(profile)
    out = mnist_model_dir(cfg, root)
    with file_lock(out.parent / f".{out.name}.lock"):
        if retrain or not (out / "model.pt").is_file() or not (out / "info.json").is_file():
            train_mnist_model(cfg, out, mnist_root)
    model, data_config = load_model(cfg.model_name, checkpoint=out / "model.pt", num_classes=10, freeze=True)
    model.mnist_info = json.loads((out / "info.json").read_text())
    return model, data_config


def _load(name: str, retrain: bool = False, root: str | Path | None = None, mnist_root: str | Path | None = None):
    """The real-MNIST CNN ``mnist_cnn_<profile>`` as ``(model, data_config)``: frozen, eval, [0, 1] inputs.

    Loads its shipped, hash-checked weights (``weights/mnist_cnn_<profile>.safetensors``). ``retrain=True`` (or
    nothing shipped) trains it into the cache instead (``trained_mnist_model``). Ship with ``python -m replications
    train-embedded mnist_cnn_<profile>``.
    """
    profile = name.removeprefix("mnist_cnn_")
    cfg = mnist_model_config(profile)
    if retrain or shipped_entry(name) is None:
        return trained_mnist_model(cfg, root, mnist_root, retrain)
    state, info = load_shipped(name, config_hash=cfg.content_hash())
    model, data_config = load_model(cfg.model_name, num_classes=10, freeze=True)
    unwrap(model).load_state_dict(state)
    model.mnist_info = info
    return model, data_config


def _ship(profile: str, root: str | Path | None = None, accelerator: str = "cpu", mnist_root: str | Path | None = None) -> Path:
    """Retrain the MNIST CNN of a named profile and ship it (``weights/``, with its SHA-256); CPU only."""
    cfg = mnist_model_config(profile)
    model, _ = trained_mnist_model(profile, root=root, mnist_root=mnist_root, retrain=True)
    return ship(shipped_name(profile), unwrap(model).state_dict(), model.mnist_info, config_hash=cfg.content_hash())


for _profile, _cfg in MNIST_MODEL_PROFILES.items():
    register_embedded(EmbeddedSpec(shipped_name(_profile), "mnist", _cfg, _load, partial(_ship, _profile)))
