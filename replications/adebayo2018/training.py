"""The models of the data randomisation test (Sec. 4): per test and kind (the true-label model, the random-label
model and the two controls), the shipped weights (``weights/adebayo2018_<profile>_<test>_<kind>``, hash-checked,
``lightning_modules.models.shipped``; half precision) or a training under its own Trainer
(``lightning_modules.tasks.data_randomization``), and the model's accuracies. The module's ``training_step`` calls
:func:`load_or_train` for every model and :func:`blackbox_metrics` where the black box is the true-label model.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict

import torch
import torch.nn as nn

from lightning_modules.tasks.data_randomization import (
    TrainingConfig, accuracy, permuted_labels, stratified_subset, train_classifier,
)
from lightning_modules.utils import torch_threads
from replications.adebayo2018.constants import NOISE_FLOOR_SEED_OFFSET
from replications.adebayo2018.experiments.c_data_randomisation import DataRandomisationConfig


def cfg_text(c: TrainingConfig) -> str:
    return (f"{c.optimizer} lr {c.lr:g}, {c.scheduler} schedule, batch {c.batch_size}, {c.max_epochs} epochs, "
            f"weight decay {c.weight_decay:g}")


def tensor_digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def training_data(test: DataRandomisationConfig, kind: str, train, training_seed: int):
    """What model ``kind`` of ``test`` is trained on: ``(images, training labels, true labels, config without
    subset, training seed)``. The random-label model and both controls see the same fixed subset; the random-label
    model a fixed permutation of its labels; the noise-floor control only another training seed."""
    x, y = train
    cfg = test.true if kind == "true" else test.random
    if cfg.subset is not None:
        idx = stratified_subset(y, cfg.subset, training_seed)
        x, y = x[idx], y[idx]
    labels = permuted_labels(y, training_seed) if kind == "random" else y
    seed = training_seed + (NOISE_FLOOR_SEED_OFFSET if kind == "control_seed" else 0)
    return x, labels, y, TrainingConfig(**{**asdict(cfg), "subset": None}), seed


def shipped_name(profile: str, test_name: str, kind: str) -> str:
    return f"adebayo2018_{profile}_{test_name}_{kind}"


def load_or_train(test: DataRandomisationConfig, kind: str, train, test_data, n_classes: int, *, profile: str,
                  trained_models: str, training_seed: int, training_threads: int | None, device: torch.device,
                  trainer_kwargs: dict) -> tuple[nn.Module, dict]:
    """Model ``kind`` of ``test`` and its metrics: loaded from the shipped weights, or trained (and shipped)."""
    from lightning_modules.models import load_model, unwrap
    from lightning_modules.models.shipped import ShippedWeightsError, load_shipped, ship, shipped_entry
    from lightning_modules.utils import data_root, file_lock

    x, labels, y_true, cfg, seed = training_data(test, kind, train, training_seed)
    config_hash = hashlib.sha256(json.dumps({
        "config": asdict(cfg), "seed": seed, "kind": kind, "dataset": test.dataset, "classes": n_classes,
        "threads": training_threads, "data": tensor_digest(x, labels)}, sort_keys=True).encode()).hexdigest()[:16]
    name = shipped_name(profile, test.name, kind)
    started, cpu = time.perf_counter(), time.process_time()
    source = "trained in this run"
    if trained_models == "shipped" or (trained_models == "ship_missing" and shipped_entry(name) is not None):
        try:
            state, info = load_shipped(name, config_hash=config_hash)
        except ShippedWeightsError as e:
            raise ShippedWeightsError(f"{e}; with model.trained_models: ship_missing (or retrain) the run trains and "
                                      f"ships {name}") from None
        model, _ = load_model(cfg.model_name, num_classes=n_classes, freeze=True, **dict(cfg.model_kwargs))
        unwrap(model).load_state_dict({k: v.float() for k, v in state.items()})
        source = f"shipped `weights/{name}.safetensors`"
    else:
        with torch_threads(training_threads if device.type == "cpu" else None):
            model, _ = train_classifier((x, labels), test_data, cfg, n_classes, seed, **trainer_kwargs)
        info = {"training_wall_s": round(time.perf_counter() - started, 1),
                "training_cpu_s": round(time.process_time() - cpu, 1), "threads": training_threads}
        if trained_models in ("retrain", "ship_missing"):
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
        "train_accuracy": accuracy(model, x, labels), "test_accuracy": accuracy(model, *test_data),
        "train_images": int(x.shape[0]), "epochs": int(cfg.max_epochs), "seed": seed, "weights": source,
        "schedule": cfg_text(cfg), "training_wall_s": info.get("training_wall_s"),
        "training_cpu_s": info.get("training_cpu_s"),
    }
    if kind == "random":
        metrics["label_agreement"] = float((labels == y_true).float().mean())
    return model, metrics


def blackbox_metrics(model: nn.Module, train, test_data, blackbox_info: dict, shipped: str, flips: bool) -> dict:
    """The metrics of the black box as a test's true-label model (trained once on the scenes' whole training split)."""
    cfg = blackbox_info.get("config", {})
    return {
        "train_accuracy": accuracy(model, *train), "test_accuracy": accuracy(model, *test_data),
        "train_images": int(train[1].numel()), "epochs": cfg.get("max_epochs"),
        "weights": f"shipped black box `weights/{shipped}.safetensors`",
        "training_wall_s": blackbox_info.get("training_s"),
        **({"seed": cfg["seed"]} if "seed" in cfg else {}),  # the black box's own training seed
        "schedule": f"{cfg.get('optimizer')} lr {cfg.get('lr')}, cosine schedule with warm-up, batch "
                    f"{cfg.get('batch_size')}, {cfg.get('max_epochs')} epochs, weight decay "
                    f"{cfg.get('weight_decay')}" + (", horizontal flips" if flips else ""),
    }
