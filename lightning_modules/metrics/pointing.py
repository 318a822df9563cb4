"""Pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016), with TorchRay's
definition (``torchray.benchmark.pointing_game``, used for the table in Fong, Patrick & Vedaldi 2019):

the point is the heatmap's argmax (first maximum in raster order); it is a hit when some pixel of the object
(mask, or the union of the class's boxes) lies strictly within ``tolerance`` pixels of it
(``(x - px)^2 + (y - py)^2 < tolerance^2``; 15 px at 224 px). Accuracy is computed per class
(hits / (hits + misses)) and averaged over classes, on all samples and on the "difficult" subset.
``tolerance=1`` reduces to "the maximum lies on the object" (Quantus' ``PointingGame`` for a unique maximum).
"""

from __future__ import annotations

import math

import torch

from lightning_modules.metrics.samples import PerSampleMetric, fingerprint

TOLERANCE_AT_224 = 15.0
#: TorchRay resizes the map to the native image before taking its maximum; VOC07 / COCO images are about 500 x 375
NATIVE_SIZE = (375, 500)


def default_tolerance(height: int, width: int) -> float:
    """15 px at 224 x 224, scaled with the image's linear size (4.3 px at 64 px)."""
    return TOLERANCE_AT_224 * math.sqrt(height * width) / 224.0


def native_tolerance(height: int, width: int, native: tuple[int, int] = NATIVE_SIZE) -> float:
    """TorchRay's tolerance on data without a native size: 15 px at the native VOC / COCO image (``native``, about
    500 x 375: 15 / 433 of the side), scaled with the image's linear size (2.2 px at 64 px)."""
    return TOLERANCE_AT_224 * math.sqrt(height * width) / math.sqrt(native[0] * native[1])


def check_class_boxes(boxes: torch.Tensor, box_labels: torch.Tensor, targets: torch.Tensor, height: int,
                      width: int) -> torch.Tensor:
    """Validate padded boxes and return which of them belong to each sample's target class, ``(B, N)`` bool."""
    if boxes.dim() != 3 or boxes.shape[-1] != 4 or box_labels.shape != boxes.shape[:2]:
        raise ValueError(f"boxes must be (B, N, 4) with box_labels (B, N), got {tuple(boxes.shape)} and "
                         f"{tuple(box_labels.shape)}")
    if boxes.shape[0] != targets.shape[0]:
        raise ValueError(f"boxes have batch size {boxes.shape[0]} but there are {targets.shape[0]} targets")
    if not torch.isfinite(boxes[box_labels >= 0]).all():
        raise ValueError("boxes contain NaN or Inf values among the non-padding boxes (box_labels >= 0)")
    of_class = box_labels == targets[:, None]
    missing = ~of_class.any(1)
    if missing.any():
        raise ValueError(f"samples {missing.nonzero().flatten().tolist()} have no box of their target class: "
                         "drop them or pass the right box_labels (-1 marks padding)")
    x0, y0, x1, y1 = boxes.unbind(-1)
    empty = of_class & ((x1 <= x0) | (y1 <= y0) | (x1 <= 0) | (y1 <= 0) | (x0 >= width) | (y0 >= height))
    if empty.any():
        raise ValueError(f"empty or out-of-image boxes at (sample, box) {empty.nonzero().tolist()}: boxes are "
                         "x0, y0, x1, y1 in pixels with x1 > x0 and y1 > y0 (exclusive)")
    return of_class


def boxes_to_mask(boxes: torch.Tensor, box_labels: torch.Tensor, targets: torch.Tensor, height: int,
                  width: int) -> torch.Tensor:
    """Union of the boxes of class ``targets[b]``, ``(B, 1, H, W)`` bool. Boxes are ``x0, y0, x1, y1`` (exclusive)."""
    of_class = check_class_boxes(boxes, box_labels, targets, height, width)
    x0, y0, x1, y1 = boxes.unbind(-1)
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5  # pixel centres
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5
    in_x = (xs >= x0[..., None]) & (xs < x1[..., None])  # (B, N, W)
    in_y = (ys >= y0[..., None]) & (ys < y1[..., None])  # (B, N, H)
    inside = in_y[..., :, None] & in_x[..., None, :] & of_class[..., None, None]
    return inside.any(1, keepdim=True)


def center_heatmaps(batch_size: int, height: int, width: int, device=None) -> torch.Tensor:
    """The "center" baseline of the pointing game: maps whose unique maximum is the image's central pixel."""
    ys = torch.arange(height, device=device, dtype=torch.float32) - (height // 2)
    xs = torch.arange(width, device=device, dtype=torch.float32) - (width // 2)
    dist2 = ys[:, None] ** 2 + xs[None, :] ** 2
    return (-dist2).expand(batch_size, 1, height, width).clone()


def pointing_hits(heatmaps: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Per-sample hit (bool ``(B,)``): the argmax of each map is within ``tolerance`` px of its mask."""
    b, _, h, w = heatmaps.shape
    flat_idx = heatmaps.flatten(1).argmax(1)
    py, px = (flat_idx // w).float(), (flat_idx % w).float()
    ys = torch.arange(h, device=heatmaps.device, dtype=torch.float32)
    xs = torch.arange(w, device=heatmaps.device, dtype=torch.float32)
    dist2 = (ys[None, :, None] - py[:, None, None]) ** 2 + (xs[None, None, :] - px[:, None, None]) ** 2
    accept = dist2 < tolerance ** 2
    return (accept & masks[:, 0]).flatten(1).any(1)


class PointingGame(PerSampleMetric):
    """Pointing-game accuracy, mean over classes, for "all" and "difficult" samples (TorchRay definition).

    ``tolerance``: pixels; None: 15 px at 224, scaled to the maps; ``"native"``: TorchRay's 15 px at the native
    VOC / COCO image, scaled to the maps (:func:`native_tolerance`, for data without a native size).

    ``update(heatmaps, targets, masks=None, boxes=None, box_labels=None, difficult=None, ids=None)``: give either
    ``masks`` (``(B, 1, H, W)`` bool, the target class's object) or ``boxes`` + ``box_labels`` (schema in
    docs/CONVENTIONS.md). ``compute()`` -> ``{"all": acc, "difficult": acc}`` (NaN when no difficult sample).
    """

    def __init__(self, tolerance: float | str | None = None, **kwargs):
        super().__init__(**kwargs)
        if tolerance != "native" and not (tolerance is None or (isinstance(tolerance, (int, float)) and tolerance > 0)):
            raise ValueError(f"tolerance must be > 0 px (1 = the maximum itself must be on the object), None (15 px at "
                             f"224, scaled) or 'native' (TorchRay's 15 px at the native image, scaled), got {tolerance!r}")
        self.tolerance = tolerance
        #: the tolerance in pixels of the last update (it depends on the maps' size unless given in pixels)
        self.tolerance_px: float | None = None
        self._add_row_states("hits", "classes", "difficult")

    def update(self, heatmaps: torch.Tensor, targets: torch.Tensor | int, masks: torch.Tensor | None = None,
               boxes: torch.Tensor | None = None, box_labels: torch.Tensor | None = None,
               difficult: torch.Tensor | None = None, ids: torch.Tensor | None = None) -> None:
        targets = self._check_map_inputs(heatmaps, targets)
        b, _, h, w = heatmaps.shape
        if (masks is None) == (boxes is None):
            raise ValueError("pass exactly one of masks (B, 1, H, W) or boxes (B, N, 4) + box_labels (B, N)")
        if masks is None:
            if box_labels is None:
                raise ValueError("boxes need box_labels (B, N) to know which boxes belong to the target class")
            masks = boxes_to_mask(boxes.to(heatmaps.device).float(), box_labels.to(heatmaps.device), targets, h, w)
        else:
            if masks.dim() != 4 or masks.shape[1] != 1 or masks.shape[0] != b or masks.shape[-2:] != (h, w):
                raise ValueError(f"masks shape {tuple(masks.shape)} does not match heatmaps {tuple(heatmaps.shape)}: "
                                 "masks must be (B, 1, H, W) at the heatmaps' resolution")
            masks = masks.to(heatmaps.device).bool()
            empty = ~masks.flatten(1).any(1)
            if empty.any():
                raise ValueError(f"samples {empty.nonzero().flatten().tolist()} have an empty mask: nothing to "
                                 "point at; drop them from the evaluation")
        if self.tolerance == "native":
            tolerance = native_tolerance(h, w)
        else:
            tolerance = self.tolerance if self.tolerance is not None else default_tolerance(h, w)
        self.tolerance_px = float(tolerance)
        hits = pointing_hits(heatmaps, masks, tolerance)
        if difficult is None:
            difficult = torch.zeros(b, dtype=torch.bool, device=heatmaps.device)
        difficult = torch.as_tensor(difficult, device=heatmaps.device).reshape(-1).bool()
        if difficult.numel() != b:
            raise ValueError(f"difficult has {difficult.numel()} entries for a batch of {b}")
        self._append_rows(ids, b, heatmaps.device, key=fingerprint(masks, targets[:, None]), hits=hits.float(), classes=targets, difficult=difficult)

    @staticmethod
    def _class_mean_accuracy(hits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        if hits.numel() == 0:
            return torch.tensor(float("nan"), device=hits.device)
        uniq, inverse = torch.unique(classes, return_inverse=True)
        per_class_hits = torch.zeros(uniq.numel(), device=hits.device).index_add_(0, inverse, hits)
        per_class_n = torch.zeros(uniq.numel(), device=hits.device).index_add_(0, inverse, torch.ones_like(hits))
        return (per_class_hits / per_class_n).mean()

    def compute(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        hard = rows["difficult"].bool()
        return {
            "all": self._class_mean_accuracy(rows["hits"], rows["classes"]),
            "difficult": self._class_mean_accuracy(rows["hits"][hard], rows["classes"][hard]),
        }

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], "hits": rows["hits"].bool(), "classes": rows["classes"],
                "difficult": rows["difficult"].bool()}
