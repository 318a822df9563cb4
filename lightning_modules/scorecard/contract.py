"""The explainer contract of the scorecard and how a user's method is loaded.

A method is either

- an :class:`~lightning_modules.explainers.Explainer` subclass (configured by its constructor, ``--init-args``), or
  an instance of one;
- a plain function ``fn(model, images, targets) -> (B, 1, H, W)`` (``--init-args`` become keyword arguments);
- the name of a built-in method (``create_explainer``).

Every call is checked against the contract: ``images`` is ``(B, 3, H, W)`` float in [0, 1], ``targets`` ``(B,)``
long; the method returns a ``torch.Tensor`` of shape ``(B, 1, h, w)`` (resized to ``H x W`` when smaller) with
finite values. Anything else raises :class:`ExplainerContractError` naming the contract and what came back.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Callable

import torch

from lightning_modules.explainers import Explainer, create_explainer, list_explainers

CONTRACT = ("explainer(model, images, targets) -> torch.Tensor of shape (B, 1, H, W) with finite values, where "
            "images is (B, 3, H, W) float in [0, 1] and targets is (B,) long")


class ExplainerContractError(ValueError):
    """A method broke the scorecard's explainer contract (:data:`CONTRACT`)."""


def check_output(maps, images: torch.Tensor, who: str) -> torch.Tensor:
    """``maps`` as a float tensor, or :class:`ExplainerContractError` naming the contract."""
    if not isinstance(maps, torch.Tensor):
        raise ExplainerContractError(f"{who} returned {type(maps).__name__}, not a torch.Tensor. Contract: {CONTRACT}")
    b = images.shape[0]
    if maps.dim() != 4 or maps.shape[0] != b or maps.shape[1] != 1:
        raise ExplainerContractError(f"{who} returned shape {tuple(maps.shape)} for a batch of shape "
                                     f"{tuple(images.shape)}; expected ({b}, 1, {images.shape[-2]}, {images.shape[-1]}). "
                                     f"Contract: {CONTRACT}")
    if maps.is_complex() or maps.dtype == torch.bool:
        raise ExplainerContractError(f"{who} returned dtype {maps.dtype}; expected a real float tensor. Contract: {CONTRACT}")
    maps = maps.float()
    bad = ~torch.isfinite(maps)
    if bad.any():
        n_nan, n_inf = int(torch.isnan(maps).sum()), int(torch.isinf(maps).sum())
        rows = bad.flatten(1).any(1).nonzero().flatten()[:5].tolist()
        raise ExplainerContractError(f"{who} returned {n_nan} NaN and {n_inf} infinite values (in batch rows {rows}"
                                     f"{' ...' if int(bad.flatten(1).any(1).sum()) > 5 else ''}); maps must be finite. "
                                     f"Contract: {CONTRACT}")
    return maps


class CheckedExplainer(Explainer):
    """Wraps a method (an ``Explainer`` or a plain function) and checks every output against :data:`CONTRACT`;
    the base class validates the inputs, guards the model's state and resizes smaller maps."""

    def __init__(self, method, name: str):
        self.method, self.display_name = method, name
        self.black_box = bool(getattr(method, "black_box", False))

    def attribute(self, model, images, targets):
        fn = self.method.attribute if isinstance(self.method, Explainer) else self.method
        return check_output(fn(model, images, targets), images, self.display_name)

    def __repr__(self) -> str:
        return f"CheckedExplainer({self.method!r})"


def import_object(spec: str):
    """``pkg.mod:Name`` or ``path/to/file.py:Name`` -> (the object, the source file or None)."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"--explainer {spec!r}: name the object as module:Name (e.g. examples.my_method:EdgeWeighted"
                         f"GradCAM) or a built-in method ({', '.join(list_explainers())})")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"--explainer {spec!r}: no file {path}")
        mod_spec = importlib.util.spec_from_file_location(f"_scorecard_user_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_spec.name] = module
        mod_spec.loader.exec_module(module)
    else:
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # `python -m` puts the cwd first; a console script does not
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError(f"--explainer {spec!r}: cannot import {module_name!r} ({e}); run from the folder "
                                      "that holds the package or install it") from None
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise AttributeError(f"--explainer {spec!r}: {module_name} has no {attr!r}; it defines {public}")
    obj = getattr(module, attr)
    try:
        source = inspect.getsourcefile(module)
    except TypeError:
        source = None
    return obj, source


def load_explainer(spec: str | Callable | Explainer, init_args: dict | None = None,
                   name: str | None = None) -> tuple[str, CheckedExplainer, str | None]:
    """``(display name, checked explainer, source file or None)`` of ``spec``: ``module:Name``, ``file.py:Name``, a
    built-in method's name, or the object itself."""
    init_args = dict(init_args or {})
    source = None
    if isinstance(spec, str):
        if ":" not in spec and spec in list_explainers():
            return name or spec, CheckedExplainer(create_explainer(spec, **init_args), name or spec), None
        obj, source = import_object(spec)
    else:
        obj = spec
    if isinstance(obj, type) and issubclass(obj, Explainer):
        try:
            method = obj(**init_args)
        except TypeError as e:
            raise TypeError(f"{obj.__name__}(**{init_args}) failed ({e}); pass its constructor arguments with "
                            "--init-args '{\"k\": 3}'") from None
        label = name or obj.__name__
    elif isinstance(obj, Explainer):
        if init_args:
            raise ValueError(f"{spec!r} is an Explainer instance: it is already configured; --init-args apply to a "
                             "class or a function")
        method, label = obj, name or type(obj).__name__
    elif isinstance(obj, type):
        raise TypeError(f"{obj.__name__} is a class but not an Explainer subclass: subclass "
                        "lightning_modules.explainers.Explainer (implement attribute) or pass a plain function. "
                        f"Contract: {CONTRACT}")
    elif callable(obj):
        fn = obj
        if init_args:
            import functools

            fn = functools.partial(obj, **init_args)
        method, label = fn, name or getattr(obj, "__name__", "method")
    else:
        raise TypeError(f"{spec!r} is a {type(obj).__name__}, neither an Explainer subclass nor a function. "
                        f"Contract: {CONTRACT}")
    return label, CheckedExplainer(method, label), source


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
