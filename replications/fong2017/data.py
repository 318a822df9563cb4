"""The datasets of each fong2017 pass, built from the config's ``data`` / ``pointing.data`` / ``keypoints.data``.

Every pass reads one of the project's loaders (batch schema of docs/CONVENTIONS.md); nothing here parses files:

- ``kind: scenes_v2`` (embedded default): benchmark v2 (``lightning_modules.data.scenes_v2``, profile ``profile``),
  ``test`` / ``heldout`` splits; object boxes, the class evidence (``evidence_mask``, ``evidence_boxes``), keypoints
  (head, feet) and the difficult flags (a distractor of another class, or a small object) come with them.
- ``kind: scenes``: the v1 synthetic scenes of the cached black box (``blackbox_datamodule``), kept for comparison;
  boxes, keypoints (eyes, feet) and the head masks (the evidence) come with them.
- ``kind: imagenet`` (Table 1): ILSVRC'12 validation images with their XML boxes
  (:class:`lightning_modules.data.ImageNetValDataModule`). The held-out split of the threshold search is, as in
  the paper, annotated *training* images (``heldout_from: train``: ``<root>/train/<wnid>/*.JPEG`` with
  ``Annotations/CLS-LOC/train`` XML), or the first ``heldout_images`` validation images (``heldout_from: val``),
  the rest being the test split.
- ``kind: coco`` (Table 2, pointing game): COCO val2014 (image, category) pairs with the category's segmentation
  masks and Zhang et al.'s difficult flags (:class:`lightning_modules.data.COCOPointingDataModule`).
- ``kind: animal_parts`` (Sec. 5, eyes vs feet): ImageNet images with the Oxford animal-parts keypoints
  (:class:`lightning_modules.data.animal_parts.AnimalPartsDataModule`).

Every other key of a ``data`` dict is passed to that DataModule's constructor (``root``, ``image_size``, ...).
"""

from __future__ import annotations

from torch.utils.data import Dataset, Subset

#: keys of a data spec that this module reads itself (the rest go to the DataModule)
OWN_KEYS = ("kind", "profile", "test_images", "heldout_images", "heldout_from", "batch_size")


def _kwargs(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in OWN_KEYS}


def _first(ds: Dataset, n: int | None, what: str) -> Dataset:
    if n is None:
        return ds
    if int(n) > len(ds):
        raise ValueError(f"asked for {n} {what} images but there are {len(ds)}; lower the config's image count")
    return Subset(ds, list(range(int(n))))


def main_datasets(spec: dict) -> dict[str, Dataset]:
    """``{"test": ..., "heldout": ...}`` of the main pass (mask statistics, Table 1, and, for the scenes, every
    experiment): ``test_images`` / ``heldout_images`` first images of each split."""
    kind = spec["kind"]
    if kind == "scenes_v2":
        from lightning_modules.data.scenes_v2 import ScenesV2DataModule

        dm = ScenesV2DataModule.from_profile(spec["profile"], batch_size=spec["batch_size"])
        return {"test": _first(dm.dataset("test"), spec.get("test_images"), "test"),
                "heldout": _first(dm.dataset("heldout"), spec.get("heldout_images"), "held-out")}
    if kind == "scenes":
        from lightning_modules.models import blackbox_datamodule

        dm = blackbox_datamodule(spec["profile"], eval_batch_size=spec["batch_size"], batch_size=spec["batch_size"])
        dm.prepare_data()
        return {"test": _first(dm.dataset("test"), spec.get("test_images"), "test"),
                "heldout": _first(dm.dataset("heldout"), spec.get("heldout_images"), "held-out")}
    if kind == "imagenet":
        from lightning_modules.data.imagenet import ImageNetValDataModule

        source = spec.get("heldout_from", "train")
        if source not in ("train", "val"):
            raise ValueError(f"data.heldout_from must be 'train' (annotated training images, as Fong did) or 'val', got {source!r}")
        n_held = int(spec.get("heldout_images") or 0)
        dm = ImageNetValDataModule(**{"require_boxes": True, **_kwargs(spec)}, batch_size=spec["batch_size"],
                                   heldout_size=n_held if source == "train" else 0)
        dm.setup()
        val = dm.val_set
        if source == "train":
            test, held = val, dm.heldout_set
        else:
            if n_held >= len(val):
                raise ValueError(f"heldout_images={n_held} leaves no test image of the {len(val)} validation images")
            held, test = Subset(val, range(n_held)), Subset(val, range(n_held, len(val)))
        return {"test": _first(test, spec.get("test_images"), "test"), "heldout": held}
    raise ValueError(f"unknown data kind {kind!r}; use 'scenes_v2' (benchmark v2), 'scenes' (v1) or 'imagenet' "
                     "(paper profile)")


def pass_dataset(spec: dict, what: str) -> Dataset:
    """The dataset of a separate pass: ``coco`` or ``scenes_multilabel`` (test images; ``test_images`` of them) for
    the pointing game, ``animal_parts`` for the keypoints."""
    kind = spec.get("kind")
    if kind == "coco":
        from lightning_modules.data.coco import COCOPointingDataModule

        dm = COCOPointingDataModule(batch_size=spec.get("batch_size", 32), **_kwargs(spec))
        dm.setup()
        return _first(dm.eval_set, spec.get("test_images"), what)
    if kind == "animal_parts":
        from lightning_modules.data.animal_parts import AnimalPartsDataModule

        dm = AnimalPartsDataModule(batch_size=spec.get("batch_size", 32), **_kwargs(spec))
        dm.setup()
        return _first(dm.eval_set, spec.get("test_images"), what)
    if kind == "scenes_multilabel":
        # the embedded pointing game: one trial per (image, present class) of the multi-label scenes
        from lightning_modules.data.scenes_multilabel import PROFILES, MultiLabelScenes

        profile = spec.get("profile", "default")
        if profile not in PROFILES:
            raise ValueError(f"{what}_data.profile must be one of {sorted(PROFILES)}, got {profile!r}")
        return MultiLabelScenes("test", PROFILES[profile], root=spec.get("root"), trials=True,
                                limit=spec.get("test_images"))
    raise ValueError(f"unknown {what} data kind {kind!r}; use 'coco' or 'scenes_multilabel' (pointing game) or "
                     "'animal_parts' (keypoints)")
