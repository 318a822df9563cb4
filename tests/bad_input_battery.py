"""A battery of bad inputs at every public entry point, classified by what the user gets back.

- ``clear``: an exception whose message names the fix (each case gives the words the message must contain);
- ``unclear``: an exception that does not (a raw error from deep inside torch / numpy, or one that blames the
  wrong thing);
- ``silent``: no exception at all: the bad input became a number.

Written against public names that exist on both sides of the validation work (no ``InputError``), so the same
battery measures a checkout before and after. ``python tests/bad_input_battery.py`` prints the table and the counts;
``tests/test_bad_input_battery.py`` asserts none is silent and at least 95% are clear. ``BATTERY_REPO=<checkout>``
measures another checkout with the same cases.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable

import torch

HERE = Path(__file__).resolve().parent
#: the checkout measured: this one, or ``$BATTERY_REPO`` (e.g. another worktree, for a before/after count)
sys.path.insert(0, os.environ.get("BATTERY_REPO", str(HERE.parent)))
K = 10
_CACHE: dict = {}


def _model():
    if "model" not in _CACHE:
        from lightning_modules.models import load_model

        _CACHE["model"] = load_model("scenes_cnn", num_classes=K)[0]
    return _CACHE["model"]


def _x(b: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(0))


def _t(b: int = 2) -> torch.Tensor:
    return torch.arange(1, b + 1)


def _maps(b: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(b, 1, size, size, generator=torch.Generator().manual_seed(1))


def _explain(name: str, images, targets, model=None, **kwargs):
    from lightning_modules.explainers import create_explainer

    return create_explainer(name, **kwargs)(model or _model(), images, targets)


def _metric(cls_name: str, *args, **kwargs):
    import lightning_modules.metrics as metrics

    ctor = kwargs.pop("ctor", {})
    ids = kwargs.pop("ids", None)
    m = getattr(metrics, cls_name)(**ctor)
    m.update(*args, **({"ids": ids} if ids is not None else {}), **kwargs)
    return m.compute()


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="battery-"))


def _mnist_root(corrupt: str) -> Path:
    from lightning_modules.utils import data_root

    src, root = data_root() / "mnist", _tmp()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = bytearray(gzip.decompress((src / f"{name}.gz").read_bytes()))
        if name.startswith("t10k-images"):
            if corrupt == "byte":
                raw[5000] ^= 0xFF
            elif corrupt == "header":
                raw = raw[:10]
            elif corrupt == "data":
                raw = raw[:-100]
        (root / name).write_bytes(bytes(raw))
    return root


def _mnist(root: Path):
    from lightning_modules.data.mnist import MNISTDataModule

    dm = MNISTDataModule(root=str(root))
    dm.setup()
    return dm.datasets["train"][0]["image"].sum()


def _with_env(env: dict, fn: Callable):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fn()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _store_root_setup(cls_path: str, root: str):
    store = _tmp() / "store"

    def run():
        module, cls = cls_path.rsplit(".", 1)
        dm = getattr(__import__(module, fromlist=[cls]), cls)(root=root)
        dm.setup()

    _CACHE["store"] = str(store)
    return _with_env({"SALIENCY_DATA": str(store)}, run)


def _toy_fit(dest: str):
    sys.path.insert(0, str(HERE))
    from test_cli import ToyData, ToyReplication

    from replications.cli import ReplicationCLI

    cfg = _tmp() / "smoke.yaml"
    cfg.write_text("trainer:\n  max_epochs: 1\n  accelerator: cpu\n  logger: false\n  enable_progress_bar: false\n"
                   "  enable_model_summary: false\n")
    return _with_env({"SALIENCY_REPORT_DIR": dest, "WANDB_MODE": "disabled"},
                     lambda: ReplicationCLI(ToyReplication, "toy", datamodule_class=ToyData,
                                            args=["fit", "--config", str(cfg)]))


def _a_file() -> str:
    f = _tmp() / "a_file"
    f.write_text("")
    return str(f)


def _ckpt(kind: str):
    from lightning_modules.models import load_model

    d = _tmp()
    if kind == "safetensors":
        p = d / "w.safetensors"
        p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    elif kind == "truncated":
        m, _ = load_model("scenes_cnn", num_classes=K)
        p = d / "w.pt"
        torch.save(m.net.state_dict(), p)
        p.write_bytes(p.read_bytes()[:1000])
    elif kind == "classes":
        m, _ = load_model("scenes_cnn", num_classes=5)
        p = d / "w.pt"
        torch.save(m.net.state_dict(), p)
    else:
        p = d / "missing.pt"
    return load_model("scenes_cnn", checkpoint=p, num_classes=K)


def _pointing(maps, targets):
    masks = torch.zeros(maps.shape[0], 1, *maps.shape[-2:], dtype=torch.bool)
    masks[..., :8, :8] = True
    return _metric("PointingGame", maps, targets, masks=masks)


def _dedup_reuse():
    import lightning_modules.metrics as metrics

    m = metrics.PixelPerturbation(fractions=(0.0, 0.5))
    x, h = _x(), _maps()
    m.update(_model(), x, h, _t(), ids=torch.tensor([0, 1]))
    m.update(_model(), x.flip(0), h, _t(), ids=torch.tensor([0, 1]))  # a second batch reusing ids 0, 1
    return m.compute()


def _batch(**changes):
    from lightning_modules.data import validate_batch

    b = {"image": _x(), "label": _t(), **changes}
    return validate_batch(b, num_classes=K, channels=3)


RANGE = r"255"
NAN = r"nan"
CLASSES = r"num_classes|out of range|\[0, 9\]|0\.\.9"
EMPTY = r"empty"
FLOAT32 = r"float32"
LONG = r"long|integer"
SMALL = r"resize"

#: (family, case, call, words the message must contain for a clear error)
CASES: list[tuple[str, str, Callable, str]] = [
    ("explainer", "gradient on 0..255 images", lambda: _explain("gradient", _x() * 255, _t()), RANGE),
    ("explainer", "occlusion on 0..255 images", lambda: _explain("occlusion", _x() * 255, _t()), RANGE),
    ("explainer", "rise on 0..255 images", lambda: _explain("rise", _x() * 255, _t(), n_masks=16), RANGE),
    ("explainer", "excitation_backprop on 0..255 images", lambda: _explain("excitation_backprop", _x() * 255, _t()), RANGE),
    ("explainer", "gradient on uint8 images", lambda: _explain("gradient", (_x() * 255).byte(), _t()), RANGE),
    ("explainer", "integrated_gradients on float64 images", lambda: _explain("integrated_gradients", _x().double(), _t()), FLOAT32),
    ("explainer", "gradcam on float64 images", lambda: _explain("gradcam", _x().double(), _t()), FLOAT32),
    ("explainer", "gradient on NaN images", lambda: _explain("gradient", _x().masked_fill(_x() > 0.9, float("nan")), _t()), NAN),
    ("explainer", "rise on Inf images", lambda: _explain("rise", _x().masked_fill(_x() > 0.9, float("inf")), _t(), n_masks=16), r"inf"),
    ("explainer", "gradient with float targets", lambda: _explain("gradient", _x(), _t().float()), LONG),
    ("explainer", "gradient with targets=None", lambda: _explain("gradient", _x(), None), r"argmax|batch\['label'\]"),
    ("explainer", "smoothgrad with target 10 of 10 classes", lambda: _explain("smoothgrad", _x(), torch.tensor([1, 10])), CLASSES),
    ("explainer", "gradcam with target -1", lambda: _explain("gradcam", _x(), torch.tensor([-1, 1])), CLASSES + r"|>= 0"),
    ("explainer", "rise with target 10", lambda: _explain("rise", _x(), torch.tensor([1, 10]), n_masks=16), CLASSES),
    ("explainer", "integrated_gradients on an empty batch", lambda: _explain("integrated_gradients", _x()[:0], _t()[:0]), EMPTY),
    ("explainer", "lime on an empty batch", lambda: _explain("lime", _x()[:0], _t()[:0]), EMPTY),
    ("explainer", "gradient on a 3-D image", lambda: _explain("gradient", _x()[0], 1), r"unsqueeze"),
    ("explainer", "gradient on 1-channel images for an RGB model", lambda: _explain("gradient", _x()[:, :1], _t()), r"channel"),
    ("explainer", "gradcam on 2x2 images", lambda: _explain("gradcam", _x(2, 2), _t()), SMALL),
    ("explainer", "occlusion on 2x2 images", lambda: _explain("occlusion", _x(2, 2), _t()), SMALL),
    ("explainer", "mnist_cnn on 32x32 images", lambda: _explain("gradient", torch.rand(1, 1, 32, 32), 0,
                                                                 model=__import__("lightning_modules.models", fromlist=["x"]).load_model("mnist_cnn")[0]), r"28"),
    ("explainer", "gradient with 3 targets for 2 images", lambda: _explain("gradient", _x(), torch.tensor([1, 2, 3])), r"one class index per image|3 entries|2 images"),
    ("explainer", "gradient on ImageNet-normalised images", lambda: _explain("gradient", _x() * 2 - 1, _t()), r"normali[sz]e"),
    ("metric", "DeletionAUC on 0..255 images", lambda: _metric("DeletionAUC", _model(), _x() * 255, _maps(), _t()), RANGE),
    ("metric", "DeletionAUC with NaN maps", lambda: _metric("DeletionAUC", _model(), _x(), _maps().masked_fill(_maps() > 0.9, float("nan")), _t()), NAN),
    ("metric", "DeletionAUC with target 10", lambda: _metric("DeletionAUC", _model(), _x(), _maps(), torch.tensor([1, 10])), CLASSES),
    ("metric", "InsertionAUC on an empty batch", lambda: _metric("InsertionAUC", _model(), _x()[:0], _maps()[:0], _t()[:0]), EMPTY),
    ("metric", "DeletionAUC on 2x2 images", lambda: _metric("DeletionAUC", _model(), _x(2, 2), _maps(2, 2), _t()), SMALL),
    ("metric", "PixelPerturbation on float64 images", lambda: _metric("PixelPerturbation", _model(), _x().double(), _maps().double(), _t()), FLOAT32),
    ("metric", "PixelPerturbation with float targets", lambda: _metric("PixelPerturbation", _model(), _x(), _maps(), _t().float()), LONG),
    ("metric", "PixelPerturbation with target 10", lambda: _metric("PixelPerturbation", _model(), _x(), _maps(), torch.tensor([1, 10])), CLASSES),
    ("metric", "SmallestSuppressingBox on 0..255 images", lambda: _metric("SmallestSuppressingBox", _model(), _x() * 255, _maps(), _t()), RANGE),
    ("metric", "SmallestSuppressingBox with half-size maps", lambda: _metric("SmallestSuppressingBox", _model(), _x(), _maps(2, 32), _t()), r"interpolate|upsample"),
    ("metric", "PointingGame with target -1", lambda: _pointing(_maps(), torch.tensor([-1, 1])), r">= 0|out of range"),
    ("metric", "PointingGame on an empty batch", lambda: _pointing(_maps()[:0], _t()[:0]), EMPTY),
    ("metric", "WeakLocalisation with NaN maps", lambda: _metric("WeakLocalisation", _maps().masked_fill(_maps() > 0.9, float("nan")), _t(),
                                                                 torch.tensor([[[0.0, 0.0, 8.0, 8.0]]] * 2), _t()[:, None]), NAN),
    ("metric", "KeypointIntensity on an empty batch", lambda: _metric("KeypointIntensity", _maps()[:0], {"eyes": torch.zeros(0, 1, 2)},
                                                                      ctor={"names": ("eyes",)}), EMPTY),
    ("metric", "MapSimilarity with NaN maps", lambda: _metric("MapSimilarity", _maps().masked_fill(_maps() > 0.9, float("nan")), _maps()), NAN),
    ("metric", "TopKIntersection on an empty batch", lambda: _metric("TopKIntersection", _maps()[:0], _maps()[:0], ctor={"k": 5}), EMPTY),
    ("metric", "RankCorrelation with maps of two sizes", lambda: _metric("RankCorrelation", _maps(), _maps(2, 32)), r"interpolate|upsample"),
    ("metric", "a second batch reusing ids 0, 1 for other images", _dedup_reuse, r"reused|each sample"),
    ("metric", "float sample ids", lambda: _metric("DeletionAUC", _model(), _x(), _maps(), _t(), ids=torch.tensor([0.0, 1.0])), r"batch\['id'\]"),
    ("metric", "negative sample ids", lambda: _metric("DeletionAUC", _model(), _x(), _maps(), _t(), ids=torch.tensor([-1, 0])), r"batch\['id'\]"),
    ("data", "validate_batch on 0..255 images", lambda: _batch(image=_x() * 255), RANGE),
    ("data", "validate_batch with float labels", lambda: _batch(label=_t().float()), LONG),
    ("data", "validate_batch with label 10 of 10 classes", lambda: _batch(label=torch.tensor([1, 10])), CLASSES),
    ("data", "validate_batch on an empty batch", lambda: _batch(image=_x()[:0], label=_t()[:0]), EMPTY),
    ("data", "MNIST root missing", lambda: _mnist(_tmp() / "nothing"), r"SALIENCY_DATA"),
    ("data", "MNIST gunzipped file with one flipped byte", lambda: _mnist(_mnist_root("byte")), r"MD5.*replace"),
    ("data", "MNIST gunzipped file cut inside its header", lambda: _mnist(_mnist_root("header")), r"t10k-images-idx3-ubyte.*replace"),
    ("data", "MNIST gunzipped file cut inside its data", lambda: _mnist(_mnist_root("data")), r"t10k-images-idx3-ubyte.*(replace|truncated)"),
    ("data", "ImageNet data/imagenet with $SALIENCY_DATA set",
     lambda: _store_root_setup("lightning_modules.data.imagenet.ImageNetValDataModule", "data/imagenet"), r"store/imagenet"),
    ("data", "VOC data/voc with $SALIENCY_DATA set", lambda: _store_root_setup("lightning_modules.data.voc.VOC2007DataModule", "data/voc"), r"store/voc"),
    ("data", "CIFAR-10 root missing", lambda: _store_root_setup("lightning_modules.data.cifar.CIFAR10DataModule", "data/cifar10"), r"SALIENCY_DATA"),
    ("model", "load_model of an unknown name", lambda: __import__("lightning_modules.models", fromlist=["x"]).load_model("scenes_cn"), r"scenes_cnn"),
    ("model", "load_model with num_classes=0", lambda: __import__("lightning_modules.models", fromlist=["x"]).load_model("scenes_cnn", num_classes=0), r"positive"),
    ("model", "load_model with num_classes=-3", lambda: __import__("lightning_modules.models", fromlist=["x"]).load_model("resnet8", num_classes=-3), r"positive"),
    ("model", "load_model of a corrupt .safetensors", lambda: _ckpt("safetensors"), r"corrupt|truncated"),
    ("model", "load_model of a truncated .pt", lambda: _ckpt("truncated"), r"corrupt|truncated"),
    ("model", "load_model of a missing checkpoint", lambda: _ckpt("missing"), r"does not exist"),
    ("model", "load_model of a 5-class checkpoint as 10 classes", lambda: _ckpt("classes"), r"num_classes=5"),
    ("cli", "$SALIENCY_REPORT_DIR is a file", lambda: _toy_fit(_a_file()), r"SALIENCY_REPORT_DIR.*(writable|folder)"),
    ("cli", "$SALIENCY_REPORT_DIR under a file", lambda: _toy_fit(_a_file() + "/sub"), r"SALIENCY_REPORT_DIR.*(writable|folder)"),
    ("cli", "$SALIENCY_REPORT_DIR where nothing can be written", lambda: _toy_fit("/proc/no-such-dir/report"), r"SALIENCY_REPORT_DIR.*(writable|folder)"),
]


def classify(call: Callable, words: str) -> tuple[str, str]:
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the battery classifies whatever comes back
        msg = f"{type(e).__name__}: {e}"
        return ("clear" if re.search(words, str(e), re.IGNORECASE | re.DOTALL) else "unclear"), msg
    return "silent", "no error"


def run(verbose: bool = False) -> dict:
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    counts = {"clear": 0, "unclear": 0, "silent": 0}
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for family, case, call, words in CASES:
            kind, msg = classify(call, words)
            counts[kind] += 1
            rows.append((family, case, kind, msg))
    if verbose:
        for family, case, kind, msg in rows:
            print(f"{kind:8s} {family:9s} {case:55s} {msg.splitlines()[0][:150] if msg else ''}")
    return {"total": len(CASES), **counts, "rows": rows}


if __name__ == "__main__":
    out = run(verbose=True)
    print(f"\n{out['total']} bad inputs: {out['clear']} clear, {out['unclear']} unclear, {out['silent']} silent")
