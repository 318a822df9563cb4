"""A ROAR benchmark end to end: the data, the explained model, the attributions, the retrainings and the plain
results (Hooker, Erhan, Kindermans, Kim, "A Benchmark for Interpretability Methods in Deep Neural Networks",
NeurIPS 2019; the protocol of their RoarTorch code).

:mod:`lightning_modules.tasks.roar` is the remove-and-retrain pipeline itself (one ``RoarPipeline`` over methods x
fractions x seeds); this module is what runs one benchmark around it, configured by a typed
:class:`RoarBenchmarkConfig`:

- the data: the caller's DataModule (e.g. the scenes a replication explains) or the benchmark's own
  (``data: {class_path, init_args}``, e.g. real MNIST or CIFAR-10), its first ``train_size`` / ``test_size`` images;
- the explained model: the caller's classifier, or (own data, RoarTorch's protocol) the reference model retrained on
  the unmodified data (the row ``none``), whose attributions then define the modified datasets;
- the attributions of every method, computed once for the training and the test set and cached beside the runs
  (``attributions/<split>_<method>.pt``), ranking by the explained model's prediction;
- the results cached per (method, fraction, seed) in a work folder ``<prefix>-<name>-<key>``, where ``key`` hashes
  everything that decides them except fractions and seeds (changing a setting never reuses stale results);
- the run's info (sizes, the explained model's accuracy, what was reused from the cache and what it cost) and its
  plain results: accuracy per method, fraction and seed, the reference row, and two measured mechanisms at the
  highest fraction (the share of the class evidence removed, and how well the removal mask alone predicts the class,
  Rong et al. 2022's leakage).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import torch

from lightning_modules.data.schema import evidence_of
from lightning_modules.tasks.roar import (
    REFERENCE, RoarConfig, RoarPipeline, attribution_timing, cached_attributions, mask_only_name, random_attributions,
    removal_mask,
)

#: bumped when the ROAR code changes what a cached (method, fraction, seed) result means
ROAR_CACHE_VERSION = 2
#: the settings hashed into a benchmark's work folder (with the data and the explained model)
CACHE_KEYS = ("methods", "train_size", "test_size", "model", "model_kwargs", "epochs", "batch_size", "lr", "weight_decay",
              "optimizer", "scheduler", "downsample", "threads")
#: the method name that ranks pixels by the data's ground-truth evidence (the protocol's validity reference)
ORACLE = "oracle"


@dataclass
class RoarBenchmarkConfig:
    """One ROAR benchmark (a config section; every field typed, so a wrong type or key fails when parsed).

    ``data``: its own DataModule as ``{class_path, init_args}`` (None: the caller's); ``methods``: method -> explainer
    kwargs (``explainer`` names the registered explainer where it differs; ``random`` and ``oracle`` are references);
    ``train_size`` / ``test_size``: the first images of each split (None: all); ``model`` / ``model_kwargs``: the
    retrained ``load_model`` network; ``epochs`` ... ``threads``: its training (:class:`RoarConfig`); ``workers``:
    retrainings at once, each in its own process; ``attribution_batch``: images per explainer call; ``fill`` /
    ``fill_noise``: how removed pixels are filled; ``mask_only_control``: also retrain on the removal mask alone."""

    data: dict[str, Any] | None = None
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    train_size: int | None = 2000
    test_size: int | None = 500
    fractions: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9])
    seeds: list[int] = field(default_factory=lambda: [0])
    model: str = "scenes_cnn"
    model_kwargs: dict[str, Any] | None = None
    epochs: int = 4
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    downsample: int = 1
    accelerator: str = "cpu"
    devices: int = 1
    threads: int | None = 1
    workers: int = 1
    attribution_batch: int = 100
    fill: str = "mean"
    fill_noise: float = 0.01
    mask_only_control: bool = False

    def __post_init__(self):
        self.roar_config()  # the pipeline's own checks (fill, workers, ...) when the section is read

    @classmethod
    def from_dict(cls, values: dict) -> "RoarBenchmarkConfig":
        """From a plain dict (Python callers): an unknown key is refused, naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    def roar_config(self) -> RoarConfig:
        """The retraining settings of the pipeline."""
        return RoarConfig(
            model_name=self.model, model_kwargs=dict(self.model_kwargs or {}), fractions=tuple(self.fractions),
            seeds=tuple(self.seeds), max_epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, optimizer=self.optimizer, scheduler=self.scheduler, downsample=self.downsample,
            accelerator=self.accelerator, devices=self.devices, threads=self.threads, fill=self.fill,
            fill_noise=self.fill_noise, mask_only_control=bool(self.mask_only_control), workers=self.workers,
        )


def instantiate_data(spec) -> pl.LightningDataModule | None:
    """A DataModule given as ``{class_path, init_args}`` (as in the YAML configs) or an instance."""
    if spec is None or isinstance(spec, pl.LightningDataModule):
        return spec
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"ROAR data must be a LightningDataModule or {{class_path: ..., init_args: {{...}}}}, got {spec!r}")
    module, _, cls = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), cls)(**dict(spec.get("init_args") or {}))


def roar_tensors(dm, train_size: int | None, test_size: int | None) -> tuple[tuple, tuple]:
    """(train, test) images in [0, 1] and labels of ``dm``, the first ``train_size`` / ``test_size`` of each."""
    out = []
    for split, size in (("train", train_size), ("test", test_size)):
        if hasattr(dm, "dataset"):  # the synthetic scenes
            ds = dm.dataset(split)
        else:
            dm.setup("fit")
            datasets = getattr(dm, "datasets", None)
            if not isinstance(datasets, dict) or split not in datasets:
                raise TypeError(f"ROAR needs a DataModule with .dataset(split) or .datasets[split] (e.g. CIFAR10DataModule); got {type(dm).__name__}")
            ds = datasets[split]
        if not hasattr(ds, "tensors"):
            raise TypeError(f"the ROAR {split} dataset {type(ds).__name__} has no tensors(); use an in-memory dataset")
        x, y = ds.tensors()
        n = x.shape[0] if size is None else min(size, x.shape[0])
        out.append((x[:n], y[:n]))
    return out[0], out[1]


def weights_digest(model: torch.nn.Module) -> str:
    """16 hex digits of the SHA-256 of a model's state (another model never reuses stale results)."""
    digest = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        digest.update(k.encode())
        digest.update(v.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_key(config: RoarBenchmarkConfig, dm, own_data: bool, explained: str) -> str:
    """Hash of everything that decides a benchmark's results except fractions and seeds: the data (the caller's
    data config, or the own DataModule's plain attributes), the explained model (``explained``; ignored with own
    data: the reference model explains) and the :data:`CACHE_KEYS` settings."""
    if not own_data:
        data = repr(getattr(dm, "config", type(dm).__name__))
    else:
        data = type(dm).__name__ + json.dumps({k: v for k, v in sorted(vars(dm).items()) if isinstance(v, (str, int, float, bool, Path)) and not k.startswith("_")}, default=str)
    settings = {k: getattr(config, k) for k in CACHE_KEYS}
    blob = json.dumps({"version": ROAR_CACHE_VERSION, "data": data, "explained": "reference" if own_data else explained,
                       **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def evidence_maps(dm, own_data: bool, split: str, images: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """The class evidence of the first ``len(images)`` images of ``split``, (kind, (N, 1, H, W) bool): the scenes'
    evidence masks (v1: the head masks) of the caller's DataModule, or the strokes (pixels > 0) of a single-channel
    black-background dataset (MNIST); None for other data."""
    if not own_data and hasattr(dm, "dataset"):
        batch = dm.dataset(split).__getitems__(list(range(images.shape[0])))
        evidence = evidence_of(batch)
        if evidence is not None:
            return ("evidence" if "evidence_mask" in batch else "head"), evidence.bool()
    if images.shape[1] == 1:
        return "stroke", images > 0
    return None


def mask_only_accuracy(train_masks: torch.Tensor, y_train: torch.Tensor, test_masks: torch.Tensor, y_test: torch.Tensor,
                       num_classes: int, ridge: float = 1.0) -> float:
    """Test accuracy of a linear classifier that sees only the removal masks (ridge regression on one-hot labels,
    closed form, with a bias): how much class information the removal *pattern* carries, with no pixel values. A
    lower bound for what a retrained CNN can read from it (the mask-only control of ROAR's leakage, Rong et al. 2022)."""
    def design(m):
        x = m.flatten(1).double()
        return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1)

    x = design(train_masks)
    y = torch.nn.functional.one_hot(y_train.long(), num_classes).double()
    w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
    return float((design(test_masks) @ w).argmax(1).eq(y_test.long()).double().mean())


def plain_results(config: RoarBenchmarkConfig, rows: list[dict], train, test, attributions: dict, evidence,
                  num_classes: int) -> dict:
    """Plain results of one benchmark: test accuracy per method, fraction and seed (the seeds' order), the
    reference row per seed, and two measured mechanisms at the highest fraction: the share of the class evidence
    the removal erases (``evidence``), and how well the removal mask *alone* predicts the class (a ridge-regression
    classifier fitted on the training masks, applied to the test masks): class information that a retrained model
    can read from the removal pattern instead of from the kept pixels (Rong et al. 2022)."""
    seeds, fractions = list(config.seeds), [float(f) for f in config.fractions]
    by = {(r["method"], float(r["fraction"]), int(r["seed"])): float(r["test_accuracy"]) for r in rows}
    out = {
        "fractions": fractions, "seeds": seeds, "methods": list(attributions), "num_classes": num_classes,
        "reference": [by[(REFERENCE, 0.0, s)] for s in seeds if (REFERENCE, 0.0, s) in by],
        "accuracy": {m: {str(f): [by[(m, f, s)] for s in seeds] for f in fractions} for m in attributions},
        "evidence": evidence[0] if evidence else None, "fill": config.fill,
    }
    if config.mask_only_control:
        # the retrained mask-only control: a model of the benchmark's architecture trained on the removal mask alone
        out["mask_only_retrained"] = {m: {str(f): [by[(mask_only_name(m), f, s)] for s in seeds] for f in fractions}
                                      for m in attributions}
    hi = max(fractions)
    out["evidence_removed"], out["evidence_all_removed"], out["mask_only_accuracy"] = {}, {}, {}
    for m, (a_train, a_test) in attributions.items():
        # the removed pixels, by the pipeline's own ranking
        removed_test, removed_train = removal_mask(a_test, hi), removal_mask(a_train, hi)
        if evidence:
            ev = evidence[1]
            n_ev = ev.flatten(1).sum(1).clamp(min=1)
            gone = (removed_test & ev).flatten(1).sum(1)
            out["evidence_removed"][m] = float((gone / n_ev).mean())
            out["evidence_all_removed"][m] = float((gone == ev.flatten(1).sum(1)).float().mean())
        out["mask_only_accuracy"][m] = mask_only_accuracy(removed_train, train[1], removed_test, test[1], num_classes)
    return out


@dataclass
class RoarOutcome:
    """What :func:`run_benchmark` returns: the pipeline's rows, the run's info, the plain results, and the explained
    model with its test images and their predicted classes (for benchmarks the caller runs on that model)."""

    rows: list[dict]
    info: dict
    results: dict
    explained: torch.nn.Module
    test_images: torch.Tensor
    test_targets: torch.Tensor


def run_benchmark(config: RoarBenchmarkConfig, dm, own_data: bool, work_dir: Path, classifier: torch.nn.Module,
                  make_explainer: Callable[[str, dict], Callable], device, num_classes: int,
                  on_explained: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], dict] | None = None) -> RoarOutcome:
    """One ROAR benchmark (see the module docstring) in ``work_dir`` (:func:`cache_key` names it): ``classifier``
    is explained unless the benchmark has its own data (``own_data``: the reference model explains);
    ``on_explained(model, test_images, predicted)`` runs before the retrainings and returns info entries to add."""
    train, test = roar_tensors(dm, config.train_size, config.test_size)
    pipeline = RoarPipeline(config.roar_config(), work_dir, num_classes=num_classes)
    # Results are cached per (method, fraction, seed): say how many this run reused (its wall time excludes them)
    # and what they cost when they were computed (recorded beside them).
    cached_before = len(list((work_dir / "results").glob("*.json")))
    reused: list[dict] = []
    if not own_data:
        explained = classifier  # the classifier was trained on these images
    else:
        # RoarTorch: the attributions come from the model trained on the unmodified data (the reference row).
        pipeline.run_reference(train, test)
        explained = pipeline.trained_model(REFERENCE, 0.0, config.seeds[0]).to(device)
    # Attributions explain the explained model's prediction on each image.
    with torch.no_grad():
        predict = lambda x: torch.cat([explained(x[i : i + 256].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], 256)])  # noqa: E731
        t_train, t_test = predict(train[0]), predict(test[0])

    def attributions(name: str, images: torch.Tensor, targets: torch.Tensor, split: str) -> torch.Tensor:
        def compute() -> torch.Tensor:
            if name == "random":
                return random_attributions((images.shape[0], 1, *images.shape[-2:]), seed=1 if split == "train" else 2)
            if name == ORACLE:  # the ground-truth evidence as the ranking (the protocol's validity reference)
                evidence = evidence_maps(dm, own_data, split, images)
                if evidence is None:
                    raise ValueError(f"ROAR method {ORACLE!r} needs data with ground-truth evidence (v2/v1 scenes, MNIST)")
                return evidence[1].float()
            explainer = make_explainer(name, config.methods[name])
            bs = config.attribution_batch
            return torch.cat([explainer(explained, images[i : i + bs].to(device), targets[i : i + bs].to(device)).cpu()
                              for i in range(0, images.shape[0], bs)])

        path = work_dir / "attributions" / f"{split}_{name}.pt"
        if path.is_file():  # reused: count what it cost when it was computed
            reused.append(attribution_timing(path))
        return cached_attributions(path, compute)

    maps = {m: (attributions(m, train[0], t_train, "train"), attributions(m, test[0], t_test, "test")) for m in config.methods}
    info = {"cache": work_dir.name, "train_images": int(train[0].shape[0]), "test_images": int(test[0].shape[0]),
            "image_size": list(train[0].shape[1:]), "explained_model_test_accuracy": float((t_test == test[1]).float().mean()),
            "num_classes": num_classes, "runs_reused_from_cache": cached_before,
            "data": type(dm).__name__, "split": getattr(dm, "split_info", None) or None}
    if on_explained is not None:
        info.update(on_explained(explained, test[0], t_test))
    rows = pipeline.run(train, test, maps)
    info["runs"] = len(rows)
    info["reused_attributions"] = len(reused)
    costs = reused + [pipeline.timing(r) for r in pipeline.reused]  # what the reused work cost when it ran
    info["reused_wall_s"] = sum(t.get("wall_s", 0.0) for t in costs)
    info["reused_cpu_s"] = sum(t.get("cpu_s", 0.0) for t in costs)
    info["retraining_wall_s"] = sum(pipeline.timing(r).get("wall_s", 0.0) for r in rows)
    info["retraining_cpu_s"] = sum(pipeline.timing(r).get("cpu_s", 0.0) for r in rows)
    results = plain_results(config, rows, train, test, maps, evidence_maps(dm, own_data, "test", test[0]), num_classes)
    return RoarOutcome(rows, info, results, explained, test[0], t_test)
