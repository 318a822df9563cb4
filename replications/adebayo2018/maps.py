"""The batch as the sanity checks see it, and how two maps are compared.

One batch is explained by several models: the trained model (the black box, or a data randomisation test's
true-label model), its randomised stages, the random-label model and the controls. :class:`SanityContext` gives
each trained model its own :class:`~lightning_modules.experiment.BatchContext` (``ctx.of(key)``): its predicted
classes and its maps, computed the first time an experiment asks for them and shared by every experiment after it
(the model randomisation tests, the edge-detector comparison and the data randomisation test read the same
original maps). The randomised stages are explained inside their experiment (a stage is a model of one test only).

Similarity: the official code's measures (:func:`similarity`), summarised per measure and kept per image for the
claims (:func:`entry`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from lightning_modules.experiment import BatchContext
from replications.adebayo2018.constants import PER_IMAGE_MEASURES


def predicted(ctx: BatchContext) -> torch.Tensor:
    """The predicted classes of ``ctx``'s model on its batch (the class its maps explain), computed once."""
    def compute():
        with torch.no_grad():
            return ctx.model(ctx.images).argmax(1)

    return ctx.cached("targets", compute)


class SanityContext(BatchContext):
    """A batch of one split with the models explained on it (``models``: key -> (model, its methods)).

    ``of(key)``: that model's context, explaining its own predicted class; ``of(key, targets_of=other)``: the same
    model explaining ``other``'s predicted class (the data randomisation test's "original" convention)."""

    def __init__(self, batch: dict, split: str, batch_idx: int, models: dict[str, tuple[nn.Module, list[str]]],
                 explain):
        first = next(iter(models.values()), (None, []))[0]
        super().__init__(batch, split, batch_idx, first, [], explain)
        self.models = dict(models)

    @property
    def ids(self) -> torch.Tensor | None:
        return self.batch.get("id")

    def map(self, method: str) -> torch.Tensor:
        raise KeyError(f"the {self.split} pass is explained by several models {sorted(self.models)}: ask one of them "
                       f"for its maps, ctx.of(model).map({method!r})")

    def of(self, key: str, targets_of: str | None = None) -> BatchContext:
        if key not in self.models:
            raise KeyError(f"no model {key!r} on the {self.split} pass; it has {sorted(self.models)}")

        def make() -> BatchContext:
            model, methods = self.models[key]
            sub = BatchContext(self.batch, self.split, self.batch_idx, model, methods, self._explain)
            if targets_of is not None:
                reference = self.of(targets_of)
                sub.cached("targets", lambda: predicted(reference))
            return sub

        return self.cached(f"model:{key}" + ("" if targets_of is None else f"@{targets_of}"), make)

    def with_model(self, model: nn.Module, methods: list[str], targets: torch.Tensor | None = None) -> BatchContext:
        """A context of another model on this batch that no other experiment reads (a randomised stage), explaining
        ``targets`` (None: its own predicted class); its maps are computed once, in that context."""
        sub = BatchContext(self.batch, self.split, self.batch_idx, model, methods, self._explain)
        if targets is not None:
            sub.cached("targets", lambda: targets)
        return sub


# --------------------------------------------------------------------------------------------- similarity
def similarity() -> nn.Module:
    """The official code's measures: Spearman (abs / signed), SSIM with Gaussian weights, Spearman of HOG features."""
    from lightning_modules.metrics.similarity import MapSimilarity

    return MapSimilarity(ssim_gaussian=True, ssim_kernel_size=11, hog_correlation="spearman")


def update_similarity(metric: nn.Module, maps: torch.Tensor, reference: torch.Tensor, ids: torch.Tensor | None) -> None:
    """``metric.update`` keyed by the sample ids where the batch has them (a distributed sampler pads batches)."""
    if ids is None:
        metric.update(maps, reference)
    else:
        metric.update(maps, reference, ids)


def summarize_similarity(value) -> dict[str, dict[str, float]]:
    """MapSimilarity ``per_sample()`` values (or ``compute()`` means) -> measure -> {"mean", "std", "n",
    "undefined"}. A similarity is undefined (NaN) when a map is constant, e.g. a Grad-CAM map that the ReLU
    zeroes everywhere after randomisation: it has no ranks, so it is left out of the mean and counted in
    ``undefined``; ``n`` is the number of defined values (mean and std NaN when there is none)."""
    out = {}
    for measure, v in dict(value).items():
        if measure == "ids":
            continue
        t = torch.as_tensor(v, dtype=torch.float64).flatten().cpu()
        ok = torch.isfinite(t)
        d = t[ok]
        out[measure] = {
            "mean": float(d.mean()) if d.numel() else float("nan"),
            "std": (float(d.std(unbiased=False)) if d.numel() > 1 else 0.0) if d.numel() else float("nan"),
            "n": int(d.numel()),
            "undefined": int((~ok).sum()),
        }
    return out


def per_image(value) -> dict[str, list]:
    """The per-image values of the claims' measures as JSON lists (None where undefined)."""
    out = {}
    for measure in PER_IMAGE_MEASURES:
        t = torch.as_tensor(value[measure], dtype=torch.float64).flatten().cpu().tolist()
        out[measure] = [x if math.isfinite(x) else None for x in t]
    return out


def entry(value) -> dict:
    """A similarity metric's ``per_sample()`` as plain results: every measure's summary, the claims' per image."""
    return {"summary": summarize_similarity(value), "per_image": per_image(value)}
