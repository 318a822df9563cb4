"""Per-sample metric state that survives DDP: every value is stored with its sample id, duplicates dropped in compute.

``DistributedSampler`` pads an uneven split by repeating samples, so a plain ``cat`` state would count those
samples twice. Each metric here keeps the batch's ``id`` (docs/CONVENTIONS.md: the index of the sample in its
split) next to its per-sample values; ``compute`` gathers everything, keeps the first row of every id and sorts by
id, so one process and N processes give the same per-sample tensors in the same order. Without ids (``ids=None``)
rows are stored with id ``-1`` and all kept: the sampler must then not pad (``drop_last`` / an unpadded sampler).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class PerSampleMetric(Metric):
    """A torchmetrics ``Metric`` whose states are per-sample rows keyed by sample id (``cat`` reduction)."""

    full_state_update = False
    #: names of the per-sample ``cat`` states (besides ``sample_ids``), set by subclasses in ``__init__``
    _row_states: tuple[str, ...] = ()

    def _add_row_states(self, *names: str) -> None:
        self.add_state("sample_ids", default=[], dist_reduce_fx="cat")
        for name in names:
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._row_states = tuple(names)

    def _append_rows(self, ids: torch.Tensor | None, batch_size: int, device: torch.device, **rows: torch.Tensor) -> None:
        if ids is None:
            ids = torch.full((batch_size,), -1, dtype=torch.long, device=device)
        else:
            ids = torch.as_tensor(ids, device=device).reshape(-1).long()
            if ids.numel() != batch_size:
                raise ValueError(f"ids has {ids.numel()} entries but the batch has {batch_size} samples; pass batch['id']")
            if (ids < 0).any():
                raise ValueError("sample ids must be >= 0 (batch['id'] is the sample's index in its split)")
        self.sample_ids.append(ids)
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
            keep = torch.cat([first, (~known).nonzero().squeeze(1)])
        else:
            keep = torch.arange(ids.numel(), device=ids.device)
        out = {name: value[keep] for name, value in rows.items()}
        out["sample_ids"] = ids[keep]
        return out
