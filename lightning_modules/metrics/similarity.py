"""Similarity of two saliency maps, as in Adebayo et al.'s sanity checks (NeurIPS 2018, Sec. 3; official
``sanity_checks_saliency``): Spearman rank correlation of the absolute maps ("with abs") and of the signed maps
("no abs"), SSIM of the [0, 1]-normalised absolute maps (torchmetrics), and the correlation of their HOG features
(scikit-image).

Spearman is computed for the whole batch in torch: average ranks (scipy's tie rule) from one sort and two
``searchsorted`` calls, then the Pearson correlation of the ranks. HOG is per image in numpy by nature
(``skimage.feature.hog`` has no batch dimension): it runs once per ``update`` on the CPU copy of the batch, after
the batched torch work, and can be switched off with ``hog=False``.

Undefined values. A constant map (e.g. a Grad-CAM map that the ReLU zeroes everywhere) has no ranks and no HOG
gradients: its Spearman and HOG correlations are undefined. They are NaN in ``spearman`` and in ``per_sample()``
(the per-sample marker of "undefined", never a number), as torchmetrics' own correlations give NaN for a constant
input. Averages leave them out rather than turning NaN: ``MapSimilarity.compute()`` (and ``RankCorrelation``'s) is
the mean over the samples where the measure is defined, warns with an ``UndefinedSimilarityWarning`` naming how
many samples and which ids were left out, and is NaN only where no sample is defined; ``undefined_counts()`` gives
the counts (``hog`` with ``hog=False`` is off, not undefined: neither warned nor counted).

The official code's choices are options here, so that other users keep their numbers: ``ssim_gaussian=True`` with
``ssim_kernel_size=11`` is skimage's ``structural_similarity(..., gaussian_weights=True)`` window (Gaussian,
sigma 1.5, 11 taps; torchmetrics' implementation differs from skimage's in the covariance normalisation and the
border: 0.9254 vs 0.9298 on a 28x28 pair of noise maps), and ``hog_correlation="spearman"`` is the official rank correlation of the two
HOG feature vectors. The defaults (uniform 7x7 SSIM window, Pearson correlation of the HOG features) are not the
official ones.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from lightning_modules.metrics.samples import PerSampleMetric
from lightning_modules.metrics.keypoints import normalise_maps
from lightning_modules.validation import check_heatmaps


HOG_CORRELATIONS = ("pearson", "spearman")


class UndefinedSimilarityWarning(UserWarning):
    """Some samples' similarity is undefined (a constant map) and was left out of a mean."""


def defined_means(values: dict[str, torch.Tensor], sample_ids: torch.Tensor, what: str) -> dict[str, torch.Tensor]:
    """Per measure, the mean of its ``(N,)`` values over the defined (finite) entries: NaN marks an undefined value
    (a constant map), left out rather than turning the mean NaN; the mean is NaN only when no entry is defined.

    Warns once (``UndefinedSimilarityWarning``) naming ``what``, each measure's undefined count and the first sample
    ids left out (row positions where no ids were given)."""
    undefined = {k: ~torch.isfinite(v) for k, v in values.items()}
    counts = {k: int(u.sum()) for k, u in undefined.items()}
    if any(counts.values()):
        rows = torch.stack(list(undefined.values())).any(0).nonzero().squeeze(1)
        ids = sample_ids[rows]
        named = (f"sample ids {ids[:10].tolist()}" if bool((ids >= 0).all())
                 else f"rows {rows[:10].tolist()} (no sample ids given)")
        more = " ..." if rows.numel() > 10 else ""
        n = next(iter(values.values())).numel()
        per = ", ".join(f"{k} {c} of {n}" + (" (mean NaN: none defined)" if c == n else "")
                        for k, c in counts.items() if c)
        warnings.warn(f"{what}: undefined (a constant map) for {named}{more}: {per}; left out of the means. "
                      "per_sample() marks them NaN", UndefinedSimilarityWarning, stacklevel=4)  # the caller of compute()
    return {k: torch.nanmean(v) for k, v in values.items()}


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N along the last dim of ``(B, N)``, ties given their average rank (``scipy.stats.rankdata``)."""
    sorted_vals = torch.sort(values, dim=-1).values.contiguous()
    left = torch.searchsorted(sorted_vals, values.contiguous(), right=False)
    right = torch.searchsorted(sorted_vals, values.contiguous(), right=True)
    return (left + right + 1).to(torch.float64) / 2


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation of ``(B, N)`` tensors (NaN, undefined, for a constant row)."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample Spearman rank correlation of two map batches (any shape ``(B, ...)``) -> ``(B,)``; NaN where
    either map is constant (undefined: no ranks). Average with ``defined_means``, not ``.mean()``."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return pearson(average_ranks(a), average_ranks(b)).float()


def hog_similarity(a: torch.Tensor, b: torch.Tensor, pixels_per_cell: int | None = None,
                   correlation: str = "pearson") -> torch.Tensor:
    """Correlation (``pearson`` or ``spearman``, the official code's) of the ``skimage.feature.hog`` features of two
    ``(B, 1, H, W)`` batches of [0, 1] maps."""
    if correlation not in HOG_CORRELATIONS:
        raise ValueError(f"unknown HOG correlation {correlation!r}; use one of {HOG_CORRELATIONS}")
    from skimage.feature import hog

    h, w = a.shape[-2:]
    ppc = pixels_per_cell or max(2, min(16, min(h, w) // 3))
    if min(h, w) < 3 * ppc:
        raise ValueError(f"HOG with 3x3-cell blocks needs maps of at least {3 * ppc} px with pixels_per_cell={ppc}; "
                         "pass a smaller pixels_per_cell")
    a_np, b_np = a[:, 0].detach().cpu().double().numpy(), b[:, 0].detach().cpu().double().numpy()
    feats_a = np.stack([hog(m, pixels_per_cell=(ppc, ppc)) for m in a_np])  # per image: HOG has no batch dim
    feats_b = np.stack([hog(m, pixels_per_cell=(ppc, ppc)) for m in b_np])
    fa, fb = torch.from_numpy(feats_a), torch.from_numpy(feats_b)
    if correlation == "spearman":
        fa, fb = average_ranks(fa), average_ranks(fb)
    return pearson(fa, fb).float().to(a.device)


class MapSimilarity(PerSampleMetric):
    """Spearman (abs / no abs), SSIM and HOG similarity between two batches of maps (Adebayo et al. 2018).

    ``update(maps, reference_maps, ids=None)``; ``compute()`` -> ``{"spearman_abs", "spearman_no_abs", "ssim",
    "hog"}`` means; ``per_sample()`` for mean +- std plots.

    A sample whose map (or reference map) is constant has undefined correlations: NaN in ``per_sample()``, left
    out of ``compute()``'s means with an ``UndefinedSimilarityWarning`` naming the measure, the count and the
    sample ids (a mean is NaN only when no sample is defined); ``undefined_counts()`` -> measure -> count.
    ``hog=False`` leaves ``hog`` NaN for every sample without a warning (switched off, not undefined).
    """

    def __init__(self, ssim_kernel_size: int = 7, ssim_gaussian: bool = False, hog: bool = True,
                 hog_pixels_per_cell: int | None = None, hog_correlation: str = "pearson", **kwargs):
        super().__init__(**kwargs)
        if hog_correlation not in HOG_CORRELATIONS:
            raise ValueError(f"unknown hog_correlation {hog_correlation!r}; use one of {HOG_CORRELATIONS}")
        self.hog_correlation = hog_correlation
        self.ssim_kernel_size, self.ssim_gaussian = ssim_kernel_size, ssim_gaussian
        self.use_hog, self.hog_pixels_per_cell = hog, hog_pixels_per_cell
        self._add_row_states("spearman_abs", "spearman_no_abs", "ssim", "hog")

    def update(self, maps: torch.Tensor, reference_maps: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        check_heatmaps(maps, name="maps")
        check_heatmaps(reference_maps, images=maps, name="reference_maps")
        a_abs, b_abs = normalise_maps(maps.abs()), normalise_maps(reference_maps.abs())
        ssim = structural_similarity_index_measure(
            a_abs.float(), b_abs.float(), data_range=1.0, reduction="none", kernel_size=self.ssim_kernel_size,
            gaussian_kernel=self.ssim_gaussian,
        )
        hog_sim = (hog_similarity(a_abs, b_abs, self.hog_pixels_per_cell, self.hog_correlation) if self.use_hog
                   else torch.full((maps.shape[0],), float("nan"), device=maps.device))
        self._append_rows(ids, maps.shape[0], maps.device,
                          spearman_abs=spearman(maps.abs(), reference_maps.abs()),
                          spearman_no_abs=spearman(maps, reference_maps), ssim=ssim.reshape(-1), hog=hog_sim)

    def _measures(self) -> tuple[str, ...]:
        return ("spearman_abs", "spearman_no_abs", "ssim") + (("hog",) if self.use_hog else ())

    def compute(self) -> dict[str, torch.Tensor]:
        """Measure -> mean over the samples where it is defined (warns when some are not; see the class)."""
        rows = self._rows()
        out = defined_means({k: rows[k] for k in self._measures()}, rows["sample_ids"], type(self).__name__)
        if not self.use_hog:
            out["hog"] = torch.nanmean(rows["hog"])  # NaN: switched off
        return {k: out[k] for k in ("spearman_abs", "spearman_no_abs", "ssim", "hog")}

    def undefined_counts(self) -> dict[str, int]:
        """Measure -> how many samples have an undefined (NaN) value: a constant map (``hog`` with ``hog=False``: 0)."""
        rows = self._rows()
        return {k: int((~torch.isfinite(rows[k])).sum()) if k in self._measures() else 0
                for k in ("spearman_abs", "spearman_no_abs", "ssim", "hog")}

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], **{k: rows[k] for k in ("spearman_abs", "spearman_no_abs", "ssim", "hog")}}
