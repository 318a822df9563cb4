"""Benchmark of the RISE explainer against its floor: the N masked forward passes it cannot avoid.

``benchmark_rise`` measures, in one run,

- ``time_ratio``: time of ``RISE(model, images, targets)`` / time of the same forward passes (same batch sizes,
  same number) on a pre-built input (:func:`~lightning_modules.benchmarks.clock.cost_clock`: on the CPU the
  process's CPU time with one torch thread, robust to other jobs on the cores; on CUDA synchronised wall time), i.e. the overhead of mask application, softmax and the
  saliency contraction. Target: <= 1.10.
- ``peak_mb``: the peak extra memory of one explanation call above the state before it (the cached masks are
  generated beforehand and counted separately as ``masks_mb``). On CUDA: ``torch.cuda.max_memory_allocated``.
  On the CPU: the process's resident set, sampled every millisecond in a thread during the call, together
  with ``getrusage``'s high-water mark (an upper bound of the working set: freed blocks the allocator keeps
  count too). Target: <= the explainer's ``memory_budget_mb``.

Run ``python -m lightning_modules.benchmarks.rise`` for a stand-alone measurement on the scenes network.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import threading
import time

import torch
import torch.nn as nn

from lightning_modules.benchmarks.clock import clock_name, cost_clock
from lightning_modules.explainers.rise import RISE


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class _PeakSampler:
    """Samples the resident set every ``interval`` s in a thread; ``peak`` is the largest sample."""

    def __init__(self, interval: float = 0.001):
        self.interval = interval
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def forward_batch_sizes(n_images: int, n_masks: int, chunk: int) -> list[int]:
    """The batch sizes of RISE's forward passes (same walk as ``RISE._chunks``)."""
    imgs_per_pass = max(1, chunk // n_masks)
    masks_per_pass = min(n_masks, chunk)
    sizes = []
    for b0 in range(0, n_images, imgs_per_pass):
        b = min(n_images, b0 + imgs_per_pass) - b0
        for m0 in range(0, n_masks, masks_per_pass):
            sizes.append(b * (min(n_masks, m0 + masks_per_pass) - m0))
    return sizes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark_rise(model: nn.Module, images: torch.Tensor, targets: torch.Tensor | int = 0,
                   explainer: RISE | None = None, repeats: int = 3, **rise_kwargs) -> dict:
    """Time ratio and peak memory of one RISE call (see the module docstring). ``explainer`` or RISE kwargs."""
    rise = explainer or RISE(**rise_kwargs)
    model.eval()
    device = images.device
    B, C, H, W = images.shape
    masks = rise.masks((H, W), device)  # cached: generation is not part of a call's working set
    chunk = rise.chunk_size(model, images)
    sizes = forward_batch_sizes(B, rise.n_masks, chunk)
    probe = torch.rand(max(sizes), C, H, W, device=device, generator=torch.Generator(device=device).manual_seed(0))

    # -- peak memory of a cold call (first call after the masks exist) --------------------------------------
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        rise(model, images, targets)
        _sync(device)
        peak_mb = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        memory_method = "torch.cuda.max_memory_allocated"
    else:
        before = _rss_mb()
        hw_before = _maxrss_mb()
        with _PeakSampler() as sampler:
            rise(model, images, targets)
        hw_after = _maxrss_mb()
        peak = sampler.peak
        if hw_after > hw_before:  # the call set a new high-water mark: getrusage saw the true peak
            peak = max(peak, hw_after)
        peak_mb = max(0.0, peak - before)
        memory_method = "resident set (1 ms sampling + getrusage high-water mark)"

    # -- time: interleaved repeats, the floor and the method on the same machine state ---------------------
    def floor():
        with torch.no_grad():
            for s in sizes:
                model(probe[:s]).softmax(1)
        _sync(device)

    def method():
        rise(model, images, targets)
        _sync(device)

    t_floor, t_method = [], []
    with cost_clock(device) as now:
        floor()  # warm-up of both (allocator, kernels)
        method()
        for _ in range(repeats):
            t0 = now()
            floor()
            t_floor.append(now() - t0)
            t0 = now()
            method()
            t_method.append(now() - t0)
    # min over repeats: the least-disturbed run of each on a shared machine
    floor_s, method_s = min(t_floor), min(t_method)
    return {
        "device": str(device),
        "images": B,
        "image_size": [H, W],
        "n_masks": rise.n_masks,
        "chunk_size": chunk,
        "forward_passes": len(sizes),
        "forward_s": floor_s,
        "rise_s": method_s,
        "forward_s_median": statistics.median(t_floor),
        "rise_s_median": statistics.median(t_method),
        "time_ratio": method_s / floor_s,
        "peak_mb": peak_mb,
        "budget_mb": (None if rise.max_batch_elements is not None else rise.memory_budget_mb),
        "masks_mb": masks.numel() * masks.element_size() / 2**20,
        "memory_method": memory_method,
        "repeats": repeats,
        "clock": clock_name(device),
    }


def main(argv=None) -> None:  # pragma: no cover - command line
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="scenes_cnn")
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n-masks", type=int, default=1000)
    ap.add_argument("--grid-size", type=int, default=7)
    ap.add_argument("--memory-budget-mb", type=float, default=128.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    from lightning_modules.models import load_model

    model, cfg = load_model(args.model, num_classes=args.num_classes)
    model = model.to(args.device)
    images = torch.rand(args.images, cfg.input_size[0], args.size, args.size, device=args.device,
                        generator=torch.Generator(device=args.device).manual_seed(0))
    res = benchmark_rise(model, images, 0, repeats=args.repeats, n_masks=args.n_masks, grid_size=args.grid_size,
                         memory_budget_mb=args.memory_budget_mb)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
