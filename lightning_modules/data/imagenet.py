"""ILSVRC2012 validation images with their bounding boxes, in the batch schema (docs/CONVENTIONS.md).

Fong & Vedaldi 2017 (Sec. 5.1, weak localisation) evaluate on the 50k ILSVRC'12 validation images with the
ILSVRC ground-truth boxes and choose the threshold alpha on 5,000 held-out *training* images that have boxes
(../shared/PAPERS.md, "Cross-cutting notes"); RISE and the sanity checks use the same validation images.

On-disk layouts accepted (no download ever; a missing root is an error that says where to put the files):

- class folders: ``<root>/val/<wnid>/*.JPEG`` (the ``valprep.sh`` layout torchvision's ImageFolder reads);
- flat: ``<root>/val/ILSVRC2012_val_XXXXXXXX.JPEG`` with labels from
  a ``labels_file`` (``<file name> <class index>`` lines, the Caffe ``val.txt``), or the devkit's
  ``data/ILSVRC2012_validation_ground_truth.txt`` (ILSVRC2012_IDs, mapped through ``data/meta.mat``), or, failing
  both, the class named in each image's XML;
- boxes: ILSVRC XML (``<annotation><size>..<object><name>wnid</name><bndbox>..``), looked for in
  ``<root>/Annotations/CLS-LOC/val/<stem>.xml`` (the CLS-LOC release), ``<root>/val/<stem>.xml``
  (``ILSVRC2012_bbox_val_v3.tgz`` unpacked) or an explicit ``annotations_dir``.

Class indices follow the torchvision/timm convention (the 1000 WordNet ids in sorted order), taken from
``synsets_file`` (``LOC_synset_mapping.txt``: one ``wnid words`` line per class, in index order), the devkit's
``meta.mat``, or the class folders, in that order.

The module also holds the helpers the VOC and COCO loaders share (XML parsing through torchvision, resizing an
image together with its boxes and masks through ``torchvision.transforms.v2``).
"""

from __future__ import annotations

import logging
import os
import random
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence
from xml.etree.ElementTree import parse as parse_xml

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_modules.data.schema import collate_batch
from lightning_modules.validation import missing_data_error, resolve_data_path

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


# --------------------------------------------------------------------------------------------- shared helpers
def image_size_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``224`` or ``(224, 224)`` or a model's ``(C, H, W)`` input size -> ``(H, W)``."""
    if isinstance(image_size, int):
        return (image_size, image_size)
    size = tuple(int(s) for s in image_size)
    if len(size) == 3:
        size = size[1:]
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"image_size must be an int, (H, W) or a model's (C, H, W), got {image_size!r}")
    return size  # type: ignore[return-value]


def parse_voc_style_xml(path: str | os.PathLike) -> dict:
    """An ILSVRC or PASCAL VOC annotation file, parsed by torchvision's VOC parser, reduced to what we use:
    ``{"filename", "width", "height", "objects": [{"name", "box": (xmin, ymin, xmax, ymax), "difficult"}]}``.

    Coordinates are returned as written: inclusive pixel indices, 1-based in VOC, 0-based in ILSVRC."""
    from torchvision.datasets import VOCDetection

    try:
        ann = VOCDetection.parse_voc_xml(parse_xml(path).getroot())["annotation"]
    except Exception as e:  # noqa: BLE001 - name the file whatever the XML error is
        raise ValueError(f"cannot parse annotation {path}: {e}") from None
    objects = ann.get("object", [])
    if isinstance(objects, dict):
        objects = [objects]
    size = ann.get("size", {})
    out = []
    for obj in objects:
        if not obj:
            continue
        bb = obj["bndbox"]
        out.append({
            "name": str(obj["name"]).strip(),
            "box": tuple(float(bb[k]) for k in ("xmin", "ymin", "xmax", "ymax")),
            "difficult": bool(int(obj.get("difficult", 0) or 0)),
        })
    return {
        "filename": str(ann.get("filename", "")),
        "width": int(size["width"]) if "width" in size else None,
        "height": int(size["height"]) if "height" in size else None,
        "objects": out,
    }


def voc_boxes_to_pixels(boxes: Sequence[Sequence[float]]) -> torch.Tensor:
    """Inclusive 1-based ``(xmin, ymin, xmax, ymax)`` (VOC / ILSVRC XML) -> the schema's ``x0, y0, x1, y1`` with
    exclusive x1/y1 in 0-based pixels: ``(xmin - 1, ymin - 1, xmax, ymax)`` (TorchRay's ``voc_as_mask`` fills
    ``[ymin-1 : ymax, xmin-1 : xmax]``, the same pixels)."""
    t = torch.tensor(list(boxes), dtype=torch.float32).reshape(-1, 4)
    return torch.cat([t[:, :2] - 1, t[:, 2:]], dim=1)


def ilsvrc_boxes_to_pixels(boxes: Sequence[Sequence[float]], width: int | None = None, height: int | None = None) -> torch.Tensor:
    """ILSVRC CLS-LOC XML ``(xmin, ymin, xmax, ymax)`` -> exclusive 0-based ``(xmin, ymin, xmax + 1, ymax + 1)``.

    Unlike VOC, the ILSVRC XML files use 0-based inclusive pixel indices (boxes touching the left/top border have
    ``xmin = 0``). Clamped to the image size written in the XML. The convention matters by one pixel only, far
    below the IoU >= 0.5 criterion of the localisation error."""
    t = torch.tensor(list(boxes), dtype=torch.float32).reshape(-1, 4)
    t = torch.cat([t[:, :2], t[:, 2:] + 1], dim=1).clamp_(min=0)
    if width is not None:
        t[:, 0::2] = t[:, 0::2].clamp(max=width)
    if height is not None:
        t[:, 1::2] = t[:, 1::2].clamp(max=height)
    return t


def boxes_to_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Union of (exclusive, pixel) boxes as a bool ``(1, H, W)`` mask: the VOC pointing-game target region."""
    ys = torch.arange(height, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, -1) + 0.5
    b = boxes.view(-1, 4, 1, 1)
    inside = (xs >= b[:, 0]) & (xs < b[:, 2]) & (ys >= b[:, 1]) & (ys < b[:, 3])
    return inside.any(dim=0, keepdim=True)


def load_resized(
    path: str | os.PathLike,
    size: tuple[int, int],
    boxes: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, tuple[int, int]]:
    """Read an image (RGB, [0, 1]) and resize it to ``size`` together with its boxes and mask.

    ``torchvision.transforms.v2.Resize`` scales ``BoundingBoxes`` and resizes ``Mask`` (nearest) consistently with
    the image. The image is resized to exactly (H, W) (no crop): every box stays whole, and box IoU is unchanged
    by an axis-aligned rescaling, so localisation errors computed at the model's size equal those at the original
    size up to pixel rounding. Returns ``(image, boxes, mask, (orig_h, orig_w))``.
    """
    from PIL import Image
    from torchvision import tv_tensors
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as F

    try:
        with Image.open(path) as im:
            pil = im.convert("RGB")
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"cannot read image {path} (corrupt or not an image?): {e}") from None
    orig = (pil.height, pil.width)
    inputs: list[Any] = [tv_tensors.Image(F.pil_to_tensor(pil))]
    if boxes is not None:
        inputs.append(tv_tensors.BoundingBoxes(boxes.reshape(-1, 4), format="XYXY", canvas_size=orig))
    if mask is not None:
        inputs.append(tv_tensors.Mask(mask.to(torch.uint8)))
    out = v2.Resize(size, antialias=True)(*inputs)
    out = list(out) if len(inputs) > 1 else [out]  # one input comes back bare, not in a tuple
    image = F.to_dtype(out.pop(0), torch.float32, scale=True).as_subclass(torch.Tensor).clamp_(0, 1)
    new_boxes = out.pop(0).as_subclass(torch.Tensor).float() if boxes is not None else None
    new_mask = out.pop(0).as_subclass(torch.Tensor).bool() if mask is not None else None
    return image, new_boxes, new_mask, orig


def missing_root_error(what: str, root: Path, layout: str, argument: str = "root") -> FileNotFoundError:
    """``lightning_modules.validation.missing_data_error``: names the folder, the layout and ``$SALIENCY_DATA``."""
    return missing_data_error(what, root, layout, argument)


class AnnotatedDataModule(pl.LightningDataModule):
    """Common DataLoader plumbing: schema collate, no shuffling for evaluation splits, seeded shuffling for train.

    Under DDP Lightning's DistributedSampler may repeat samples to even out the ranks; every sample carries its
    ``id`` so metrics de-duplicate (docs/CONVENTIONS.md)."""

    def __init__(self, batch_size: int = 32, num_workers: int = 0, seed: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed

    def _loader(self, dataset: Dataset | None, shuffle: bool = False):
        if dataset is None:
            return []
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, generator=g, num_workers=self.num_workers,
                          collate_fn=collate_batch, persistent_workers=self.num_workers > 0)


# --------------------------------------------------------------------------------------------- ImageNet
_IMAGENET_LAYOUT = """  <root>/val/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG          (class folders), or
  <root>/val/ILSVRC2012_val_XXXXXXXX.JPEG                  (flat) + a labels file:
      labels_file: '<file name> <class index>' lines (Caffe val.txt), or
      <devkit_root>/data/ILSVRC2012_validation_ground_truth.txt + <devkit_root>/data/meta.mat
  boxes (optional): <root>/Annotations/CLS-LOC/val/ILSVRC2012_val_XXXXXXXX.xml or <root>/val/*.xml
  class order (optional): <root>/LOC_synset_mapping.txt ('<wnid> <words>' per line, class-index order)"""


def _read_synsets_file(path: Path) -> list[str]:
    wnids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{path} lists a WordNet id twice; it must list each class once, in class-index order")
    return wnids


def _read_devkit(devkit_root: Path) -> tuple[dict[int, str], Path]:
    """ILSVRC2012_ID -> wnid for the 1000 leaf synsets of the devkit's ``meta.mat``, and the ground-truth file."""
    import scipy.io as sio

    meta_path = devkit_root / "data" / "meta.mat"
    gt_path = devkit_root / "data" / "ILSVRC2012_validation_ground_truth.txt"
    for p in (meta_path, gt_path):
        if not p.is_file():
            raise FileNotFoundError(f"ILSVRC2012 devkit file {p} is missing; unpack ILSVRC2012_devkit_t12.tar.gz into {devkit_root}")
    synsets = sio.loadmat(str(meta_path), squeeze_me=True)["synsets"]
    names = synsets.dtype.names
    id_to_wnid = {}
    for row in synsets:
        rec = dict(zip(names, row))
        if int(rec["num_children"]) == 0:  # leaves are the 1000 classification classes
            id_to_wnid[int(rec["ILSVRC2012_ID"])] = str(rec["WNID"])
    return id_to_wnid, gt_path


class ILSVRCBoxesDataset(Dataset):
    """ImageNet images (val, or the held-out training subset) with labels and, where an XML exists, boxes."""

    def __init__(self, samples: list[tuple[Path, int, Path | None]], wnid_to_index: dict[str, int], size: tuple[int, int]):
        self.samples = samples
        self.wnid_to_index = wnid_to_index
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        path, label, xml = self.samples[i]
        boxes = torch.zeros(0, 4)
        box_labels = torch.zeros(0, dtype=torch.long)
        if xml is not None:
            ann = parse_voc_style_xml(xml)
            objs = [o for o in ann["objects"] if o["name"] in self.wnid_to_index]
            if objs:
                boxes = ilsvrc_boxes_to_pixels([o["box"] for o in objs], ann["width"], ann["height"])
                box_labels = torch.tensor([self.wnid_to_index[o["name"]] for o in objs], dtype=torch.long)
        image, boxes, _, orig = load_resized(path, self.size, boxes=boxes)
        return {
            "image": image,
            "label": torch.tensor(label, dtype=torch.long),
            "boxes": boxes,
            "box_labels": box_labels,
            "id": torch.tensor(i, dtype=torch.long),
            "orig_size": torch.tensor(orig, dtype=torch.long),
        }


class ImageNetValDataModule(AnnotatedDataModule):
    """ILSVRC2012 validation set (+ boxes) for ``validate``/``test``; the held-out annotated training subset (Fong &
    Vedaldi's threshold search, ``heldout_size=5000``) is ``train_dataloader()`` / ``heldout_dataloader()``.

    Batches: ``image`` (B, 3, H, W) in [0, 1] resized to ``image_size``, ``label``, ``boxes`` (scaled to the resized
    image, exclusive x1/y1), ``box_labels`` (-1 padding), ``id``, ``orig_size`` ((h, w) before resizing)."""

    def __init__(
        self,
        root: str | os.PathLike = "data/imagenet",
        image_size: int | Sequence[int] = 224,
        batch_size: int = 32,
        num_workers: int = 0,
        split_dir: str = "val",
        labels_file: str | os.PathLike | None = None,
        devkit_root: str | os.PathLike | None = None,
        synsets_file: str | os.PathLike | None = None,
        annotations_dir: str | os.PathLike | None = None,
        require_boxes: bool = False,
        limit: int | None = None,
        limit_seed: int | None = None,
        heldout_size: int = 0,
        train_dir: str = "train",
        train_annotations_dir: str | os.PathLike | None = None,
        seed: int = 0,
    ):
        super().__init__(batch_size, num_workers, seed)
        self.root = resolve_data_path(root)
        self.size = image_size_hw(image_size)
        self.split_dir = split_dir
        self.labels_file = resolve_data_path(labels_file) if labels_file else None
        self.devkit_root = resolve_data_path(devkit_root) if devkit_root else None
        self.synsets_file = resolve_data_path(synsets_file) if synsets_file else None
        self.annotations_dir = resolve_data_path(annotations_dir) if annotations_dir else None
        self.require_boxes = require_boxes
        self.limit = limit
        self.limit_seed = limit_seed
        self.heldout_size = heldout_size
        self.train_dir = train_dir
        self.train_annotations_dir = resolve_data_path(train_annotations_dir) if train_annotations_dir else None
        self.val_set: ILSVRCBoxesDataset | None = None
        self.heldout_set: ILSVRCBoxesDataset | None = None
        self.wnids: list[str] = []

    # ---- class order
    def _class_order(self, class_folders: list[str], xml_names: Callable[[], list[str]]) -> list[str]:
        synsets = self.synsets_file or (self.root / "LOC_synset_mapping.txt")
        if synsets.is_file():
            return _read_synsets_file(synsets)
        if self.synsets_file is not None:
            raise FileNotFoundError(f"synsets_file {self.synsets_file} does not exist")
        if self._devkit() is not None:
            return sorted(_read_devkit(self._devkit())[0].values())
        if class_folders:
            return sorted(class_folders)
        names = sorted(set(xml_names()))
        if names:
            return names
        raise FileNotFoundError(
            f"cannot tell the ImageNet class order for {self.root}: give synsets_file (LOC_synset_mapping.txt), "
            "devkit_root (ILSVRC2012_devkit_t12 with data/meta.mat), class folders, or XML annotations"
        )

    def _devkit(self) -> Path | None:
        if self.devkit_root is not None:
            return self.devkit_root
        default = self.root / "ILSVRC2012_devkit_t12"
        return default if default.is_dir() else None

    def _xml_dirs(self, split: str, explicit: Path | None) -> list[Path]:
        if explicit is not None:
            if not explicit.is_dir():
                raise FileNotFoundError(f"annotations_dir {explicit} does not exist (expected ILSVRC XML files)")
            return [explicit]
        return [d for d in (self.root / "Annotations" / "CLS-LOC" / split, self.root / split) if d.is_dir()]

    @staticmethod
    def _find_xml(dirs: list[Path], stem: str, wnid: str | None = None) -> Path | None:
        for d in dirs:
            for cand in ((d / f"{stem}.xml",) + ((d / wnid / f"{stem}.xml",) if wnid else ())):
                if cand.is_file():
                    return cand
        return None

    # ---- the validation split
    def _scan_val(self) -> list[tuple[Path, int, Path | None]]:
        split = self.root / self.split_dir
        if not split.is_dir():
            raise missing_root_error("ImageNet validation images", self.root, _IMAGENET_LAYOUT)
        entries = sorted(os.scandir(split), key=lambda e: e.name)
        folders = [e.name for e in entries if e.is_dir()]
        flat = [Path(e.path) for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)]
        xml_dirs = self._xml_dirs(self.split_dir, self.annotations_dir)
        if folders and not flat:
            from torchvision.datasets import ImageFolder

            folder_ds = ImageFolder(str(split), allow_empty=True)
            images = [(Path(p), folder_ds.classes[y]) for p, y in folder_ds.samples]
            wnids = self._class_order(folder_ds.classes, lambda: [])
        elif flat:
            stems = [p.stem for p in flat]
            wnids = self._class_order([], lambda: [o["name"] for s in stems for o in self._xml_objects(xml_dirs, s)])
            images = list(zip(flat, self._flat_labels(flat, xml_dirs, wnids)))
        else:
            raise missing_root_error("ImageNet validation images", self.root, _IMAGENET_LAYOUT)
        index = {w: i for i, w in enumerate(wnids)}
        unknown = sorted({w for _, w in images if w not in index})
        if unknown:
            raise ValueError(f"classes {unknown[:5]} are not in the class list ({len(wnids)} classes); check synsets_file")
        if len(wnids) != 1000:
            warnings.warn(f"ImageNet class list has {len(wnids)} classes, not 1000: labels index into these {len(wnids)} "
                          "classes, not into a pretrained model's outputs. Provide LOC_synset_mapping.txt or the devkit.",
                          stacklevel=2)
        self.wnids = wnids
        samples = [(p, index[w], self._find_xml(xml_dirs, p.stem, w)) for p, w in images]
        if self.require_boxes:
            missing = [p.name for p, _, x in samples if x is None]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} validation images have no XML boxes (first: {missing[0]}); put the ILSVRC XML files "
                    f"in {self.root / 'Annotations/CLS-LOC' / self.split_dir} or {self.root / self.split_dir}, or set require_boxes=False"
                )
        if self.limit is not None:
            if self.limit_seed is None:
                samples = samples[: self.limit]
            else:
                # a seeded random subset (Khakzar et al.: 1,000 random val samples, seed 12), kept in file order
                chosen = sorted(random.Random(self.limit_seed).sample(range(len(samples)), min(self.limit, len(samples))))
                samples = [samples[i] for i in chosen]
        return samples

    def _xml_objects(self, xml_dirs: list[Path], stem: str) -> list[dict]:
        xml = self._find_xml(xml_dirs, stem)
        return parse_voc_style_xml(xml)["objects"] if xml is not None else []

    def _flat_labels(self, flat: list[Path], xml_dirs: list[Path], wnids: list[str]) -> list[str]:
        """The wnid of each flat-layout image, from the labels file, the devkit, or the XML."""
        if self.labels_file is not None:
            if not self.labels_file.is_file():
                raise FileNotFoundError(f"labels_file {self.labels_file} does not exist")
            table = {}
            for line in self.labels_file.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    table[Path(parts[0]).name] = int(parts[1])
            missing = [p.name for p in flat if p.name not in table]
            if missing:
                raise ValueError(f"labels_file {self.labels_file} has no label for {len(missing)} images (first: {missing[0]})")
            bad = [v for v in table.values() if not 0 <= v < len(wnids)]
            if bad:
                raise ValueError(f"labels_file {self.labels_file} has class indices outside 0..{len(wnids) - 1} (e.g. {bad[0]})")
            return [wnids[table[p.name]] for p in flat]
        devkit = self._devkit()
        if devkit is not None:
            id_to_wnid, gt_path = _read_devkit(devkit)
            ids = [int(x) for x in gt_path.read_text().split()]
            labels = []
            for p in flat:
                # ILSVRC2012_val_00000001.JPEG is line 1 of the ground truth
                try:
                    n = int(p.stem.rsplit("_", 1)[1])
                except (IndexError, ValueError):
                    raise ValueError(f"{p.name} is not named ILSVRC2012_val_XXXXXXXX; use labels_file for other names") from None
                if not 1 <= n <= len(ids):
                    raise ValueError(f"{p.name}: the ground-truth file {gt_path} has only {len(ids)} lines")
                labels.append(id_to_wnid[ids[n - 1]])
            return labels
        labels = []
        for p in flat:
            objs = self._xml_objects(xml_dirs, p.stem)
            if not objs:
                raise missing_root_error(f"a label for {p.name}", self.root, _IMAGENET_LAYOUT)
            labels.append(objs[0]["name"])
        return labels

    # ---- the held-out training subset with boxes
    def _scan_heldout(self, index: dict[str, int]) -> list[tuple[Path, int, Path | None]]:
        train = self.root / self.train_dir
        xml_dirs = self._xml_dirs(self.train_dir, self.train_annotations_dir)
        if not train.is_dir() or not xml_dirs:
            raise missing_root_error(
                "ImageNet training images with boxes (for the held-out threshold search)", self.root,
                "  <root>/train/<wnid>/<wnid>_N.JPEG and <root>/Annotations/CLS-LOC/train/<wnid>/<wnid>_N.xml "
                "(or train_annotations_dir)",
            )
        candidates = []
        for wnid in sorted(d.name for d in os.scandir(train) if d.is_dir()):
            if wnid not in index:
                continue
            for img in sorted(p for p in (train / wnid).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
                xml = self._find_xml(xml_dirs, img.stem, wnid)
                if xml is not None:
                    candidates.append((img, index[wnid], xml))
        if len(candidates) < self.heldout_size:
            raise ValueError(f"only {len(candidates)} annotated training images found, heldout_size={self.heldout_size}")
        rng = random.Random(self.seed)
        chosen = sorted(rng.sample(range(len(candidates)), self.heldout_size))
        return [candidates[i] for i in chosen]

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is None:
            samples = self._scan_val()
            self.val_set = ILSVRCBoxesDataset(samples, {w: i for i, w in enumerate(self.wnids)}, self.size)
            log.info("ImageNet val: %d images, %d with boxes", len(samples), sum(x is not None for *_, x in samples))
        if self.heldout_size and self.heldout_set is None:
            index = {w: i for i, w in enumerate(self.wnids)}
            self.heldout_set = ILSVRCBoxesDataset(self._scan_heldout(index), index, self.size)

    @property
    def num_classes(self) -> int:
        return len(self.wnids)

    def heldout_dataloader(self):
        return self._loader(self.heldout_set)

    def train_dataloader(self):
        """The held-out annotated training images (threshold search), in a fixed order."""
        return self._loader(self.heldout_set)

    def val_dataloader(self):
        return self._loader(self.val_set)

    def test_dataloader(self):
        return self._loader(self.val_set)
