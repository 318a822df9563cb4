"""Smallest suppressing box, Fong & Vedaldi's "deletion game" (ICCV 2017, Sec. 5; official ``deletion_game.py``).

For each alpha of a grid, the heatmap is thresholded (``value`` / ``min_max_diff`` by default, as in the official
script) and the tight box around the kept region is blurred (the null image: Gaussian blur, sigma 10, Fong's
perturbation). The normalised score is ``(s_masked - s_null) / (s_orig - s_null)`` with ``s`` the softmax
probability of the target class. The reported size is that of the box at the largest alpha (the smallest box)
whose normalised score is ``<= level`` (official default 0.01); when no box reaches the level, the box with the
lowest score (official fallback). Smaller boxes = a more compact explanation of the evidence.

All ``B * A`` composite images are scored in batched forwards of ``max_batch``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from lightning_modules.metrics.progressive import blur, eval_mode, target_scores
from lightning_modules.metrics.samples import PerSampleMetric, fingerprint
from lightning_modules.metrics.localisation import kept_regions, region_boxes

DEFAULT_ALPHAS = tuple(round(0.01 * i, 2) for i in range(100))  # np.arange(0, 1, 0.01) in the official script


def null_blur(images: torch.Tensor, sigma: float = 10.0) -> torch.Tensor:
    """Fong's null image: a Gaussian blur of sigma 10 (kernel 2*ceil(3 sigma)+1, capped to the image for reflect pad)."""
    k = 2 * math.ceil(3 * sigma) + 1
    limit = 2 * min(images.shape[-2:]) - 1
    k = min(k, limit if limit % 2 == 1 else limit - 1)
    return blur(images, k, sigma)


def boxes_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(N, 4)`` exclusive pixel boxes -> ``(N, 1, H, W)`` bool masks."""
    ys = torch.arange(height, device=boxes.device)
    xs = torch.arange(width, device=boxes.device)
    in_y = (ys >= boxes[:, 1, None]) & (ys < boxes[:, 3, None])
    in_x = (xs >= boxes[:, 0, None]) & (xs < boxes[:, 2, None])
    return (in_y[:, :, None] & in_x[:, None, :])[:, None]


class SmallestSuppressingBox(PerSampleMetric):
    """Area (fraction of the image) of the smallest heatmap box whose blurring suppresses the target to ``level``.

    ``update(model, images, heatmaps, targets, ids=None)``; ``compute()`` -> mean area fraction (NaN samples,
    where the blurred image scores as high as the original, are left out and counted in ``per_sample``).
    """

    higher_is_better = False

    def __init__(self, level: float = 0.01, method: str = "value", alphas: Sequence[float] = DEFAULT_ALPHAS,
                 blur_sigma: float = 10.0, max_batch: int = 256, output: str = "prob", **kwargs):
        super().__init__(**kwargs)
        self.level, self.method = level, method
        self.alphas = torch.tensor(list(alphas), dtype=torch.float32)
        self.blur_sigma, self.max_batch, self.output = blur_sigma, max_batch, output
        self._add_row_states("best_area", "normalised_scores", "areas")

    def update(self, model: nn.Module, images: torch.Tensor, heatmaps: torch.Tensor, targets: torch.Tensor | int,
               ids: torch.Tensor | None = None) -> None:
        targets = self._check_model_inputs(model, images, heatmaps, targets)
        if (heatmaps < 0).any():
            raise ValueError("heatmaps must be non-negative for Fong's thresholds: pass heatmaps.abs() or "
                             "heatmaps.clamp(min=0)")
        b, _, h, w = images.shape
        null = null_blur(images, self.blur_sigma)
        boxes = region_boxes(kept_regions(heatmaps, self.alphas.to(images.device), self.method)).long()  # (B, A, 4)
        n_alpha = boxes.shape[1]
        areas = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).float() / (h * w)
        flat_boxes = boxes.view(-1, 4)
        total = b * n_alpha
        masked = []
        with eval_mode(model):
            orig_and_null = target_scores(model(torch.cat([images, null])), targets.repeat(2), self.output)
            for p0 in range(0, total, self.max_batch):
                pair = torch.arange(p0, min(p0 + self.max_batch, total), device=images.device)
                bi = pair // n_alpha
                x = torch.where(boxes_mask(flat_boxes[pair], h, w), null[bi], images[bi])
                masked.append(target_scores(model(x), targets[bi], self.output))
        s_orig, s_null = orig_and_null[:b], orig_and_null[b:]
        scores = (torch.cat(masked).view(b, n_alpha) - s_null[:, None]) / (s_orig - s_null)[:, None]
        reach = scores <= self.level
        # the last alpha reaching the level (the smallest box); else the alpha with the lowest score
        last_reach = n_alpha - 1 - reach.flip(1).int().argmax(1)
        lowest = torch.nan_to_num(scores, nan=float("inf")).argmin(1)
        best = torch.where(reach.any(1), last_reach, lowest)
        best_area = areas.gather(1, best[:, None]).squeeze(1)
        best_area = torch.where(torch.isfinite(scores).all(1), best_area, torch.full_like(best_area, float("nan")))
        self._append_rows(ids, b, images.device, key=fingerprint(images), best_area=best_area, normalised_scores=scores, areas=areas)

    def compute(self) -> torch.Tensor:
        return torch.nanmean(self._rows()["best_area"])

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], "best_area": rows["best_area"], "scores": rows["normalised_scores"],
                "areas": rows["areas"], "alphas": self.alphas}
