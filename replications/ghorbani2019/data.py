"""The evaluation data of the fragility replication: one test loader per part (see ``experiments``).

Primary part (``source``):
``"scenes_v2"`` (default, smoke): the first ``n_images`` test scenes of benchmark v2's profile ``scenes_profile``
(``lightning_modules.data.scenes_v2``; their ``evidence_mask`` is the label's ground-truth evidence).
``"scenes"`` (the v1 setting): the first ``n_images`` test scenes of the v1 black box's scenes profile.
``"imagenet"`` (paper): ImageNet val (``ImageNetValDataModule`` kwargs in ``imagenet``), the first
``n_images`` (the paper attacks correctly classified ImageNet val images with SqueezeNet).
``"cifar10"`` (paper, CIFAR-10 part): the CIFAR-10 test set (``CIFAR10DataModule`` kwargs in ``cifar10``).

Second part, real MNIST (``mnist``, optional): ``{"n_images": N, "profile": "default", "root": <idx folder>}``:
the first ``N`` digits of the held-out test split of the cached MNIST model of that profile
(``lightning_modules.models.mnist``: with only the shipped test set, the fixed seeded 8,000 / 2,000 stratified
split), so no attacked digit was seen in training.

``train_dataloader`` yields one empty batch: the attacks learn nothing, ``fit`` goes straight to ``test``.
``val_dataloader`` serves the same loaders as ``test`` (``validate`` runs the models on them).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Subset

from lightning_modules.data.schema import collate_batch

SOURCES = ("scenes_v2", "scenes", "imagenet", "cifar10")


class _One(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return {"id": torch.tensor(i)}


class FragilityData(pl.LightningDataModule):
    def __init__(self, source: str = "scenes_v2", scenes_profile: str = "default", n_images: int = 32,
                 batch_size: int = 16, imagenet: dict | None = None, cifar10: dict | None = None,
                 root: str | None = None, mnist: dict | None = None):
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES} (scenes_v2 = the embedded benchmark v2, scenes = v1), got "
                             f"{source!r}")
        if n_images < 1 or batch_size < 1:
            raise ValueError(f"n_images and batch_size must be >= 1, got {n_images}, {batch_size}")
        self.source = source
        self.scenes_profile = scenes_profile
        self.n_images = int(n_images)
        self.batch_size = int(batch_size)
        self.imagenet = dict(imagenet or {})
        self.cifar10 = dict(cifar10 or {})
        self.root = root
        self.mnist = None if mnist is None else dict(mnist)
        if self.mnist is not None:
            unknown = set(self.mnist) - {"n_images", "profile", "root", "batch_size"}
            if unknown:
                raise ValueError(f"unknown data.mnist keys {sorted(unknown)}; known: n_images, profile, root, batch_size")
            if int(self.mnist.get("n_images", 0)) < 1:
                raise ValueError(f"data.mnist.n_images must be >= 1, got {self.mnist.get('n_images')}")
        self._datasets: list | None = None
        self.split_info: dict = {}
        #: the v2 scenes config of the primary part (source scenes_v2), checked against the model's training scenes
        self.scenes_config = None

    @property
    def mnist_profile(self) -> str | None:
        return None if self.mnist is None else self.mnist.get("profile", "default")

    def _primary(self):
        if self.source == "scenes_v2":
            from lightning_modules.data.scenes_v2 import ScenesV2DataModule

            dm = ScenesV2DataModule.from_profile(self.scenes_profile, root=self.root)
            self.scenes_config = dm.config
            return dm.dataset("test")
        if self.source == "scenes":
            from lightning_modules.models import blackbox_datamodule

            return blackbox_datamodule(self.scenes_profile, root=self.root).dataset("test")
        if self.source == "imagenet":
            from lightning_modules.data.imagenet import ImageNetValDataModule

            dm = ImageNetValDataModule(batch_size=self.batch_size, **{"limit": self.n_images, **self.imagenet})
            dm.setup("test")
            return dm.test_dataloader().dataset
        from lightning_modules.data.cifar import CIFAR10DataModule

        dm = CIFAR10DataModule(**{"batch_size": self.batch_size, **self.cifar10})
        dm.setup("test")
        return dm.datasets["test"]

    def setup(self, stage: str | None = None) -> None:
        if self._datasets is not None:
            return
        ds = self._primary()
        if self.n_images > len(ds):
            raise ValueError(f"n_images={self.n_images} but the {self.source} test data has {len(ds)} images; lower it")
        datasets = [Subset(ds, range(self.n_images))]
        if self.mnist is not None:
            from lightning_modules.models import mnist_datamodule

            dm = mnist_datamodule(self.mnist_profile, self.mnist.get("root"))
            dm.setup("test")
            test = dm.datasets["test"]
            n = int(self.mnist["n_images"])
            if n > len(test):
                raise ValueError(f"data.mnist.n_images={n} but the MNIST test split has {len(test)} digits; lower it")
            datasets.append(Subset(test, range(n)))
            self.split_info = dict(dm.split_info)
        self._datasets = datasets

    def train_dataloader(self):
        return DataLoader(_One(), batch_size=1, collate_fn=collate_batch)

    def _loaders(self):
        bs = [self.batch_size, int((self.mnist or {}).get("batch_size", self.batch_size))]
        loaders = [DataLoader(d, batch_size=b, shuffle=False, collate_fn=collate_batch)
                   for d, b in zip(self._datasets, bs)]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self):
        return self._loaders()

    def val_dataloader(self):
        return self._loaders()
