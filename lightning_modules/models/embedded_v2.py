"""The embedded benchmark v2's models (issue 19): ``scenes_v2_vgg`` (plain VGG-style, 8 ReLU conv layers) and
``scenes_v2_resnet`` (ResNet-18 layout, 8 residual blocks), trained from scratch on the v2 scenes
(``lightning_modules.data.scenes_v2``) and shipped in ``weights/`` with their SHA-256 (``models.shipped``).

``load_model("scenes_v2_vgg", weights="embedded")`` returns ``(model, data_config)``: frozen, eval, [0, 1] inputs,
the hash-checked shipped weights -- it never trains. ``weights="retrain"`` trains the model into
``<data root>/embedded_v2/<config hash>/`` instead; ``python -m replications train-embedded scenes_v2_vgg``
(``models.retrain_and_ship``) retrains and ships. This module also holds what the other embedded kinds share
(``fit_embedded``, ``save_trained``, ``build_embedded``, ``load_shipped_or_cached``, ``train_and_ship``). Training is deterministic: one seed, ``TRAIN_THREADS`` CPU threads
(``utils.torch_threads``), no augmentation (a horizontal flip would swap the 45 and 135 degree classes).

What is measured when a model is trained (``model.embedded_info``, the manifest's ``info``): test accuracy, the
evidence check (``evidence_check``: accuracy with the evidence removed and with the non-evidence parts removed by
re-rendering the scenes without them; the class score after blurring / mean-filling only the evidence region),
FLOPs and CPU milliseconds per forward (``forward_cost``), and the training's wall and CPU time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from lightning_modules.data.scenes_v2 import PROFILES, ScenesV2, ScenesV2DataModule, SyntheticScenesV2Config
from lightning_modules.models.loader import architecture_version, load_model, unwrap
from lightning_modules.models.registry import EmbeddedSpec, register_embedded
from lightning_modules.models.shipped import ShippedWeightsError, config_hash, load_shipped, ship, shipped_entry
from lightning_modules.utils import atomic_write, data_root, file_lock, torch_threads

log = logging.getLogger(__name__)

#: CPU threads of every training (the same seed gives the same weights only at the same thread count)
TRAIN_THREADS = 2


@dataclass(frozen=True)
class EmbeddedV2Config:
    """What decides a v2 model's trained weights (hashed into its cache folder and its manifest entry)."""

    scenes: SyntheticScenesV2Config = field(default_factory=SyntheticScenesV2Config)
    model_name: str = "scenes_vgg"
    model_kwargs: dict = field(default_factory=dict)
    max_epochs: int = 6
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.03
    label_smoothing: float = 0.0
    seed: int = 0

    def content_hash(self) -> str:
        return config_hash(self, arch_version=architecture_version(self.model_name))


EMBEDDED_V2: dict[str, EmbeddedV2Config] = {
    # 20 epochs: a 6-epoch pilot of the VGG reached 0.82 test accuracy, short of the benchmark's 0.90
    "scenes_v2_vgg": EmbeddedV2Config(model_name="scenes_vgg", model_kwargs={"width": 16}, max_epochs=20),
    "scenes_v2_resnet": EmbeddedV2Config(model_name="scenes_resnet", model_kwargs={"width": 16}, max_epochs=20),
    # seconds: for tests of the training / loading path (never shipped; its accuracy is whatever it reaches)
    "scenes_v2_smoke": EmbeddedV2Config(scenes=PROFILES["smoke"], model_name="scenes_vgg", model_kwargs={"width": 4},
                                        max_epochs=1),
}
SHIPPED_V2 = ("scenes_v2_vgg", "scenes_v2_resnet")
#: a reduced schedule (about a CPU minute) whose test accuracy is recorded with the shipped VGG
#: (``info["reduced_schedule"]``): the test that retraining reproduces a recorded accuracy runs this one, since the
#: full trainings take tens of CPU minutes. Sized to end near a plateau, where another machine's rounding moves the
#: accuracy less than the test's tolerance: across training seeds 0/1/2 it reached 0.939 / 0.948 / 0.934 (1000 test
#: scenes), while 2 epochs on 1500 scenes gave 0.25 / 0.41 / 0.31 and 4 epochs on 3000 gave 0.83 / 0.84 / 0.78.
REDUCED_SCHEDULE = EmbeddedV2Config(
    scenes=SyntheticScenesV2Config(train_size=3000, val_size=200, test_size=1000, heldout_size=0),
    model_name="scenes_vgg", model_kwargs={"width": 16}, max_epochs=6)


def embedded_v2_config(name: str | EmbeddedV2Config) -> EmbeddedV2Config:
    if isinstance(name, EmbeddedV2Config):
        return name
    if name not in EMBEDDED_V2:
        raise ValueError(f"unknown v2 model {name!r}; known: {sorted(EMBEDDED_V2)}")
    return EMBEDDED_V2[name]


# --------------------------------------------------------------------------------------------- measurements
@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Softmax probabilities (N, K), batched."""
    return torch.cat([F.softmax(model(images[i:i + batch_size]), 1) for i in range(0, images.shape[0], batch_size)])


def accuracy(model: torch.nn.Module, dataset: ScenesV2, mask: torch.Tensor | None = None) -> float:
    images, labels = dataset.tensors()
    correct = predict(model, images).argmax(1) == labels
    if mask is not None:
        correct = correct[mask]
    return float(correct.float().mean())


def evidence_check(model: torch.nn.Module, dataset: ScenesV2) -> dict:
    """Does the model use the evidence, and do blur and mean filling remove it?

    - accuracy as rendered; on the difficult subset; with the evidence of every object removed (each grating
      replaced by its mean colour, by re-rendering); with the non-evidence parts removed (feet, plain bodies);
      with the clutter and with the distractor objects removed;
    - normalised class score ``(s_x - s_null) / (s_orig - s_null)`` (means over images of the softmax probability
      of the label) after only the label's evidence region is replaced by the blurred image (Fong's null, Gaussian
      sigma 10, and RISE's insertion blur, kernel 11 sigma 5) or by the image's mean colour; ``s_null``: the
      whole image blurred with sigma 10. Near 0 = the perturbation removes the evidence.
    """
    from lightning_modules.metrics.progressive import blur
    from lightning_modules.metrics.suppression import null_blur

    images, labels = dataset.tensors()
    difficult = dataset.data["difficult"]
    out = {
        "n_images": len(dataset),
        "chance": 1.0 / dataset.num_classes,
        "accuracy": accuracy(model, dataset),
        "accuracy_difficult": accuracy(model, dataset, difficult),
        "accuracy_easy": accuracy(model, dataset, ~difficult),
    }
    for part in ("evidence", "non_evidence", "clutter", "distractors"):
        out[f"accuracy_{part}_removed"] = accuracy(model, dataset.counterfactual((part,)))
    ev = dataset.__getitems__(range(len(dataset)))["evidence_mask"]
    score = lambda x: predict(model, x).gather(1, labels[:, None]).squeeze(1)  # noqa: E731
    s_orig, s_null = score(images), score(null_blur(images, 10.0))
    fills = {"blur_sigma10": null_blur(images, 10.0), "blur_k11_sigma5": blur(images, 11, 5.0),
             "image_mean": images.mean((2, 3), keepdim=True).expand_as(images)}
    out["score_original"] = float(s_orig.mean())
    out["score_null_blur"] = float(s_null.mean())
    for name, fill in fills.items():
        s = score(torch.where(ev, fill, images))
        out[f"normalised_score_evidence_{name}"] = float((s.mean() - s_null.mean()) / (s_orig.mean() - s_null.mean()))
    return out


def forward_cost(model: torch.nn.Module, image_size: int = 64, batch_size: int = 64, repeats: int = 5,
                 threads: int = 2) -> dict:
    """FLOPs of one image's forward (``torch.utils.flop_counter``; a multiply-add counts 2) and CPU time of a
    batch-``batch_size`` forward at ``threads`` threads (process CPU seconds, median of ``repeats``: robust on
    a shared machine, where wall time overstates the work)."""
    import statistics

    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(batch_size, 3, image_size, image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x[:1])
    with torch_threads(threads), torch.no_grad():
        model(x)
        cpu, wall = [], []
        for _ in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            model(x)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    return {"flops_per_image": int(fc.get_total_flops()), "batch_size": batch_size, "threads": threads,
            "cpu_ms_per_batch": round(1000 * statistics.median(cpu), 2),
            "wall_ms_per_batch": round(1000 * statistics.median(wall), 2),
            "cpu_ms_per_image": round(1000 * statistics.median(cpu) / batch_size, 3),
            "parameters": sum(p.numel() for p in model.parameters())}


# --------------------------------------------------------------------------------------------- training
def epoch_logger(what: str = "", cpu: bool = True):
    """A Lightning callback that logs each epoch's training accuracy and time (a training runs minutes: say where it
    is); ``what`` prefixes the line, ``cpu``: process CPU seconds, else wall seconds."""
    from lightning.pytorch.callbacks import Callback

    clock, unit = (time.process_time, "s CPU") if cpu else (time.perf_counter, "s")

    class EpochLog(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.t0 = clock()

        def on_train_epoch_end(self, trainer, pl_module):
            acc = trainer.callback_metrics.get("train/acc")
            log.info("%sepoch %d/%d: train acc %.4f (%.0f %s)", what, trainer.current_epoch + 1, trainer.max_epochs,
                     float(acc) if acc is not None else float("nan"), clock() - self.t0, unit)

    return EpochLog()


def train_embedded_v2(cfg: EmbeddedV2Config, out_dir: Path | None = None, root: str | Path | None = None,
                      accelerator: str = "cpu") -> tuple:
    """Train ``cfg`` with ``ClassifierTask`` (deterministic: seed, ``TRAIN_THREADS``); returns ``(net, info)``
    (the bare network on the CPU) and saves ``model.pt`` + ``info.json`` into ``out_dir``.

    ``accelerator``: Lightning's (``"cpu"``, ``"gpu"``, ``"auto"``); the measurements after training always run on
    the CPU. A GPU training gives other weights than a CPU one (other kernels), as another CPU does: what a
    retraining must reproduce is the accuracy."""
    with torch_threads(TRAIN_THREADS):
        return _train(cfg, out_dir, root, accelerator)


def fit_embedded(cfg, dm, accelerator: str = "cpu", callbacks: list | tuple = (), **task_kwargs) -> tuple:
    """Fit ``ClassifierTask`` on the scenes of ``dm`` under an embedded model's config ``cfg`` (model, optimiser,
    schedule, seed; no augmentation, no validation); returns ``(net, model, trainer, info)``: the bare network on the
    CPU, a frozen eval copy of it to measure, the trainer and the training's record (config, its hash, wall and CPU
    times, threads, training images). ``task_kwargs`` go to ``ClassifierTask`` (e.g. ``multilabel=True``)."""
    import lightning.pytorch as pl

    from lightning_modules.tasks.classifier import ClassifierTask
    from lightning_modules.utils import seed_everything

    seed_everything(cfg.seed)
    started = time.perf_counter()
    dm.prepare_data()
    data_s = time.perf_counter() - started
    task = ClassifierTask(cfg.model_name, cfg.scenes.num_classes, dict(cfg.model_kwargs), optimizer=cfg.optimizer,
                          lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_fraction=cfg.warmup_fraction,
                          hflip=False, validate_batches=False, **task_kwargs)
    trainer = pl.Trainer(max_epochs=cfg.max_epochs, accelerator=accelerator, devices=1, logger=False,
                         callbacks=list(callbacks), enable_checkpointing=False, enable_model_summary=False,
                         enable_progress_bar=False, deterministic="warn", num_sanity_val_steps=0, limit_val_batches=0)
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.fit(task, datamodule=dm)
    train_s, train_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    net = unwrap(task.model).cpu()
    model, _ = load_model(cfg.model_name, num_classes=cfg.scenes.num_classes, freeze=True, **dict(cfg.model_kwargs))
    unwrap(model).load_state_dict(net.state_dict())
    info = {
        "config_hash": cfg.content_hash(),
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "scenes_generation_s": round(data_s, 2),
        "training_s": round(train_s, 2),
        "training_cpu_s": round(train_cpu_s, 2),
        "torch_threads": torch.get_num_threads(),
        "accelerator": accelerator,
        "train_images": cfg.scenes.train_size,
    }
    return net, model, trainer, info


def save_trained(out_dir: Path | None, net: torch.nn.Module, info: dict) -> None:
    """``model.pt`` (the bare network's state dict) and ``info.json`` into ``out_dir`` (nothing when None)."""
    if out_dir is None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / "model.pt", "wb") as fh:
        torch.save(net.state_dict(), fh)
    with atomic_write(out_dir / "info.json") as fh:
        json.dump(info, fh, indent=2)


def _train(cfg: EmbeddedV2Config, out_dir: Path | None, root, accelerator: str = "cpu") -> tuple:
    dm = ScenesV2DataModule(cfg.scenes, batch_size=cfg.batch_size, eval_batch_size=500, root=root)
    net, model, trainer, info = fit_embedded(cfg, dm, accelerator, [epoch_logger()],
                                             label_smoothing=cfg.label_smoothing)
    info.update({
        "train_accuracy_last_epoch": float(trainer.callback_metrics.get("train/acc", float("nan"))),
        "val_accuracy": accuracy(model, dm.dataset("val")),
        "test": evidence_check(model, dm.dataset("test")),
        "forward_cost": forward_cost(model, cfg.scenes.image_size),
    })
    info["test_accuracy"] = info["test"]["accuracy"]
    save_trained(out_dir, net, info)
    log.info("%s trained in %.0f s (%.0f s CPU): test accuracy %.4f", cfg.model_name, info["training_s"],
             info["training_cpu_s"], info["test_accuracy"])
    return net, info


def build_embedded(cfg, state: dict, info: dict):
    """``(model, data_config)`` of an embedded model's config with the weights ``state``: frozen, eval;
    ``model.scenes_config`` the scenes it was trained on, ``model.embedded_info`` what was measured then."""
    model, data_config = load_model(cfg.model_name, num_classes=cfg.scenes.num_classes, freeze=True,
                                    **dict(cfg.model_kwargs))
    unwrap(model).load_state_dict(state)
    model.scenes_config = cfg.scenes
    model.embedded_info = info
    return model, data_config


def load_shipped_or_cached(name, cfg, retrain: bool, root: str | Path | None, *, folder: str, what: str, shipped: tuple,
                  train, build=build_embedded):
    """The embedded model ``name`` (config ``cfg``) built by ``build(cfg, state, info)``: the shipped, hash-checked
    weights; with ``retrain=True`` ``train(cfg, out, root)`` trains it into ``out = <data root>/<folder>/<config
    hash>/`` (under a file lock: concurrent callers wait), or that folder's earlier retraining is reused. ``what``
    and ``shipped`` (the names shipped) word the error when nothing is shipped."""
    if not retrain:
        if not isinstance(name, str) or shipped_entry(name) is None:
            raise ShippedWeightsError(
                f"no shipped weights for {what} {name!r} (shipped: {list(shipped)}); pass weights=\"retrain\" to "
                f"train it "
                f"(or `python -m replications train-embedded {name}` to train and ship it)")
        state, info = load_shipped(name, config_hash=cfg.content_hash())
        return build(cfg, state, info)
    out = (Path(root) if root is not None else data_root()) / folder / cfg.content_hash()
    with file_lock(out.parent / f".{out.name}.lock"):
        if not (out / "model.pt").is_file() or not (out / "info.json").is_file():
            train(cfg, out, root)
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    return build(cfg, state, json.loads((out / "info.json").read_text()))


def _load(name: str, retrain: bool = False, root: str | Path | None = None):
    """``(model, data_config)`` of a v2 model: frozen, eval, [0, 1] inputs; ``model.scenes_config`` is the
    scenes config it was trained on, ``model.embedded_info`` what was measured then.

    Loads the shipped, hash-checked weights; never trains unless ``retrain=True`` (then it trains into
    ``<data root>/embedded_v2/<config hash>/``, or reuses that folder's earlier retraining).
    """
    return load_shipped_or_cached(name, embedded_v2_config(name), retrain, root, folder="embedded_v2",
                                  what="v2 model", shipped=SHIPPED_V2, train=train_embedded_v2)


def check_trained_on(model, scenes_config, name: str = "the v2 model") -> None:
    """Fail unless ``scenes_config`` draws the scenes ``model`` was trained on (``model.scenes_config``): a profile
    may have fewer scenes per split (e.g. smoke), every other field must be equal."""
    trained_on = getattr(model, "scenes_config", None)
    if trained_on is None:
        raise ValueError(f'{name} has no scenes_config: load it with load_model(name, weights="embedded")')
    sizes = {f"{split}_size": getattr(trained_on, f"{split}_size") for split in ("train", "val", "test", "heldout")}
    if replace(scenes_config, **sizes) != trained_on:
        raise ValueError(f"{name} was trained on other v2 scenes than the data's config; use a v2 profile that "
                         "differs only in its split sizes")


def train_and_ship(name: str, shipped: tuple, config_of, train, root: str | Path | None = None,
                  accelerator: str = "cpu", extra_info=None) -> Path:
    """Retrain the embedded model ``name`` (one of ``shipped``; config ``config_of(name)``) from scratch with
    ``train(cfg, None, root, accelerator) -> (net, info)`` and ship it (``weights/<name>.safetensors`` + SHA-256 in
    the manifest); ``extra_info(root)``, when given, adds ``info`` keys measured after the training."""
    if name not in shipped:
        raise ValueError(f"only {shipped} are shipped, not {name!r}")
    cfg = config_of(name)
    net, info = train(cfg, None, root, accelerator)
    if extra_info is not None:
        info.update(extra_info(root))
    return ship(name, net.state_dict(), info, config_hash=cfg.content_hash())


def _ship(name: str, root: str | Path | None = None, accelerator: str = "cpu") -> Path:
    """Retrain a v2 model from scratch and ship it (``weights/<name>.safetensors`` + SHA-256 in the manifest)."""
    # the VGG's record holds the reduced schedule's accuracy, trained on the CPU: the retraining test that compares
    # against it runs on the CPU
    extra = (lambda r: {"reduced_schedule": reduced_schedule_reference(r)}) if name == "scenes_v2_vgg" else None
    return train_and_ship(name, SHIPPED_V2, embedded_v2_config, train_embedded_v2, root, accelerator, extra)


def reduced_schedule_reference(root: str | Path | None = None) -> dict:
    """Train ``REDUCED_SCHEDULE`` and return what a retraining test compares against."""
    _, info = train_embedded_v2(REDUCED_SCHEDULE, None, root)
    return {"config_hash": REDUCED_SCHEDULE.content_hash(), "test_accuracy": info["test_accuracy"],
            "training_cpu_s": info["training_cpu_s"]}


def with_overrides(name: str, **changes) -> EmbeddedV2Config:
    """A copy of a named config with fields changed (e.g. a reduced schedule for a quick check)."""
    return replace(embedded_v2_config(name), **changes)


for _name, _cfg in EMBEDDED_V2.items():
    register_embedded(EmbeddedSpec(_name, "embedded_v2", _cfg, _load, partial(_ship, _name) if _name in SHIPPED_V2 else None,
                                   shipped=_name in SHIPPED_V2, on_device=True))
