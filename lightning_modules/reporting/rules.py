"""The rules of judgement of ``../shared/HEADLINE_CLAIMS.md`` that need numbers, stated once for every paper.

- **Whole curves** (rule 1): :func:`curve_summary` reduces each unit's curve (an image's or a seed's values at the
  curve's points) to the paper's summary, the mean over the points that are not saturated (the normalised area for
  equally spaced points); :func:`unsaturated_points` drops a point where every method is within noise of the floor
  (chance accuracy, the random map), so a saturated point never decides. ``Relation.every`` judges every point with
  a Bonferroni correction where a paper reads the curve point by point.
- **Small samples** (rule 2): ``lightning_modules.reporting.relations`` (Student's t interval joined to the paired
  bootstrap); ``tests/test_judgement_rules.py`` measures the false-holds rate on null data.
- **Effects that matter** (rule 3): :data:`MIN_EFFECT_FRACTION` of the span between the random and the oracle
  reference of the protocol (:func:`span_min_effect`); where a protocol has no such pair, a fixed minimum per measure
  (:data:`MIN_EFFECTS`), each with its reason. A claim carries its :class:`~.claims.MinimumEffect`.
- **Independent units** (rule 2): where several values share a unit (the pointing game's (image, class) trials
  share their image), :func:`unit_means` makes the unit the paired sample of the bootstrap.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from lightning_modules.reporting.claims import MinimumEffect

#: a hold needs an effect of at least this fraction of |oracle - random| on its protocol (rules of judgement 3)
MIN_EFFECT_FRACTION = 0.1

#: fixed minimum effects for measures with no oracle/random pair in the run, in the measure's units, with the reason
MIN_EFFECTS: dict[str, tuple[float, str]] = {
    "rank_correlation": (0.05, "0.05 of a rank correlation or SSIM (a twentieth of its [0, 1] range of similarity)"),
    "topk_intersection": (0.05, "0.05 of top-k intersection (a twentieth of its [0, 1] range)"),
    "center_shift_px": (1.0, "1 pixel of centre-of-mass shift (below one pixel the map has not moved on the grid)"),
    "accuracy": (0.01, "1 percentage point of accuracy (one image in a hundred)"),
    "auc": (0.01, "0.01 of deletion / insertion AUC (a mean softmax probability over the curve: one percentage point, "
                  "as the accuracy's minimum), where the run has no oracle map to span"),
    "unit_span": (MIN_EFFECT_FRACTION, f"{MIN_EFFECT_FRACTION:g} x the span of a measure normalised to [0, 1] by its "
                                       "own references (normalised score: fully perturbed image 0, clean image 1; "
                                       "min-max-normalised heatmap intensity: the map's minimum 0, maximum 1; deleted "
                                       "fraction of the image: nothing 0, everything 1)"),
}


def span_min_effect(oracle: float, random: float, what: str) -> MinimumEffect:
    """:data:`MIN_EFFECT_FRACTION` of the span between the protocol's oracle and random references in this run."""
    for name, v in (("oracle", oracle), ("random", random)):
        if not math.isfinite(v):
            raise ValueError(f"span_min_effect: the {name} reference of {what} must be a finite number, got {v!r}")
    span = abs(float(oracle) - float(random))
    return MinimumEffect(MIN_EFFECT_FRACTION * span,
                         f"{MIN_EFFECT_FRACTION:g} x |oracle - random| of {what} = {MIN_EFFECT_FRACTION:g} x "
                         f"|{oracle:.4g} - {random:.4g}| = {MIN_EFFECT_FRACTION * span:.4g}")


def fixed_min_effect(measure: str) -> MinimumEffect:
    """The fixed minimum effect of ``measure`` (:data:`MIN_EFFECTS`)."""
    if measure not in MIN_EFFECTS:
        raise KeyError(f"no fixed minimum effect for {measure!r}; known: {sorted(MIN_EFFECTS)}")
    value, reason = MIN_EFFECTS[measure]
    return MinimumEffect(value, reason)


def unsaturated_points(curves: Mapping[str, Sequence[Sequence[float]]], floor: Sequence[float] | float,
                       noise: Sequence[float] | float) -> list[int]:
    """Indices of the curve's points where at least one method's mean is further than ``noise`` from ``floor``.

    ``curves``: method -> ``(units, points)`` values; ``floor`` and ``noise``: one value or one per point (e.g. the
    chance accuracy and the seed-to-seed spread). A point where every method is within noise of the floor is
    saturated: it cannot tell the methods apart, so it never decides (rules of judgement 1)."""
    if not curves:
        raise ValueError("unsaturated_points needs at least one method's curve")
    means = np.stack([np.asarray(v, dtype=np.float64).reshape(-1, np.shape(v)[-1]).mean(0) for v in curves.values()])
    n_points = means.shape[1]
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), (n_points,))
    noise = np.broadcast_to(np.asarray(noise, dtype=np.float64), (n_points,))
    return [int(p) for p in np.flatnonzero((np.abs(means - floor) > noise).any(0))]


def curve_summary(values: Sequence[Sequence[float]], points: Sequence[int] | None = None) -> list[float]:
    """Per unit (row), the mean of its curve over ``points`` (all when None): the paper's summary of a curve, the
    per-unit samples a claim compares by the paired test."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"curve_summary: values must be (units, points) with at least one point, got shape {a.shape}")
    cols = list(range(a.shape[1])) if points is None else list(points)
    if not cols:
        raise ValueError("curve_summary: every point of the curve is saturated; no point can decide")
    return [float(x) for x in a[:, cols].mean(1)]


def unit_means(values: Sequence[float], keep: Sequence[bool] | None = None,
               units: Sequence[int] | None = None) -> list[float]:
    """The paired samples of a claim: the kept ``values`` as they are, or where values share a unit (``units[i]``:
    value i's unit, e.g. the image of a pointing trial) the mean of each unit's kept values, in unit order, so that
    a unit counts once in the bootstrap."""
    keep = [True] * len(values) if keep is None else list(keep)
    if len(keep) != len(values) or (units is not None and len(units) != len(values)):
        raise ValueError(f"values ({len(values)}), keep ({len(keep)}) and units must have one entry per value")
    if units is None:
        return [float(v) for v, k in zip(values, keep) if k]
    per: dict[int, list[float]] = {}
    for v, k, u in zip(values, keep, units):
        if k:
            per.setdefault(int(u), []).append(float(v))
    return [sum(v) / len(v) for _, v in sorted(per.items())]
