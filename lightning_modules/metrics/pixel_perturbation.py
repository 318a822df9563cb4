"""Pixel perturbation, MoRF / LeRF (Khakzar et al. 2019, "Improving Feature Attribution through Input-specific
Network Pruning", Sec. 4; official ``CAMP-eXplain-AI/RoarTorch``, task ``lerf``/``morf``, without retraining).

Remove the k% most (MoRF) or least (LeRF) important pixels, replacing them with a substrate, and record the
target output for every k. A faithful map makes the output fall fast under MoRF and stay high under LeRF.
All fractions of all images are scored in batched forwards (see ``progressive``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from lightning_modules.metrics.progressive import Substrate, make_substrate, pixel_ranks, progressive_scores
from lightning_modules.metrics.samples import PerSampleMetric, fingerprint

DEFAULT_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(11))


class PixelPerturbation(PerSampleMetric):
    """Target output vs fraction of pixels removed, ``order="morf"`` (most relevant first) or ``"lerf"``.

    Args:
        order: ``"morf"`` or ``"lerf"``.
        fractions: fractions of the pixels removed, each in [0, 1] (default 0, 0.1, ..., 1).
        substrate: replacement (``make_substrate``): ``"mean"`` (model's mean colour), ``"zeros"``, ``"blur"``, ...
        output: ``"prob"`` (softmax) or ``"logit"`` of the target class.
        max_batch: images per forward pass.

    ``compute()`` -> the mean curve ``(K,)``; ``per_sample()`` -> ids and ``(N, K)`` curves.
    """

    def __init__(self, order: str = "morf", fractions: Sequence[float] = DEFAULT_FRACTIONS,
                 substrate: Substrate = "mean", output: str = "prob", max_batch: int = 256, **kwargs):
        super().__init__(**kwargs)
        if order not in ("morf", "lerf"):
            raise ValueError(f"order must be 'morf' (most relevant first) or 'lerf' (least relevant first), got {order!r}")
        fractions = torch.as_tensor(list(fractions), dtype=torch.float64)
        if fractions.numel() == 0 or (fractions < 0).any() or (fractions > 1).any():
            raise ValueError(f"fractions must be a non-empty list of values in [0, 1], got {fractions.tolist()}")
        if output not in ("prob", "logit"):
            raise ValueError(f"output must be 'prob' or 'logit', got {output!r}")
        self.order, self.fractions, self.substrate = order, fractions, substrate
        self.output, self.max_batch = output, max_batch
        self._add_row_states("curve_rows")

    def curves(self, model: nn.Module, images: torch.Tensor, heatmaps: torch.Tensor,
               targets: torch.Tensor | int) -> torch.Tensor:
        """Per-image curves ``(B, K)`` without touching the state."""
        targets = self._check_model_inputs(model, images, heatmaps, targets)
        n_pix = images.shape[-2] * images.shape[-1]
        counts = torch.round(self.fractions * n_pix).long().to(images.device)
        ranks = pixel_ranks(heatmaps, descending=self.order == "morf")
        substrate = make_substrate(self.substrate, images, model)
        return progressive_scores(model, images, substrate, ranks, counts, targets, self.max_batch, self.output)

    def update(self, model: nn.Module, images: torch.Tensor, heatmaps: torch.Tensor, targets: torch.Tensor | int,
               ids: torch.Tensor | None = None) -> None:
        curves = self.curves(model, images, heatmaps, targets)
        self._append_rows(ids, images.shape[0], images.device, key=fingerprint(images), curve_rows=curves)

    def compute(self) -> torch.Tensor:
        return self._rows()["curve_rows"].mean(0)

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], "curves": rows["curve_rows"], "fractions": self.fractions.float()}
