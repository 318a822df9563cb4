"""The one model loader: timm first, torchvision for what timm lacks or names differently, our own small nets
(``registry``), and our trained embedded models (``load_model(name, weights="embedded")``).

``load_model(name, ...)`` returns ``(model, DataConfig)``: the network and its preprocessing (mean, std,
input size). Weights come from local files only unless the user has network access: a torchvision/timm
state dict, a Lightning ``.ckpt``, or the published pretrained file placed in the weights folder.
Every file is read with ``torch.load(..., weights_only=True)``: a checkpoint carrying pickled code is refused.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

import lightning_modules.models.registry as registry
from lightning_modules.utils import data_root
from lightning_modules.validation import InputError, check_num_classes, resolve_data_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Architectures taken from torchvision by default: the papers use torchvision's (or Caffe-ported) weights
#: and timm lacks or renames them. ``torchvision/<name>`` and ``timm/<name>`` force a source.
TORCHVISION_DEFAULT = {
    "googlenet": (3, 224, 224),
    "alexnet": (3, 224, 224),
    "vgg16": (3, 224, 224),
    "vgg19": (3, 224, 224),
    "squeezenet1_0": (3, 224, 224),
    "squeezenet1_1": (3, 224, 224),
    "inception_v3": (3, 299, 299),
}


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing a model expects (timm's data config, reduced to what the papers need)."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fixed_input_size: bool = False
    source: str = "local"
    name: str = ""

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return images * std + mean


def data_config_of(spec: registry.ModelSpec) -> DataConfig:
    """The preprocessing of a registered architecture."""
    return DataConfig(spec.input_size, spec.mean, spec.std, spec.fixed_input_size, "local", spec.name)


def registering_module(name: str) -> str | None:
    """The module whose import registers our network ``name`` (None: not one of ours, e.g. torchvision's): what a
    fresh process (a ROAR worker) imports before ``load_model(name)``."""
    spec = registry.model_spec(name)
    return spec.module if spec is not None else None


def list_models(source: str | None = None, pattern: str | None = None, shipped: bool = False) -> list[str]:
    """Names ``load_model`` accepts: our nets, torchvision's defaults, and (``source='timm'``) timm's models;
    ``shipped=True``: our trained models whose weights are shipped (``load_model(name, weights="embedded")``;
    ``source='embedded'``: every trained model of ours, shipped or trained into a cache only)."""
    if shipped or source == "embedded":
        return registry.list_embedded(shipped=True if shipped else None, pattern=pattern)
    names: list[str] = []
    if source in (None, "local"):
        names += registry.list_architectures()
    if source in (None, "torchvision"):
        names += sorted(TORCHVISION_DEFAULT)
    if source == "timm":
        import timm

        names += timm.list_models(pattern or "*")
    if pattern and source != "timm":
        import fnmatch

        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def weights_dirs(extra: str | os.PathLike | None = None) -> list[Path]:
    """Where pretrained files are looked for, in order: ``extra``, ``$SALIENCY_WEIGHTS``, ``data/weights``,
    the torch hub cache (``$TORCH_HOME/hub/checkpoints``)."""
    dirs = []
    if extra:
        dirs.append(Path(extra))
    if os.environ.get("SALIENCY_WEIGHTS"):
        dirs.append(Path(os.environ["SALIENCY_WEIGHTS"]))
    dirs.append(data_root() / "weights")
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def safe_load(path: str | os.PathLike) -> dict:
    """``torch.load`` with ``weights_only=True`` (``safetensors`` for ``.safetensors`` files) and errors that name
    the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass the path of a saved state dict or .ckpt")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"cannot read checkpoint {path} (corrupt or truncated .safetensors file: {e}); "
                             "replace it with a fresh copy of the published file") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"refusing to load {path}: it is not a plain tensor checkpoint (weights_only=True rejected it: "
            f"{str(e).splitlines()[0]}). If you trust the file, re-save it as a state dict: "
            "torch.save(model.state_dict(), path)"
        ) from None
    except Exception as e:  # noqa: BLE001 - a garbled pickle stream surfaces as IndexError, KeyError, ...
        raise ValueError(f"cannot read checkpoint {path} (corrupt or truncated?): {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, expected a state dict")
    return obj


def _state_dict_from(obj: dict, model: nn.Module) -> dict:
    """Accept a plain state dict, a Lightning checkpoint (``state_dict`` with a module prefix), or timm's wrapping."""
    for key in ("state_dict", "model", "model_state_dict"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    own = set(model.state_dict())
    if not own or own & set(obj):
        return obj
    # Lightning saves ``<attribute>.<param>``; a task holding the loader's Normalized model saves
    # ``model.net.<param>`` (DDP adds ``module.``), next to other attributes' state (a loss, a second net). Find the
    # prefix that turns the file's keys into the model's and keep only the keys under it.
    prefixes = {k[: len(k) - len(o)] for k in obj for o in own if k.endswith("." + o)}
    if not prefixes:
        return obj

    def matches(prefix: str) -> int:
        return sum(k.startswith(prefix) and k[len(prefix):] in own for k in obj)

    # the prefix matching most keys ("model.net." rather than "model.net.layer1.0." that a suffix also matches)
    prefix = max(sorted(prefixes, key=len), key=matches)
    return {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix)}


def _load_into(model: nn.Module, obj: dict, path: Path, num_classes: int | None) -> None:
    sd = _state_dict_from(obj, model)
    own = model.state_dict()
    for k, v in sd.items():
        if k in own and own[k].shape != v.shape:
            hint = ""
            if v.dim() >= 1 and own[k].dim() >= 1 and v.shape[1:] == own[k].shape[1:]:
                hint = f" The checkpoint has {v.shape[0]} outputs here: pass num_classes={v.shape[0]}."
            raise ValueError(
                f"checkpoint {path} does not fit the model: {k} has shape {tuple(v.shape)} in the file "
                f"but {tuple(own[k].shape)} in the model (num_classes={num_classes}).{hint}"
            )
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not match the architecture: missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; is it a checkpoint of this model?"
        )


def _sha256_prefix_ok(path: Path) -> bool:
    """torchvision file names carry the first hex digits of the file's SHA-256 (``resnet50-0676ba61.pth``)."""
    stem = path.name.split(".")[0]
    if "-" not in stem:
        return True
    prefix = stem.rsplit("-", 1)[1]
    if not all(c in "0123456789abcdef" for c in prefix) or len(prefix) < 6:
        return True
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest().startswith(prefix)


def find_pretrained_file(file_names: list[str], weights_dir=None) -> Path:
    dirs = weights_dirs(weights_dir)
    for d in dirs:
        for fn in file_names:
            p = d / fn
            if p.is_file():
                if not _sha256_prefix_ok(p):
                    raise ValueError(f"pretrained file {p} fails its hash check (the file name carries the SHA-256 prefix); re-download it")
                return p
    raise FileNotFoundError(
        f"pretrained weights not found: looked for {' or '.join(file_names)} in "
        + ", ".join(str(d) for d in dirs)
        + ". No network is used at run time: download the file on a connected machine and place it in "
        f"{os.environ.get('SALIENCY_WEIGHTS') or data_root() / 'weights'} (or set $SALIENCY_WEIGHTS)."
    )


def _torchvision_model(arch: str, pretrained: bool, num_classes: int | None, weights_dir) -> tuple[nn.Module, DataConfig]:
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise KeyError(f"torchvision has no model {arch!r}")
    size = TORCHVISION_DEFAULT.get(arch, (3, 224, 224))
    config = DataConfig(size, IMAGENET_MEAN, IMAGENET_STD, False, "torchvision", arch)
    kwargs: dict = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if not pretrained:
        if arch in ("googlenet", "inception_v3"):
            kwargs.update(aux_logits=False, init_weights=True)
        return torchvision.models.get_model(arch, weights=None, **kwargs), config
    # The papers (2017-2019) used torchvision's original ImageNet weights: IMAGENET1K_V1 where torchvision has
    # newer ones (resnet50's DEFAULT is V2, a different model with a different accuracy).
    weights_enum = torchvision.models.get_model_weights(arch)
    weights = getattr(weights_enum, "IMAGENET1K_V1", weights_enum.DEFAULT)
    n_pre = len(weights.meta["categories"])
    if num_classes not in (None, n_pre):
        raise ValueError(f"pretrained {arch} has {n_pre} classes, not num_classes={num_classes}; fine-tune it or drop num_classes")
    kwargs["num_classes"] = n_pre
    if arch in ("googlenet", "inception_v3"):
        # As torchvision does for its published weights: built with aux heads to load them, input transform on.
        kwargs.update(aux_logits=True, init_weights=False, transform_input=True)
    model = torchvision.models.get_model(arch, weights=None, **kwargs)
    path = find_pretrained_file([Path(weights.url).name], weights_dir)
    _load_into(model, safe_load(path), path, n_pre)
    if arch == "googlenet":
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    if arch == "inception_v3":
        model.aux_logits, model.AuxLogits = False, None
    return model, config


def _timm_model(arch: str, pretrained: bool, num_classes: int | None, in_chans: int | None, weights_dir) -> tuple[nn.Module, DataConfig]:
    import timm

    kwargs: dict = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    if pretrained:
        cfg = timm.models.get_pretrained_cfg(arch)
        tag_name = arch.replace("/", "_")
        candidates = [f"{tag_name}.safetensors", f"{tag_name}.pth", f"{tag_name}.bin"]
        if cfg is not None and cfg.url:
            candidates.insert(0, Path(cfg.url).name)
        path = find_pretrained_file(candidates, weights_dir)
        model = timm.create_model(arch, pretrained=False, **{k: v for k, v in kwargs.items() if k != "num_classes"})
        _load_into(model, safe_load(path), path, getattr(model, "num_classes", None))
        if num_classes is not None and num_classes != model.num_classes:
            raise ValueError(f"pretrained {arch} has {model.num_classes} classes, not num_classes={num_classes}")
    else:
        model = timm.create_model(arch, pretrained=False, **kwargs)
    dc = timm.data.resolve_data_config({}, model=model)
    config = DataConfig(tuple(dc["input_size"]), tuple(dc["mean"]), tuple(dc["std"]), False, "timm", arch)
    return model, config


class Normalized(nn.Module):
    """A classifier that takes images in [0, 1] pixel space and normalises them itself.

    The whole project works in pixel space: perturbations (blur, mean-colour substrates, L-inf budgets in
    1/255 units), baselines (black image) and gradients all refer to the image a person sees. The wrapped
    network is ``.net``; layer names for hooks are therefore ``net.<layer>``.
    """

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        n = getattr(net, "num_classes", None)
        if isinstance(n, int):
            self.num_classes = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


#: Default Grad-CAM / saliency layers per architecture (TorchRay's and the papers' choices), relative to the
#: unwrapped network. Our own nets carry ``default_cam_layer``.
DEFAULT_CAM_LAYERS = {
    "resnet": "layer4",
    "vgg": "features.29",
    "googlenet": "inception5b",
    "inception_v3": "Mixed_7c",
    "alexnet": "features.11",
    "squeezenet": "features.12",
}


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside ``Normalized`` (and Lightning wrappers with a ``.model``)."""
    while isinstance(model, Normalized) or (not hasattr(model, "default_cam_layer") and hasattr(model, "model") and isinstance(model.model, nn.Module)):
        model = model.net if isinstance(model, Normalized) else model.model
    return model


def resolve_layer(model: nn.Module, layer: str | nn.Module | None = None) -> nn.Module:
    """A module of ``model`` by dotted name (relative to the model or to its unwrapped network), or the
    architecture's default CAM layer when ``layer`` is None."""
    if isinstance(layer, nn.Module):
        return layer
    net = unwrap(model)
    if layer is None:
        layer = getattr(net, "default_cam_layer", None)
        if layer is None:
            arch = getattr(getattr(model, "data_config", None), "name", "") or type(net).__name__.lower()
            for key, name in DEFAULT_CAM_LAYERS.items():
                if arch.startswith(key) or key in type(net).__name__.lower():
                    layer = name
                    break
        if layer is None:
            raise ValueError(
                f"no default CAM layer known for {type(net).__name__}; pass layer='<module name>' "
                f"(one of: {', '.join(n for n, _ in list(net.named_modules())[1:12])} ...)"
            )
    for root in (model, net):
        try:
            return root.get_submodule(layer)
        except AttributeError:
            continue
    names = [n for n, _ in net.named_modules() if n]
    close = difflib.get_close_matches(layer, names, n=3)
    raise ValueError(f"layer {layer!r} not found in {type(net).__name__}; close matches: {close or names[:10]}")


def _input_check_hook(config: DataConfig):
    c, h, w = config.input_size

    def hook(module, args):
        x = args[0]
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"{config.name}: expected a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        if x.shape[1] != c:
            raise ValueError(f"{config.name}: expected {c} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})")
        if config.fixed_input_size and tuple(x.shape[-2:]) != (h, w):
            raise ValueError(
                f"{config.name} takes {h}x{w} inputs, got {x.shape[-2]}x{x.shape[-1]}; resize the images "
                f"(e.g. torchvision.transforms.Resize(({h}, {w})))"
            )

    return hook


def class_probabilities(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """The class probabilities of ``model``'s ``logits`` (B, K): the softmax over classes, or each class's own
    sigmoid for a multi-label model (``model.score == "sigmoid"``, e.g. ``embedded_multilabel``'s, trained with a
    per-class sigmoid loss like the VOC / COCO classifiers of the pointing game). The class score of the
    perturbation methods (RISE, occlusion, LIME, Score-CAM, the meaningful-perturbation mask)."""
    return logits.sigmoid() if getattr(model, "score", "softmax") == "sigmoid" else logits.softmax(dim=1)


def architecture_version(name: str, undeclared: int = 1) -> int:
    """The ``ARCH_VERSION`` of one of our own networks (``undeclared`` when it declares none; 0 for a timm /
    torchvision name): hashed with a training config, so a changed architecture never loads weights trained for the
    old one. (``undeclared`` keeps the hashes of the configs shipped before the rule: the v1 black box's is 0.)"""
    spec = registry.model_spec(name)
    return getattr(spec.ctor, "ARCH_VERSION", undeclared) if spec is not None else 0


def load_model(
    name: str,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    freeze: bool = True,
    weights_dir: str | os.PathLike | None = None,
    normalize_inputs: bool = True,
    weights: str | None = None,
    **kwargs,
) -> tuple[nn.Module, DataConfig]:
    """Build ``name`` and return ``(model, data_config)``.

    - ``pretrained``: the published weights, from a local file (see ``weights_dirs``); never downloads.
    - ``checkpoint``: a state dict or Lightning ``.ckpt`` (loaded with ``weights_only=True``).
    - ``freeze``: black-box mode: eval, parameters frozen (input gradients still flow).
    - ``normalize_inputs``: wrap in ``Normalized`` so the model takes [0, 1] images (the project's convention).
    - ``weights``: for our trained models (``list_models(shipped=True)``, e.g. ``scenes_v2_vgg``,
      ``blackbox_default``): ``"embedded"`` loads the shipped, hash-checked weights (frozen, eval, [0, 1] inputs;
      the model carries what was measured when it was trained); ``"retrain"`` trains it into the cache under
      ``root`` (default the data root) instead, or reuses that cache. ``kwargs`` then go to the kind's loader
      (``root``, and ``mnist_root`` for the MNIST models).
    """
    if not isinstance(name, str) or not name:
        raise InputError("name", "a model name (see lightning_modules.models.list_models())", repr(name),
                         f"pass one of: {', '.join(list_models())}, or any timm model name")
    if weights is not None or registry.is_embedded(name):
        return load_embedded_model(name, weights, **kwargs)
    if num_classes is not None:
        check_num_classes(num_classes)
    if in_chans is not None:
        check_num_classes(in_chans, "in_chans", "the images' channel count")
    if checkpoint is not None:
        checkpoint = resolve_data_path(checkpoint)
    source = None
    if "/" in name and name.split("/", 1)[0] in ("timm", "torchvision", "local"):
        source, name = name.split("/", 1)
    spec = registry.model_spec(name) if source in (None, "local") else None
    if spec is not None:
        ctor_kwargs = {**spec.defaults, **kwargs}
        if num_classes is not None:
            ctor_kwargs["num_classes"] = num_classes
        if in_chans is not None:
            ctor_kwargs["in_chans"] = in_chans
        if pretrained:
            raise ValueError(f"{name} is one of our own networks and has no published weights; pass checkpoint=PATH")
        model = spec.ctor(**ctor_kwargs)
        config = data_config_of(spec)
        if in_chans is not None and in_chans != config.input_size[0]:
            config = DataConfig((in_chans, *config.input_size[1:]), config.mean[:1] * in_chans, config.std[:1] * in_chans,
                                config.fixed_input_size, config.source, name)
    elif source == "torchvision" or (source is None and name in TORCHVISION_DEFAULT):
        model, config = _torchvision_model(name, pretrained, num_classes, weights_dir)
    else:
        import timm

        if source not in (None, "timm") or not timm.is_model(name):
            known = list_models()
            close = difflib.get_close_matches(name, known + timm.list_models(), n=4)
            hint = f" Close matches: {', '.join(close)}." if close else ""
            raise KeyError(
                f"unknown model {name!r}.{hint} See lightning_modules.models.list_models() "
                f"(ours and torchvision's: {', '.join(known)}; plus every timm model)."
            )
        model, config = _timm_model(name, pretrained, num_classes, in_chans, weights_dir)
    if checkpoint is not None:
        path = Path(checkpoint)
        _load_into(model, safe_load(path), path, num_classes)
    if not hasattr(model, "num_classes") or not isinstance(getattr(model, "num_classes"), int):
        out = getattr(model, "fc", None) or getattr(model, "classifier", None)
        if isinstance(out, nn.Sequential):
            out = [m for m in out if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
        n = getattr(out, "out_features", None) or getattr(out, "out_channels", None)
        if n is not None:
            model.num_classes = int(n)
    model.register_forward_pre_hook(_input_check_hook(config))
    if normalize_inputs:
        model = Normalized(model, config.mean, config.std)
        model.register_forward_pre_hook(_input_check_hook(config))
    model.data_config = config
    if freeze:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    return model, config


#: what ``load_model``'s ``weights`` accepts for our trained models
EMBEDDED_WEIGHTS = ("embedded", "retrain")


def load_embedded_model(name: str, weights: str | None = "embedded", **kwargs) -> tuple[nn.Module, DataConfig]:
    """Our trained model ``name`` (``registry.register_embedded``): ``weights="embedded"`` the shipped, hash-checked
    weights, ``"retrain"`` trained into the cache (``root=``) or reused from there; ``kwargs`` go to its kind's
    loader."""
    if not registry.is_embedded(name):
        known = registry.list_embedded()
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise InputError("name", f"one of our trained models (weights={weights!r})", repr(name),
                         f"pass one of: {', '.join(known)}.{hint}")
    if weights not in EMBEDDED_WEIGHTS:
        raise InputError("weights", f"one of {EMBEDDED_WEIGHTS} for our trained model {name!r}", repr(weights),
                         f'pass weights="embedded" (the shipped weights) or weights="retrain" (train into the cache)')
    entry = registry.embedded_entry(name)
    return entry.load(name, retrain=weights == "retrain", **kwargs)


def retrain_and_ship(name: str, root: str | os.PathLike | None = None, accelerator: str = "cpu") -> Path:
    """Retrain the shipped model ``name`` from scratch and ship it (``weights/<name>.safetensors``, its SHA-256 and
    config hash in ``weights/MANIFEST.json``); returns the file's path. ``accelerator``: Lightning's, for the models
    that may train on a device (``registry.EmbeddedSpec.on_device``); the others train on the CPU only."""
    shipped = registry.list_embedded(shipped=True)
    if name not in shipped:
        raise KeyError(f"unknown shipped model {name!r}; known: {', '.join(shipped)}")
    entry = registry.embedded_entry(name)
    if accelerator != "cpu" and not entry.on_device:
        on_device = [n for n in shipped if registry.embedded_entry(n).on_device]
        raise ValueError(f"{name} trains on the CPU only; accelerator={accelerator!r} applies to {on_device}")
    return entry.ship(root=root, accelerator=accelerator)
