"""The boundary validators of every public entry point: explainers, metrics, DataModules, ``load_model``, the CLIs.

Each check fails before any work with an ``InputError`` whose message names the argument, what was expected, what
was got and the fix (docs/CONVENTIONS.md, "Errors"). ``InputError`` subclasses both ``ValueError`` and ``TypeError``
(and ``FileNotFoundError`` for missing files, ``DataRootError``), so callers catching the built-in types keep
working. The checks are cheap: a few reductions per call and at most one host sync (``tolist`` of a stacked
``min``/``max``), never a per-sample loop.

The one data contract checked here (docs/CONVENTIONS.md): images are float ``(B, C, H, W)`` in [0, 1] pixel space,
with the model's dtype; targets are ``(B,)`` long class indices in ``[0, num_classes)``; heatmaps are finite
``(B, 1, H, W)`` floats at the images' resolution; sample ids are ``(B,)`` non-negative integers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from lightning_modules.utils import data_root

#: slack on the [0, 1] range for rounding in resizes and composites (far below one grey level, 1/255)
RANGE_SLACK = 1e-5


class InputError(ValueError, TypeError):
    """Bad input at a public entry point. ``argument``, ``expected``, ``got`` and ``fix`` are kept as attributes."""

    def __init__(self, argument: str, expected: str, got: str, fix: str):
        self.argument, self.expected, self.got, self.fix = argument, expected, got, fix
        super().__init__(f"{argument}: expected {expected}, got {got}. Fix: {fix}")

    def __reduce__(self):  # picklable across DataLoader workers and DDP spawn
        return type(self), (self.argument, self.expected, self.got, self.fix)


class DataRootError(InputError, FileNotFoundError):
    """A data root, data file or report destination that is missing, corrupt or unusable."""


def _shape(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


def _fmt(v: float) -> str:
    return f"{v:.4g}"


# --------------------------------------------------------------------------------------------- tensors
def check_images(images, name: str = "images", *, model: nn.Module | None = None,
                 channels: int | None = None) -> None:
    """Images are a non-empty float ``(B, C, H, W)`` tensor in [0, 1], finite; with ``model``: its dtype, channel
    count and input size (``check_model_input``)."""
    if not isinstance(images, torch.Tensor):
        raise InputError(name, "a torch.Tensor of shape (B, C, H, W)", _shape(images),
                         "convert with torch.as_tensor(...) and stack the images into one batch")
    if images.dim() != 4:
        fix = ("add the batch dimension: images.unsqueeze(0)" if images.dim() == 3
               else "pass a batch of images shaped (B, C, H, W)")
        raise InputError(name, "a 4-D (B, C, H, W) tensor", f"shape {tuple(images.shape)}", fix)
    if not images.is_floating_point():
        fix = ("images.float() / 255 (uint8 pixels to [0, 1])" if images.dtype == torch.uint8
               else "images.float(), scaled to [0, 1]")
        raise InputError(name, "a float tensor in [0, 1]", str(images.dtype), fix)
    if images.shape[0] == 0:
        raise InputError(name, "a non-empty batch (B >= 1)", f"shape {tuple(images.shape)}",
                         "skip empty batches before explaining or evaluating them")
    if images.shape[-1] == 0 or images.shape[-2] == 0 or images.shape[1] == 0:
        raise InputError(name, "images with at least one channel and one pixel", f"shape {tuple(images.shape)}",
                         "check the crop / resize that produced them")
    lo, hi = torch.stack(torch.aminmax(images.detach().flatten())).tolist()  # the one host sync
    if lo != lo or hi != hi:
        raise InputError(name, "finite values in [0, 1]", "NaN values",
                         "check the data pipeline (a division by zero in normalisation, a failed image decode)")
    if hi == float("inf") or lo == float("-inf"):
        raise InputError(name, "finite values in [0, 1]", "Inf values", "check the data pipeline / normalisation")
    if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        if hi > 1 + RANGE_SLACK and lo >= -RANGE_SLACK and hi <= 255 + RANGE_SLACK:
            fix = "divide by 255 (pixel values look like 0..255): images / 255"
        elif lo < -RANGE_SLACK:
            fix = ("drop the Normalize transform (models from load_model normalise themselves) or undo it with "
                   "data_config.denormalize(images)")
        else:
            fix = "rescale the images to [0, 1]"
        raise InputError(name, "values in [0, 1] pixel space (docs/CONVENTIONS.md)",
                         f"values in [{_fmt(lo)}, {_fmt(hi)}]", fix)
    if channels is not None and images.shape[1] != channels:
        _channel_error(images, channels, name)
    if model is not None:
        check_model_input(model, images, name)


def _channel_error(images: torch.Tensor, channels: int, name: str) -> None:
    raise InputError(name, f"{channels} channels", f"{images.shape[1]} (shape {tuple(images.shape)})",
                     "grey -> RGB: images.expand(-1, 3, -1, -1); RGB -> grey: images.mean(1, keepdim=True); "
                     "or load the model with in_chans matching the data")


def _data_config(model: nn.Module):
    return getattr(model, "data_config", None)


def _first_param(model: nn.Module) -> torch.Tensor | None:
    return next(iter(model.parameters()), None)


def _first_conv_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
        if isinstance(m, nn.Linear):
            return None
    return None


def check_model_input(model: nn.Module, images: torch.Tensor, name: str = "images") -> None:
    """``images`` fit ``model``: same dtype as its weights, its channel count, its fixed input size if it has one,
    and not smaller than its layers can reduce (a one-image probe, once per model and size, when the images are
    smaller than the model's nominal input size)."""
    p = _first_param(model)
    if p is not None and p.is_floating_point() and images.dtype != p.dtype:
        raise InputError(name, f"{p.dtype} images (the model's weights are {p.dtype})", str(images.dtype),
                         f"images.to({p.dtype}) (or model.to({images.dtype}))")
    config = _data_config(model)
    c = config.input_size[0] if config is not None else _first_conv_channels(model)
    if c is not None and images.shape[1] != c:
        _channel_error(images, c, name)
    h, w = images.shape[-2:]
    if config is not None:
        nh, nw = config.input_size[1:]
        label = f"{config.name or type(model).__name__}"
        if config.fixed_input_size and (h, w) != (nh, nw):
            raise InputError(name, f"{nh}x{nw} images ({label} takes a fixed input size)", f"{h}x{w}",
                             f"resize them: torchvision.transforms.v2.Resize(({nh}, {nw}))")
        if h < nh or w < nw:
            _probe_input_size(model, images, name)


def _probe_input_size(model: nn.Module, images: torch.Tensor, name: str) -> None:
    seen = model.__dict__.setdefault("_validated_input_sizes", set())
    key = (tuple(images.shape[1:]), images.dtype, str(images.device))
    if key in seen:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(images.new_zeros((1, *images.shape[1:])))
    except RuntimeError as e:
        config = _data_config(model)
        nominal = f"{config.input_size[1]}x{config.input_size[2]}" if config is not None else "its input size"
        first = str(e).splitlines()[0][:200]
        raise InputError(name, f"images large enough for the model's layers (nominal {nominal})",
                         f"{images.shape[-2]}x{images.shape[-1]} images, on which the model fails ({first})",
                         f"resize them to {nominal}: torchvision.transforms.v2.Resize") from None
    finally:
        model.train(was_training)
    seen.add(key)


#: torch's messages for an input too small for a pooling / convolution layer
_TOO_SMALL = ("Output size is too small", "Kernel size can't be greater than actual input size",
              "smaller than kernel size", "Padding size should be less than the corresponding input dimension")


def input_size_error(error: BaseException, images: torch.Tensor, name: str = "images") -> InputError | None:
    """The ``InputError`` for a torch error raised because ``images`` are too small for a layer (None otherwise):
    for models without a ``data_config`` to check against beforehand."""
    msg = str(error)
    if not isinstance(error, RuntimeError) or not any(t in msg for t in _TOO_SMALL):
        return None
    return InputError(name, "images large enough for the model's layers",
                      f"{images.shape[-2]}x{images.shape[-1]} images ({msg.splitlines()[0][:200]})",
                      "resize them to the model's input size (torchvision.transforms.v2.Resize)")


def check_targets(targets, batch_size: int, num_classes: int | None = None, name: str = "targets") -> torch.Tensor:
    """Targets as a ``(B,)`` long tensor of class indices (an int or a one-element tensor is broadcast), in
    ``[0, num_classes)`` when ``num_classes`` is known, else ``>= 0``."""
    if targets is None:
        raise InputError(name, f"{batch_size} class indices", "None",
                         "pass the classes to explain, e.g. batch['label'] or model(images).argmax(1)")
    if isinstance(targets, bool) or (isinstance(targets, torch.Tensor) and targets.dtype == torch.bool):
        raise InputError(name, "integer class indices", "booleans", "pass class indices (torch.long), not a mask")
    if isinstance(targets, float):
        raise InputError(name, "integer class indices", f"the float {targets!r}", f"pass int({targets!r})")
    if isinstance(targets, int):
        targets = torch.full((batch_size,), targets, dtype=torch.long)
    if not isinstance(targets, torch.Tensor):
        try:
            targets = torch.as_tensor(targets)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(name, "a (B,) tensor of class indices", type(targets).__name__,
                             "pass a torch.long tensor, a list of ints or one int") from None
    if targets.is_floating_point() or targets.is_complex():
        raise InputError(name, "integer class indices (torch.long)", f"a {targets.dtype} tensor",
                         "targets.long() if they are class indices; for one-hot or probability rows use "
                         "targets.argmax(1)")
    if targets.dim() > 1 and targets.numel() != max(batch_size, 1) or targets.dim() > 2:
        raise InputError(name, f"shape ({batch_size},)", f"shape {tuple(targets.shape)}",
                         "pass one class index per image; for one-hot rows use targets.argmax(1)")
    targets = targets.reshape(-1).long()
    if targets.numel() == 1 and batch_size > 1:
        targets = targets.expand(batch_size)
    if targets.numel() != batch_size:
        raise InputError(name, f"{batch_size} entries (one per image)", f"{targets.numel()}",
                         "pass one class index per image, or one int for all")
    if targets.numel():
        lo, hi = torch.stack(torch.aminmax(targets)).tolist()
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            valid = f"[0, {num_classes - 1}]" if num_classes is not None else ">= 0"
            raise InputError(name, f"class indices in {valid}" + (f" (num_classes={num_classes})"
                                                                  if num_classes is not None else ""),
                             f"values in [{lo}, {hi}] (out of range)",
                             "use the dataset's 0-based class indices and a model with that many outputs "
                             "(load_model(..., num_classes=N))")
    return targets


def check_heatmaps(heatmaps, images: torch.Tensor | None = None, name: str = "heatmaps") -> None:
    """Heatmaps are non-empty, finite float ``(B, 1, H, W)`` tensors matching the images' batch and spatial size."""
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.dim() != 4 or heatmaps.shape[1] != 1:
        raise InputError(name, "a (B, 1, H, W) tensor", _shape(heatmaps),
                         "reduce channels first (explainers return (B, 1, H, W)); add dims with maps[:, None]")
    if not heatmaps.is_floating_point():
        raise InputError(name, "a float tensor", str(heatmaps.dtype), f"{name}.float()")
    if heatmaps.shape[0] == 0 or heatmaps.shape[-1] == 0 or heatmaps.shape[-2] == 0:
        raise InputError(name, "a non-empty batch of maps", f"shape {tuple(heatmaps.shape)}",
                         "skip empty batches before evaluating them")
    if images is not None and (heatmaps.shape[0] != images.shape[0] or heatmaps.shape[-2:] != images.shape[-2:]):
        other = "images" if name == "heatmaps" else "the first maps"
        raise InputError(name, f"shape ({images.shape[0]}, 1, {images.shape[-2]}, {images.shape[-1]}) (matching {other})",
                         f"shape {tuple(heatmaps.shape)}, which does not match {other} {tuple(images.shape)}",
                         "one map per image at the input resolution: upsample with "
                         "torch.nn.functional.interpolate(maps, size=images.shape[-2:], mode='bilinear')")
    if not bool(torch.isfinite(heatmaps).all()):
        raise InputError(name, "finite values", "NaN or Inf values",
                         "the explainer produced invalid maps: check its inputs (NaN images, a zero normaliser)")


def check_num_classes(num_classes, name: str = "num_classes", what: str = "the dataset's class count") -> int:
    """A positive count (an int, not a bool): a class count, or (``what``) a channel count."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise InputError(name, f"a positive int ({what})", f"{num_classes!r} ({type(num_classes).__name__})",
                         f"pass {what} as an int, e.g. {name}=10")
    if num_classes <= 0:
        raise InputError(name, f"a positive int ({what})", str(num_classes), f"pass {what}, e.g. {name}=10")
    return num_classes


def check_sample_ids(ids, batch_size: int, device=None, name: str = "ids") -> torch.Tensor:
    """Sample ids as a ``(B,)`` long tensor of non-negative integers (the samples' indices in their split)."""
    ids = torch.as_tensor(ids, device=device)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise InputError(name, "integer sample ids (torch.long)", f"a {ids.dtype} tensor", "pass batch['id']")
    ids = ids.reshape(-1).long()
    if ids.numel() != batch_size:
        raise InputError(name, f"{batch_size} ids (one per sample)", f"{ids.numel()}", "pass batch['id']")
    if ids.numel() and bool((ids < 0).any()):
        raise InputError(name, "ids >= 0 (the sample's index in its split)", "negative ids",
                         "pass batch['id'], or ids=None when the sampler does not pad")
    return ids


def check_batch(batch, num_classes: int | None = None, channels: int | None = None) -> None:
    """A DataModule batch follows the schema (docs/CONVENTIONS.md; ``lightning_modules.data.schema``)."""
    if not isinstance(batch, Mapping) or "image" not in batch or "label" not in batch:
        keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise InputError("batch", "a dict with at least 'image' and 'label' (docs/CONVENTIONS.md)", str(keys),
                         "collate with lightning_modules.data.collate_batch, or build the dict yourself")
    x, y = batch["image"], batch["label"]
    check_images(x, "batch['image']", channels=channels)
    b = x.shape[0]
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (b,):
        raise InputError("batch['label']", f"a torch.long tensor of shape ({b},)", _shape(y),
                         "return the class index as torch.long from the dataset")
    check_targets(y, b, num_classes, "batch['label']")
    if "mask" in batch:
        m = batch["mask"]
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.shape != (b, 1, *x.shape[-2:]):
            raise InputError("batch['mask']", f"bool (B, 1, H, W) = {(b, 1, *x.shape[-2:])}", _shape(m),
                             "mask.bool() at the image resolution")
    if "boxes" in batch:
        bx, bl = batch["boxes"], batch.get("box_labels")
        if bx.dim() != 3 or bx.shape[0] != b or bx.shape[-1] != 4:
            raise InputError("batch['boxes']", "(B, N, 4) x0, y0, x1, y1 pixels", _shape(bx),
                             "pad with collate_batch (boxes padded with 0, box_labels with -1)")
        if bl is None or bl.shape != bx.shape[:2]:
            raise InputError("batch['box_labels']", f"shape {tuple(bx.shape[:2])} accompanying batch['boxes']",
                             _shape(bl), "give one class per box, -1 for padding")
    for kname, kp in (batch.get("keypoints") or {}).items():
        if kp.dim() != 3 or kp.shape[0] != b or kp.shape[-1] != 2:
            raise InputError(f"batch['keypoints'][{kname!r}]", "(B, K, 2) (x, y) with NaN padding", _shape(kp),
                             "pad with collate_batch")


# --------------------------------------------------------------------------------------------- files and folders
def _env_note(env: str) -> str:
    value = os.environ.get(env)
    return f"${env} is {value!r}" if value else f"${env} is unset, so data/ means {data_root()}"


def resolve_data_path(path: str | os.PathLike | None, default: str | None = None) -> Path | None:
    """Resolve a data path from a config: ``None`` -> ``<data root>/<default>``; a relative path starting with
    ``data/`` -> under the data root (``$SALIENCY_DATA``, default ``<repo>/data``), so the configs' ``data/...``
    paths follow the env var; other paths as given."""
    if path is None:
        return data_root() / default if default is not None else None
    p = Path(path).expanduser()
    if not p.is_absolute() and p.parts and p.parts[0] == "data":
        return data_root().joinpath(*p.parts[1:])
    return p


def portable_data_path(path: str | os.PathLike) -> str:
    """``path`` as recorded in results and cache keys: ``data/<rel>`` when it lies under the data root (the form the
    configs use, resolved against ``$SALIENCY_DATA``), otherwise as given; so a report or a cache key does not
    depend on where the checkout or the data root sits on a machine."""
    p = Path(path).expanduser()
    try:
        return str(Path("data") / p.resolve().relative_to(data_root().resolve()))
    except ValueError:
        return str(p)


def missing_data_error(what: str, root: str | os.PathLike, layout: str = "", argument: str = "root",
                       env: str = "SALIENCY_DATA") -> DataRootError:
    """The error for data not found under ``root``: the folder, the expected layout, the config argument and
    ``$env`` (the data root the configs' ``data/...`` paths resolve against)."""
    root = Path(root)
    got = (f"{what} not found under {root}" if root.is_dir() else
           f"{root}, which is a file" if root.exists() else f"nothing at {root} ({what} not found)")
    layout_note = f" with this layout:\n{layout}\n" if layout else " "
    return DataRootError(argument, f"a folder holding {what}", got,
                         f"put (or symlink) the files there{layout_note}pass {argument}=<folder> in the config, or "
                         f"set ${env} to the folder holding data/'s contents ({_env_note(env)}). Nothing is downloaded")


def check_data_root(root: str | os.PathLike, what: str, layout: str = "", argument: str = "root",
                    env: str = "SALIENCY_DATA") -> Path:
    """``root`` is an existing folder; otherwise ``missing_data_error``."""
    root = Path(root)
    if not root.is_dir():
        raise missing_data_error(what, root, layout, argument, env)
    return root


def check_report_destination(path: str | os.PathLike, argument: str = "report destination") -> Path:
    """The folder a run writes its report to exists or can be created, is a folder, and is writable: checked at
    startup, so a bad destination fails before hours of work rather than at the final write. Nothing is created."""
    path = Path(path).expanduser().absolute()
    fix = ("set $SALIENCY_REPORT_DIR to a writable folder (or unset it to use reports/<paper>/ or "
           "outputs/reports/<paper>/<profile>/)")
    if path.exists() and not path.is_dir():
        raise DataRootError(argument, "a folder", f"{path}, which is a file", fix)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise DataRootError(argument, f"a folder that can be created at {path}", f"{probe}, which is a file", fix)
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".write-check-"):
            pass
    except OSError as e:
        raise DataRootError(argument, f"a writable folder at {path}", f"{probe}, where no file can be created ({e.strerror})",
                            fix) from None
    return path
