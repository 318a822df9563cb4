"""Keypoint intensity (Fong & Vedaldi, ICCV 2017, Sec. 5 "animal parts"; official ``animal_parts.ipynb``).

Each heatmap is min-max normalised to [0, 1]; its mean over a square window around each annotated keypoint is
averaged over the keypoints of a name (e.g. ``eyes``, ``feet``) in the image. Comparing names (eyes vs feet) per
class shows which part the explanation relies on. Convention: here high = salient (Fong's deletion masks are
the reverse, 0 = salient: pass ``1 - mask``).

The window mean for every pixel is one ``avg_pool2d`` (``count_include_pad=False``: windows are clipped at the
border), then read at the keypoints: no per-keypoint loop.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from lightning_modules.metrics.samples import PerSampleMetric, fingerprint
from lightning_modules.validation import check_heatmaps, check_targets

#: half-size of the window at 224 px (the paper's window size is unconfirmed; configurable), scaled with size.
WINDOW_RADIUS_AT_224 = 5


def normalise_maps(heatmaps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max normalisation to [0, 1] (constant maps -> 0)."""
    flat = heatmaps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(heatmaps)


class KeypointIntensity(PerSampleMetric):
    """Mean normalised heatmap intensity in a window around the keypoints of each name.

    ``update(heatmaps, keypoints, labels=None, ids=None)`` with ``keypoints = {name: (B, K, 2)}`` (x, y pixels,
    NaN padding). ``compute()`` -> ``{name: mean over samples having that part}``; ``per_class()`` -> per-class means.
    """

    def __init__(self, names: Sequence[str], radius: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not names:
            raise ValueError("names must list the keypoint names to evaluate, e.g. ('eyes', 'feet')")
        self.names = tuple(names)
        self.radius = radius
        self._add_row_states("intensity", "classes")

    def update(self, heatmaps: torch.Tensor, keypoints: dict[str, torch.Tensor], labels: torch.Tensor | None = None,
               ids: torch.Tensor | None = None) -> None:
        check_heatmaps(heatmaps)
        b, _, h, w = heatmaps.shape
        if labels is None:
            labels = torch.full((b,), -1, dtype=torch.long, device=heatmaps.device)
        else:
            labels = check_targets(labels, b, self.num_classes, name="labels").to(heatmaps.device)
        missing = [n for n in self.names if n not in keypoints]
        if missing:
            raise KeyError(f"keypoints {missing} not in the batch; it has {sorted(keypoints)}")
        r = self.radius if self.radius is not None else max(1, round(WINDOW_RADIUS_AT_224 * math.sqrt(h * w) / 224))
        window_mean = F.avg_pool2d(normalise_maps(heatmaps), 2 * r + 1, stride=1, padding=r,
                                   count_include_pad=False)[:, 0].flatten(1)  # (B, H*W)
        per_name, points = [], []
        for name in self.names:  # a handful of names, not a per-image loop
            kp = torch.as_tensor(keypoints[name], device=heatmaps.device, dtype=torch.float32)
            if kp.dim() != 3 or kp.shape[0] != b or kp.shape[-1] != 2:
                raise ValueError(f"keypoints[{name!r}] must be (B, K, 2) x, y pixels with B={b}, got {tuple(kp.shape)}")
            points.append(kp)
            valid = torch.isfinite(kp).all(-1)  # (B, K)
            x, y = kp[..., 0].nan_to_num(0.0), kp[..., 1].nan_to_num(0.0)
            outside = valid & ((x < 0) | (y < 0) | (x >= w) | (y >= h))
            if outside.any():
                raise ValueError(f"keypoints[{name!r}] has points outside the {w}x{h} image at (sample, point) "
                                 f"{outside.nonzero().tolist()}; mark missing points with NaN")
            idx = (y.long() * w + x.long())
            values = window_mean.gather(1, idx) * valid
            count = valid.sum(1)
            per_name.append(torch.where(count > 0, values.sum(1) / count.clamp_min(1), torch.full_like(values[:, 0], float("nan"))))
        self._append_rows(ids, b, heatmaps.device, key=fingerprint(*points, labels[:, None]), intensity=torch.stack(per_name, 1), classes=labels)

    def compute(self) -> dict[str, torch.Tensor]:
        values = self._rows()["intensity"]
        return {name: torch.nanmean(values[:, i]) for i, name in enumerate(self.names)}

    def per_class(self) -> dict[str, dict[int, float]]:
        rows = self._rows()
        out: dict[str, dict[int, float]] = {}
        classes = rows["classes"]
        uniq = torch.unique(classes)
        for i, name in enumerate(self.names):
            col = rows["intensity"][:, i]
            out[name] = {int(c): float(torch.nanmean(col[classes == c])) for c in uniq}
        return out

    def per_sample(self) -> dict[str, torch.Tensor]:
        rows = self._rows()
        return {"ids": rows["sample_ids"], "intensity": rows["intensity"], "classes": rows["classes"],
                "names": self.names}
