"""The evaluation data of the fragility replication.

``source="scenes"`` (default, smoke): the first ``n_images`` test scenes of the black box's scenes profile.
``source="imagenet"`` (paper): ImageNet val (``ImageNetValDataModule`` kwargs in ``imagenet``), the first
``n_images`` (the paper attacks correctly classified ImageNet val images with SqueezeNet).
``source="cifar10"`` (paper, CIFAR-10 part): the CIFAR-10 test set (``CIFAR10DataModule`` kwargs in ``cifar10``).

``train_dataloader`` yields one empty batch: the attacks learn nothing, ``fit`` goes straight to ``test``.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Subset

from lightning_modules.data.schema import collate_batch

SOURCES = ("scenes", "imagenet", "cifar10")


class _One(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return {"id": torch.tensor(i)}


class FragilityData(pl.LightningDataModule):
    def __init__(self, source: str = "scenes", scenes_profile: str = "default", n_images: int = 32,
                 batch_size: int = 16, imagenet: dict | None = None, cifar10: dict | None = None,
                 root: str | None = None):
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES} (scenes = embedded), got {source!r}")
        if n_images < 1 or batch_size < 1:
            raise ValueError(f"n_images and batch_size must be >= 1, got {n_images}, {batch_size}")
        self.source = source
        self.scenes_profile = scenes_profile
        self.n_images = int(n_images)
        self.batch_size = int(batch_size)
        self.imagenet = dict(imagenet or {})
        self.cifar10 = dict(cifar10 or {})
        self.root = root
        self._dataset = None

    def setup(self, stage: str | None = None) -> None:
        if self._dataset is not None:
            return
        if self.source == "scenes":
            from lightning_modules.blackbox import blackbox_datamodule

            ds = blackbox_datamodule(self.scenes_profile, root=self.root).dataset("test")
        elif self.source == "imagenet":
            from lightning_modules.data.imagenet import ImageNetValDataModule

            dm = ImageNetValDataModule(batch_size=self.batch_size, **{"limit": self.n_images, **self.imagenet})
            dm.setup("test")
            ds = dm.test_dataloader().dataset
        else:
            from lightning_modules.data.cifar import CIFAR10DataModule

            dm = CIFAR10DataModule(**{"batch_size": self.batch_size, **self.cifar10})
            dm.setup("test")
            ds = dm.datasets["test"]
        if self.n_images > len(ds):
            raise ValueError(f"n_images={self.n_images} but the {self.source} test data has {len(ds)} images; lower it")
        self._dataset = Subset(ds, range(self.n_images))

    def train_dataloader(self):
        return DataLoader(_One(), batch_size=1, collate_fn=collate_batch)

    def test_dataloader(self):
        return DataLoader(self._dataset, batch_size=self.batch_size, shuffle=False, collate_fn=collate_batch)
