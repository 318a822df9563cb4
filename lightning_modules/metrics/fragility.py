"""Fragility of interpretations (Ghorbani, Abid & Zou, AAAI 2019, Sec. 4 "Metrics"; official
``InterpretationFragility``): how much a map changes under an input perturbation that keeps the label.

- ``TopKIntersection(k)``: fraction of the original map's top-k pixels still among the perturbed map's top-k;
- ``RankCorrelation``: Spearman rank correlation between the two maps;
- ``CenterOfMassShift``: L2 distance (pixels) between the maps' centres of mass (maps as non-negative mass).

All three take ``update(maps, perturbed_maps, ids=None)`` and keep per-sample values. Where the ground truth is
known (benchmark v2's evidence masks), ``TopKMaskShare(k)`` (``update(maps, masks, ids=None)``) says where a map's
top-k pixels lie: the fraction inside the mask, so an attack that keeps the label can be seen to move the
interpretation off the evidence (not only away from the original map).
"""

from __future__ import annotations

import torch

from lightning_modules.metrics.samples import PerSampleMetric
from lightning_modules.metrics.similarity import defined_means, spearman
from lightning_modules.validation import check_heatmaps


def _check_pair(maps: torch.Tensor, perturbed: torch.Tensor) -> None:
    check_heatmaps(maps, name="maps")
    check_heatmaps(perturbed, images=maps, name="perturbed_maps")


def topk_intersection(maps: torch.Tensor, perturbed: torch.Tensor, k: int) -> torch.Tensor:
    """``(B,)`` fraction of the top-k pixels of ``maps`` that are in the top-k of ``perturbed``."""
    a, b = maps.flatten(1), perturbed.flatten(1)
    if not 1 <= k <= a.shape[1]:
        raise ValueError(f"k must be in [1, {a.shape[1]}] (pixels per map), got {k}")
    top_a = torch.topk(a, k, dim=1, sorted=False).indices
    in_top_b = torch.zeros_like(b, dtype=torch.bool).scatter_(1, torch.topk(b, k, dim=1, sorted=False).indices, True)
    return in_top_b.gather(1, top_a).float().mean(1)


def topk_mask_share(maps: torch.Tensor, masks: torch.Tensor, k: int) -> torch.Tensor:
    """``(B,)`` fraction of the top-k pixels of ``maps`` that lie inside the binary ``masks`` (same shape)."""
    a = maps.flatten(1)
    if not 1 <= k <= a.shape[1]:
        raise ValueError(f"k must be in [1, {a.shape[1]}] (pixels per map), got {k}")
    top = torch.topk(a, k, dim=1, sorted=False).indices
    return (masks.flatten(1) > 0.5).gather(1, top).float().mean(1)


def center_of_mass(maps: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` centre of mass ``(y, x)`` in pixels of non-negative maps."""
    if (maps < 0).any():
        raise ValueError("centre of mass needs non-negative maps (Ghorbani: |gradient|): pass maps.abs()")
    mass = maps[:, 0]
    total = mass.sum((1, 2))
    if (total <= 0).any():
        raise ValueError(f"maps {(total <= 0).nonzero().flatten().tolist()} are all zero: no centre of mass")
    ys = torch.arange(mass.shape[1], device=maps.device, dtype=maps.dtype)
    xs = torch.arange(mass.shape[2], device=maps.device, dtype=maps.dtype)
    cy = (mass.sum(2) * ys).sum(1) / total
    cx = (mass.sum(1) * xs).sum(1) / total
    return torch.stack([cy, cx], 1)


class _PairMetric(PerSampleMetric):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._add_row_states("values")

    def _values(self, maps: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, maps: torch.Tensor, perturbed_maps: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        _check_pair(maps, perturbed_maps)
        self._append_rows(ids, maps.shape[0], maps.device, values=self._values(maps, perturbed_maps))

    def compute(self) -> torch.Tensor:
        return self._rows()["values"].mean()

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], "values": rows["values"]}


class TopKIntersection(_PairMetric):
    """Top-k intersection (Ghorbani: k = 1000 at 227 px; scale with the image area)."""

    higher_is_better = True

    def __init__(self, k: int = 1000, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def _values(self, maps, perturbed):
        return topk_intersection(maps, perturbed, self.k)


class RankCorrelation(_PairMetric):
    """Spearman rank correlation between original and perturbed maps.

    Undefined (NaN in ``per_sample()``) where a map is constant; ``compute()`` is the mean over the defined samples
    and warns (``UndefinedSimilarityWarning``) naming the samples left out (NaN only when none is defined)."""

    higher_is_better = True

    def _values(self, maps, perturbed):
        return spearman(maps, perturbed)

    def compute(self) -> torch.Tensor:
        rows = self._rows()
        return defined_means({"spearman": rows["values"]}, rows["sample_ids"], type(self).__name__)["spearman"]


class CenterOfMassShift(_PairMetric):
    """L2 shift (pixels) of the maps' centre of mass."""

    higher_is_better = False

    def _values(self, maps, perturbed):
        return (center_of_mass(maps) - center_of_mass(perturbed)).norm(dim=1)


class TopKMaskShare(PerSampleMetric):
    """Fraction of a map's top-k pixels inside a ground-truth mask (e.g. the label's evidence), per sample."""

    higher_is_better = True

    def __init__(self, k: int = 1000, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self._add_row_states("values")

    def update(self, maps: torch.Tensor, masks: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        check_heatmaps(maps, name="maps")
        if masks.shape != maps.shape:
            raise ValueError(f"masks must have the maps' shape {tuple(maps.shape)}, got {tuple(masks.shape)}")
        self._append_rows(ids, maps.shape[0], maps.device, values=topk_mask_share(maps, masks, self.k))

    def compute(self) -> torch.Tensor:
        return self._rows()["values"].mean()

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], "values": rows["values"]}
