"""Tiny files in the real on-disk formats of the paper profiles, shared by the ``test_<paper>_paper.py`` tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

WNIDS = ["n01440764", "n01443537", "n01484850"]


def write_imagenet_val(root: Path, wnids: list[str] = WNIDS, shift: int = 0) -> Path:
    """ImageNet val as class folders (one 48x40 JPEG per class) + ``LOC_synset_mapping.txt``."""
    from test_paper_data import write_jpeg

    for i, w in enumerate(wnids):
        write_jpeg(root / "val" / w / f"ILSVRC2012_val_{i + 1:08d}.JPEG", 48, 40, [(8 + shift * i, 8, 30, 30)])
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} name{i}\n" for i, w in enumerate(wnids)))
    return root


def save_with_sha_prefix(state: dict, folder: Path, pattern: str) -> str:
    """Save ``state`` as ``pattern.format(<first 8 hex digits of the file's SHA-256>)``: the published naming."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / "staging.pth"
    torch.save(state, staging)
    name = pattern.format(hashlib.sha256(staging.read_bytes()).hexdigest()[:8])
    staging.rename(folder / name)
    return name


def publish_torchvision_weights(net: torch.nn.Module, weights, folder: Path, monkeypatch) -> str:
    """Random weights of ``net`` under torchvision's published file-name pattern for ``weights`` (a weights enum
    member, e.g. ``ResNet50_Weights.IMAGENET1K_V1``), the file's own SHA-256 prefix put into the published URL,
    as the loader checks it. Returns the file name."""
    stem = weights.value.url.rsplit("/", 1)[1].rsplit("-", 1)[0]
    name = save_with_sha_prefix(net.state_dict(), folder, f"{stem}-{{}}.pth")
    monkeypatch.setattr(weights.value, "url", f"https://download.pytorch.org/models/{name}")
    return name
