"""Benchmark of the deletion / insertion metrics (RISE protocol) against their floor and against Quantus.

For 32 images and one model (the scenes CNN, random weights: the cost does not depend on them) at 64 px and
224 px, in one run:

1. ``time / floor``: wall time of ``DeletionAUC.update`` / ``InsertionAUC.update`` divided by the wall time of the
   forward passes they cannot avoid: the same number of images, in the same batch sizes, through the same model
   (+ softmax) on a pre-built input. Target <= 1.15.
2. ``Quantus / ours``: Quantus' ``PixelFlipping`` (deletion: substrate = the model's mean colour; insertion: the
   same metric started from the blurred image with a perturbation that copies the original pixels back), with
   the same number of forward passes per image as ours. Quantus flips entries of the (C*H*W) attribution and
   requires ``H*W % features_in_step == 0``; 3 channels never divide 224^2 or 64^2, so Quantus runs 24 steps of
   H*W/8 entries and ours 23 steps + the unperturbed step 0 = 24 forwards per image. Target >= 2.5x.

Timings: 3 interleaved repeats at each size (a 224 px run takes about a minute on the shared 2 cores), the
median of each is reported (wall time, or with ``--clock process`` the process's CPU time; use it with
``--threads 1`` on a shared machine). ``--model``: ``scenes_cnn`` (v1, random weights) or a benchmark-v2 model
(``scenes_v2_vgg``, ``scenes_v2_resnet``: shipped weights; default sizes then the model's input size).
``python -m lightning_modules.benchmarks.metrics`` or ``python -m replications bench metrics``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from lightning_modules.benchmarks.clock import steady_allocator
from lightning_modules.metrics import DeletionAUC, InsertionAUC
from lightning_modules.metrics.progressive import blur, forward_batch_sizes
from lightning_modules.utils import REPO_ROOT, atomic_write

N_IMAGES = 32
QUANTUS_STEPS = 24  # H*W/8 entries of the C*H*W attribution per step -> 3 * 8 = 24 steps


def _model(name: str = "scenes_cnn", seed: int = 0):
    """``(model, data_config, weights)`` (see ``benchmarks.explainers.load_bench_model``)."""
    from lightning_modules.benchmarks.explainers import load_bench_model

    torch.manual_seed(seed)
    model, cfg, weights = load_bench_model(name)
    return model.eval(), cfg, weights


#: ``time.perf_counter`` (wall) or ``time.process_time`` (CPU time of this process), set by ``run``
_CLOCK = {"now": time.perf_counter}


def _quantus():
    if not hasattr(np, "trapz"):  # Quantus 0.6 calls numpy.trapz, removed in numpy 2.4
        np.trapz = np.trapezoid
    import quantus

    return quantus


def _insert_original(arr, indices, original=None, **kwargs):
    """Quantus perturbation for insertion: copy the original image's entries at ``indices`` into ``arr``."""
    out = arr.copy()
    rows = np.arange(arr.shape[0])[:, None]
    out[rows, indices] = original[rows, indices]
    return out


def _timed(fn) -> float:
    now = _CLOCK["now"]
    t0 = now()
    fn()
    return now() - t0


def bench_size(size: int, repeats: int, max_batch: int = 256, model_name: str = "scenes_cnn") -> dict:
    quantus = _quantus()
    g = torch.Generator().manual_seed(size)
    model, cfg, _ = _model(model_name)
    c = cfg.input_size[0]
    images = torch.rand(N_IMAGES, c, size, size, generator=g)
    heatmaps = torch.rand(N_IMAGES, 1, size, size, generator=g)
    with torch.no_grad():
        targets = model(images).argmax(1)
    n_pix = size * size
    pixels_per_step = math.ceil(n_pix / (QUANTUS_STEPS - 1))  # 23 steps + step 0 = 24 forwards per image
    deletion = DeletionAUC(pixels_per_step=pixels_per_step, substrate="mean", max_batch=max_batch)
    insertion = InsertionAUC(pixels_per_step=pixels_per_step, max_batch=max_batch)
    steps = deletion.step_counts(size, size).numel()
    assert steps == QUANTUS_STEPS
    total = N_IMAGES * steps
    sizes = [(b1 - b0) * (s1 - s0) for b0, b1, s0, s1 in forward_batch_sizes(N_IMAGES, steps, max_batch)]
    probe = torch.rand(max(sizes), c, size, size, generator=g)

    def floor():
        with torch.no_grad():
            for s in sizes:
                model(probe[:s]).softmax(1)

    def floor_quantus_batches():  # the same forwards in Quantus' batches: one forward of all images per step
        with torch.no_grad():
            for _ in range(steps):
                model(probe[:N_IMAGES]).softmax(1)

    def ours_deletion():
        deletion.reset()
        deletion.update(model, images, heatmaps, targets)
        deletion.compute()

    def ours_insertion():
        insertion.reset()
        insertion.update(model, images, heatmaps, targets)
        insertion.compute()

    fis = n_pix * c // QUANTUS_STEPS
    x_np, y_np = images.numpy(), targets.numpy()
    a_np = heatmaps.numpy()
    blurred_np = blur(images).numpy()
    mean_colour = model.mean.flatten()
    if not torch.allclose(mean_colour, torch.full_like(mean_colour, float(mean_colour[0]))):
        raise ValueError(f"{model_name}'s mean colour {mean_colour.tolist()} is not grey: Quantus' constant baseline "
                         "cannot match our mean-colour deletion substrate")
    q_del = quantus.PixelFlipping(features_in_step=fis, perturb_baseline=float(mean_colour[0]), normalise=False, abs=False,
                                  disable_warnings=True, display_progressbar=False)
    q_ins = quantus.PixelFlipping(features_in_step=fis, normalise=False, abs=False, disable_warnings=True,
                                  display_progressbar=False, perturb_func=_insert_original,
                                  perturb_func_kwargs={"original": x_np.reshape(N_IMAGES, -1)})

    def quantus_deletion():
        q_del(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, device="cpu", batch_size=N_IMAGES)

    def quantus_insertion():
        q_ins(model=model, x_batch=blurred_np, y_batch=y_np, a_batch=a_np, device="cpu", batch_size=N_IMAGES)

    runs = {"floor": floor, "floor_quantus_batches": floor_quantus_batches, "deletion": ours_deletion, "insertion": ours_insertion,
            "quantus_deletion": quantus_deletion, "quantus_insertion": quantus_insertion}
    # warm-up (allocator, one-time imports): every run at small sizes; at large ones only the floor, which
    # allocates the same activation sizes, since one run there takes minutes on the 2-core machine
    for fn in (runs.values() if size <= 128 else [floor]):
        fn()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(_timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    # Quantus' insertion curve must be ours (same protocol, same forwards): a correctness guard for the comparison
    q_curve = np.array(q_ins(model=model, x_batch=blurred_np, y_batch=y_np, a_batch=a_np, device="cpu",
                             batch_size=N_IMAGES))
    return {
        "size": size, "images": N_IMAGES, "forwards_per_image": steps, "forwards": total, "max_batch": max_batch,
        "repeats": repeats, "seconds": med,
        "deletion_over_floor": med["deletion"] / med["floor"],
        "insertion_over_floor": med["insertion"] / med["floor"],
        "quantus_over_ours_deletion": med["quantus_deletion"] / med["deletion"],
        "quantus_over_ours_insertion": med["quantus_insertion"] / med["insertion"],
        "quantus_batches_floor_over_floor": med["floor_quantus_batches"] / med["floor"],
        "quantus_forwards_per_image": q_curve.shape[1],
    }


def _table(results: list[dict]) -> str:
    lines = [
        "| size | forwards (32 x steps) | floor s | deletion s | insertion s | deletion / floor | insertion / floor "
        "| Quantus del s | Quantus ins s | Quantus / ours (del) | Quantus / ours (ins) "
        "| floor in Quantus' batches (32) s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["seconds"]
        lines.append(
            f"| {r['size']} | {r['forwards']} ({r['images']} x {r['forwards_per_image']}) | {s['floor']:.3f} | "
            f"{s['deletion']:.3f} | {s['insertion']:.3f} | {r['deletion_over_floor']:.3f} | "
            f"{r['insertion_over_floor']:.3f} | {s['quantus_deletion']:.3f} | {s['quantus_insertion']:.3f} | "
            f"{r['quantus_over_ours_deletion']:.2f}x | {r['quantus_over_ours_insertion']:.2f}x | "
            f"{s['floor_quantus_batches']:.3f} |")
    return "\n".join(lines)


def run(out_path: str | os.PathLike = "reports/benchmarks/metrics.md", sizes=(64, 224), repeats=(3, 3),
        model_name: str = "scenes_cnn", threads: int | None = None, clock: str = "wall",
        command: str = "python -m lightning_modules.benchmarks.metrics", max_batch: int = 256) -> list[dict]:
    """Measure every size and write the markdown report to ``out_path`` (relative paths: from the repo root).
    ``sizes=None``: the model's input size."""
    if clock not in ("wall", "process"):
        raise ValueError(f"clock must be 'wall' or 'process', got {clock!r}")
    if threads is not None:
        torch.set_num_threads(threads)
    _CLOCK["now"] = time.perf_counter if clock == "wall" else time.process_time
    allocator = steady_allocator()
    _, cfg, weights = _model(model_name)
    if sizes is None:
        sizes = (int(cfg.input_size[-1]),)
    repeats = tuple(repeats) + (repeats[-1],) * (len(sizes) - len(repeats))
    results = [bench_size(s, r, max_batch=max_batch, model_name=model_name) for s, r in zip(sizes, repeats)]
    ok_floor = all(max(r["deletion_over_floor"], r["insertion_over_floor"]) <= 1.15 for r in results)
    ok_quantus = all(min(r["quantus_over_ours_deletion"], r["quantus_over_ours_insertion"]) >= 2.5 for r in results)
    text = f"""# Deletion / insertion metric benchmark

Generated by `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).
Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; shared with
other jobs while measured, so absolute seconds are noisy; the ratios are medians of interleaved repeats. Clock:
{'wall time' if clock == 'wall' else 'CPU time of the process'}. Memory: {allocator}.

Setting: {N_IMAGES} random images and maps, `{model_name}` ({weights}) wrapped in its normalisation, target = top-1
class, softmax probability, `max_batch={max_batch}` images per forward. Both sides do the same number of forward passes
per image (24: Quantus needs `H*W % features_in_step == 0`, so 24 steps of H*W/8 entries of the C*H*W
attribution; ours 23 steps of ceil(H*W/23) pixels plus the unperturbed step 0). Floor = the same number of images
in the same batch sizes through the same model + softmax on a pre-built tensor.

{_table(results)}

Targets: time / floor <= 1.15 — {'met' if ok_floor else 'NOT met'}; Quantus / ours >= 2.5x — {'met' if ok_quantus else 'NOT met'}.

How to read the Quantus column: Quantus' `PixelFlipping` is itself batched over images (one forward of all 32
images per step, `batch_size=32`); ours packs up to 256 step-images per forward and builds them from the pixel
ranks by broadcasting in torch, while Quantus copies numpy arrays and converts them to tensors at every step.
The last column is the forward-only cost in Quantus' batch sizes: (Quantus s - that column) is Quantus'
bookkeeping, (that column - floor) the cost of its smaller batches.
"""
    path = Path(out_path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    with atomic_write(path) as fh:
        fh.write(text)
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="reports/benchmarks/metrics.md")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="image sizes (default: 64 and 224 for scenes_cnn, the input size of a v2 model)")
    p.add_argument("--repeats", type=int, nargs="+", default=[3, 3])
    p.add_argument("--model", default="scenes_cnn", help="scenes_cnn (v1, random weights), scenes_v2_vgg, scenes_v2_resnet")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--clock", choices=["wall", "process"], default="wall",
                   help="wall time, or the process's CPU time (use with --threads 1 on a shared machine)")
    p.add_argument("--max-batch", type=int, default=256,
                   help="our metrics' images per forward (256; Quantus' PixelFlipping runs the 32 images of a step at once)")
    args = p.parse_args(argv)
    sizes = args.sizes if args.sizes is not None else ([64, 224] if args.model == "scenes_cnn" else None)
    command = "python -m lightning_modules.benchmarks.metrics" + (" " + " ".join(argv) if argv else "")
    results = run(args.out, None if sizes is None else tuple(sizes), tuple(args.repeats), args.model, args.threads,
                  args.clock, command, args.max_batch)
    for r in results:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "seconds"},
              {k: round(v, 3) for k, v in r["seconds"].items()})


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
