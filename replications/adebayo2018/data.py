"""Data of the sanity-check replication: handwritten digits for the data randomisation test and the MNIST
model randomisation test, and synthetic scenes for the model randomisation test of the cached black box.

- ``train_dataloader``: the training *jobs* (one item: "train the true-label and the random-label model");
  the replication's ``training_step`` runs them (each a ClassifierTask under its own Trainer).
- ``test_dataloader``: ``[scenes, digits]``: the images whose maps are compared (dataloader 0 feeds the
  black box's randomisation test, dataloader 1 the digit CNN's randomisation and data randomisation tests).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Subset

DIGIT_SOURCES = ("mnist", "digits")


class SanityChecksData(pl.LightningDataModule):
    """``digits``: ``"mnist"`` (the shipped real MNIST, 8,000/2,000 stratified split of the test set) or
    ``"digits"`` (scikit-learn's 8x8 digits, resized to 28x28 for the MNIST CNN; smoke profile)."""

    def __init__(
        self,
        digits: str = "mnist",
        digits_root: str | None = None,
        digits_kwargs: dict | None = None,
        scenes_profile: str = "default",
        scenes_test_images: int = 16,
        digits_test_images: int = 32,
        batch_size: int = 16,
        seed: int = 0,
        imagenet: dict | None = None,
    ):
        super().__init__()
        if digits not in DIGIT_SOURCES:
            raise ValueError(f"unknown digits source {digits!r}; use one of {DIGIT_SOURCES}")
        if scenes_test_images < 1 or digits_test_images < 1 or batch_size < 1:
            raise ValueError("scenes_test_images, digits_test_images and batch_size must be >= 1")
        self.digits = digits
        self.digits_root = digits_root
        self.digits_kwargs = dict(digits_kwargs or {})
        self.scenes_profile = scenes_profile
        self.scenes_test_images = scenes_test_images
        self.digits_test_images = digits_test_images
        self.batch_size = batch_size
        self.seed = seed
        #: ImageNetValDataModule arguments: the paper's images for the pretrained model's randomisation test
        self.imagenet = dict(imagenet) if imagenet else None
        self.digits_train: tuple[torch.Tensor, torch.Tensor] | None = None
        self.digits_test: tuple[torch.Tensor, torch.Tensor] | None = None
        self.digits_info: dict = {}
        self.scenes_info: dict = {}

    # ------------------------------------------------------------------ digits
    def _digit_module(self):
        if self.digits == "mnist":
            from lightning_modules.data.mnist import MNISTDataModule

            kw = dict(self.digits_kwargs)
            if self.digits_root is not None:
                kw["root"] = self.digits_root
            return MNISTDataModule(seed=self.seed, **kw)
        from lightning_modules.data.digits import DigitsDataModule

        return DigitsDataModule(seed=self.seed, **self.digits_kwargs)

    @staticmethod
    def _tensors(loader) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for batch in loader:
            xs.append(batch["image"])
            ys.append(batch["label"])
        return torch.cat(xs), torch.cat(ys)

    def setup(self, stage: str | None = None) -> None:
        if self.digits_train is None:
            dm = self._digit_module()
            dm.setup("fit")
            self.digits_train = self._tensors(dm.train_dataloader())
            dm.setup("test")
            self.digits_test = self._tensors(dm.test_dataloader())
            x = self.digits_train[0]
            if x.shape[-2:] != (28, 28) or x.shape[1] != 1:
                raise ValueError(f"the MNIST CNN takes (1, 28, 28) digits; the {self.digits} loader gave {tuple(x.shape[1:])}")
            self.num_classes = int(max(self.digits_train[1].max(), self.digits_test[1].max())) + 1
            self.digits_info = {
                "source": self.digits,
                "train_images": int(self.digits_train[0].shape[0]),
                "test_images": int(self.digits_test[0].shape[0]),
                "split": getattr(dm, "split_description", None) or getattr(dm, "split_info", None),
            }
        if stage in (None, "test", "fit") and not self.scenes_info and self.imagenet is not None:
            from lightning_modules.data.imagenet import ImageNetValDataModule

            self._scenes = ImageNetValDataModule(**{"batch_size": self.batch_size, "limit": self.scenes_test_images, **self.imagenet})
            self._scenes.setup("test")
            self.scenes_info = {"imagenet": self.imagenet, "images": self.scenes_test_images}
        if stage in (None, "test", "fit") and not self.scenes_info:
            # The scenes the black box was trained on (same cache); the test split is explained.
            from lightning_modules.blackbox import blackbox_datamodule

            self._scenes = blackbox_datamodule(self.scenes_profile, eval_batch_size=self.batch_size)
            self._scenes.setup("test")
            self.scenes_info = {"profile": self.scenes_profile, "images": self.scenes_test_images}

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self):
        # One training job: the replication trains both digit models in a single training_step.
        return DataLoader([0], batch_size=1)

    def test_dataloader(self):
        scenes = self._scenes.test_dataloader()
        ds = scenes.dataset
        n = min(self.scenes_test_images, len(ds))
        scenes_loader = DataLoader(Subset(ds, range(n)), batch_size=self.batch_size, shuffle=False,
                                   collate_fn=scenes.collate_fn)
        x, y = self.digits_test
        n = min(self.digits_test_images, x.shape[0])
        ids = torch.arange(n)
        digits_loader = DataLoader(
            [{"image": x[i], "label": y[i], "id": ids[i]} for i in range(n)], batch_size=self.batch_size, shuffle=False
        )
        return [scenes_loader, digits_loader]
