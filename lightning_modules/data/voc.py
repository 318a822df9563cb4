"""PASCAL VOC 2007 for the pointing game (Zhang et al.'s Excitation Backprop protocol, as in TorchRay's benchmark
and Fong & Vedaldi's / Petsiuk et al.'s pointing experiments; ../shared/PAPERS.md).

Protocol (TorchRay ``PointingGameBenchmark``): the ``test`` split; every (image, class present in the image) pair is
one sample; pairs whose boxes of that class are *all* marked ``difficult`` in the XML are skipped; the target region
is the union of the class's boxes (difficult ones included); a point hits when it lies within 15 px of that region;
accuracy is averaged per class. The "difficult" subset is given by Zhang et al.'s list, shipped by TorchRay as
``pointing_game_ebp_voc07_difficult.txt`` (``<image id>\\t<20 flags>`` per line, VOC class order): pass its path.

On disk (what ``torchvision.datasets.VOCDetection`` reads, unpacked from ``VOCtest_06-Nov-2007.tar``)::

    <root>/VOCdevkit/VOC2007/JPEGImages/000001.jpg
    <root>/VOCdevkit/VOC2007/Annotations/000001.xml
    <root>/VOCdevkit/VOC2007/ImageSets/Main/test.txt

``root`` may also point at ``VOCdevkit`` or ``VOC2007`` itself.

Each pair's batch entry: ``image`` resized to ``image_size``; ``label`` = the class; ``mask`` = the class's box union
(resized, nearest); ``boxes`` / ``box_labels`` = every object's box in the image (scaled); ``difficult``; ``id`` = pair
index; ``image_index``; ``orig_size`` (h, w before resizing: the 15-px tolerance is defined in original pixels);
``multilabel`` (B, 20) = the classes present. ``mode="images"`` yields one entry per image instead (for fine-tuning a
multi-label classifier, as the EBP GoogLeNet-VOC model was), with ``label`` = the class of the largest object.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from lightning_modules.data.imagenet import (
    AnnotatedDataModule,
    boxes_to_mask,
    image_size_hw,
    load_resized,
    missing_root_error,
    parse_voc_style_xml,
    voc_boxes_to_pixels,
)
from lightning_modules.validation import resolve_data_path

log = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

_VOC_LAYOUT = """  <root>/VOCdevkit/VOC2007/JPEGImages/<id>.jpg
  <root>/VOCdevkit/VOC2007/Annotations/<id>.xml
  <root>/VOCdevkit/VOC2007/ImageSets/Main/<split>.txt     (unpack VOCtest_06-Nov-2007.tar into <root>)"""


def read_difficult_flags(path: str | os.PathLike, num_classes: int) -> dict[str, torch.Tensor]:
    """TorchRay's EBP difficult list: ``<image name>\\t<flag>...`` with one 0/1 flag per class -> name -> bool (K,)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"difficult list {path} does not exist; it is TorchRay's torchray/benchmark/{path.name} "
            "(pointing_game_ebp_voc07_difficult.txt / pointing_game_ebp_coco_difficult.txt): copy it there"
        )
    flags = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != num_classes + 1 or any(p not in ("0", "1") for p in parts[1:]):
            raise ValueError(f"{path}:{n}: expected an image name and {num_classes} 0/1 flags, got {len(parts) - 1} fields")
        flags[parts[0]] = torch.tensor([p == "1" for p in parts[1:]])
    return flags


def find_voc_dir(root: Path, year: str = "2007") -> Path:
    """``<root>/VOCdevkit/VOC2007``, accepting ``root`` = that folder or ``VOCdevkit``."""
    for cand in (root / "VOCdevkit" / f"VOC{year}", root / f"VOC{year}", root):
        if (cand / "Annotations").is_dir() and (cand / "JPEGImages").is_dir():
            return cand
    raise missing_root_error(f"PASCAL VOC {year}", root, _VOC_LAYOUT)


class VOCPointingDataset(Dataset):
    """(image, class) pairs (``mode="pairs"``) or images (``mode="images"``) of one VOC split."""

    def __init__(self, voc_dir: Path, split: str, size: tuple[int, int], mode: str = "pairs",
                 difficult_flags: dict[str, torch.Tensor] | None = None, limit: int | None = None):
        split_file = voc_dir / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            raise missing_root_error(f"VOC split list {split_file.name}", voc_dir, _VOC_LAYOUT)
        # XML is parsed by torchvision's VOCDetection.parse_voc_xml (parse_voc_style_xml); all at setup: the pairs
        # (image, class present) are enumerated from it.
        ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if limit is not None:
            ids = ids[:limit]
        self.images = [voc_dir / "JPEGImages" / f"{i}.jpg" for i in ids]
        self.size = size
        self.mode = mode
        index = {c: k for k, c in enumerate(VOC_CLASSES)}
        self.annotations = []
        self.sizes: list[tuple[int | None, int | None]] = []  # (h, w) from the XML
        self.items: list[tuple[int, int, bool]] = []  # (image index, class, difficult)
        for n, image_id in enumerate(ids):
            xml = voc_dir / "Annotations" / f"{image_id}.xml"
            if not xml.is_file() or not self.images[n].is_file():
                raise FileNotFoundError(f"VOC image {image_id}: missing {xml if not xml.is_file() else self.images[n]}")
            ann = parse_voc_style_xml(xml)
            unknown = [o["name"] for o in ann["objects"] if o["name"] not in index]
            if unknown:
                raise ValueError(f"{xml}: unknown VOC class {unknown[0]!r} (known: {', '.join(VOC_CLASSES)})")
            labels = [index[o["name"]] for o in ann["objects"]]
            boxes = voc_boxes_to_pixels([o["box"] for o in ann["objects"]]) if labels else torch.zeros(0, 4)
            is_difficult = torch.tensor([o["difficult"] for o in ann["objects"]], dtype=torch.bool)
            self.annotations.append((boxes, torch.tensor(labels, dtype=torch.long), is_difficult))
            self.sizes.append((ann["height"], ann["width"]))
            if mode == "images":
                self.items.append((n, self._main_class(boxes, labels, is_difficult), False))
                continue
            flags = difficult_flags.get(image_id) if difficult_flags is not None else None
            for c in sorted(set(labels)):
                of_class = torch.tensor([lab == c for lab in labels])
                if bool(is_difficult[of_class].all()):
                    continue  # TorchRay: skip when every box of the class is PASCAL-difficult
                self.items.append((n, c, bool(flags[c]) if flags is not None else False))

    @staticmethod
    def _main_class(boxes: torch.Tensor, labels: list[int], difficult: torch.Tensor) -> int:
        if not labels:
            return -1
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        area = torch.where(difficult, area * 0, area)  # prefer non-difficult objects
        return labels[int(area.argmax())]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        n, c, difficult = self.items[i]
        boxes, labels, _ = self.annotations[n]
        if self.mode == "pairs":
            # the pointing target: union of the class's boxes, built at the original resolution then resized
            h, w = self.sizes[n]
            if h is None or w is None:
                from PIL import Image

                with Image.open(self.images[n]) as im:
                    w, h = im.size
            mask = boxes_to_mask(boxes[labels == c], h, w)
            mask_hw = (h, w)
        else:
            mask, mask_hw = None, None
        image, scaled, mask, orig = load_resized(self.images[n], self.size, boxes=boxes, mask=mask)
        if mask_hw is not None and orig != mask_hw:
            raise ValueError(f"{self.images[n]} is {orig[1]}x{orig[0]} but its XML says {mask_hw[1]}x{mask_hw[0]}")
        multilabel = torch.zeros(len(VOC_CLASSES))
        multilabel[labels] = 1.0
        sample = {
            "image": image,
            "label": torch.tensor(c, dtype=torch.long),
            "boxes": scaled,
            "box_labels": labels.clone(),
            "difficult": torch.tensor(difficult),
            "id": torch.tensor(i, dtype=torch.long),
            "image_index": torch.tensor(n, dtype=torch.long),
            "orig_size": torch.tensor(orig, dtype=torch.long),
            "multilabel": multilabel,
        }
        if mask is not None:
            sample["mask"] = mask
        return sample


class PointingGameDataModule(AnnotatedDataModule):
    """What the pointing-game DataModules (VOC 2007, COCO) share: the data ``root``, the image ``size``, the
    evaluation ``split`` of (image, class) pairs in ``eval_set`` (served by ``val_dataloader`` and ``test_dataloader``),
    an optional list of difficult images and a ``limit`` on the images read. Subclasses fill ``eval_set`` in ``setup``."""

    def __init__(self, root: str | os.PathLike, image_size: int | Sequence[int], batch_size: int, num_workers: int,
                 split: str, difficult_list: str | os.PathLike | None, limit: int | None, seed: int):
        super().__init__(batch_size, num_workers, seed)
        self.root = resolve_data_path(root)
        self.size = image_size_hw(image_size)
        self.split = split
        self.difficult_list = resolve_data_path(difficult_list) if difficult_list else None
        self.limit = limit
        self.eval_set: Dataset | None = None

    def warn_unlisted(self, names: set[str], flags) -> None:
        """Warn when images of the evaluation split (``names``) are missing from the difficult list (``flags``, keyed
        by image name): they are counted as not difficult. TorchRay keeps unlisted images in the difficult subset; the
        shipped lists cover every image of their split, so an unlisted image means a different list or split: say so
        rather than guess."""
        unlisted = len(names - set(flags))
        if unlisted:
            warnings.warn(f"{unlisted} of {len(names)} images are not in the difficult list {self.difficult_list}; "
                          "they are counted as not difficult", stacklevel=3)

    def val_dataloader(self):
        return self._loader(self.eval_set)

    def test_dataloader(self):
        return self._loader(self.eval_set)


class VOC2007DataModule(PointingGameDataModule):
    """VOC 2007 ``test`` pairs for the pointing game (``val_dataloader``/``test_dataloader``); ``trainval`` images
    for fine-tuning a multi-label classifier (``train_dataloader``, when that split list exists)."""

    num_classes = len(VOC_CLASSES)
    classes = VOC_CLASSES

    def __init__(
        self,
        root: str | os.PathLike = "data/voc",
        image_size: int | Sequence[int] = 224,
        batch_size: int = 32,
        num_workers: int = 0,
        split: str = "test",
        train_split: str | None = "trainval",
        difficult_list: str | os.PathLike | None = None,
        limit: int | None = None,
        seed: int = 0,
    ):
        super().__init__(root, image_size, batch_size, num_workers, split, difficult_list, limit, seed)
        self.train_split = train_split
        self.train_set: VOCPointingDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        voc_dir = find_voc_dir(self.root)
        if self.eval_set is None:
            flags = read_difficult_flags(self.difficult_list, len(VOC_CLASSES)) if self.difficult_list else None
            self.eval_set = VOCPointingDataset(voc_dir, self.split, self.size, "pairs", flags, self.limit)
            if flags is not None:
                # the shipped list covers all 4,952 test images
                self.warn_unlisted({p.stem for p in self.eval_set.images}, flags)
            log.info("VOC07 %s: %d images, %d (image, class) pairs", self.split, len(self.eval_set.images), len(self.eval_set))
        if stage in (None, "fit") and self.train_split and self.train_set is None:
            if (voc_dir / "ImageSets" / "Main" / f"{self.train_split}.txt").is_file():
                self.train_set = VOCPointingDataset(voc_dir, self.train_split, self.size, "images", None, self.limit)

    def train_dataloader(self):
        return self._loader(self.train_set, shuffle=True)
