"""MS COCO 2014 validation for the pointing game (Zhang et al.'s EBP protocol as in TorchRay; ../shared/PAPERS.md).

Protocol (TorchRay ``PointingGameBenchmark`` on ``CocoDetection``): ``val2014``; every (image, category present)
pair is one sample; images without annotations are skipped; the target region is the union of the category's
*segmentation masks* (``pycocotools`` ``annToMask``, crowd regions included, as TorchRay does); categories are
indexed 0..79 in increasing COCO category id. The "difficult" subset is Zhang et al.'s list shipped by TorchRay as
``pointing_game_ebp_coco_difficult.txt`` (``<file name without .jpg>\\t<80 flags>``): pass its path.

On disk (the official zips unpacked; read with ``torchvision.datasets.CocoDetection`` / pycocotools)::

    <root>/val2014/COCO_val2014_000000000042.jpg
    <root>/annotations/instances_val2014.json

Batch entries follow docs/CONVENTIONS.md: ``image`` resized to ``image_size``, ``label`` = category index, ``mask`` =
that category's segmentation union (resized, nearest), ``boxes``/``box_labels`` = every annotation's box (scaled),
``difficult``, ``id`` = pair index, ``image_index``, ``orig_size`` (h, w), ``multilabel`` (B, 80).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from lightning_modules.data.imagenet import load_resized, missing_root_error
from lightning_modules.data.voc import PointingGameDataModule, read_difficult_flags
from lightning_modules.validation import resolve_data_path

log = logging.getLogger(__name__)

_COCO_LAYOUT = """  <root>/val2014/COCO_val2014_XXXXXXXXXXXX.jpg
  <root>/annotations/instances_val2014.json         (unpack val2014.zip and annotations_trainval2014.zip into <root>)"""


class COCOPointingDataset(Dataset):
    def __init__(self, image_dir: Path, ann_file: Path, size: tuple[int, int],
                 difficult_list: str | os.PathLike | None = None, limit: int | None = None):
        from torchvision.datasets import CocoDetection

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            try:
                self.reader = CocoDetection(str(image_dir), str(ann_file))
            except Exception as e:  # noqa: BLE001 - JSON / key errors: name the file
                raise ValueError(f"cannot read COCO annotations {ann_file}: {type(e).__name__}: {e}") from None
        coco = self.reader.coco
        cat_ids = sorted(coco.getCatIds())
        self.cat_to_index = {c: k for k, c in enumerate(cat_ids)}
        self.classes = tuple(coco.loadCats(cat_ids)[k]["name"] for k in range(len(cat_ids)))
        self.num_classes = len(cat_ids)
        self.size = size
        difficult_flags = read_difficult_flags(difficult_list, self.num_classes) if difficult_list else None
        self.difficult_flags = difficult_flags
        image_ids = [i for i in sorted(self.reader.ids) if coco.getAnnIds(imgIds=i)]
        if limit is not None:
            image_ids = image_ids[:limit]
        self.image_ids = image_ids
        self.items: list[tuple[int, int, bool]] = []
        for n, image_id in enumerate(image_ids):
            info = coco.loadImgs(image_id)[0]
            name = Path(info["file_name"]).stem
            flags = difficult_flags.get(name) if difficult_flags is not None else None
            cats = sorted({self.cat_to_index[a["category_id"]] for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))})
            for c in cats:
                self.items.append((n, c, bool(flags[c]) if flags is not None else False))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        n, c, difficult = self.items[i]
        coco = self.reader.coco
        image_id = self.image_ids[n]
        info = coco.loadImgs(image_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        labels = torch.tensor([self.cat_to_index[a["category_id"]] for a in anns], dtype=torch.long)
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        h, w = int(info["height"]), int(info["width"])
        mask = torch.zeros(1, h, w, dtype=torch.bool)
        for a, lab in zip(anns, labels.tolist()):
            if lab == c:
                mask |= torch.from_numpy(coco.annToMask(a)).bool().unsqueeze(0)
        path = Path(self.reader.root) / info["file_name"]
        image, scaled, mask, orig = load_resized(path, self.size, boxes=boxes, mask=mask)
        if orig != (h, w):
            raise ValueError(f"{path} is {orig[1]}x{orig[0]} but the annotations say {w}x{h}; wrong image or JSON")
        multilabel = torch.zeros(self.num_classes)
        multilabel[labels] = 1.0
        return {
            "image": image,
            "label": torch.tensor(c, dtype=torch.long),
            "mask": mask,
            "boxes": scaled,
            "box_labels": labels,
            "difficult": torch.tensor(difficult),
            "id": torch.tensor(i, dtype=torch.long),
            "image_index": torch.tensor(n, dtype=torch.long),
            "orig_size": torch.tensor(orig, dtype=torch.long),
            "multilabel": multilabel,
        }


class COCOPointingDataModule(PointingGameDataModule):
    """COCO val2014 (image, category) pairs for the pointing game: ``val_dataloader`` = ``test_dataloader``."""

    def __init__(
        self,
        root: str | os.PathLike = "data/coco",
        image_size: int | Sequence[int] = 224,
        batch_size: int = 32,
        num_workers: int = 0,
        split: str = "val2014",
        ann_file: str | os.PathLike | None = None,
        difficult_list: str | os.PathLike | None = None,
        limit: int | None = None,
        seed: int = 0,
    ):
        super().__init__(root, image_size, batch_size, num_workers, split, difficult_list, limit, seed)
        self.ann_file = resolve_data_path(ann_file) if ann_file else self.root / "annotations" / f"instances_{split}.json"

    def setup(self, stage: str | None = None) -> None:
        if self.eval_set is not None:
            return
        image_dir = self.root / self.split
        if not image_dir.is_dir() or not self.ann_file.is_file():
            raise missing_root_error(f"COCO {self.split}", self.root, _COCO_LAYOUT)
        self.eval_set = COCOPointingDataset(image_dir, self.ann_file, self.size, self.difficult_list, self.limit)
        flags = self.eval_set.difficult_flags
        if flags is not None:
            self.warn_unlisted({Path(self.eval_set.reader.coco.loadImgs(i)[0]["file_name"]).stem
                                for i in self.eval_set.image_ids}, flags)
        log.info("COCO %s: %d images, %d (image, category) pairs", self.split, len(self.eval_set.image_ids), len(self.eval_set))

    @property
    def num_classes(self) -> int:
        return self.eval_set.num_classes if self.eval_set is not None else 80
