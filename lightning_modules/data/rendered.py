"""What the synthetic scene generators share (v1 scenes, v2 scenes, multi-label scenes): the splits, the chunking,
the hash that names a rendered split's cache file, chunk-by-chunk rendering, and the Dataset / DataModule over the
rendered splits. Each generator keeps what is its own (its config's fields, sampling, rendering, batch keys).

Every hash and every render is what the generators computed before they shared this code: a changed hash or render
would silently change every cached split and every report built on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from lightning_modules.data.cache import cached_render
from lightning_modules.data.schema import SplitsDataModule
from lightning_modules.utils import data_root

#: images rendered at once (parameters are drawn per chunk, so the chunk size is part of every split's hash)
CHUNK = 500
SPLITS = ("train", "val", "test", "heldout")


class SplitSizes:
    """A mixin of a generator's frozen config dataclass with fields ``<split>_size``: ``split_size`` and the
    ``content_hash`` of one split. The class sets ``generator_version`` and ``hash_kind`` (hashed as ``kind``
    when not None) as plain class attributes, not fields."""

    generator_version = 1
    hash_kind: str | None = None

    def split_size(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        return getattr(self, f"{split}_size")

    def content_hash(self, split: str) -> str:
        """Hash of what decides ``split``'s images (the other splits' sizes do not)."""
        d = asdict(self)
        for s in SPLITS:
            d.pop(f"{s}_size")
        d.update(split=split, size=self.split_size(split), version=self.generator_version, chunk=CHUNK)
        if self.hash_kind is not None:
            d["kind"] = self.hash_kind
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def render_in_chunks(n: int, split: str, render_chunk: Callable[[int, int], dict]) -> dict:
    """``n`` scenes of ``split`` as one dict of tensors: ``render_chunk(chunk index, images in it)`` for each chunk of
    ``CHUNK`` images (the last one shorter), concatenated."""
    parts = [render_chunk(c, min(CHUNK, n - start)) for c, start in enumerate(range(0, n, CHUNK))]
    if not parts:
        raise ValueError(f"split {split!r} has size 0; set {split}_size > 0")
    return {k: torch.cat([q[k] for q in parts]) for k in parts[0]}


def load_rendered(cfg: SplitSizes, split: str, folder: str, render: Callable[[], dict], what: str,
                  root: str | Path | None = None, cache: bool = True) -> dict:
    """The rendered split, from ``<root>/<folder>/<split>-<hash>.pt`` when cached (else ``render()``, then cached);
    ``root`` defaults to the data root, ``what`` names the split in the log."""
    root = Path(root) if root is not None else data_root()
    path = root / folder / f"{split}-{cfg.content_hash(split)}.pt"
    return cached_render(path, render, what, cache)


class RenderedScenes(Dataset):
    """One rendered split as a map-style dataset in the batch schema, whole batches fetched at once by
    ``__getitems__``: ``image`` (uint8 stored, float in [0, 1] served), ``label``, a bool (B, 1, H, W) mask per entry
    of ``mask_bits`` (name -> its bit in the stored ``packed_masks``), the stored tensors named in ``batch_keys``
    (``"keypoints"`` there stands for the dict of the stored ``keypoint_keys``) and ``id``.

    The subclass sets ``config_class``, ``mask_bits``, ``batch_keys``, ``keypoint_keys``, and ``load_split(config,
    split, root, cache)`` and ``render_split(config, split, omit, size)`` as static methods (its module's functions).
    """

    config_class: type
    load_split: Callable
    render_split: Callable
    mask_bits: dict[str, int]
    batch_keys: tuple[str, ...]
    keypoint_keys: tuple[str, ...]

    def __init__(self, split: str = "train", config=None, root: str | Path | None = None, cache: bool = True,
                 data: dict | None = None):
        self.config = config or self.config_class()
        self.split = split
        self.config.split_size(split)
        self.data = data if data is not None else self.load_split(self.config, split, root, cache)
        self.num_classes = self.config.num_classes

    def __len__(self) -> int:
        return int(self.data["label"].shape[0])

    def __getitems__(self, indices) -> dict:
        idx = torch.as_tensor(indices, dtype=torch.long)
        d = self.data
        packed = d["packed_masks"][idx].unsqueeze(1)
        batch = {"image": d["image"][idx].float().div_(255), "label": d["label"][idx]}
        batch.update({name: (packed & bit) > 0 for name, bit in self.mask_bits.items()})
        for key in self.batch_keys:
            batch[key] = {k: d[k][idx] for k in self.keypoint_keys} if key == "keypoints" else d[key][idx]
        batch["id"] = idx
        return batch

    def __getitem__(self, i: int) -> dict:
        b = self.__getitems__([int(i)])
        return {k: ({n: v[0] for n, v in b[k].items()} if isinstance(b[k], dict) else b[k][0]) for k in b}

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images (N, 3, H, W) float in [0, 1] and labels (N,)."""
        return self.data["image"].float().div_(255), self.data["label"].clone()

    def counterfactual(self, omit: tuple[str, ...]):
        """The same scenes re-rendered without the parts ``omit`` (see the generator's docstring); never cached."""
        return type(self)(self.split, self.config, data=self.render_split(self.config, self.split, omit, size=len(self)))


class RenderedScenesDataModule(SplitsDataModule):
    """train / val / test (+ ``heldout``, served by ``predict_dataloader``) of a generator, in the batch schema; the
    splits are rendered (and cached) by ``prepare_data`` and opened lazily by ``dataset``. The subclass defines
    ``load_split(split)`` and ``make_dataset(split)``; ``self.config`` is its generator's config."""

    def __init__(self, config, batch_size: int = 128, eval_batch_size: int | None = None, num_workers: int = 0,
                 root: str | None = None, cache: bool = True):
        super().__init__(batch_size, eval_batch_size, config.seed, num_workers=num_workers, root=root, cache=cache)
        self.config = config
        self.num_classes = config.num_classes

    def load_split(self, split: str) -> dict:
        raise NotImplementedError

    def make_dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    def prepare_data(self) -> None:
        # render and cache once (rank 0); other ranks then read the cache in setup()
        if not self.cache:
            return
        for split in SPLITS:
            if self.config.split_size(split) > 0:
                self.load_split(split)

    def dataset(self, split: str) -> Dataset:
        if split not in self.datasets:
            self.datasets[split] = self.make_dataset(split)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("heldout",)}.get(stage, SPLITS)
        for s in splits:
            if self.config.split_size(s) > 0:
                self.dataset(s)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("heldout", False)
