"""Small shared helpers: seeding, input validation with messages that name the fix, atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Default data root: ``$SALIENCY_DATA`` or ``<repo>/data``."""
    return Path(os.environ.get("SALIENCY_DATA", REPO_ROOT / "data"))


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """One seed for python, numpy, torch and dataloader workers; deterministic kernels where they exist."""
    import lightning.pytorch as pl

    pl.seed_everything(seed, workers=True, verbose=False)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """Fail early on the common ways an image batch is wrong."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(
            f"{name} must be 4-D (B, C, H, W), got shape {tuple(images.shape)}; "
            "add a batch dimension with images.unsqueeze(0)" if images.dim() == 3 else
            f"{name} must be 4-D (B, C, H, W), got shape {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {images.dtype}; convert with images.float() / 255")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contain NaN or Inf values; check the data pipeline / normalisation")


def check_targets(targets: torch.Tensor, batch_size: int, num_classes: int | None = None) -> torch.Tensor:
    """Targets as a (B,) long tensor of class indices, validated against the batch and the class count."""
    if isinstance(targets, int):
        targets = torch.full((batch_size,), targets, dtype=torch.long)
    if not isinstance(targets, torch.Tensor):
        targets = torch.as_tensor(targets)
    targets = targets.reshape(-1).long()
    if targets.numel() == 1 and batch_size > 1:
        targets = targets.expand(batch_size)
    if targets.numel() != batch_size:
        raise ValueError(f"targets has {targets.numel()} entries but the batch has {batch_size} images")
    if num_classes is not None and targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(
            f"target class out of range: got values in [{int(targets.min())}, {int(targets.max())}] "
            f"but the model has {num_classes} classes (valid: 0..{num_classes - 1})"
        )
    return targets


def check_heatmaps(heatmaps: torch.Tensor, images: torch.Tensor | None = None, name: str = "heatmaps") -> None:
    """Heatmaps are (B, 1, H, W) finite floats matching the images' batch and spatial size."""
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.dim() != 4 or heatmaps.shape[1] != 1:
        shape = tuple(heatmaps.shape) if isinstance(heatmaps, torch.Tensor) else type(heatmaps).__name__
        raise ValueError(f"{name} must have shape (B, 1, H, W), got {shape}")
    if not torch.isfinite(heatmaps).all():
        raise ValueError(f"{name} contain NaN or Inf values; the explainer produced invalid maps")
    if images is not None:
        if heatmaps.shape[0] != images.shape[0] or heatmaps.shape[-2:] != images.shape[-2:]:
            raise ValueError(
                f"{name} shape {tuple(heatmaps.shape)} does not match images {tuple(images.shape)}: "
                "heatmaps must be (B, 1, H, W) at the input resolution (upsample them first)"
            )


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Write to a temporary file beside ``path`` and rename it into place only when the block succeeds.

    An interrupted run therefore never leaves a half-written file: the old one stays intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; a report or weight file is meant to be read by everyone the umask allows
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if needed): one process trains and caches a model while the
    others (DDP ranks, parallel test workers) wait and then load the cached result."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Pin torch's CPU thread count (CPU reductions depend on it: the same seed gives the same weights only at the
    same count), restoring the caller's afterwards; ``None`` leaves it alone."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
