"""scikit-learn's 8x8 handwritten digits (UCI optical recognition, 1,797 images, bundled with scikit-learn:
no download) as a tiny real dataset for the smoke profiles. Images are rescaled from 0..16 to [0, 1] and
(by default) resized to 28x28 so the MNIST networks take them; a fixed, seeded, stratified split."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_modules.data.schema import ArrayDataset, SplitsDataModule, stratified_split


class DigitsDataModule(SplitsDataModule):
    """``train_fraction`` of the 1,797 digits for training (stratified, seeded), the rest for test (= val)."""

    num_classes = 10

    def __init__(self, image_size: int = 28, train_fraction: float = 0.8, batch_size: int = 128,
                 eval_batch_size: int | None = None, seed: int = 0):
        super().__init__(batch_size, eval_batch_size, seed)
        if not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8 (the digits are 8x8), got {image_size}")
        self.image_size = image_size
        self.train_fraction = train_fraction
        self.split_info: dict = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy(d.images).float().div(16.0).unsqueeze(1)
        if self.image_size != 8:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False).clamp(0, 1)
        y = torch.from_numpy(d.target).long()
        train_idx, test_idx = stratified_split(y, round(self.train_fraction * y.numel()), self.seed)
        self.datasets["train"] = ArrayDataset(x[train_idx], y[train_idx])
        self.datasets["test"] = self.datasets["val"] = ArrayDataset(x[test_idx], y[test_idx])
        self.split_info = {"dataset": "sklearn_digits", "train_images": int(train_idx.numel()),
                           "test_images": int(test_idx.numel()), "image_size": self.image_size, "seed": self.seed}
        self.split_description = (f"scikit-learn digits: stratified {self.split_info['train_images']} train / "
                                  f"{self.split_info['test_images']} test (seed {self.seed}), resized to {self.image_size}px")

