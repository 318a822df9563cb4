"""Small shared helpers: the data root, seeding, atomic writes, file locks, thread pinning (input validation:
``lightning_modules.validation``)."""

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


def config_section(value, cls, name: str):
    """A typed config section as its dataclass ``cls``: LightningCLI passes the dataclass (it has checked the types
    and shown the defaults); a Python caller may pass a dict (unknown keys refused) or None (the defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{name}: unknown keys {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**value)
    raise TypeError(f"{name}: expected a {cls.__name__} or a dict, got {type(value).__name__}")
