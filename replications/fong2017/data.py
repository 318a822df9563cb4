"""The paper profile's data: ILSVRC'12 validation images with their bounding boxes (Table 1, Sec. 5).

On-disk format (the official ILSVRC release): ``<root>/<images>/ILSVRC2012_val_XXXXXXXX.JPEG`` and
``<root>/<annotations>/ILSVRC2012_val_XXXXXXXX.xml`` (PASCAL-VOC-style XML: ``<size>``, one ``<object>`` per box
with ``<name>`` = WordNet synset and ``<bndbox>`` xmin/ymin/xmax/ymax, 1-based inclusive), plus
``LOC_synset_mapping.txt`` (one ``nXXXXXXXX description`` per line, in class-index order). Images are resized to
``size x size`` (as the official Caffe code does) and the boxes scaled with them; a held-out split for the threshold
search is a disjoint slice of the files (Fong used 5,000 annotated *training* images: point ``heldout_root`` there).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_modules.data.schema import collate_batch


def read_synsets(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: put ILSVRC's LOC_synset_mapping.txt (one 'nXXXXXXXX name' per "
                                "line, class-index order) in the data root")
    return {line.split()[0]: i for i, line in enumerate(path.read_text().splitlines()) if line.strip()}


def read_boxes(xml_path: Path, synsets: dict[str, int]) -> tuple[int, int, list[tuple[float, float, float, float]], list[int]]:
    """(width, height, boxes x0, y0, x1, y1 exclusive pixels, class indices) of one ILSVRC XML file."""
    root = ET.parse(xml_path).getroot()
    w, h = int(root.findtext("size/width")), int(root.findtext("size/height"))
    boxes, labels = [], []
    for obj in root.findall("object"):
        name = obj.findtext("name")
        if name not in synsets:
            raise ValueError(f"{xml_path}: synset {name!r} is not in LOC_synset_mapping.txt")
        bb = obj.find("bndbox")
        x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x0 - 1, y0 - 1, x1, y1))  # 1-based inclusive -> 0-based exclusive
        labels.append(synsets[name])
    if not boxes:
        raise ValueError(f"{xml_path} has no <object>: every validation image has at least one box")
    return w, h, boxes, labels


class ImageNetValBoxes(Dataset):
    """ILSVRC'12 validation images + boxes, in the project's batch schema (``label`` = the first box's class)."""

    def __init__(self, root: str | Path, images: str = "val", annotations: str = "val_annotations",
                 size: int = 224, start: int = 0, count: int | None = None):
        root = Path(root)
        self.image_dir, self.ann_dir, self.size = root / images, root / annotations, size
        if not self.image_dir.is_dir() or not self.ann_dir.is_dir():
            raise FileNotFoundError(f"expected ILSVRC images in {self.image_dir} and XML boxes in {self.ann_dir}; "
                                    "download the ILSVRC2012 validation set and its bounding boxes there")
        self.synsets = read_synsets(root / "LOC_synset_mapping.txt")
        files = sorted(self.ann_dir.glob("*.xml"))
        self.files = files[start:None if count is None else start + count]
        if not self.files:
            raise FileNotFoundError(f"no annotation files in {self.ann_dir} (slice start={start}, count={count})")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor, resize

        xml = self.files[i]
        w, h, boxes, labels = read_boxes(xml, self.synsets)
        img_path = self.image_dir / (xml.stem + ".JPEG")
        if not img_path.is_file():
            raise FileNotFoundError(f"image {img_path} for {xml.name} is missing")
        img = pil_to_tensor(Image.open(img_path).convert("RGB")).float().div(255)
        img = resize(img, [self.size, self.size], antialias=True)
        scale = torch.tensor([self.size / w, self.size / h, self.size / w, self.size / h])
        b = torch.tensor(boxes, dtype=torch.float32) * scale
        return {"image": img, "label": torch.tensor(labels[0]), "boxes": b, "box_labels": torch.tensor(labels),
                "difficult": torch.tensor(False), "id": torch.tensor(i)}


class ImageNetBoxesDataModule(pl.LightningDataModule):
    """``dataset("test")``: validation images; ``dataset("heldout")``: the held-out slice for the alpha search."""

    def __init__(self, root: str, heldout_root: str | None = None, size: int = 224, test_images: int | None = None,
                 heldout_images: int = 5000, batch_size: int = 32, images: str = "val", annotations: str = "val_annotations"):
        super().__init__()
        self.root, self.heldout_root, self.size = root, heldout_root, size
        self.test_images, self.heldout_images, self.batch_size = test_images, heldout_images, batch_size
        self.images, self.annotations = images, annotations

    def prepare_data(self) -> None:
        pass

    def dataset(self, split: str) -> Dataset:
        if split == "test":
            start = 0 if self.heldout_root else self.heldout_images
            return ImageNetValBoxes(self.root, self.images, self.annotations, self.size, start, self.test_images)
        if split == "heldout":
            return ImageNetValBoxes(self.heldout_root or self.root, self.images, self.annotations, self.size, 0, self.heldout_images)
        raise ValueError(f"unknown split {split!r}; use 'test' or 'heldout'")

    def test_dataloader(self):
        return DataLoader(self.dataset("test"), batch_size=self.batch_size, collate_fn=collate_batch)


def imagenet_datamodule(spec: dict) -> ImageNetBoxesDataModule:
    keys = ("root", "heldout_root", "size", "heldout_images", "batch_size", "images", "annotations")
    return ImageNetBoxesDataModule(test_images=spec.get("test_images"), **{k: spec[k] for k in keys if k in spec})
