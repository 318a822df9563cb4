"""ROAR in the scorecard (``--with roar``; Hooker et al. 2019 through ``lightning_modules.tasks.roar``).

For every map (references, built-in methods, the new method) and fraction t: the top-t pixels of each map of the
explained model (squared attribution, Hooker's estimator) are replaced by the training set's mean colour in
``train_images`` training images and in the scorecard's test images; a small classifier (``RoarSetting.model_name``)
is retrained from scratch on the modified training images (``RoarPipeline``: Lightning, resumable, pinned threads) and
predicts the modified test images. Per test image, the value is its accuracy averaged over the fractions (lower: the
removed pixels mattered more), so the paired bootstrap over test images applies (it leaves out the retraining's own
variance: one seed). The references' and built-in methods' retrainings are cached with the rest of the built-in
results; the new method's run in a temporary folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lightning_modules.scorecard.protocols import Protocol

PROTOCOL = Protocol("roar", False, "Hooker, Khakzar", "ROAR: accuracy of a model retrained without the top pixels "
                    "(mean over fractions)")


@dataclass(frozen=True)
class RoarSetting:
    train_images: int = 1024
    fractions: tuple = (0.3, 0.7)
    model_name: str = "resnet8"
    max_epochs: int = 6
    batch_size: int = 128
    downsample: int = 2  # the retrained model sees 32 px (pixels are removed at 64 px)


ROAR_PROFILES = {"default": RoarSetting(), "smoke": RoarSetting(train_images=48, fractions=(0.5,), max_epochs=1,
                                                                 batch_size=16, downsample=4)}


def train_set(bench, rs: RoarSetting) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``train_images`` training scenes of the shipped model (the scorecard's own benchmark only)."""
    cfg = getattr(bench.model, "scenes_config", None)
    if cfg is None:
        raise ValueError("--with roar needs the embedded benchmark's training scenes (a shipped v2 model); on your own "
                         "model and data, run lightning_modules.tasks.roar.RoarPipeline with your training set")
    from lightning_modules.data.scenes_v2 import ScenesV2

    ds = ScenesV2("train", cfg)
    b = ds.__getitems__(range(min(rs.train_images, len(ds))))
    return {"image": b["image"], "label": b["label"], "ids": b["id"], "evidence_mask": b["evidence_mask"],
            "object_mask": b["mask"]}


def roar_values(bench, provider, rs: RoarSetting, work_dir: Path, train, train_provider=None) -> dict:
    """Per-test-image accuracy averaged over the fractions for one map provider, with its seconds."""
    from lightning_modules.scorecard.protocols import provider_maps
    from lightning_modules.tasks.roar import RoarConfig, RoarPipeline, removal_mask

    c0 = time.process_time()
    x_tr, y_tr = train["image"], train["label"]
    x_te, y_te = bench.data["image"], bench.data["label"]
    # the training images' maps: the provider reads their ground truth by row, so give it a bench view of them
    idx_te = torch.arange(x_te.shape[0])
    m_te = provider_maps(provider, bench, bench.model, x_te, idx_te, "clean")
    m_tr = provider_maps(train_provider or provider, _TrainView(bench, train), bench.model, x_tr, torch.arange(x_tr.shape[0]),
                 "roar_train")
    cfg = RoarConfig(model_name=rs.model_name, fractions=tuple(rs.fractions), seeds=(0,), max_epochs=rs.max_epochs,
                     batch_size=rs.batch_size, downsample=rs.downsample, reference=False, threads=None)
    pipe = RoarPipeline(cfg, work_dir, bench.num_classes)
    pipe.run((x_tr, y_tr), (x_te, y_te), {"map": (m_tr, m_te)})
    fill = x_tr.mean(dim=(0, 2, 3))
    correct = []
    for f in rs.fractions:
        model = pipe.trained_model("map", f, 0)
        xt = pipe.fill_removed(x_te, removal_mask(m_te, f, cfg.estimator), fill, cfg.fill_seed + 1)
        with torch.no_grad():
            correct.append((model(pipe._shrink(xt)).argmax(1) == y_te).float())
    return {"values": [float(v) for v in torch.stack(correct, 1).mean(1)], "cpu_s": round(time.process_time() - c0, 1)}


class _TrainView:
    """The bench seen on the training images (for the reference maps, which read the ground truth by row)."""

    def __init__(self, bench, train: dict):
        self.setting, self.model, self.data = bench.setting, bench.model, train


def run_roar(bench, builtin_providers: dict, new_provider, new_name: str, rs: RoarSetting, cache_dir: Path | None,
             key: str, log=print) -> tuple[dict, dict]:
    """``({map: per-image values}, timing)``: references and built-ins from the cache where it holds them."""
    from lightning_modules.scorecard.protocols import REFERENCES, reference_provider

    train = train_set(bench, rs)
    view = _TrainView(bench, train)
    tag = f"roar_{key}_{zlib.crc32(json.dumps(asdict(rs), sort_keys=True).encode()):08x}"
    base = Path(cache_dir) / tag if cache_dir is not None else Path(tempfile.mkdtemp(prefix="scorecard_roar_"))
    values_path = base / "values.json"
    stored = json.loads(values_path.read_text()) if values_path.is_file() else {}
    tmp = Path(tempfile.mkdtemp(prefix="scorecard_roar_new_"))
    try:  # the new method first: its cost is known before the (cached, once) built-in retrainings
        w1 = time.perf_counter()
        new = roar_values(bench, new_provider, rs, tmp, train)
        own = round(time.perf_counter() - w1, 1)
        log(f"  roar: {new_name} {own:.0f} s wall, {new['cpu_s']:.0f} s CPU")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    w0 = time.perf_counter()
    for name, provider in builtin_providers.items():
        if name not in stored:
            t = time.perf_counter()
            train_provider = reference_provider(view, name) if name in REFERENCES else None
            stored[name] = roar_values(bench, provider, rs, base / name, train, train_provider)["values"]
            log(f"  roar: {name} {time.perf_counter() - t:.0f} s wall")
            base.mkdir(parents=True, exist_ok=True)
            values_path.write_text(json.dumps(stored))
    build_s = round(time.perf_counter() - w0, 1)
    if cache_dir is None:
        shutil.rmtree(base, ignore_errors=True)
    return {**stored, new_name: new["values"]}, {"roar_wall_s": own, "roar_cpu_s": new["cpu_s"], "roar_builtins_wall_s": build_s}
