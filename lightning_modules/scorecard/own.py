"""A user's own model and data by name (issue #41): ``--model torchvision/resnet50 --data imagenet --data-root DIR``.

- :func:`load_named_model`: any name ``lightning_modules.models.load_model`` knows that is not one of our shipped
  (embedded) models, with its published weights read from the weights folders (``--weights-dir``, then
  ``$SALIENCY_WEIGHTS``, ``data/weights``, the torch hub cache); a missing file fails before any work, naming the
  file looked for and the fix.
- :func:`load_named_data`: ``imagenet``: the ILSVRC2012 validation layout with its XML boxes, read by
  ``ImageNetValDataModule`` at the model's input size (its ``DataConfig``), the first ``n`` validation images in the
  module's order that have a box of their class. The object ground truth is the label's boxes (as a mask, and as
  boxes for weak localisation); there is no evidence ground truth, so the protocols whose validity oracle is the
  evidence are listed as not run (``card._protocols_to_run``).

``voc2007`` and ``coco`` are multi-label (an image holds several classes): the scorecard's own-data path scores one
target per image, so they would need one trial per (image, present class) with a model trained on those classes;
they are refused with that reason (a user can pass such trials as ``--data module:callable``).
"""

from __future__ import annotations

from pathlib import Path

import torch

#: the data names ``--data`` accepts (besides ``module:callable``), with what they read
KNOWN_DATA = {
    "imagenet": "ILSVRC2012 validation images with their XML boxes (ImageNetValDataModule; --data-root DIR)",
}
#: data names the scorecard knows of but does not read by name, and why
NOT_BY_NAME = {
    "voc2007": "PASCAL VOC 2007 is multi-label (several classes per image) and needs a model trained on its 20 "
               "classes; the own-data path scores one target per image",
    "coco": "COCO is multi-label (several classes per image) and needs a model trained on its 80 classes; the "
            "own-data path scores one target per image",
}


class OwnInputError(ValueError):
    """Bad ``--model`` / ``--data`` input, found before any work."""


def is_shipped(name: str) -> bool:
    """One of our trained models with shipped weights (``scenes_v2_vgg`` ...): scored on the embedded benchmark."""
    from lightning_modules.models import registry

    return registry.is_embedded(name)


def check_data_args(data: str, root: str | None) -> None:
    """A known data name and its root given (the layout is checked when the data are read)."""
    if data in NOT_BY_NAME:
        raise OwnInputError(f"--data {data}: not read by name ({NOT_BY_NAME[data]}). Known names: "
                            f"{', '.join(KNOWN_DATA)}; or pass your trials as --data module:callable "
                            "(docs/scorecard.md, 'Your own model and data')")
    if data not in KNOWN_DATA:
        raise OwnInputError(f"--data {data!r}: unknown data name; known: "
                            + "; ".join(f"{k} ({v})" for k, v in KNOWN_DATA.items())
                            + ", or module:callable returning your data as a batch dict")
    if not root:
        raise OwnInputError(f"--data {data} needs --data-root DIR: the folder of the ILSVRC2012 validation layout "
                            "(<DIR>/val/<wnid>/*.JPEG, or <DIR>/val/*.JPEG with labels, and the XML boxes under "
                            "<DIR>/Annotations/CLS-LOC/val/)")


def load_named_model(name: str, weights_dir: str | None = None):
    """``(model, DataConfig)``: ``name`` with its published weights (frozen, eval, on ``[0, 1]`` images)."""
    from lightning_modules.models import load_model

    try:
        return load_model(name, pretrained=True, weights_dir=weights_dir)
    except FileNotFoundError as e:
        fix = (f" Or put it in {weights_dir} (the --weights-dir given)." if weights_dir else
               " Or put it in any folder and pass --weights-dir DIR.")
        raise OwnInputError(f"--model {name}: {e}{fix}") from None
    except KeyError as e:
        raise OwnInputError(f"--model {name}: {e.args[0] if e.args else e}") from None
    except ValueError as e:  # our own networks (no published weights), a file failing its hash check ...
        hint = (" (here: --model module:callable returning it with your weights loaded)"
                if "no published weights" in str(e) else "")
        raise OwnInputError(f"--model {name}: {e}{hint}") from None


def load_named_data(data: str, root: str, n_images: int, image_size: tuple[int, int], num_classes: int | None = None
                    ) -> tuple[dict, dict]:
    """``(batch, info)``: the first ``n_images`` images (in the data module's order) that have a box of their class,
    resized to ``image_size``; ``batch`` in the scorecard's schema (``image``, ``label``, ``ids``, ``mask``: the
    label's boxes as an object mask, ``boxes``, ``box_labels``), no evidence ground truth."""
    check_data_args(data, root)
    from lightning_modules.data.imagenet import ImageNetValDataModule, boxes_to_mask
    from lightning_modules.data.schema import collate_batch

    dm = ImageNetValDataModule(root=Path(root).expanduser(), image_size=tuple(image_size))
    try:
        dm.setup("test")  # a root without the layout: missing_root_error, naming the folder and the layout
    except FileNotFoundError as e:
        raise OwnInputError(f"--data {data} --data-root {root}: {e}") from None
    if num_classes is not None and dm.num_classes != num_classes:
        raise OwnInputError(
            f"--data {data}: {root} lists {dm.num_classes} classes but the model has {num_classes} outputs, so the "
            "labels would not index the model's classes; give the class order of the model (LOC_synset_mapping.txt "
            "in the root, or the devkit ILSVRC2012_devkit_t12 with data/meta.mat)")
    ds = dm.val_set
    items, skipped = [], 0
    for i in range(len(ds)):
        if len(items) >= n_images:
            break
        if ds.samples[i][2] is None:  # no XML: no boxes
            skipped += 1
            continue
        it = ds[i]
        own = it["box_labels"] == it["label"]
        if not bool(own.any()):
            skipped += 1
            continue
        h, w = it["image"].shape[-2:]
        it["mask"] = boxes_to_mask(it["boxes"][own], h, w)
        items.append(it)
    if not items:
        raise OwnInputError(f"--data {data}: no validation image under {root} has an XML box of its own class; the "
                            "scorecard's object ground truth is the label's boxes (put the ILSVRC XML files under "
                            f"{Path(root) / 'Annotations' / 'CLS-LOC' / 'val'})")
    b = collate_batch(items)
    batch = {"image": b["image"], "label": b["label"], "ids": b["id"], "mask": b["mask"].bool(),
             "boxes": b["boxes"], "box_labels": b["box_labels"]}
    info = {"name": data, "root": str(root), "n_images": len(items), "skipped_without_own_box": skipped,
            "image_size": list(image_size), "ground_truth": "object: the label's XML boxes (mask and boxes); "
                                                            "no evidence ground truth"}
    return batch, info


def model_image_size(model, default: int = 224) -> tuple[int, int]:
    """The input size of the model's ``DataConfig`` (``default`` square when it carries none)."""
    cfg = getattr(model, "data_config", None)
    if cfg is not None:
        return tuple(int(s) for s in cfg.input_size[-2:])
    return (default, default)


def model_outputs(model, image_size: tuple[int, int]) -> int:
    with torch.no_grad():
        return int(model(torch.zeros(1, 3, *image_size)).shape[1])
