"""The model registry (timm's ``_registry`` shape): it imports nothing of ours, only the standard library.

Two kinds of entries:

- **architectures**: a name -> a constructor ``ctor(num_classes=..., in_chans=..., **kwargs)`` and the
  preprocessing it expects (input size, mean, std). Each family file (``small_cnns``, ``vgg_resnet_v2``) registers
  its networks on import with ``register_model``; ``model_entrypoint(name)`` is the constructor.
- **embedded models**: a name -> a trained model of ours (``blackbox_default``, ``scenes_v2_vgg``,
  ``mnist_cnn_smoke``, ...): its training config (whose ``content_hash()`` its shipped weights were trained under),
  how to load it (``load(name, retrain, root, **kwargs) -> (model, data_config)``: the shipped, hash-checked weights,
  or retrained into a cache) and how to retrain and ship it (``ship(root, accelerator) -> path``). Each kind's file
  (``blackbox``, ``mnist``, ``embedded_v2``, ``embedded_multilabel``) registers its names with
  ``register_embedded``; ``lightning_modules.models.load_model(name, weights="embedded")`` loads one.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ModelSpec:
    """One architecture: its constructor, preprocessing and constructor defaults."""

    name: str
    ctor: Callable[..., Any]
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fixed_input_size: bool = False
    defaults: dict = field(default_factory=dict)

    @property
    def module(self) -> str:
        """The module whose import registers it."""
        return self.ctor.__module__


@dataclass(frozen=True)
class EmbeddedSpec:
    """One trained model of ours (see the module docstring).

    ``shipped``: its weights are meant to be in ``weights/`` (``False``: a seconds-long config for tests, trained
    into the cache only); ``on_device``: its retraining may run on an accelerator (``ship(root, accelerator)``),
    else it trains on the CPU only."""

    name: str
    kind: str
    config: Any
    load: Callable[..., Any]
    ship: Callable[..., Any] | None = None
    shipped: bool = True
    on_device: bool = False

    def config_hash(self) -> str:
        """The hash of the configuration its weights must have been trained under."""
        return self.config.content_hash()


_MODELS: dict[str, ModelSpec] = {}
_EMBEDDED: dict[str, EmbeddedSpec] = {}


def register_model(name: str, ctor: Callable[..., Any], input_size: tuple[int, int, int], mean: tuple[float, ...],
                   std: tuple[float, ...], fixed_input_size: bool | None = None, **defaults) -> None:
    """Register one of our own networks; ``ctor(num_classes=..., in_chans=..., **kwargs)``. ``fixed_input_size``
    defaults to True for the ``mnist_*`` nets."""
    if fixed_input_size is None:
        fixed_input_size = name.startswith("mnist_")
    _MODELS[name] = ModelSpec(name, ctor, tuple(input_size), tuple(mean), tuple(std), fixed_input_size, defaults)


def register_embedded(spec: EmbeddedSpec) -> EmbeddedSpec:
    """Register a trained model of ours (its name must not be an architecture's)."""
    if spec.name in _MODELS:
        raise ValueError(f"{spec.name!r} is an architecture's name; an embedded model needs its own")
    _EMBEDDED[spec.name] = spec
    return spec


def is_model(name: str) -> bool:
    """Whether ``name`` is one of our registered architectures."""
    return name in _MODELS


def model_spec(name: str) -> ModelSpec | None:
    """The registered architecture ``name`` (None: not one of ours)."""
    return _MODELS.get(name)


def model_entrypoint(name: str) -> Callable[..., Any]:
    """The constructor of our architecture ``name``."""
    if name not in _MODELS:
        raise KeyError(f"unknown architecture {name!r}; ours: {', '.join(sorted(_MODELS))}")
    return _MODELS[name].ctor


def is_embedded(name: str) -> bool:
    """Whether ``name`` is one of our trained (embedded) models."""
    return name in _EMBEDDED


def embedded_entry(name: str) -> EmbeddedSpec:
    """The registered embedded model ``name``; the error names the known ones."""
    if name not in _EMBEDDED:
        raise KeyError(f"unknown embedded model {name!r}; known: {', '.join(sorted(_EMBEDDED))}")
    return _EMBEDDED[name]


def list_architectures(pattern: str | None = None) -> list[str]:
    names = sorted(_MODELS)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def list_embedded(shipped: bool | None = None, kind: str | None = None, pattern: str | None = None) -> list[str]:
    """Names of the embedded models (``shipped=True``: those whose weights are shipped in ``weights/``)."""
    names = sorted(n for n, s in _EMBEDDED.items()
                   if (shipped is None or s.shipped == shipped) and (kind is None or s.kind == kind))
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names
