"""The explainer interface and registry (Captum-style objects, timm-style registry).

An explainer is a small class configured once by its constructor and called on batches::

    explainer = create_explainer("smoothgrad", n_samples=50, stdev=0.15)
    heatmaps = explainer(model, images, targets)   # (B, 1, H, W) float, input resolution

``targets`` is a (B,) long tensor of class indices (an int is broadcast). Channel reduction of
per-channel attributions to one map is explicit (``reduction``), since the papers differ.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Callable, Iterator

import torch
import torch.nn as nn

from lightning_modules.validation import check_images, check_targets, input_size_error

_REGISTRY: dict[str, type["Explainer"]] = {}


def register_explainer(name: str) -> Callable[[type["Explainer"]], type["Explainer"]]:
    """Class decorator: make ``name`` usable in configs and ``create_explainer``."""

    def deco(cls: type[Explainer]) -> type[Explainer]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"explainer name {name!r} is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def _ensure_loaded() -> None:
    # Importing the package registers every built-in method.
    import lightning_modules.explainers  # noqa: F401


def list_explainers() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_explainer_class(name: str) -> type["Explainer"]:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown explainer {name!r}.{hint} Known explainers: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_explainer(name: str, **kwargs) -> "Explainer":
    return get_explainer_class(name)(**kwargs)


def reduce_channels(attr: torch.Tensor, reduction: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W).

    ``abs_max``: max_c |a_c| (Simonyan 2014); ``max_abs_signed``: the channel value with the largest
    magnitude, sign kept (Khakzar); ``sum``; ``abs_sum``; ``l2``: sqrt(sum a_c^2); ``none`` requires C == 1.
    """
    if attr.dim() != 4:
        raise ValueError(f"attributions must be (B, C, H, W), got {tuple(attr.shape)}")
    if reduction == "abs_max":
        return attr.abs().amax(dim=1, keepdim=True)
    if reduction == "max_abs_signed":
        idx = attr.abs().argmax(dim=1, keepdim=True)
        return attr.gather(1, idx)
    if reduction == "sum":
        return attr.sum(dim=1, keepdim=True)
    if reduction == "abs_sum":
        return attr.abs().sum(dim=1, keepdim=True)
    if reduction == "l2":
        return attr.pow(2).sum(dim=1, keepdim=True).sqrt()
    if reduction == "none":
        if attr.shape[1] != 1:
            raise ValueError("reduction='none' needs single-channel attributions")
        return attr
    raise ValueError(f"unknown reduction {reduction!r}; use one of abs_max, max_abs_signed, sum, abs_sum, l2, none")


@contextlib.contextmanager
def model_state_guard(model: nn.Module) -> Iterator[nn.Module]:
    """Run an explainer without leaving traces: train/eval mode and requires_grad are restored on exit.

    Explainers must also remove every hook they add (use try/finally or ``hooks_guard``).
    """
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    try:
        model.eval()
        yield model
    finally:
        model.train(was_training)
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


@contextlib.contextmanager
def hooks_guard() -> Iterator[list]:
    """Collect hook handles in the yielded list; all are removed on exit, even on error."""
    handles: list = []
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()


def num_classes_of(model: nn.Module, images: torch.Tensor) -> int | None:
    """Class count if the model advertises it (timm's ``num_classes``); None otherwise."""
    n = getattr(model, "num_classes", None)
    return int(n) if isinstance(n, int) else None


class Explainer:
    """Base class. Subclasses implement ``attribute(model, images, targets) -> (B, 1, H, W)``.

    ``__call__`` validates the inputs (``lightning_modules.validation``: [0, 1] float images of the model's dtype,
    channels and size; ``(B,)`` long targets within the model's classes) before any work, puts the model in eval
    mode, restores its state afterwards, and checks the output shape, so every method behaves the same way.
    """

    name: str = "explainer"
    #: True for methods that need no gradients (black-box methods: occlusion, RISE, LIME ...).
    black_box: bool = False

    def attribute(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, model: nn.Module, images: torch.Tensor, targets) -> torch.Tensor:
        check_images(images, model=model)
        targets = check_targets(targets, images.shape[0], num_classes_of(model, images)).to(images.device)
        try:
            with model_state_guard(model):
                with torch.no_grad() if self.black_box else torch.enable_grad():
                    maps = self.attribute(model, images, targets)
        except RuntimeError as e:
            too_small = input_size_error(e, images)
            if too_small is not None:
                raise too_small from e
            raise
        maps = maps.detach()
        if maps.dim() != 4 or maps.shape[1] != 1 or maps.shape[0] != images.shape[0]:
            raise RuntimeError(f"{type(self).__name__} returned shape {tuple(maps.shape)}, expected (B, 1, H, W)")
        if maps.shape[-2:] != images.shape[-2:]:
            maps = torch.nn.functional.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return maps

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"
