"""ImageNet images with animal-part keypoints (eyes, feet), for Fong & Vedaldi 2017's Sec. 5 "animal parts" test.

Fong & Vedaldi measured the deletion mask's intensity at the eyes and at the feet of 3,558 ImageNet images annotated
with the Oxford animal-parts keypoints (Novotny, Larlus & Vedaldi, "I Have Seen Enough: Transferring Parts Across
Categories", BMVC 2016; ../shared/PAPERS.md section 1). This loader reads that dataset in the on-disk format the
official code reads (``animal_parts.ipynb`` / ``helpers.load_objs`` of ruthcfong/perturb_explanations): one
PASCAL-VOC-style XML file per image and part, in a folder per part::

    <root>/xml/eye/<stem>.xml          <stem> = n01530575_10086 (an ILSVRC training image) or ILSVRC2012_val_00000042
    <root>/xml/foot/<stem>.xml
    <image_root>/train/<wnid>/<stem>.JPEG   training images (class folders, as ILSVRC ships them)
    <image_root>/val/<stem>.JPEG            validation images (flat; labels from ``val_labels_file``) or val/<wnid>/
    <image_root>/LOC_synset_mapping.txt     the 1000 classes in index order (or ``synsets_file``)

Each XML holds ``<object>`` elements with ``<point><x>..</x><y>..</y><class>eye</class></point>`` children (x, y in
pixels of the original image); an image's keypoints of a part are the points of that part's class in its file.
Why this format: it is the one the paper's own evaluation read, so the official annotation files work unchanged,
and it is plain XML that ElementTree reads without a new dependency.

Selection (``create_animal_parts_imdb`` in the official code): images with at least one point of *every* part
(``require_all_parts``), of classes with more than ``min_per_class`` such images (the official 10; 3,558 images).
Points are scaled with the image to ``image_size`` (the whole image is resized, no crop) and clamped inside it.

Batches follow docs/CONVENTIONS.md: ``image``, ``label``, ``keypoints`` {``eyes``, ``feet``} (B, K, 2) with NaN
padding, ``id`` (index in the selection, stable across processes), ``orig_size``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Sequence
from xml.etree.ElementTree import parse as parse_xml

import torch
from torch.utils.data import Dataset

from lightning_modules.data.imagenet import AnnotatedDataModule, image_size_hw, load_resized, missing_root_error
from lightning_modules.validation import resolve_data_path

log = logging.getLogger(__name__)

#: schema keypoint name -> (sub-folder of <root>/xml, point class written in the XML)
DEFAULT_PARTS = {"eyes": ("eye", "eye"), "feet": ("foot", "foot")}

_LAYOUT = """  <root>/xml/eye/<stem>.xml and <root>/xml/foot/<stem>.xml      (Oxford animal-parts keypoints, one file per image and part)
  <image_root>/train/<wnid>/<stem>.JPEG  or  <image_root>/val/<stem>.JPEG (+ val_labels_file)
  <image_root>/LOC_synset_mapping.txt                          (class order; or synsets_file)"""


def read_part_points(path: str | os.PathLike, point_class: str) -> list[tuple[float, float]]:
    """The ``(x, y)`` of every ``<point>`` of class ``point_class`` in one animal-parts XML file."""
    try:
        root = parse_xml(path).getroot()
    except Exception as e:  # noqa: BLE001 - name the file whatever the XML error is
        raise ValueError(f"cannot parse animal-parts annotation {path}: {e}") from None
    points = []
    for pt in root.iter("point"):
        cls = (pt.findtext("class") or "").strip()
        if cls != point_class:
            continue
        try:
            points.append((float(pt.findtext("x")), float(pt.findtext("y"))))
        except (TypeError, ValueError):
            raise ValueError(f"{path}: a <point> of class {cls!r} lacks numeric <x>/<y>") from None
    return points


class AnimalPartsDataset(Dataset):
    def __init__(self, samples: list[tuple[Path, int, dict[str, list[tuple[float, float]]]]], size: tuple[int, int]):
        self.samples = samples
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        path, label, parts = self.samples[i]
        image, _, _, (h, w) = load_resized(path, self.size)
        sh, sw = self.size
        scale = torch.tensor([sw / w, sh / h])
        hi = torch.tensor([sw, sh], dtype=torch.float32) - 1e-3  # keep points inside the resized image
        keypoints = {name: (torch.tensor(pts, dtype=torch.float32).reshape(-1, 2) * scale).clamp(min=0).minimum(hi)
                     for name, pts in parts.items()}
        return {"image": image, "label": torch.tensor(label, dtype=torch.long), "keypoints": keypoints,
                "id": torch.tensor(i, dtype=torch.long), "orig_size": torch.tensor((h, w), dtype=torch.long)}


class AnimalPartsDataModule(AnnotatedDataModule):
    """The animal-parts images (see the module docstring); ``val_dataloader`` = ``test_dataloader``."""

    def __init__(
        self,
        root: str | os.PathLike = "data/animal_parts",
        image_root: str | os.PathLike = "data/imagenet",
        image_size: int | Sequence[int] = 224,
        batch_size: int = 32,
        num_workers: int = 0,
        synsets_file: str | os.PathLike | None = None,
        val_labels_file: str | os.PathLike | None = None,
        parts: dict[str, Sequence[str]] | None = None,
        require_all_parts: bool = True,
        min_per_class: int = 10,
        limit: int | None = None,
        seed: int = 0,
    ):
        super().__init__(batch_size, num_workers, seed)
        self.root, self.image_root = resolve_data_path(root), resolve_data_path(image_root)
        self.size = image_size_hw(image_size)
        self.synsets_file = resolve_data_path(synsets_file) if synsets_file else self.image_root / "LOC_synset_mapping.txt"
        self.val_labels_file = resolve_data_path(val_labels_file) if val_labels_file else None
        self.parts = {k: tuple(v) for k, v in (parts or DEFAULT_PARTS).items()}
        if any(len(v) != 2 for v in self.parts.values()):
            raise ValueError("parts maps a keypoint name to (sub-folder, point class), e.g. {'eyes': ['eye', 'eye']}")
        self.require_all_parts = require_all_parts
        self.min_per_class = min_per_class
        self.limit = limit
        self.eval_set: AnimalPartsDataset | None = None
        self.wnids: list[str] = []

    def _val_labels(self) -> dict[str, int]:
        if self.val_labels_file is None:
            return {}
        if not self.val_labels_file.is_file():
            raise FileNotFoundError(f"val_labels_file {self.val_labels_file} does not exist ('<file name> <class index>' lines)")
        table = {}
        for line in self.val_labels_file.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                table[Path(parts[0]).stem] = int(parts[1])
        return table

    def _image_and_label(self, stem: str, index: dict[str, int], val_labels: dict[str, int]) -> tuple[Path, int]:
        wnid = stem.split("_")[0]
        if wnid in index:  # a training image: <wnid>_<n>
            for ext in (".JPEG", ".jpg", ".jpeg", ".png"):
                p = self.image_root / "train" / wnid / f"{stem}{ext}"
                if p.is_file():
                    return p, index[wnid]
            raise FileNotFoundError(f"image {self.image_root / 'train' / wnid / (stem + '.JPEG')} for the keypoints of "
                                    f"{stem} is missing")
        flat = self.image_root / "val" / f"{stem}.JPEG"
        if flat.is_file():
            if stem not in val_labels:
                raise ValueError(f"no label for validation image {flat.name}: pass val_labels_file ('<file name> "
                                 "<class index>' lines, the Caffe val.txt) or use the class-folder layout val/<wnid>/")
            return flat, val_labels[stem]
        hits = sorted((self.image_root / "val").glob(f"*/{stem}.JPEG")) if (self.image_root / "val").is_dir() else []
        if hits and hits[0].parent.name in index:
            return hits[0], index[hits[0].parent.name]
        raise FileNotFoundError(f"image for the keypoints of {stem} not found under {self.image_root} (train/<wnid>/ or val/)")

    def setup(self, stage: str | None = None) -> None:
        if self.eval_set is not None:
            return
        folders = {name: self.root / "xml" / sub for name, (sub, _) in self.parts.items()}
        if not all(d.is_dir() for d in folders.values()):
            raise missing_root_error("animal-parts keypoint annotations", self.root, _LAYOUT)
        if not self.synsets_file.is_file():
            raise missing_root_error(f"the class list {self.synsets_file.name}", self.image_root, _LAYOUT)
        self.wnids = [line.split()[0] for line in self.synsets_file.read_text().splitlines() if line.strip()]
        index = {w: i for i, w in enumerate(self.wnids)}
        val_labels = self._val_labels()
        stems = sorted({p.stem for d in folders.values() for p in d.glob("*.xml")})
        candidates = []
        for stem in stems:
            parts = {}
            for name, (sub, cls) in self.parts.items():
                f = folders[name] / f"{stem}.xml"
                parts[name] = read_part_points(f, cls) if f.is_file() else []
            if self.require_all_parts and not all(parts.values()):
                continue
            if not any(parts.values()):
                continue
            path, label = self._image_and_label(stem, index, val_labels)
            candidates.append((path, label, parts))
        if self.min_per_class:
            counts = Counter(label for _, label, _ in candidates)
            # the official selection keeps classes with strictly more than min_per_class images
            candidates = [c for c in candidates if counts[c[1]] > self.min_per_class]
        if self.limit is not None:
            candidates = candidates[: self.limit]
        if not candidates:
            raise ValueError(f"no animal-parts image under {self.root} passes the selection (every part annotated: "
                             f"{self.require_all_parts}; classes with > {self.min_per_class} images); lower min_per_class")
        self.eval_set = AnimalPartsDataset(candidates, self.size)
        log.info("animal parts: %d images of %d classes", len(candidates), len({c[1] for c in candidates}))

    @property
    def num_classes(self) -> int:
        return len(self.wnids)

    def val_dataloader(self):
        return self._loader(self.eval_set)

    def test_dataloader(self):
        return self._loader(self.eval_set)
