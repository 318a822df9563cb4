"""Data of the sanity-check replication (Adebayo et al. 2018, Sec. 3 and 4).

- The black box's images: the scenes it was trained on -- benchmark v2's (``scenes_source: scenes_v2``, default;
  ``lightning_modules.data.scenes_v2``) or v1's (``scenes``) -- or ImageNet validation images (paper profile,
  Inception v3). Model randomisation of the black box explains them; the scenes also serve the scenes' data
  randomisation test (their training split trains the random-label model).
- Digit datasets (``digits``: any of ``mnist``, ``fashion_mnist``, ``digits``): the data randomisation test's
  training and test images, and the digit CNN's model randomisation test.

``train_dataloader``: the training *jobs* (one item: "train every true-label and random-label model"); the
replication's ``training_step`` runs them (each a ClassifierTask under its own Trainer) on
:meth:`SanityChecksData.train_tensors`. ``val_dataloader`` / ``test_dataloader``: ``[black-box images, digits
dataset 1, digits dataset 2, ...]``, the images whose maps are compared (``loader_names`` names them).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Subset

DIGIT_SOURCES = ("mnist", "fashion_mnist", "digits")
#: the black box's scenes: benchmark v2 (default) or v1
SCENE_SOURCES = ("scenes_v2", "scenes")
#: the digits' DataModules (the MNIST CNN / MLP take (1, 28, 28) images)
_DIGIT_MODULES = {
    "mnist": "lightning_modules.data.mnist:MNISTDataModule",
    "fashion_mnist": "lightning_modules.data.mnist:FashionMNISTDataModule",
    "digits": "lightning_modules.data.digits:DigitsDataModule",
}


def _import(path: str):
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


class SanityChecksData(pl.LightningDataModule):
    """``digits``: one digit dataset or a list of them: ``"mnist"`` (the shipped real MNIST, 8,000/2,000 stratified
    split of the test set, or the official split when the training images are present), ``"fashion_mnist"`` (same
    reader; not shipped) or ``"digits"`` (scikit-learn's 8x8 digits, resized to 28x28; smoke profile).
    ``digits_roots``: dataset -> folder of its idx files (default: ``data/<dataset>``); ``digits_kwargs``: dataset ->
    further arguments of its DataModule.
    ``scenes_source``: ``scenes_v2`` (benchmark v2, profile ``scenes_profile``) or ``scenes`` (v1, the black box
    profile's scenes). ``imagenet``: ``ImageNetValDataModule`` arguments; when given, the black box explains ImageNet
    validation images instead of the synthetic scenes (the paper's setting)."""

    def __init__(
        self,
        digits: str | list[str] = "mnist",
        digits_roots: dict[str, str] | None = None,
        digits_kwargs: dict[str, dict] | None = None,
        scenes_source: str = "scenes_v2",
        scenes_profile: str = "default",
        scenes_test_images: int = 16,
        digits_test_images: int = 32,
        batch_size: int = 16,
        seed: int = 0,
        imagenet: dict | None = None,
    ):
        super().__init__()
        self.digit_sources = [digits] if isinstance(digits, str) else list(digits)
        unknown = [d for d in self.digit_sources if d not in DIGIT_SOURCES]
        if unknown or not self.digit_sources or len(set(self.digit_sources)) != len(self.digit_sources):
            raise ValueError(f"unknown or repeated digits source(s) {self.digit_sources!r}; use distinct ones of {DIGIT_SOURCES}")
        roots = dict(digits_roots or {})
        if set(roots) - set(self.digit_sources):
            raise ValueError(f"digits_roots names {sorted(set(roots) - set(self.digit_sources))}, which are not in "
                             f"digits={self.digit_sources}; add them to digits or drop their roots")
        if scenes_test_images < 1 or digits_test_images < 1 or batch_size < 1:
            raise ValueError("scenes_test_images, digits_test_images and batch_size must be >= 1")
        if scenes_source not in SCENE_SOURCES:
            raise ValueError(f"scenes_source must be one of {SCENE_SOURCES} (benchmark v2 or v1), got {scenes_source!r}")
        kwargs = {k: dict(v) for k, v in (digits_kwargs or {}).items()}
        if set(kwargs) - set(self.digit_sources):
            raise ValueError(f"digits_kwargs names {sorted(set(kwargs) - set(self.digit_sources))}, which are not in "
                             f"digits={self.digit_sources}; digits_kwargs maps a digits source to its DataModule's arguments")
        self.digits_roots = roots
        self.digits_kwargs = kwargs
        self.scenes_source = scenes_source
        self.scenes_profile = scenes_profile
        self.scenes_test_images = scenes_test_images
        self.digits_test_images = digits_test_images
        self.batch_size = batch_size
        self.seed = seed
        #: ImageNetValDataModule arguments: the paper's images for the pretrained model's randomisation test
        self.imagenet = dict(imagenet) if imagenet else None
        #: the black box's images: "imagenet" (paper), "scenes_v2" (embedded default) or "scenes" (v1)
        self.blackbox_data = "imagenet" if self.imagenet is not None else scenes_source
        self._digits: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        self._scenes = None
        self.digits_info: dict[str, dict] = {}
        self.scenes_info: dict = {}
        self.num_classes_of: dict[str, int] = {}

    @property
    def loader_names(self) -> list[str]:
        """What each val/test dataloader serves, by index."""
        return [self.blackbox_data, *self.digit_sources]

    # ------------------------------------------------------------------ digits
    def _digit_module(self, source: str):
        kw = dict(self.digits_kwargs.get(source, {}))
        if source in self.digits_roots:
            if source == "digits":
                raise ValueError("scikit-learn's digits ship with scikit-learn and take no root; drop digits_roots.digits")
            kw["root"] = self.digits_roots[source]
        return _import(_DIGIT_MODULES[source])(seed=self.seed, **kw)

    @staticmethod
    def _tensors(loader) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for batch in loader:
            xs.append(batch["image"])
            ys.append(batch["label"])
        return torch.cat(xs), torch.cat(ys)

    def _setup_digits(self, source: str) -> None:
        dm = self._digit_module(source)
        dm.setup("fit")
        train = self._tensors(dm.train_dataloader())
        dm.setup("test")
        test = self._tensors(dm.test_dataloader())
        x = train[0]
        if x.shape[-2:] != (28, 28) or x.shape[1] != 1:
            raise ValueError(f"the MNIST CNN / MLP take (1, 28, 28) images; the {source} loader gave {tuple(x.shape[1:])}")
        self._digits[source] = {"train": train, "test": test}
        self.num_classes_of[source] = int(getattr(dm, "num_classes", 0) or max(train[1].max(), test[1].max()) + 1)
        self.digits_info[source] = {
            "source": source,
            "train_images": int(train[0].shape[0]),
            "test_images": int(test[0].shape[0]),
            "split": getattr(dm, "split_description", None) or getattr(dm, "split_info", None),
        }

    def setup(self, stage: str | None = None) -> None:
        for source in self.digit_sources:
            if source not in self._digits:
                self._setup_digits(source)
        if self._scenes is not None:
            return
        if self.imagenet is not None:
            from lightning_modules.data.imagenet import ImageNetValDataModule

            self._scenes = ImageNetValDataModule(**{"batch_size": self.batch_size, "limit": self.scenes_test_images, **self.imagenet})
            self._scenes.setup("test")
            self.scenes_info = {"imagenet": self.imagenet, "images": self.scenes_test_images}
            self.num_classes_of["imagenet"] = self._scenes.num_classes
        elif self.scenes_source == "scenes_v2":
            from lightning_modules.data.scenes_v2 import ScenesV2DataModule

            self._scenes = ScenesV2DataModule.from_profile(self.scenes_profile, eval_batch_size=self.batch_size)
            self._scenes.prepare_data()
            self._scenes.setup("test")
            self.scenes_info = {"source": "scenes_v2", "profile": self.scenes_profile, "images": self.scenes_test_images}
            self.num_classes_of["scenes_v2"] = self._scenes.config.num_classes
        else:
            # The scenes the black box was trained on (same cache); the test split is explained.
            from lightning_modules.models import blackbox_datamodule

            self._scenes = blackbox_datamodule(self.scenes_profile, eval_batch_size=self.batch_size)
            self._scenes.setup("test")
            self.scenes_info = {"source": "scenes", "profile": self.scenes_profile, "images": self.scenes_test_images}
            self.num_classes_of["scenes"] = self._scenes.config.num_classes

    @property
    def num_classes(self) -> int:
        """Classes of the first digit dataset (kept for callers of the single-dataset API)."""
        return self.num_classes_of[self.digit_sources[0]]

    def train_tensors(self, source: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (N, C, H, W) in [0, 1], labels (N,))`` of ``source``'s training split (a digit dataset or
        ``"scenes"``); the data randomisation test trains on them."""
        return self._split_tensors(source, "train")

    def test_tensors(self, source: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._split_tensors(source, "test")

    def _split_tensors(self, source: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if source in self._digits:
            return self._digits[source][split]
        if source in SCENE_SOURCES and self.blackbox_data == source:
            return self._scenes.dataset(split).tensors()
        known = self.digit_sources + ([self.blackbox_data] if self.blackbox_data in SCENE_SOURCES else [])
        raise ValueError(f"no data {source!r} here; the data randomisation test can train on {known}")

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self):
        # One training job: the replication trains every model of the data randomisation test in a single training_step.
        return DataLoader([0], batch_size=1)

    def _eval_loaders(self):
        scenes = self._scenes.test_dataloader()
        ds = scenes.dataset
        n = min(self.scenes_test_images, len(ds))
        loaders = [DataLoader(Subset(ds, range(n)), batch_size=self.batch_size, shuffle=False, collate_fn=scenes.collate_fn)]
        for source in self.digit_sources:
            x, y = self._digits[source]["test"]
            n = min(self.digits_test_images, x.shape[0])
            ids = torch.arange(n)
            loaders.append(DataLoader([{"image": x[i], "label": y[i], "id": ids[i]} for i in range(n)],
                                      batch_size=self.batch_size, shuffle=False))
        return loaders

    def val_dataloader(self):
        return self._eval_loaders()

    def test_dataloader(self):
        return self._eval_loaders()
