"""Trained embedded models shipped in the repository (``weights/``), each with its SHA-256.

The reports explain these models, so every machine must explain the *same* weights: CPU kernels differ between
machines, and retraining a model on another machine gives other weights (and other numbers in every report).
``weights/MANIFEST.json`` maps a name to its file, the file's SHA-256, the hash of the configuration that trained
it and what was measured when it was trained. ``load_shipped`` verifies the hash before it reads a byte of
tensor data; ``ship`` writes a new file and its manifest entry atomically. Retraining is the owner's business
(``lightning_modules.models.blackbox``, ``lightning_modules.models.mnist``, ...): they call ``ship`` after training;
``lightning_modules.models.retrain_and_ship(name)`` is the one entry point.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from lightning_modules.data.mnist import file_digest
from lightning_modules.utils import REPO_ROOT, atomic_write

MANIFEST_NAME = "MANIFEST.json"


class ShippedWeightsError(ValueError):
    """A shipped weight file is missing, corrupt, or was trained under another configuration."""


def weights_dir() -> Path:
    """``$SALIENCY_SHIPPED_WEIGHTS`` (tests point it at a temporary folder) or ``<repo>/weights``."""
    return Path(os.environ.get("SALIENCY_SHIPPED_WEIGHTS", REPO_ROOT / "weights"))


def read_manifest(directory: Path | None = None) -> dict[str, dict]:
    path = (directory or weights_dir()) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ShippedWeightsError(f"{path} is not valid JSON ({e}); restore it with `git checkout -- {path.name}`") from None
    if not isinstance(manifest, dict):
        raise ShippedWeightsError(f"{path} must hold a JSON object name -> entry; restore it from git")
    return manifest


def list_shipped(directory: Path | None = None) -> list[str]:
    return sorted(read_manifest(directory))


def shipped_entry(name: str, directory: Path | None = None) -> dict | None:
    """The manifest entry of ``name`` (file, sha256, config_hash, info), or None when nothing is shipped."""
    return read_manifest(directory).get(name)


def verify_shipped(name: str, config_hash: str | None = None, directory: Path | None = None) -> Path:
    """The verified path of ``name``'s weight file; raises ``ShippedWeightsError`` naming the fix otherwise."""
    directory = directory or weights_dir()
    entry = shipped_entry(name, directory)
    if entry is None:
        raise ShippedWeightsError(
            f"no shipped weights named {name!r} in {directory / MANIFEST_NAME} (shipped: {list_shipped(directory)}); "
            "train and ship them with the model's retrain flag"
        )
    path = directory / entry["file"]
    if not path.is_file():
        raise ShippedWeightsError(f"shipped weights {path} are missing; restore them with `git checkout -- weights/`")
    digest = file_digest(path, "sha256")
    if digest != entry["sha256"]:
        raise ShippedWeightsError(
            f"shipped weights {path} have SHA-256 {digest[:16]}..., the manifest says {entry['sha256'][:16]}...: "
            "the file is corrupt or was replaced; restore it with `git checkout -- weights/` or retrain and ship"
        )
    if config_hash is not None and entry.get("config_hash") != config_hash:
        raise ShippedWeightsError(
            f"shipped weights {name!r} were trained under configuration {entry.get('config_hash')}, but the code now "
            f"asks for {config_hash}; retrain and ship them (the model's retrain flag), then re-run the reports"
        )
    return path


def load_shipped(name: str, config_hash: str | None = None, directory: Path | None = None) -> tuple[dict, dict]:
    """``(state_dict, info)`` of the shipped model ``name``, hash-checked (safetensors: no code is executed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = verify_shipped(name, config_hash, directory)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ShippedWeightsError(f"cannot read {path} as safetensors ({e}); restore it with `git checkout -- weights/`") from None
    return state, dict(shipped_entry(name, directory).get("info", {}))


def ship(name: str, state_dict: dict, info: dict, config_hash: str | None = None, directory: Path | None = None) -> Path:
    """Write ``weights/<name>.safetensors`` and its manifest entry (both atomically); returns the file's path."""
    from safetensors.torch import save

    directory = directory or weights_dir()
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    path = directory / f"{name}.safetensors"
    with atomic_write(path, "wb") as fh:
        fh.write(save(tensors))
    manifest = read_manifest(directory)
    manifest[name] = {"file": path.name, "sha256": file_digest(path, "sha256"), "config_hash": config_hash,
                      "bytes": path.stat().st_size, "info": info}
    with atomic_write(directory / MANIFEST_NAME) as fh:
        json.dump(dict(sorted(manifest.items())), fh, indent=2, default=str)
        fh.write("\n")
    return path


def config_hash(cfg, **extra) -> str:
    """The hash (12 hex digits) of a training config dataclass with ``extra`` keys added (e.g. ``arch_version``): it
    names the config's cache folder and is recorded with its shipped weights, so every field decides it."""
    from dataclasses import asdict

    return hashlib.sha256(json.dumps({**asdict(cfg), **extra}, sort_keys=True, default=str).encode()).hexdigest()[:12]


def state_dict_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
