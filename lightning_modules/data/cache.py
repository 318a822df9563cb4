"""The rendered splits of the synthetic benchmarks, cached on disk by content hash (v1 scenes, v2 scenes, multi-label
scenes): one loader, so every generator caches, recovers from a corrupt file and writes atomically alike."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import torch

from lightning_modules.utils import atomic_write

log = logging.getLogger(__name__)


def cached_render(path: Path, render: Callable[[], dict], what: str, cache: bool = True) -> dict:
    """The dict of tensors at ``path`` when cached, else ``render()`` (logged with its time, then saved atomically
    when ``cache``). A cache file that cannot be read is rendered again, not fatal. ``what`` names the split in the
    log (e.g. ``"test v2 scenes"``)."""
    if cache and path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a corrupt cache is regenerated, not fatal
            log.warning("%s cache %s unreadable (%s); regenerating", what, path, e)
    started = time.perf_counter()
    data = render()
    n = next(iter(data.values())).shape[0] if data else 0
    log.info("rendered %d %s in %.1f s", n, what, time.perf_counter() - started)
    if cache:
        with atomic_write(path, "wb") as fh:
            torch.save(data, fh)
    return data
