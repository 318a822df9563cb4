"""An in-memory DataModule over (images, labels) tensors: the modified datasets of ROAR, the heatmap
datasets of the adversarial detector, the label-permuted sets of the data randomisation test."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from lightning_modules.validation import InputError, check_images


class EpochSeededSampler(Sampler[int]):
    """A shuffling sampler whose order depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` before every epoch, so a run resumed from a checkpoint at epoch k sees
    exactly the batches an uninterrupted run sees at epoch k (a plain seeded generator would restart its
    sequence on resume).
    """

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class TensorDataModule(pl.LightningDataModule):
    """``train``/``val``/``test``: ``(images, labels)`` tensor pairs (any may be None).

    Batches follow the project's schema: ``{"image", "label", "id"}``. Shuffling is seeded per epoch
    (``EpochSeededSampler``), so resumed trainings are exact.

    The images are checked once, here, with the project's image contract (``validation.check_images``: float
    ``(N, C, H, W)`` in [0, 1], finite): 0..255 pixels fail with the fix ("divide by 255") before any training.
    Tensors that are not pixels (e.g. raw heatmaps for ``HeatmapDetector``, which standardises its inputs) pass
    ``pixel_range=False``: then only the shapes and finiteness are checked.
    """

    def __init__(self, train=None, val=None, test=None, batch_size: int = 128, seed: int = 0, num_workers: int = 0,
                 pixel_range: bool = True):
        super().__init__()
        for name, split in (("train", train), ("val", val), ("test", test)):
            if split is not None:
                x, y = split
                if x.dim() != 4 or y.dim() != 1 or x.shape[0] != y.shape[0]:
                    raise ValueError(f"{name} split must be (images (N, C, H, W), labels (N,)); got {tuple(x.shape)}, {tuple(y.shape)}")
                if pixel_range and x.shape[0]:
                    check_images(x, f"{name} images")
                elif not torch.isfinite(x).all():
                    raise InputError(f"{name} images", "finite values", "NaN or Inf values",
                                     "check the data pipeline (a division by zero in normalisation)")
        self.splits = {"train": train, "val": val, "test": test}
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers

    def _loader(self, split: str, shuffle: bool):
        data = self.splits[split]
        if data is None:
            return []
        x, y = data
        ds = _DictDataset(x, y.long())
        sampler = EpochSeededSampler(len(ds), self.seed) if shuffle else None
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)


class _DictDataset(TensorDataset):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return {"image": x, "label": y, "id": torch.tensor(i)}
