"""ROAR: RemOve And Retrain (Hooker, Erhan, Kindermans, Kim, NeurIPS 2019, Sec. 3).

For each attribution method and fraction t, the top-t share of every image's pixels (ranked by the
estimator; Hooker's default is the squared attribution) is replaced by the per-channel dataset mean, in
the training *and* the test set; a model is retrained from scratch on the modified training set and
evaluated on the modified test set. A method whose removed pixels matter degrades accuracy more than a
random ranking.

Engineering:
- attributions are computed once per method and cached (``attributions/<method>.pt``);
- every (method, fraction, seed) retraining is a ``ClassifierTask`` under its own ``Trainer`` (multi-GPU
  capable through the usual Trainer flags) with a ``last.ckpt``, at a pinned CPU thread count
  (``RoarConfig.threads``); its result is written atomically to
  ``results/<method>_<fraction>_<seed>.json``. A killed run started again skips finished runs, resumes the
  interrupted one from its checkpoint and ends with the same table;
- a reference row (method ``"none"``, fraction 0, ``RoarConfig.reference``) retrains on the unmodified data:
  the accuracy every other row is read against, and (RoarTorch's protocol) the model whose attributions
  define the modified datasets when the explained model is not given (``RoarPipeline.trained_model``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from lightning_modules.utils import atomic_write, torch_threads


def rank_estimator(attributions: torch.Tensor, estimator: str = "squared") -> torch.Tensor:
    """(B, 1, H, W) attributions -> (B, H*W) importance used for ranking pixels."""
    a = attributions.flatten(1)
    if estimator == "squared":
        return a.pow(2)
    if estimator == "abs":
        return a.abs()
    if estimator == "raw":
        return a
    raise ValueError(f"unknown estimator {estimator!r}; use squared, abs or raw")


def remove_top_fraction(
    images: torch.Tensor,
    attributions: torch.Tensor,
    fraction: float,
    fill: torch.Tensor,
    estimator: str = "squared",
    keep: bool = False,
) -> torch.Tensor:
    """Replace the top-``fraction`` pixels of each image (all channels) by ``fill`` (per-channel mean).

    ``keep=True`` is KAR: the *least* important pixels are replaced instead. Ties are broken by pixel index
    (``torch.topk`` is deterministic on the CPU for a fixed input), so the result is reproducible.
    """
    if images.dim() != 4 or attributions.dim() != 4 or attributions.shape[1] != 1:
        raise ValueError(f"images must be (B, C, H, W) and attributions (B, 1, H, W); got {tuple(images.shape)}, {tuple(attributions.shape)}")
    if images.shape[0] != attributions.shape[0] or images.shape[-2:] != attributions.shape[-2:]:
        raise ValueError(f"attributions {tuple(attributions.shape)} do not match images {tuple(images.shape)}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    b, c, h, w = images.shape
    n = int(round(fraction * h * w))
    if n == 0:
        return images.clone()
    score = rank_estimator(attributions, estimator)
    # A tiny index-based tie-break keeps the ranking deterministic among equal scores.
    score = score - torch.arange(h * w, device=score.device, dtype=score.dtype) * 1e-12 * (score.abs().amax(1, keepdim=True) + 1)
    idx = score.topk(n, dim=1, largest=not keep).indices
    removed = torch.zeros(b, h * w, dtype=torch.bool, device=images.device)
    removed.scatter_(1, idx, True)
    removed = removed.view(b, 1, h, w)
    return torch.where(removed, fill.view(1, c, 1, 1).to(images), images)


#: method name of the reference row (unmodified data, fraction 0)
REFERENCE = "none"


def random_attributions(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The random-ranking baseline (one fixed random map per image)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g)


@dataclass
class RoarConfig:
    model_name: str = "resnet8"
    model_kwargs: dict = field(default_factory=dict)
    fractions: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    seeds: tuple[int, ...] = (0,)
    estimator: str = "squared"
    max_epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    #: average-pool the (modified) images by this factor before retraining: pixels are removed at full
    #: resolution, the retrained model sees a cheaper, lower-resolution copy (1 = off; a cost reduction)
    downsample: int = 1
    #: also retrain on the unmodified data (method "none", fraction 0): the baseline accuracy of the table
    reference: bool = True
    accelerator: str = "cpu"
    devices: int | str = 1
    #: CPU threads of every retraining (None: leave torch's setting alone). CPU reductions depend on the thread
    #: count, so a pinned count makes a table independent of the caller's ``torch.set_num_threads``; small
    #: retrained models also run faster on one thread of a shared machine than on two contended ones.
    threads: int | None = 1


class RoarPipeline:
    """Remove-and-retrain over methods x fractions x seeds, resumable (see the module docstring).

    ``train``/``test``: ``(images, labels)`` tensors in [0, 1]; ``attributions``: method -> (train_maps,
    test_maps), each (N, 1, H, W), computed once by the caller (``cached_attributions`` helps).
    """

    def __init__(self, config: RoarConfig, work_dir: str | Path, num_classes: int, callbacks: list | None = None):
        self.config = config
        self.callbacks = list(callbacks or [])
        self.work_dir = Path(work_dir)
        self.num_classes = num_classes
        #: rows this pipeline read from finished results instead of retraining
        self.reused: list[dict] = []
        self._trained: set[Path] = set()
        (self.work_dir / "results").mkdir(parents=True, exist_ok=True)
        (self.work_dir / "timings").mkdir(parents=True, exist_ok=True)

    def _result_path(self, method: str, fraction: float, seed: int) -> Path:
        return self.work_dir / "results" / f"{method}_{fraction:.2f}_{seed}.json"

    def _timing_path(self, method: str, fraction: float, seed: int) -> Path:
        return self.work_dir / "timings" / f"{method}_{fraction:.2f}_{seed}.json"

    def timing(self, row: dict) -> dict:
        """``{"wall_s", "cpu_s"}`` recorded when ``row``'s retraining ran ({} if not recorded)."""
        path = self._timing_path(row["method"], float(row["fraction"]), int(row["seed"]))
        return json.loads(path.read_text()) if path.is_file() else {}

    def retrain(self, train: tuple, test: tuple, seed: int, run_dir: Path) -> dict:
        """Train from scratch on ``train`` and return test accuracy (resumes from ``run_dir/last.ckpt``)."""
        import lightning.pytorch as pl
        from lightning.pytorch.callbacks import ModelCheckpoint

        from lightning_modules.data.tensors import TensorDataModule
        from lightning_modules.tasks.classifier import ClassifierTask

        cfg = self.config
        pl.seed_everything(seed, workers=True, verbose=False)
        dm = TensorDataModule(train=train, test=test, batch_size=cfg.batch_size, seed=seed)
        task = ClassifierTask(
            model_name=cfg.model_name, num_classes=self.num_classes, model_kwargs=dict(cfg.model_kwargs),
            lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer, scheduler=cfg.scheduler,
            max_epochs=cfg.max_epochs,
        )
        ckpt = ModelCheckpoint(dirpath=run_dir, save_last=True, save_top_k=1, every_n_epochs=1, save_on_train_epoch_end=True)
        trainer = pl.Trainer(
            max_epochs=cfg.max_epochs, accelerator=cfg.accelerator, devices=cfg.devices, logger=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=[ckpt, *self.callbacks], deterministic="warn",
            default_root_dir=run_dir, num_sanity_val_steps=0, limit_val_batches=0,
        )
        last = run_dir / "last.ckpt"
        with torch_threads(cfg.threads):
            trainer.fit(task, datamodule=dm, ckpt_path=str(last) if last.is_file() else None)
            metrics = trainer.test(task, datamodule=dm, verbose=False)[0]
        acc = metrics.get("test/acc", metrics.get("test_acc"))
        if acc is None:
            raise KeyError(f"ClassifierTask logged no test accuracy; got {sorted(metrics)}")
        return {"test_accuracy": float(acc)}

    def _run_dir(self, method: str, fraction: float, seed: int) -> Path:
        return self.work_dir / "runs" / f"{method}_{fraction:.2f}_{seed}"

    def _shrink(self, images: torch.Tensor) -> torch.Tensor:
        k = self.config.downsample
        if k < 1:
            raise ValueError(f"downsample must be >= 1, got {k}")
        return images if k == 1 else torch.nn.functional.avg_pool2d(images, k)

    def _one(self, method: str, fraction: float, seed: int, train: tuple, test: tuple, on_result) -> dict:
        path = self._result_path(method, fraction, seed)
        if path.is_file():
            row = json.loads(path.read_text())
            if path not in self._trained:  # (the reference row is read again after run_reference trained it)
                self.reused.append(row)
        else:
            train, test = (self._shrink(train[0]), train[1]), (self._shrink(test[0]), test[1])
            wall, cpu = time.perf_counter(), time.process_time()
            res = self.retrain(train, test, seed, self._run_dir(method, fraction, seed))
            row = {"method": method, "fraction": fraction, "seed": seed, **res}
            # the cost of this training (of the last, resumed part if it was interrupted), kept beside the result
            # so a report that reuses the result can still state what the whole benchmark costs
            timing = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
            with atomic_write(self._timing_path(method, fraction, seed)) as fh:
                json.dump(timing, fh)
            with atomic_write(path) as fh:
                json.dump(row, fh)
            self._trained.add(path)
        if on_result is not None:
            on_result(row)
        return row

    def run_reference(self, train: tuple, test: tuple, on_result: Callable[[dict], None] | None = None) -> list[dict]:
        """Retrain on the unmodified data, once per seed (method ``"none"``, fraction 0)."""
        return [self._one(REFERENCE, 0.0, seed, train, test, on_result) for seed in self.config.seeds]

    def trained_model(self, method: str, fraction: float, seed: int) -> torch.nn.Module:
        """The finished retraining of ``(method, fraction, seed)`` as a frozen eval model taking [0, 1] images
        (e.g. the reference model, whose attributions RoarTorch removes)."""
        from lightning_modules.tasks.classifier import ClassifierTask

        ckpt = self._run_dir(method, fraction, seed) / "last.ckpt"
        if not self._result_path(method, fraction, seed).is_file() or not ckpt.is_file():
            raise FileNotFoundError(f"no finished ROAR run {method} {fraction:.2f} seed {seed} under {self.work_dir}; run it first")
        task = ClassifierTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
        model = task.model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        model.num_classes = self.num_classes
        return model

    def run(
        self,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
        attributions: dict[str, tuple[torch.Tensor, torch.Tensor]],
        on_result: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        cfg = self.config
        fill = train[0].mean(dim=(0, 2, 3))  # per-channel mean of the (unmodified) training set
        rows = self.run_reference(train, test, on_result) if cfg.reference else []
        for method, (attr_train, attr_test) in attributions.items():
            if method == REFERENCE:
                raise ValueError(f"{REFERENCE!r} names the unmodified-data reference row; rename the method")
            for fraction in cfg.fractions:
                x_train = remove_top_fraction(train[0], attr_train, fraction, fill, cfg.estimator)
                x_test = remove_top_fraction(test[0], attr_test, fraction, fill, cfg.estimator)
                for seed in cfg.seeds:
                    rows.append(self._one(method, fraction, seed, (x_train, train[1]), (x_test, test[1]), on_result))
        return rows


def summarize(rows: list[dict]) -> dict[str, dict[float, float]]:
    """method -> fraction -> mean test accuracy over seeds."""
    acc: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        acc.setdefault(r["method"], {}).setdefault(float(r["fraction"]), []).append(r["test_accuracy"])
    return {m: {f: sum(v) / len(v) for f, v in sorted(d.items())} for m, d in acc.items()}


def cached_attributions(path: str | Path, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Load ``path`` if it exists (weights_only), else ``compute()`` and save atomically; the wall / CPU seconds
    of the computation are kept beside it (``<path>.timing.json``, read by ``attribution_timing``)."""
    path = Path(path)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    wall, cpu = time.perf_counter(), time.process_time()
    maps = compute()
    timing = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path.with_name(path.name + ".timing.json")) as fh:
        json.dump(timing, fh)
    with atomic_write(path, "wb") as fh:
        torch.save(maps, fh)
    return maps


def attribution_timing(path: str | Path) -> dict:
    """``{"wall_s", "cpu_s"}`` recorded when ``cached_attributions`` computed ``path`` ({} if not recorded)."""
    p = Path(path)
    p = p.with_name(p.name + ".timing.json")
    return json.loads(p.read_text()) if p.is_file() else {}
