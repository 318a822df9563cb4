"""The one batch schema of every DataModule (docs/CONVENTIONS.md): validation and a collate that produces it.

| key          | type                                   | padding |
|--------------|----------------------------------------|---------|
| `image`      | float (B, C, H, W) in [0, 1]           |         |
| `label`      | long (B,)                              |         |
| `mask`       | bool (B, 1, H, W)                      |         |
| `boxes`      | float (B, N, 4) x0, y0, x1, y1 pixels  | 0       |
| `box_labels` | long (B, N)                            | -1      |
| `keypoints`  | dict name -> float (B, K, 2) (x, y)    | NaN     |
| `difficult`  | bool (B,)                              |         |
| `id`         | long (B,)                              |         |

Extra keys (e.g. the synthetic scenes' part masks) are stacked as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from lightning_modules.validation import check_batch as validate_batch  # noqa: F401  (the schema's validator)

#: per-key padding value used when samples carry different numbers of objects / keypoints
PAD_VALUES = {"boxes": 0.0, "box_labels": -1}


def _pad_stack(tensors: Sequence[torch.Tensor], value: float) -> torch.Tensor:
    """Stack tensors whose first dimension differs, padding it with ``value``."""
    n = max(t.shape[0] for t in tensors)
    out = tensors[0].new_full((len(tensors), n, *tensors[0].shape[1:]), value)
    for i, t in enumerate(tensors):
        out[i, : t.shape[0]] = t
    return out


def collate_batch(samples) -> dict:
    """Collate per-sample dicts into the schema; a dict that is already a batch passes through unchanged.

    Datasets that fetch whole batches at once (``__getitems__``, e.g. ``SyntheticScenes``) return a batched
    dict, which DataLoader then hands to this function: nothing is left to do.
    """
    if isinstance(samples, Mapping):
        return dict(samples)
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    first = samples[0]
    if not isinstance(first, Mapping):
        raise TypeError(f"samples must be dicts following the batch schema, got {type(first).__name__}")
    batch: dict = {}
    for key in first:
        values = [s[key] for s in samples]
        if key == "keypoints":
            batch[key] = {
                name: _pad_stack([torch.as_tensor(s[key][name], dtype=torch.float32).reshape(-1, 2) for s in samples], math.nan)
                for name in first[key]
            }
        elif key in PAD_VALUES:
            batch[key] = _pad_stack([torch.as_tensor(v) for v in values], PAD_VALUES[key])
        elif isinstance(first[key], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(first[key], (bool, int, float)):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


class ArrayDataset(torch.utils.data.Dataset):
    """Images (uint8 (N, C, H, W) or float in [0, 1]) and labels as a dataset following the schema.

    Whole batches are fetched at once (``__getitems__``): uint8 images are converted to float in [0, 1] per
    batch, so the stored copy stays small. ``ids`` (default ``arange(N)``) are the samples' stable indices
    in their split.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None):
        if images.dim() != 4 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"need images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.ids = torch.arange(labels.shape[0]) if ids is None else ids.long()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitems__(self, indices) -> dict:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.images[idx]
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        return {"image": x, "label": self.labels[idx], "id": self.ids[idx]}

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.__getitems__([int(i)]).items()}

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float (N, C, H, W) in [0, 1] and the labels."""
        b = self.__getitems__(range(len(self)))
        return b["image"], b["label"]


def stratified_split(labels: torch.Tensor, first: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into ``first`` and ``len - first`` samples with the class proportions of ``labels`` in
    both (largest-remainder quotas), fixed by ``seed``; both index tensors sorted."""
    total = labels.numel()
    if not 0 < first < total:
        raise ValueError(f"the first part must have between 1 and {total - 1} samples, got {first}")
    classes, counts = labels.unique(return_counts=True)
    exact = counts.double() * first / total
    quota = exact.floor().long()
    quota[(exact - quota).argsort(descending=True, stable=True)[: first - int(quota.sum())]] += 1
    g = torch.Generator().manual_seed(int(seed))
    a, b = [], []
    for c, q in zip(classes.tolist(), quota.tolist()):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        a.append(idx[:q])
        b.append(idx[q:])
    return torch.cat(a).sort().values, torch.cat(b).sort().values


class SplitsDataModule(pl.LightningDataModule):
    """Loaders over ``self.datasets`` (split -> Dataset, filled by ``setup``) in the batch schema.

    ``__init__`` sets ``batch_size``, ``eval_batch_size`` (default: ``batch_size``), ``seed``, an empty
    ``datasets`` and each of ``settings`` as a plain attribute (``num_workers``, ``val_size``, ...: a cache key may
    hash a DataModule's plain attributes, so pass only what the data depends on). Subclasses fill ``self.datasets``
    in ``setup`` (or override ``dataset``); training batches are shuffled with a generator seeded by ``seed``.
    """

    datasets: dict
    num_workers: int = 0

    def __init__(self, batch_size: int = 128, eval_batch_size: int | None = None, seed: int = 0, **settings):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = seed
        for name, value in settings.items():
            setattr(self, name, value)
        self.datasets = {}

    def dataset(self, split: str) -> torch.utils.data.Dataset:
        """The Dataset of ``split`` (``setup`` runs first when nothing is set up yet)."""
        if not self.datasets:
            self.setup()
        return self.datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(self.dataset(split), batch_size=self.batch_size if shuffle else self.eval_batch_size,
                          shuffle=shuffle, generator=g, collate_fn=collate_batch, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


def evidence_of(batch: Mapping) -> torch.Tensor | None:
    """The ground-truth class evidence of the labelled object in a batch: benchmark v2's ``evidence_mask``, the v1
    scenes' ``head_mask``; None for data without it."""
    for key in ("evidence_mask", "head_mask"):
        if key in batch:
            return batch[key]
    return None
