"""Experiments as units: the experiment interface, the per-batch context and the module that runs them.

A paper's replication is a list of experiments over the same batches. Each :class:`Experiment` is, in the spirit of
a torchmetrics ``Metric``, ``update(ctx)`` once per batch and ``compute() -> results`` once per run; its state across
batches lives in torchmetrics states (registered as submodules), so that one process and N give the same results.
``claims(results)`` turns its plain results into the paper's claims.

Every experiment of a batch receives the same :class:`BatchContext`: the images, labels, ids, the ground truth,
the model, and each method's maps, computed the first time an experiment asks for them and shared by every
experiment after it (one explanation per method and batch, however many experiments read it).

:class:`ExperimentReplication` is the generic LightningModule: it owns the batch loop (one context per batch, the
experiments updated in their order), the map cache and the plain results; a paper supplies its experiments, its
data loaders and how a method's map is computed (:meth:`ExperimentReplication.explain`).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import torch
import torch.nn as nn

from lightning_modules import progress
from lightning_modules.data.schema import evidence_of


class BatchContext:
    """One batch as every experiment sees it.

    ``split``: the name of the pass the batch comes from (``test``, ``heldout``, a separate pass); ``model``: the
    classifier explained on this pass; ``methods``: the maps this context can give (``map(name)``)."""

    def __init__(self, batch: dict, split: str, batch_idx: int, model: nn.Module, methods: list[str],
                 explain: Callable[[str, "BatchContext"], torch.Tensor]):
        self.batch = batch
        self.split = split
        self.batch_idx = batch_idx
        self.model = model
        self.methods = list(methods)
        self._explain = explain
        self._maps: dict[str, torch.Tensor] = {}
        self._shared: dict[str, Any] = {}

    @property
    def images(self) -> torch.Tensor:
        return self.batch["image"]

    @property
    def labels(self) -> torch.Tensor:
        return self.batch["label"]

    @property
    def ids(self) -> torch.Tensor:
        return self.batch["id"]

    @property
    def evidence(self) -> torch.Tensor | None:
        """The class evidence of the batch (B,1,H,W) where the data has it (the ground truth of evidence protocols)."""
        return self.cached("evidence", lambda: evidence_of(self.batch))

    def map(self, method: str) -> torch.Tensor:
        """``method``'s maps of the batch (B,1,H,W), computed once per batch."""
        if method not in self._maps:
            if method not in self.methods:
                raise KeyError(f"no map {method!r} on the {self.split} pass; it has {self.methods}")
            self._maps[method] = self._explain(method, self)
        return self._maps[method]

    def maps(self, methods: list[str] | None = None) -> dict[str, torch.Tensor]:
        """The maps of ``methods`` (default: every method of the context), in that order."""
        return {m: self.map(m) for m in (self.methods if methods is None else methods)}

    def derive(self, batch: dict, split: str) -> "BatchContext":
        """A context of images derived from this batch (e.g. their adversarial versions), explained by the same model
        and methods, with its own map cache."""
        return BatchContext(batch, split, self.batch_idx, self.model, self.methods, self._explain)

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """A per-batch product shared between experiments (a learned mask's full result, an attack): computed the
        first time it is asked for."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]


class Experiment(nn.Module):
    """One experiment of a paper: ``update(ctx)`` per batch, ``compute()`` -> plain (JSON-serialisable) results,
    ``claims(results)`` -> the claims on them.

    ``splits``: the passes whose batches it reads (default: the test pass). State kept across batches must be
    torchmetrics states (a ``Metric`` attribute), so that it is synced under DDP and moved with the module."""

    name: str = ""
    splits: tuple[str, ...] = ("test",)

    def update(self, ctx: BatchContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def claims(self, results: dict, profile: str = "default") -> list:
        """The claims on the run's plain results (the whole run's, so that a claim may read its references)."""
        return []

    def examples(self) -> dict:
        """Tensors kept for the figures (not results): a few images and maps."""
        return {}


class ExperimentReplication(pl.LightningModule):
    """The generic replication: the batch loop over the experiments, the map cache and the plain results.

    A paper's module derives from it and from its reporting base (``replications.cli.ReplicationModule``); it
    registers its experiments (:meth:`add_experiments`, in the order they run on a batch), names its test loaders in
    ``self.test_splits`` (loader index -> split) and implements :meth:`explain`, :meth:`model_for` and
    :meth:`methods_for`."""

    def __init__(self):
        super().__init__()
        self.experiments = nn.ModuleDict()
        self.test_splits: list[str] = []
        #: seconds spent per method over the run (the paper's ``explain`` adds to it)
        self.timings: dict[str, float] = {}
        self.results: dict = {}

    def add_experiments(self, experiments: list[Experiment]) -> None:
        for e in experiments:
            if not e.name or e.name in self.experiments:
                raise ValueError(f"every experiment needs a unique name, got {e.name!r}")
            self.experiments[e.name] = e

    # a paper's part ---------------------------------------------------------------------------------------------
    def explain(self, method: str, ctx: BatchContext) -> torch.Tensor:  # pragma: no cover - abstract
        """``method``'s maps of ``ctx``'s batch (called once per method and batch, by the context)."""
        raise NotImplementedError

    def model_for(self, split: str) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def methods_for(self, split: str) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    # the loop ---------------------------------------------------------------------------------------------------
    def batch_context(self, batch: dict, split: str, batch_idx: int) -> BatchContext:
        return BatchContext(batch, split, batch_idx, self.model_for(split), self.methods_for(split), self.explain)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        split = self.test_splits[dataloader_idx]
        ctx = self.batch_context(batch, split, batch_idx)
        for e in self.experiments.values():
            if split in e.splits:
                progress.note(f"{split} batch {batch_idx + 1}: {e.name}")  # display only: which experiment now
                e.update(ctx)

    def on_test_epoch_end(self) -> None:
        results: dict = {}
        # display only: which experiment's results are being computed (some compute for long, e.g. a benchmark)
        with progress.stage("experiment results", total=len(self.experiments), unit="experiments", detail=True) as bar:
            for e in self.experiments.values():
                bar.note(e.name)
                for key, value in e.compute().items():
                    # experiments that report under one key (one attack, two experiments) add disjoint entries to it
                    if key in results and not (isinstance(value, dict) and isinstance(results[key], dict)
                                               and not set(value) & set(results[key])):
                        raise ValueError(f"experiment {e.name!r} reports {key!r} again")
                    results[key] = {**results[key], **value} if key in results else value
                bar.advance()
        results["timings_s"] = dict(self.timings)
        self.results = results

    def examples(self) -> dict:
        """Every experiment's figure tensors, by experiment name."""
        return {name: e.examples() for name, e in self.experiments.items()}


#: a paper's experiment files in the paper's order: ``<letter>_<name>.py``, then the others (``mask.py``, ``benchmark.py``)
_LETTERED = re.compile(r"^[a-z]_[a-z_]+$")


def experiment_names(package: str) -> list[str]:
    """The experiment files of ``package`` (a paper's ``replications.<paper>.experiments``): the lettered ones in
    the paper's order, then the others; files starting with ``_`` are helpers, not experiments."""
    path = Path(importlib.import_module(package).__file__).parent
    names = [m.name for m in pkgutil.iter_modules([str(path)]) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (not _LETTERED.match(n), n))


def experiment_modules(package: str) -> list:
    """The experiment modules of ``package`` in the order they see a batch (each module's ``ORDER``); each has
    ``build(rep) -> [Experiment]``, so adding an experiment is adding its file."""
    modules = [importlib.import_module(f"{package}.{n}") for n in experiment_names(package)]
    missing = [m.__name__ for m in modules if not hasattr(m, "ORDER") or not hasattr(m, "build")]
    if missing:
        raise AttributeError(f"experiment files {missing} need ORDER (where they see a batch) and build(rep)")
    return sorted(modules, key=lambda m: m.ORDER)
