"""Weak localisation error (Fong & Vedaldi, ICCV 2017, Sec. 5 and Table 1; official ``heatmaps.py``:
``getbb_from_heatmap`` and ``localization.ipynb``).

A heatmap is thresholded, a box is drawn around the thresholded region, and the sample is an error when the
box's IoU with every ground-truth box of the target class is < 0.5 (ILSVRC localisation). Three thresholds,
as in the official code (heatmaps must be non-negative, as Fong's abs-max gradient maps and masks are):

- ``value`` (``min_max_diff``): keep ``h - min(h) >= alpha * (max(h) - min(h))``;
- ``energy``: keep the smallest set of highest pixels whose sum reaches ``alpha * sum(h)`` (the official code keeps
  one pixel fewer: it zeroes from the pixel that reaches the energy on; one pixel, negligible at 224 px);
- ``mean``: keep ``h >= alpha * mean(h)``.

Box: the tight box around **all** kept pixels with a positive value (the official code zeroes the rest and
takes the extent of the non-zero rows/columns; no connected-component step), or the whole image when nothing is
kept. The error is evaluated for a grid of alphas at once; ``tune_and_evaluate`` picks the alpha on a held-out
split (Fong: 5,000 annotated training images) and reports the error at that alpha on another split.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lightning_modules.metrics.samples import PerSampleMetric, fingerprint
from lightning_modules.metrics.pointing import check_class_boxes

#: Fong's search grids (localization.ipynb): 0..0.95 step 0.05 for value/energy, 0..10 step 0.5 for mean.
DEFAULT_ALPHAS = {
    "value": tuple(round(0.05 * i, 2) for i in range(20)),
    "energy": tuple(round(0.05 * i, 2) for i in range(20)),
    "mean": tuple(round(0.5 * i, 1) for i in range(21)),
}


def kept_regions(heatmaps: torch.Tensor, alphas: torch.Tensor, method: str) -> torch.Tensor:
    """Thresholded regions for every alpha, ``(B, A, H, W)`` bool (kept pixels with a positive value)."""
    b, _, h, w = heatmaps.shape
    flat = heatmaps.flatten(1)  # (B, HW)
    a = alphas.to(flat)[None, :, None]  # (1, A, 1)
    if method == "value":
        lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
        kept = (flat - lo)[:, None, :] >= a * (hi - lo)[:, None, :]
    elif method == "mean":
        kept = flat[:, None, :] >= a * flat.mean(1, keepdim=True)[:, None, :]
    elif method == "energy":
        sorted_vals, order = torch.sort(flat, dim=1, descending=True, stable=True)
        cum = torch.cumsum(sorted_vals, dim=1)  # (B, HW)
        total = cum[:, -1:]
        # the smallest set of top pixels whose energy reaches alpha * total (empty for alpha = 0)
        target = a * total[:, None, :]
        n_keep = (cum[:, None, :] < target).sum(-1) + (target[..., 0] > 0).long()  # (B, A)
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
        kept = ranks[:, None, :] < n_keep[:, :, None]
    else:
        raise ValueError(f"unknown threshold method {method!r}; known: 'value', 'energy', 'mean'")
    kept = kept & (flat[:, None, :] > 0)
    return kept.view(b, -1, h, w)


def region_boxes(regions: torch.Tensor) -> torch.Tensor:
    """Tight ``x0, y0, x1, y1`` (exclusive) box of each region, ``(..., 4)``; the whole image for empty regions."""
    h, w = regions.shape[-2:]
    rows, cols = regions.any(-1), regions.any(-2)  # (..., H), (..., W)
    y0 = rows.int().argmax(-1)
    y1 = h - rows.flip(-1).int().argmax(-1)
    x0 = cols.int().argmax(-1)
    x1 = w - cols.flip(-1).int().argmax(-1)
    empty = ~rows.any(-1)
    full = torch.tensor([0, 0, w, h], device=regions.device)
    boxes = torch.stack([x0, y0, x1, y1], -1)
    return torch.where(empty[..., None], full, boxes).float()


def box_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of ``pred (B, A, 4)`` with ``gt (B, N, 4)`` -> ``(B, A, N)``; exclusive pixel boxes (area = w * h)."""
    p, g = pred[:, :, None, :], gt[:, None, :, :]
    iw = (torch.minimum(p[..., 2], g[..., 2]) - torch.maximum(p[..., 0], g[..., 0])).clamp(min=0)
    ih = (torch.minimum(p[..., 3], g[..., 3]) - torch.maximum(p[..., 1], g[..., 1])).clamp(min=0)
    inter = iw * ih
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    return inter / (area_p + area_g - inter)


class WeakLocalisation(PerSampleMetric):
    """Localisation error for a grid of thresholds (Fong & Vedaldi Table 1).

    ``update(heatmaps, targets, boxes, box_labels, ids=None)``; ``compute()`` -> error per alpha ``(A,)``;
    ``self.alphas`` holds the grid. Use ``tune_and_evaluate(heldout, test)`` for the reported number.
    """

    def __init__(self, method: str = "energy", alphas: Sequence[float] | None = None, iou_threshold: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        if method not in DEFAULT_ALPHAS:
            raise ValueError(f"unknown threshold method {method!r}; known: {', '.join(DEFAULT_ALPHAS)}")
        self.method = method
        self.alphas = torch.tensor(list(alphas if alphas is not None else DEFAULT_ALPHAS[method]), dtype=torch.float32)
        if self.alphas.numel() == 0:
            raise ValueError("alphas must not be empty")
        self.iou_threshold = iou_threshold
        self._add_row_states("errors", "boxes_pred")

    def predicted_boxes(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Boxes ``(B, A, 4)`` for every alpha of the grid."""
        return region_boxes(kept_regions(heatmaps, self.alphas.to(heatmaps.device), self.method))

    def update(self, heatmaps: torch.Tensor, targets: torch.Tensor | int, boxes: torch.Tensor,
               box_labels: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        targets = self._check_map_inputs(heatmaps, targets)
        if (heatmaps < 0).any():
            raise ValueError("heatmaps must be non-negative for Fong's thresholds: pass heatmaps.abs() or "
                             "heatmaps.clamp(min=0) (state which in the report)")
        b, _, h, w = heatmaps.shape
        boxes, box_labels = boxes.to(heatmaps.device).float(), box_labels.to(heatmaps.device)
        of_class = check_class_boxes(boxes, box_labels, targets, h, w)
        pred = self.predicted_boxes(heatmaps)
        iou = box_iou(pred, boxes)
        correct = ((iou >= self.iou_threshold) & of_class[:, None, :]).any(-1)
        self._append_rows(ids, b, heatmaps.device, key=fingerprint(boxes, box_labels, targets[:, None]), errors=(~correct).float(), boxes_pred=pred)

    def compute(self) -> torch.Tensor:
        """Error per alpha ``(A,)`` (torchmetrics squeezes it to a scalar when A == 1)."""
        return self._rows()["errors"].mean(0)

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], "errors": rows["errors"], "boxes": rows["boxes_pred"],
                "alphas": self.alphas}


def best_alpha(errors: torch.Tensor, alphas: torch.Tensor) -> tuple[float, float]:
    """The alpha with the lowest error (the smallest such alpha on ties) and that error."""
    i = int(torch.argmin(errors.cpu()))  # argmin returns the first minimum
    return float(alphas[i]), float(errors[i])


def tune_and_evaluate(heldout: WeakLocalisation, test: WeakLocalisation) -> dict[str, float]:
    """Pick alpha on ``heldout`` and report the error of ``test`` at that alpha (Fong's protocol)."""
    if heldout.method != test.method or not torch.equal(heldout.alphas, test.alphas):
        raise ValueError("held-out and test metrics must use the same threshold method and alpha grid")
    # torchmetrics squeezes one-element results: reshape back to one error per alpha
    alpha, heldout_error = best_alpha(heldout.compute().reshape(-1), heldout.alphas)
    test_errors = test.compute().reshape(-1)
    i = int(torch.nonzero(test.alphas == alpha)[0, 0])
    return {"method": heldout.method, "alpha": alpha, "heldout_error": heldout_error,
            "test_error": float(test_errors[i])}
