"""LightningDataModules sharing one batch schema (docs/CONVENTIONS.md)."""

from lightning_modules.data.schema import collate_batch, validate_batch
from lightning_modules.data.synthetic import ScenesConfig, SyntheticScenes, SyntheticScenesDataModule
from lightning_modules.data.mnist import FashionMNISTDataModule, MNISTDataModule, read_idx
from lightning_modules.data.cifar import CIFAR10DataModule
from lightning_modules.data.digits import DigitsDataModule
from lightning_modules.data.tensors import TensorDataModule
from lightning_modules.data.imagenet import ImageNetValDataModule
from lightning_modules.data.voc import VOC_CLASSES, VOC2007DataModule
from lightning_modules.data.coco import COCOPointingDataModule
from lightning_modules.data.scenes_v2 import ScenesV2, ScenesV2DataModule, SyntheticScenesV2Config
