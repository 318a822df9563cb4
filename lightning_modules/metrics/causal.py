"""Deletion and insertion AUC, the causal metrics of RISE (Petsiuk, Das & Saenko, BMVC 2018, Sec. 4.1;
official ``evaluation.py``: ``CausalMetric``).

Pixels are taken in decreasing saliency order, ``pixels_per_step`` at a time. Deletion replaces them with a
substrate (RISE: zeros in normalised space, i.e. the model's mean colour; here ``substrate="mean"``), insertion
copies them from the image onto a blurred copy (Gaussian kernel 11, sigma 5). The curve is the softmax
probability of the target class after 0, 1, ..., N steps (N = ceil(H*W / pixels_per_step)); the AUC is the
trapezoid rule on [0, 1]: ``(sum - s0/2 - sN/2) / N``. A good map has a low deletion and a high insertion AUC.

All ``B * (N + 1)`` step images of a batch go through the model in batched forwards of ``max_batch`` images.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from lightning_modules.metrics.progressive import (
    Substrate, blur, eval_mode, make_substrate, pixel_ranks, progressive_scores, trapezoid_auc,
)
from lightning_modules.metrics.samples import PerSampleMetric, fingerprint

#: RISE's batch evaluation uses 224 * 8 pixels per step at 224 x 224, i.e. 28 steps; we keep 28 steps at any size.
RISE_STEPS_AT_224 = 28


def default_pixels_per_step(height: int, width: int) -> int:
    """RISE's 224*8 px per step at 224 px, scaled with the image area (28 steps)."""
    return max(1, math.ceil(height * width / RISE_STEPS_AT_224))


class DeletionInsertion(PerSampleMetric):
    """Deletion (``mode="deletion"``) or insertion (``mode="insertion"``) AUC, RISE protocol.

    Args:
        mode: ``"deletion"`` or ``"insertion"``.
        pixels_per_step: pixels changed per step; ``None`` = RISE's 224*8 at 224 px scaled with the image area.
        substrate: deletion's replacement (see ``make_substrate``): ``"mean"`` (model's mean colour, RISE's
            normalised zeros), ``"zeros"``, ``"blur"``, ``"image_mean"``, a colour or a callable.
        blur_kernel, blur_sigma: insertion's blurred start image (and ``substrate="blur"``); RISE: 11, 5.
        max_batch: images per forward pass (the memory budget).
        max_pixels: the curve's window: it stops once this many pixels are changed (the AUC is the trapezoid rule
            on [0, 1] over the window); ``None`` (RISE): the whole image.
        insertion_pixels_per_step, insertion_max_pixels: in insertion mode, replace ``pixels_per_step`` and
            ``max_pixels`` where not None (ignored in deletion mode), so that one set of settings serves both
            protocols; ``None``: the shared ones.
        output: ``"prob"`` (softmax probability, RISE) or ``"logit"``.

    ``update(model, images, heatmaps, targets=None, ids=None)``: ``targets=None`` uses the model's top-1 class on
    the unperturbed image, as RISE does. ``compute()`` -> mean AUC; ``per_sample()`` -> ids, AUCs and curves;
    ``mean_curve()`` -> the average curve.
    """

    def __init__(self, mode: str = "deletion", pixels_per_step: int | None = None, substrate: Substrate = "mean",
                 blur_kernel: int = 11, blur_sigma: float = 5.0, max_batch: int = 256, output: str = "prob",
                 max_pixels: int | None = None, insertion_pixels_per_step: int | None = None,
                 insertion_max_pixels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if mode == "insertion":
            pixels_per_step = insertion_pixels_per_step or pixels_per_step
            max_pixels = insertion_max_pixels or max_pixels
        if mode not in ("deletion", "insertion"):
            raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
        if pixels_per_step is not None and pixels_per_step < 1:
            raise ValueError(f"pixels_per_step must be >= 1, got {pixels_per_step}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_pixels is not None and max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
        self.max_pixels = max_pixels
        self.mode = mode
        self.pixels_per_step = pixels_per_step
        self.substrate = substrate
        self.blur_kernel, self.blur_sigma = blur_kernel, blur_sigma
        self.max_batch = max_batch
        self.output = output
        self._add_row_states("auc", "step_scores")

    def step_counts(self, height: int, width: int, device=None) -> torch.Tensor:
        """Number of changed pixels at each of the N + 1 steps: 0, k, 2k, ..., H*W (or up to ``max_pixels``)."""
        n_pix = height * width
        if self.max_pixels is not None:
            n_pix = min(n_pix, int(self.max_pixels))
        step = self.pixels_per_step or default_pixels_per_step(height, width)
        n_steps = math.ceil(n_pix / step)
        return (torch.arange(n_steps + 1, device=device) * step).clamp(max=n_pix)

    def curves(self, model: nn.Module, images: torch.Tensor, heatmaps: torch.Tensor,
               targets: torch.Tensor | int | None = None) -> torch.Tensor:
        """The per-image curves ``(B, N + 1)``, without touching the metric state."""
        targets = self._check_model_inputs(model, images, heatmaps, targets, allow_none=True)
        if targets is None:
            with eval_mode(model):
                targets = model(images).argmax(1)
        ranks = pixel_ranks(heatmaps, descending=True)
        if self.mode == "deletion":
            start = images
            finish = make_substrate(self.substrate, images, model, self.blur_kernel, self.blur_sigma)
        else:
            start, finish = blur(images, self.blur_kernel, self.blur_sigma), images
        counts = self.step_counts(*images.shape[-2:], device=images.device)
        return progressive_scores(model, start, finish, ranks, counts, targets, self.max_batch, self.output)

    def update(self, model: nn.Module, images: torch.Tensor, heatmaps: torch.Tensor,
               targets: torch.Tensor | int | None = None, ids: torch.Tensor | None = None) -> None:
        curves = self.curves(model, images, heatmaps, targets)
        seen = self.step_scores
        if isinstance(seen, list) and seen:
            seen = seen[0]
        if isinstance(seen, torch.Tensor) and seen.shape[1] != curves.shape[1]:
            raise ValueError(f"this batch has {curves.shape[1]} steps but earlier ones had {seen.shape[1]}: "
                             "use one image size per metric (or fix pixels_per_step)")
        self._append_rows(ids, images.shape[0], images.device, key=fingerprint(images), auc=trapezoid_auc(curves), step_scores=curves)

    def compute(self) -> torch.Tensor:
        return self._rows()["auc"].mean()

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], "auc": rows["auc"], "curves": rows["step_scores"]}

    def mean_curve(self) -> torch.Tensor:
        return self._rows()["step_scores"].mean(0)


class DeletionAUC(DeletionInsertion):
    """RISE deletion AUC (lower is better)."""

    higher_is_better = False

    def __init__(self, **kwargs):
        super().__init__(mode="deletion", **kwargs)


class InsertionAUC(DeletionInsertion):
    """RISE insertion AUC (higher is better)."""

    higher_is_better = True

    def __init__(self, **kwargs):
        super().__init__(mode="insertion", **kwargs)
