"""Per-sample metric state that survives DDP: every value is stored with its sample id, duplicates dropped in compute.

``DistributedSampler`` pads an uneven split by repeating samples, so a plain ``cat`` state would count those
samples twice. Each metric here keeps the batch's ``id`` (docs/CONVENTIONS.md: the index of the sample in its
split) next to its per-sample values; ``compute`` gathers everything, keeps the first row of every id and sorts by
id, so one process and N processes give the same per-sample tensors in the same order. Without ids (``ids=None``)
rows are stored with id ``-1`` and all kept: the sampler must then not pad (``drop_last`` / an unpadded sampler).

A repeated id must be the same sample: each row also stores a fingerprint of what identifies its sample (the image,
or the ground truth the metric reads), and ``compute`` refuses ids that repeat with different fingerprints (a second
batch reusing ids 0..B-1 would otherwise be dropped silently). Padding repeats, with identical data, count once.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from lightning_modules.validation import (
    InputError, check_heatmaps, check_images, check_num_classes, check_sample_ids, check_targets,
)

#: relative tolerance on fingerprints: the same data gives the same sums up to reduction order across devices
FINGERPRINT_RTOL = 1e-6


def fingerprint(*parts: torch.Tensor | None) -> torch.Tensor:
    """``(B, 3)`` float64 per-sample fingerprint of the given ``(B, ...)`` tensors: sum, sum of squares and a
    position-weighted sum (so permuted pixels differ). NaN entries (keypoint padding) count as zero."""
    cols = []
    for x in parts:
        if x is None:
            continue
        flat = torch.nan_to_num(x.detach().reshape(x.shape[0], -1).double(), nan=0.0)
        w = torch.linspace(1.0, 2.0, flat.shape[1], dtype=torch.float64, device=flat.device)
        cols.append(torch.stack([flat.sum(1), (flat * flat).sum(1), (flat * w).sum(1)], 1))
    return sum(cols[1:], cols[0])


class PerSampleMetric(Metric):
    """A torchmetrics ``Metric`` whose states are per-sample rows keyed by sample id (``cat`` reduction)."""

    full_state_update = False
    #: names of the per-sample ``cat`` states (besides ``sample_ids``), set by subclasses in ``__init__``
    _row_states: tuple[str, ...] = ()

    def __init__(self, num_classes: int | None = None, **kwargs):
        """``num_classes``: the class count targets are checked against when the metric gets no model (pointing,
        localisation, keypoints); metrics given a model use the model's."""
        super().__init__(**kwargs)
        self.num_classes = check_num_classes(num_classes) if num_classes is not None else None

    def _add_row_states(self, *names: str) -> None:
        self.add_state("sample_ids", default=[], dist_reduce_fx="cat")
        self.add_state("sample_fingerprints", default=[], dist_reduce_fx="cat")
        for name in names:
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._row_states = tuple(names)

    # the boundary checks of ``update`` (lightning_modules.validation), shared by every metric
    def _check_model_inputs(self, model: nn.Module, images: torch.Tensor, heatmaps: torch.Tensor,
                            targets, allow_none: bool = False) -> torch.Tensor | None:
        """Images for ``model`` ([0, 1], its dtype, channels and size), heatmaps matching them, targets within the
        model's classes (None allowed where the metric then uses the model's top-1 class)."""
        check_images(images, model=model)
        check_heatmaps(heatmaps, images)
        if targets is None and allow_none:
            return None
        n = getattr(model, "num_classes", None)
        return check_targets(targets, images.shape[0], n if isinstance(n, int) else self.num_classes).to(images.device)

    def _check_map_inputs(self, heatmaps: torch.Tensor, targets, name: str = "heatmaps") -> torch.Tensor:
        check_heatmaps(heatmaps, name=name)
        return check_targets(targets, heatmaps.shape[0], self.num_classes).to(heatmaps.device)

    def _append_rows(self, ids: torch.Tensor | None, batch_size: int, device: torch.device,
                     key: torch.Tensor | None = None, **rows: torch.Tensor) -> None:
        """Store one batch's rows; ``key`` is the ``(B, k)`` fingerprint of what identifies each sample (None: not
        checked)."""
        if ids is None:
            ids = torch.full((batch_size,), -1, dtype=torch.long, device=device)
        else:
            ids = check_sample_ids(ids, batch_size, device)
        self.sample_ids.append(ids)
        fp = torch.full((batch_size, 3), float("nan"), dtype=torch.float64, device=device) if key is None else key
        self.sample_fingerprints.append(fp.to(device=device, dtype=torch.float64))
        for name, value in rows.items():
            if value.shape[0] != batch_size:
                raise AssertionError(f"state {name} has {value.shape[0]} rows for a batch of {batch_size}")
            getattr(self, name).append(value.detach())

    def _rows(self) -> dict[str, torch.Tensor]:
        """All per-sample rows across processes (synced here unless ``compute`` already did), de-duplicated."""
        with self.sync_context(should_sync=not self._is_synced, should_unsync=not self._is_synced):
            return self._local_rows()

    def _local_rows(self) -> dict[str, torch.Tensor]:
        """All per-sample rows, de-duplicated by sample id and sorted by id (rows without id keep their order, last)."""
        if isinstance(self.sample_ids, list) and not self.sample_ids:
            raise RuntimeError(f"{type(self).__name__}.compute() called before any update(): no samples were seen")
        ids = dim_zero_cat(self.sample_ids).long()
        rows = {name: dim_zero_cat(getattr(self, name)) for name in self._row_states}
        known = ids >= 0
        if known.any():
            k_idx = known.nonzero().squeeze(1)
            uniq, inverse = torch.unique(ids[k_idx], return_inverse=True)
            first = torch.full((uniq.numel(),), ids.numel(), dtype=torch.long, device=ids.device)
            first.scatter_reduce_(0, inverse, k_idx, reduce="amin")  # unique() sorts, so `first` is in id order
            self._check_repeats(ids, k_idx, first[inverse])
            keep = torch.cat([first, (~known).nonzero().squeeze(1)])
        else:
            keep = torch.arange(ids.numel(), device=ids.device)
        out = {name: value[keep] for name, value in rows.items()}
        out["sample_ids"] = ids[keep]
        return out

    def _check_repeats(self, ids: torch.Tensor, rows: torch.Tensor, first: torch.Tensor) -> None:
        """Refuse ids that repeat with a different sample: row ``rows[i]`` repeats ``first[i]`` (the id's first row)
        with another fingerprint. Padding repeats of the same sample pass."""
        repeat = rows != first
        if not bool(repeat.any()):
            return
        fps = dim_zero_cat(self.sample_fingerprints)
        same = torch.isclose(fps[rows], fps[first], rtol=FINGERPRINT_RTOL, atol=1e-9, equal_nan=True).all(1)
        bad = repeat & ~same
        if bool(bad.any()):
            bad_ids = torch.unique(ids[rows[bad]])
            more = " ..." if bad_ids.numel() > 10 else ""
            raise InputError(
                "ids", "each sample id used for one sample only (repeats are DDP padding of the same sample)",
                f"ids {bad_ids[:10].tolist()}{more} ({bad_ids.numel()} in all) reused for different data",
                "pass each sample's index in its split (batch['id']), or ids=None to keep every row",
            )


class SampleValues(PerSampleMetric):
    """Named per-sample values keyed by sample id, for an experiment's own per-image numbers (DDP-synced, padding
    duplicates counted once, sorted by id): ``update(ids, name=(B, ...) tensor, ...)``; ``compute()`` -> ``{name:
    rows, "sample_ids": ids}``; ``values(name)``, ``mean(name)``, ``count()``."""

    def __init__(self, *names: str, **kwargs):
        super().__init__(**kwargs)
        if not names:
            raise ValueError("SampleValues needs the names of its per-sample values, e.g. SampleValues('hits')")
        self._add_row_states(*names)

    def update(self, ids: torch.Tensor, **rows: torch.Tensor) -> None:
        unknown = set(rows) - set(self._row_states)
        if unknown:
            raise ValueError(f"unknown values {sorted(unknown)}; this metric keeps {list(self._row_states)}")
        self._append_rows(ids, int(ids.shape[0]), ids.device, **{k: v.float() for k, v in rows.items()})

    def compute(self) -> dict[str, torch.Tensor]:
        return self._rows()

    def values(self, name: str) -> torch.Tensor:
        """The values of ``name``, one per sample, sorted by sample id."""
        return self._rows()[name]

    def mean(self, name: str) -> torch.Tensor:
        return self.values(name).mean()

    def count(self) -> int:
        return int(self._rows()["sample_ids"].numel())
