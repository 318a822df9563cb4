"""ROAR: RemOve And Retrain (Hooker, Erhan, Kindermans, Kim, NeurIPS 2019, Sec. 3).

For each attribution method and fraction t, the top-t share of every image's pixels (ranked by the
estimator; Hooker's default is the squared attribution) is replaced by the per-channel dataset mean, in
the training *and* the test set; a model is retrained from scratch on the modified training set and
evaluated on the modified test set. A method whose removed pixels matter degrades accuracy more than a
random ranking.

Leakage. A constant fill draws the removed region's shape into the image: on MNIST a model retrained on
the binary removal mask alone classifies the digits. Two additions measure and remove that:

- ``RoarConfig.fill="noisy_linear"``: ROAD's noisy linear imputation (Rong, Leemann, Borisov, Kasneci,
  Kasneci, ICML 2022, "A Consistent and Efficient Evaluation Strategy for Attribution Methods", Sec. 4.2 and
  the official ``road/imputations.py``): every removed pixel equals the weighted mean of its 8 neighbours
  (weight 1/6 for the 4-neighbours, 1/12 for the diagonals, neighbours outside the image dropped), removed
  neighbours being unknowns too, i.e. one sparse linear system per image (solved batched: the block-diagonal
  system of a chunk of images by scipy's banded Cholesky), plus Gaussian noise of std ``fill_noise`` (official default 0.01, in [0, 1] pixel units
  here) on the removed pixels. ``fill="mean"`` (the default) keeps Hooker's per-channel mean.
- ``RoarConfig.mask_only_control=True``: for every (method, fraction) also retrain on the binary removal mask
  alone (the image replaced by the mask, 1 = removed, in every channel); its rows are named
  ``mask_only_name(method)`` and show how much a retrained model learns from the removal pattern alone.

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
import multiprocessing
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lightning_modules import progress
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


def removal_mask(attributions: torch.Tensor, fraction: float, estimator: str = "squared", keep: bool = False) -> torch.Tensor:
    """(B, 1, H, W) bool: the top-``fraction`` pixels of each map (``keep=True``: the bottom ones, KAR). Ties are
    broken by pixel index (``torch.topk`` is deterministic on the CPU for a fixed input), so it is reproducible."""
    if attributions.dim() != 4 or attributions.shape[1] != 1:
        raise ValueError(f"attributions must be (B, 1, H, W), got {tuple(attributions.shape)}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    b, _, h, w = attributions.shape
    n = int(round(fraction * h * w))
    removed = torch.zeros(b, h * w, dtype=torch.bool, device=attributions.device)
    if n == 0:
        return removed.view(b, 1, h, w)
    score = rank_estimator(attributions, estimator)
    # A tiny index-based tie-break keeps the ranking deterministic among equal scores.
    score = score - torch.arange(h * w, device=score.device, dtype=score.dtype) * 1e-12 * (score.abs().amax(1, keepdim=True) + 1)
    idx = score.topk(n, dim=1, largest=not keep).indices
    removed.scatter_(1, idx, True)
    return removed.view(b, 1, h, w)


def remove_top_fraction(
    images: torch.Tensor,
    attributions: torch.Tensor,
    fraction: float,
    fill: torch.Tensor,
    estimator: str = "squared",
    keep: bool = False,
) -> torch.Tensor:
    """Replace the top-``fraction`` pixels of each image (all channels) by ``fill`` (per-channel mean).

    ``keep=True`` is KAR: the *least* important pixels are replaced instead (see ``removal_mask``).
    """
    if images.dim() != 4 or attributions.dim() != 4 or attributions.shape[1] != 1:
        raise ValueError(f"images must be (B, C, H, W) and attributions (B, 1, H, W); got {tuple(images.shape)}, {tuple(attributions.shape)}")
    if images.shape[0] != attributions.shape[0] or images.shape[-2:] != attributions.shape[-2:]:
        raise ValueError(f"attributions {tuple(attributions.shape)} do not match images {tuple(images.shape)}")
    removed = removal_mask(attributions, fraction, estimator, keep)
    if not removed.any():
        return images.clone()
    c = images.shape[1]
    return torch.where(removed, fill.view(1, c, 1, 1).to(images), images)


#: ROAD's neighbour weights ((dy, dx), weight): 1/6 for the 4-neighbours, 1/12 for the diagonals (the official
#: ``road/imputations.py``; they sum to 1).
ROAD_NEIGHBOURS: tuple[tuple[tuple[int, int], float], ...] = (
    ((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
    ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
)


def _linear_imputation(images: np.ndarray, removed: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The noise-free part of ``noisy_linear_impute`` on one block of images (float64 numpy): one sparse system
    for the whole block (block-diagonal: no neighbour crosses an image border). Unknown ``i`` (a removed pixel)
    satisfies ``sum_j w_j (x_j - x_i) = 0`` over its in-image neighbours ``j``, the official code's system."""
    from scipy.linalg import solveh_banded
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    b, c, h, w = images.shape
    hw = h * w
    flat_removed = removed.reshape(-1)
    unknown = np.flatnonzero(flat_removed)
    n = unknown.size
    out = images.reshape(b, c, hw).transpose(0, 2, 1).reshape(b * hw, c).copy()  # pixel-major (B*H*W, C)
    if n == 0:
        return images.copy()
    var = np.full(b * hw, -1, dtype=np.int64)
    var[unknown] = np.arange(n)
    pix = unknown % hw
    row, col = pix // w, pix % w
    diag = np.zeros(n)
    rhs = np.zeros((n, c))
    anchored = np.zeros(n, dtype=bool)
    rows, cols, vals = [], [], []
    for (dy, dx), weight in ROAD_NEIGHBOURS:
        rr, cc = row + dy, col + dx
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        eq = np.flatnonzero(inside)
        nbr = unknown[eq] + dy * w + dx  # same image: the neighbour is inside it
        diag[eq] -= weight
        nbr_unknown = flat_removed[nbr]
        known_eq = eq[~nbr_unknown]
        rhs[known_eq] -= weight * out[nbr[~nbr_unknown]]
        anchored[known_eq] = True
        rows.append(eq[nbr_unknown])
        cols.append(var[nbr[nbr_unknown]])
        vals.append(np.full(int(nbr_unknown.sum()), weight))
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    # A connected region of removed pixels none of which touches a kept pixel (e.g. a fully removed image) has
    # no boundary values: the system is singular there; such regions take ``fallback`` (the fill of ``mean``).
    adjacency = coo_matrix((np.ones_like(vals), (rows, cols)), shape=(n, n))
    _, labels = connected_components(adjacency, directed=False)
    free = ~np.bincount(labels, weights=anchored.astype(float)).astype(bool)[labels]
    if free.any():
        keep = ~(free[rows] | free[cols])
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        diag[free] = -1.0
        rhs[free] = -fallback
    # -A is symmetric (opposite offsets have equal weights) and positive definite (diagonally dominant, every
    # region touches a kept pixel): a banded Cholesky solve. Unknowns are numbered in raster order, so a
    # neighbour is at most W + 1 unknowns away: the band is narrow (O(n W^2) work, against sparse LU's fill-in).
    lower = cols > rows
    offsets = cols[lower] - rows[lower]
    band = int(offsets.max()) if offsets.size else 0
    ab = np.zeros((band + 1, n))
    ab[0] = -diag
    ab[offsets, rows[lower]] = -vals[lower]
    solution = solveh_banded(ab, -rhs, lower=True, check_finite=False)
    out[unknown] = solution.reshape(n, c)
    return out.reshape(b, hw, c).transpose(0, 2, 1).reshape(b, c, h, w)


def noisy_linear_impute(images: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
                        generator: torch.Generator | None = None, fallback: torch.Tensor | None = None,
                        chunk: int = 128) -> torch.Tensor:
    """ROAD's noisy linear imputation (Rong et al. 2022, Sec. 4.2; see the module docstring): ``images`` (B, C, H, W)
    with the pixels where ``removed`` (B, 1, H, W) is True replaced by the solution of ``x_i = sum_j w_ij x_j /
    sum_j w_ij`` over their in-image 8-neighbours (removed neighbours are unknowns), plus N(0, ``noise``^2) noise
    drawn from ``generator`` (one draw per chunk of ``chunk`` images, in order). Removed regions that touch no kept
    pixel take ``fallback`` (per channel; default the images' mean). Kept pixels are returned unchanged.

    Exact per image: the systems of different images do not interact, so the solution does not depend on the
    batch or on ``chunk`` (tested); the noise draws do depend on ``chunk``."""
    if images.dim() != 4 or removed.dim() != 4 or removed.shape[1] != 1:
        raise ValueError(f"images must be (B, C, H, W) and removed (B, 1, H, W); got {tuple(images.shape)}, {tuple(removed.shape)}")
    if removed.shape[0] != images.shape[0] or removed.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"removed {tuple(removed.shape)} does not match images {tuple(images.shape)}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    removed = removed.to(torch.bool)
    c = images.shape[1]
    fb = images.mean(dim=(0, 2, 3)) if fallback is None else fallback.reshape(-1).expand(c)
    fb = fb.detach().double().cpu().numpy()
    from threadpoolctl import threadpool_limits  # (a scikit-learn dependency)

    parts = []
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].detach()
        m = removed[start:start + chunk]
        # one BLAS thread: the banded solves are small, extra threads only contend (4x slower on 2 shared cores)
        with threadpool_limits(limits=1, user_api="blas"):
            filled = _linear_imputation(x.double().cpu().numpy(), m.cpu().numpy(), fb)
        filled = torch.from_numpy(filled).to(images)
        if noise > 0:
            eps = torch.randn(x.shape, generator=generator, dtype=images.dtype).to(images.device)
            filled = torch.where(m, filled + noise * eps, filled)
        parts.append(torch.where(m, filled, x))
    return torch.cat(parts) if parts else images.clone()


def mask_images(removed: torch.Tensor, channels: int, dtype=torch.float32) -> torch.Tensor:
    """The mask-only control's inputs: the (B, 1, H, W) removal mask as an image (1 = removed) in every channel."""
    return removed.to(dtype).expand(-1, channels, -1, -1).contiguous()


#: suffix of the mask-only control rows' method names (``mask_only_name``)
MASK_ONLY_SUFFIX = "+mask_only"


def mask_only_name(method: str) -> str:
    """Method name of the mask-only control row of ``method``'s ranking."""
    return method + MASK_ONLY_SUFFIX


FILLS = ("mean", "noisy_linear")


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
    #: how removed pixels are filled: ``mean`` (Hooker et al.: the per-channel training-set mean) or
    #: ``noisy_linear`` (ROAD's noisy linear imputation, leakage-free; see the module docstring)
    fill: str = "mean"
    #: std of ``noisy_linear``'s noise, in [0, 1] pixel units (ROAD's official default 0.01)
    fill_noise: float = 0.01
    #: seed of ``noisy_linear``'s noise (train and test sets draw from seeds ``fill_seed`` and ``fill_seed + 1``)
    fill_seed: int = 0
    #: also retrain on the removal mask alone for every (method, fraction): rows ``mask_only_name(method)``
    mask_only_control: bool = False
    #: retrainings run at once, each in its own process at ``threads`` threads (1: in this process). The runs are
    #: independent and seeded, so the table is the same for any count (tested); on a 2-core machine two one-thread workers
    #: halve the wall time of the small retrained models (one of them does not use two threads well).
    workers: int = 1

    def __post_init__(self):
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"RoarConfig.workers must be an integer >= 1 (retrainings at once), got {self.workers!r}")
        if self.fill not in FILLS:
            raise ValueError(f"RoarConfig.fill={self.fill!r} is not one of {list(FILLS)}")
        if self.fill_noise < 0:
            raise ValueError(f"RoarConfig.fill_noise must be >= 0, got {self.fill_noise}")


def retrain_classifier(cfg: RoarConfig, num_classes: int, train: tuple, test: tuple, seed: int, run_dir: Path,
                       callbacks: list | tuple = ()) -> dict:
    """One ROAR retraining: a ``ClassifierTask`` trained from scratch on ``train`` under its own ``Trainer`` (resumed
    from ``run_dir/last.ckpt``), its test accuracy on ``test`` returned as ``{"test_accuracy"}``."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lightning_modules.data.tensors import TensorDataModule
    from lightning_modules.tasks.classifier import ClassifierTask

    pl.seed_everything(seed, workers=True, verbose=False)
    dm = TensorDataModule(train=train, test=test, batch_size=cfg.batch_size, seed=seed)
    task = ClassifierTask(
        model_name=cfg.model_name, num_classes=num_classes, model_kwargs=dict(cfg.model_kwargs),
        lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer, scheduler=cfg.scheduler,
        max_epochs=cfg.max_epochs,
    )
    ckpt = ModelCheckpoint(dirpath=run_dir, save_last=True, save_top_k=1, every_n_epochs=1, save_on_train_epoch_end=True)
    trainer = pl.Trainer(
        max_epochs=cfg.max_epochs, accelerator=cfg.accelerator, devices=cfg.devices, logger=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[ckpt, *callbacks], deterministic="warn",
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


def timed(fn: Callable, *args) -> tuple:
    """``(fn(*args), {"wall_s", "cpu_s"})``: the call's result and its cost in this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def _timed_retraining(cfg: RoarConfig, num_classes: int, modules: tuple[str, ...], train: tuple, test: tuple,
                      seed: int, run_dir: Path) -> tuple[dict, dict]:
    """A worker process's job: import the modules that register the model (a spawned worker starts without them),
    retrain, and time it in this process."""
    import importlib
    import warnings

    # first, before any tensor op: a forked child must not enter the OpenMP pool its parent used (libgomp is not
    # fork-safe; a one-thread op never enters it), and the retraining runs at ``threads`` anyway
    torch.set_num_threads(cfg.threads or 1)

    # the same warnings filters as the parent's pytest / CLI do not reach a fresh process: Lightning's advice
    # about dataloader workers is about the parent's data, not the tensors served here
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    for name in modules:
        importlib.import_module(name)
    return timed(retrain_classifier, cfg, num_classes, train, test, seed, run_dir)



@dataclass
class _Run:
    """One (method, fraction, seed) of a pipeline in flight: its row once known, else its retraining's future
    (a worker) or its computed ``(result, timing)`` (this process)."""

    method: str
    fraction: float
    seed: int
    row: dict | None = None
    future: Future | None = None
    computed: tuple[dict, dict] | None = None

    def done(self) -> bool:
        return self.row is not None or self.computed is not None or (self.future is not None and self.future.done())


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
        #: the worker processes while ``run`` is in flight with ``RoarConfig.workers`` > 1 (None: retrain here)
        self._pool: ProcessPoolExecutor | None = None
        self._modules: tuple[str, ...] = ()
        #: the progress stage of the runs in flight (``run`` / ``run_reference``); display only
        self._stage: progress.Stage | None = None
        (self.work_dir / "results").mkdir(parents=True, exist_ok=True)
        (self.work_dir / "timings").mkdir(parents=True, exist_ok=True)

    def _key(self, method: str, fraction: float, seed: int) -> str:
        """File stem of a run. Rows of a non-default fill carry it in the name, so a work folder's cached ``mean``
        results are never read as another fill's (the reference row and the mask-only control do not depend
        on the fill)."""
        stem = f"{method}_{fraction:.2f}_{seed}"
        cfg = self.config
        if cfg.fill != "mean" and method != REFERENCE and not method.endswith(MASK_ONLY_SUFFIX):
            stem += f"_{cfg.fill}{cfg.fill_noise:g}s{cfg.fill_seed}"
        return stem

    def _result_path(self, method: str, fraction: float, seed: int) -> Path:
        return self.work_dir / "results" / f"{self._key(method, fraction, seed)}.json"

    def _timing_path(self, method: str, fraction: float, seed: int) -> Path:
        return self.work_dir / "timings" / f"{self._key(method, fraction, seed)}.json"

    def timing(self, row: dict) -> dict:
        """``{"wall_s", "cpu_s"}`` recorded when ``row``'s retraining ran ({} if not recorded)."""
        path = self._timing_path(row["method"], float(row["fraction"]), int(row["seed"]))
        return json.loads(path.read_text()) if path.is_file() else {}

    def retrain(self, train: tuple, test: tuple, seed: int, run_dir: Path) -> dict:
        """Train from scratch on ``train`` and return test accuracy (resumes from ``run_dir/last.ckpt``)."""
        return retrain_classifier(self.config, self.num_classes, train, test, seed, run_dir, self.callbacks)

    def _run_dir(self, method: str, fraction: float, seed: int) -> Path:
        return self.work_dir / "runs" / self._key(method, fraction, seed)

    def _shrink(self, images: torch.Tensor) -> torch.Tensor:
        k = self.config.downsample
        if k < 1:
            raise ValueError(f"downsample must be >= 1, got {k}")
        return images if k == 1 else torch.nn.functional.avg_pool2d(images, k)

    def _start(self, method: str, fraction: float, seed: int, train: tuple, test: tuple) -> _Run:
        """``(method, fraction, seed)``: its finished row read back, its retraining done here (one worker) or handed
        to a worker process."""
        path = self._result_path(method, fraction, seed)
        run = _Run(method, fraction, seed)
        if self._stage is not None:
            self._stage.note(f"{method} {fraction:.2f} seed {seed}" + (" (cached)" if path.is_file() else ""))
        if path.is_file():
            run.row = json.loads(path.read_text())
            if path not in self._trained:  # (the reference row is read again after run_reference trained it)
                self.reused.append(run.row)
            return run
        train, test = (self._shrink(train[0]), train[1]), (self._shrink(test[0]), test[1])
        run_dir = self._run_dir(method, fraction, seed)
        if self._pool is not None:
            run.future = self._pool.submit(_timed_retraining, self.config, self.num_classes, self._modules,
                                           train, test, seed, run_dir)
            return run
        run.computed = timed(self.retrain, train, test, seed, run_dir)
        return run

    def _finish(self, run: _Run, on_result) -> dict:
        """The row of a started run, written atomically with its cost beside it when it was retrained."""
        if run.row is None:
            result, timing = run.future.result() if run.future is not None else run.computed
            run.row = {"method": run.method, "fraction": run.fraction, "seed": run.seed, **result}
            # the cost of this training (of the last, resumed part if it was interrupted), kept beside the result
            # so a report that reuses the result can still state what the whole benchmark costs
            with atomic_write(self._timing_path(run.method, run.fraction, run.seed)) as fh:
                json.dump(timing, fh)
            path = self._result_path(run.method, run.fraction, run.seed)
            with atomic_write(path) as fh:
                json.dump(run.row, fh)
            self._trained.add(path)
        if self._stage is not None:
            self._stage.advance()
        if on_result is not None:
            on_result(run.row)
        return run.row

    def _queue(self, pending: deque, rows: list, on_result, *args) -> None:
        """Start a run and finish, in order, every run ahead of the window of runs in flight (none with one worker,
        twice the workers otherwise, so that no worker waits for the next job)."""
        pending.append(self._start(*args))
        window = 0 if self._pool is None else 2 * self.config.workers
        while pending and (len(pending) > window or pending[0].done()):
            rows.append(self._finish(pending.popleft(), on_result))

    @contextmanager
    def _workers(self):
        """The worker processes of ``RoarConfig.workers`` > 1 for the duration of a ``run``: forked where the platform
        can (torch resets its thread pools in a forked child, as for DataLoader workers, and a script without a
        ``__main__`` guard is not run again), spawned elsewhere (there the caller's script needs the guard)."""
        if self.config.workers == 1 or self._pool is not None:
            yield
            return
        if self.callbacks:
            raise ValueError(f"RoarPipeline callbacks run in this process only; got {len(self.callbacks)} callbacks "
                             f"with RoarConfig.workers={self.config.workers}: use workers=1 with callbacks")
        from lightning_modules.models import registering_module

        module = registering_module(self.config.model_name)
        self._modules = (module,) if module else ()
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._pool = ProcessPoolExecutor(max_workers=self.config.workers, mp_context=multiprocessing.get_context(method))
        try:
            yield
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run_count(self, methods: int) -> int:
        """How many (method, fraction, seed) rows ``run`` produces for ``methods`` attribution methods."""
        cfg = self.config
        per_method = len(cfg.fractions) * len(cfg.seeds) * (2 if cfg.mask_only_control else 1)
        return (len(cfg.seeds) if cfg.reference else 0) + methods * per_method

    def _progress(self, description: str, total: int) -> progress.Stage:
        self._stage = progress.stage(f"{description} ({self.work_dir.name})", total=total, unit="runs")
        return self._stage

    def run_reference(self, train: tuple, test: tuple, on_result: Callable[[dict], None] | None = None) -> list[dict]:
        """Retrain on the unmodified data, once per seed (method ``"none"``, fraction 0)."""
        if self._stage is not None:  # inside ``run``: its stage counts these runs
            return self._reference_rows(train, test, on_result)
        with self._progress("ROAR reference model", len(self.config.seeds)), self._workers():
            try:
                return self._reference_rows(train, test, on_result)
            finally:
                self._stage = None

    def _reference_rows(self, train: tuple, test: tuple, on_result) -> list[dict]:
        rows: list[dict] = []
        pending: deque = deque()
        for seed in self.config.seeds:
            self._queue(pending, rows, on_result, REFERENCE, 0.0, seed, train, test)
        while pending:
            rows.append(self._finish(pending.popleft(), on_result))
        return rows

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
        with self._progress("ROAR retraining", self.run_count(len(attributions))), self._workers():
            try:
                return self._run(train, test, attributions, on_result)
            finally:
                self._stage = None

    def _run(self, train, test, attributions, on_result) -> list[dict]:
        cfg = self.config
        fill = train[0].mean(dim=(0, 2, 3))  # per-channel mean of the (unmodified) training set
        rows = self.run_reference(train, test, on_result) if cfg.reference else []
        pending: deque = deque()
        for method, (attr_train, attr_test) in attributions.items():
            if method == REFERENCE:
                raise ValueError(f"{REFERENCE!r} names the unmodified-data reference row; rename the method")
            if method.endswith(MASK_ONLY_SUFFIX):
                raise ValueError(f"method names ending in {MASK_ONLY_SUFFIX!r} name the mask-only control rows; rename {method!r}")
            for fraction in cfg.fractions:
                removed_train = self._checked_mask(train[0], attr_train, fraction)
                removed_test = self._checked_mask(test[0], attr_test, fraction)
                x_train = self.fill_removed(train[0], removed_train, fill, cfg.fill_seed)
                x_test = self.fill_removed(test[0], removed_test, fill, cfg.fill_seed + 1)
                for seed in cfg.seeds:
                    self._queue(pending, rows, on_result, method, fraction, seed, (x_train, train[1]), (x_test, test[1]))
                if cfg.mask_only_control:
                    c = train[0].shape[1]
                    m_train = (mask_images(removed_train, c, train[0].dtype), train[1])
                    m_test = (mask_images(removed_test, c, test[0].dtype), test[1])
                    for seed in cfg.seeds:
                        self._queue(pending, rows, on_result, mask_only_name(method), fraction, seed, m_train, m_test)
        while pending:
            rows.append(self._finish(pending.popleft(), on_result))
        return rows

    def _checked_mask(self, images: torch.Tensor, attributions: torch.Tensor, fraction: float) -> torch.Tensor:
        if attributions.shape[0] != images.shape[0] or attributions.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"attributions {tuple(attributions.shape)} do not match images {tuple(images.shape)}")
        return removal_mask(attributions, fraction, self.config.estimator)

    def fill_removed(self, images: torch.Tensor, removed: torch.Tensor, mean: torch.Tensor, seed: int) -> torch.Tensor:
        """``images`` with the ``removed`` pixels filled by ``RoarConfig.fill`` (``mean``: the per-channel ``mean``)."""
        if not removed.any():
            return images.clone()
        if self.config.fill == "mean":
            return torch.where(removed, mean.view(1, -1, 1, 1).to(images), images)
        gen = torch.Generator().manual_seed(int(seed))
        # the noise (and the imputation next to saturated pixels) may leave [0, 1]; the retrained models take [0, 1]
        # pixels (docs/CONVENTIONS.md), so the filled images are clipped there
        return noisy_linear_impute(images, removed, self.config.fill_noise, gen, fallback=mean).clamp_(0.0, 1.0)


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
    with progress.stage(f"attributions {path.parent.name}/{path.name}"):
        maps, timing = timed(compute)
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
