"""LightningDataModules sharing one batch schema (docs/CONVENTIONS.md)."""

from lightning_modules.data.schema import collate_batch, validate_batch
from lightning_modules.data.synthetic import ScenesConfig, SyntheticScenes, SyntheticScenesDataModule
from lightning_modules.data.mnist import FashionMNISTDataModule, MNISTDataModule, read_idx
from lightning_modules.data.cifar import CIFAR10DataModule
from lightning_modules.data.digits import DigitsDataModule
