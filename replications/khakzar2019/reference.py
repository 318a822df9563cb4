"""(a) sanity checks and (b) pixel perturbation on a ROAR reference model (a benchmark with its own data, e.g. the
MNIST CNN retrained on the unmodified digits), with the methods of the test passes, on its first test images;
batched in chunks. The evidence of a single-channel image (MNIST) is its strokes (pixels > 0), which also serve as
the oracle map."""

from __future__ import annotations

import torch

from lightning_modules.explainers.baselines import id_seeded_random_maps
from lightning_modules.metrics import PixelPerturbation
from lightning_modules.tasks.randomization import ModelRandomizationTest, resolve_order
from replications.khakzar2019.claims import ORACLE
from replications.khakzar2019.measures import cascade_summary, evidence_precision, pixel_block

ORDERS, OUTPUTS = ("morf", "lerf"), ("logit", "prob")


def _curves(model, images, targets, n: int, batch: int, fractions, substrate: str, device, maps_of) -> dict:
    """MoRF / LeRF curves (logit and probability) of the maps ``maps_of(x, t, ids)`` on the first ``n`` images."""
    metrics = {(o, k): PixelPerturbation(o, fractions, substrate, k).to(device) for o in ORDERS for k in OUTPUTS}
    for i in range(0, n, batch):
        x, t = images[i : min(i + batch, n)].to(device), targets[i : min(i + batch, n)].to(device)
        ids = torch.arange(i, i + x.shape[0], device=device)
        maps = maps_of(x, t, ids)
        for metric in metrics.values():
            metric.update(model, x, maps, t, ids=ids)
    return {o: {k: metrics[(o, k)].per_sample()["curves"].cpu() for k in OUTPUTS} for o in ORDERS}


def reference_benchmarks(model, images: torch.Tensor, targets: torch.Tensor, explainers: dict, *, pixel_images: int,
                         sanity_images: int, fractions, substrate: str, sanity_init: str, sanity_std: float,
                         batch: int, device) -> dict:
    """``{"pixel": pixel_block(...), "sanity": cascade_summary(...)}`` of ``model`` on its first ``pixel_images`` /
    ``sanity_images`` images (each left out where 0)."""
    out: dict = {}
    n_pixel = min(pixel_images, images.shape[0])
    if n_pixel:
        curves, evidence = {}, {}
        for m, explainer in explainers.items():
            prec = []

            def maps_of(x, t, ids, m=m, explainer=explainer, prec=prec):
                maps = id_seeded_random_maps(ids, tuple(x.shape[-2:])).to(x.dtype) if m == "random" else explainer(model, x, t)
                if x.shape[1] == 1:
                    prec.append(evidence_precision(maps.abs(), x > 0).cpu())
                return maps.abs()

            curves[m] = _curves(model, images, targets, n_pixel, batch, fractions, substrate, device, maps_of)
            if prec:
                evidence[m] = torch.cat(prec)
        if images.shape[1] == 1:  # the oracle: the strokes (pixels > 0) as the map
            curves[ORACLE] = _curves(model, images, targets, n_pixel, batch, fractions, substrate, device,
                                     lambda x, t, ids: (x > 0).to(x.dtype))
        out["pixel"] = pixel_block(fractions, curves, evidence or None)
    n_sanity = min(sanity_images, images.shape[0])
    if n_sanity:
        test = ModelRandomizationTest(
            {k: v for k, v in explainers.items() if k != "random"}, resolve_order(model), modes=("cascading",),
            init=sanity_init, std=sanity_std, seed=0, keep_examples=0,
        ).to(device)
        x, t = images[:n_sanity].to(device), targets[:n_sanity].to(device)
        test.update(model, x, t, torch.arange(n_sanity, device=device))
        out["sanity"] = cascade_summary(test)
    return out
