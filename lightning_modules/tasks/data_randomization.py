"""Data randomisation: the same architecture trained on the true labels and on a fixed permutation of them
(Adebayo et al. 2018, Sec. 4 "Data randomization test"; Zhang et al. 2017's random-label memorisation).

A model that fits permuted labels has learned no relation between inputs and labels, so a saliency method
that is sensitive to what the model learned must give different maps for the two models. Training reuses the
project's :class:`~lightning_modules.tasks.classifier.ClassifierTask` under its own ``Trainer`` (so the usual
Trainer flags, devices included, apply to the retraining as well).

Memorising random labels is slow (no shared structure to exploit): the paper trains 100 epochs on 55k MNIST
images. ``subset`` lets the random-label model memorise a fixed, class-stratified subset of the training set
instead, with its own schedule (``TrainingConfig``); both are recorded in the reports that use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass
class TrainingConfig:
    """One classifier training run (ClassifierTask's hyperparameters plus the data it sees)."""

    model_name: str = "mnist_cnn"
    max_epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    optimizer: str = "adam"
    scheduler: str = "cosine"
    #: train on a fixed class-stratified subset of this many images (None = the whole training set)
    subset: int | None = None
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.lr <= 0 or self.batch_size < 1:
            raise ValueError(f"lr must be > 0 and batch_size >= 1, got lr={self.lr}, batch_size={self.batch_size}")
        if self.subset is not None and self.subset < 1:
            raise ValueError(f"subset must be a positive number of images or None, got {self.subset}")


def permuted_labels(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed (seeded) permutation of the training labels: the class histogram is kept, the pairing with
    the images is destroyed (the paper's random labels)."""
    if labels.dim() != 1 or labels.numel() < 2:
        raise ValueError(f"labels must be a 1-D tensor with at least 2 entries, got shape {tuple(labels.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    return labels[torch.randperm(labels.numel(), generator=g)]


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a fixed subset of ``n`` samples with (as nearly as possible) the class proportions
    of ``labels``; deterministic given ``seed``."""
    total = labels.numel()
    if not 1 <= n <= total:
        raise ValueError(f"subset size must be in [1, {total}], got {n}")
    if n == total:
        return torch.arange(total)
    g = torch.Generator().manual_seed(int(seed))
    classes, counts = labels.unique(return_counts=True)
    quota = (counts.double() * n / total).floor().long()
    # Hand out the remaining samples to the classes with the largest fractional parts.
    remainder = n - int(quota.sum())
    frac = counts.double() * n / total - quota.double()
    quota[frac.argsort(descending=True)[:remainder]] += 1
    picks = []
    for c, q in zip(classes.tolist(), quota.tolist()):
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(idx.numel(), generator=g)[:q]])
    return torch.cat(picks).sort().values


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on a tensor dataset."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].to(device)
        correct += (model(x).argmax(1) == labels[i : i + batch_size].to(device)).sum()
    model.train(was_training)
    return float(correct) / max(1, images.shape[0])


def train_classifier(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    config: TrainingConfig,
    num_classes: int,
    seed: int = 0,
    accelerator: str = "cpu",
    devices: int | str = 1,
    permute_labels: bool = False,
) -> tuple[nn.Module, dict]:
    """Train ``config.model_name`` from scratch on ``train`` (its fixed class-stratified ``config.subset``, if any)
    with ClassifierTask; returns the frozen model (eval, [0, 1] inputs) and ``{"train_accuracy", "test_accuracy",
    "train_images", "epochs", "wall_s"}``.

    ``permute_labels``: train on a fixed (seeded) permutation of those labels instead (the random-label model,
    :func:`train_random_label_model`); ``train_accuracy`` is then measured on the permuted labels, and
    ``label_agreement`` is the share of permuted labels that happen to equal the true ones."""
    import lightning.pytorch as pl

    from lightning_modules.data.tensors import TensorDataModule
    from lightning_modules.tasks.classifier import ClassifierTask

    x, y = train
    if config.subset is not None:
        idx = stratified_subset(y, config.subset, seed)
        x, y = x[idx], y[idx]
    y_fit = permuted_labels(y, seed) if permute_labels else y
    started = time.time()
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = TensorDataModule(train=(x, y_fit), test=test, batch_size=config.batch_size, seed=seed)
    task = ClassifierTask(
        model_name=config.model_name, num_classes=num_classes, model_kwargs=dict(config.model_kwargs),
        lr=config.lr, weight_decay=config.weight_decay, optimizer=config.optimizer, scheduler=config.scheduler,
        max_epochs=config.max_epochs,
    )
    trainer = pl.Trainer(
        max_epochs=config.max_epochs, accelerator=accelerator, devices=devices, logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, deterministic="warn",
        num_sanity_val_steps=0, limit_val_batches=0,
    )
    trainer.fit(task, datamodule=dm)
    model = task.model
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    metrics = {
        "train_accuracy": accuracy(model, x, y_fit),
        "test_accuracy": accuracy(model, *test),
        "train_images": int(x.shape[0]),
        "epochs": int(config.max_epochs),
        "wall_s": round(time.time() - started, 1),
    }
    if permute_labels:
        metrics["label_agreement"] = float((y_fit == y).float().mean())
    return model, metrics


def train_random_label_model(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                             config: TrainingConfig, num_classes: int, seed: int = 0,
                             **trainer_kwargs) -> tuple[nn.Module, dict]:
    """The random-label half of the data randomisation pair: ``config.model_name`` trained on a fixed
    permutation of the training labels (of its fixed class-stratified ``config.subset``, if any);
    ``train_classifier(..., permute_labels=True)``.

    Its test accuracy is measured against the true test labels (chance level is the expected result);
    ``label_agreement`` is the share of permuted labels that happen to equal the true ones."""
    return train_classifier(train, test, config, num_classes, seed, permute_labels=True, **trainer_kwargs)
