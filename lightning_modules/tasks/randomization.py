"""Model parameter randomisation: the sanity-check machinery of Adebayo et al. 2018 (Sec. 3, "Model
parameter randomization test"), shared with Khakzar et al. 2019's sanity checks.

- :func:`cascading_randomization`: re-initialise the trained model's layers from the logits down, one more
  layer per stage (Adebayo Sec. 3.1, Fig. 2: "up to that block inclusive").
- :func:`independent_randomization`: one layer at a time, every other layer keeps its trained weights
  (Adebayo Sec. 3.1, "independent layer randomization").

Both are generators of :class:`RandomizedModel`, each holding a **deep copy** of the model: the model that
is passed in (for example the cached black box) is never modified. Re-initialisation uses each layer's own
initialiser (``reset_parameters()``, as the official code's ``reinitlayerlist`` does) or a given normal
distribution (Khakzar et al. re-initialise with N(0, 0.1)). The random weights of a layer depend only on
``seed`` and the layer's name, so a layer gets the same random weights in the cascading and the independent
test, on any device, and in every batch.

:class:`ModelRandomizationTest` is the runner: for a set of explainers and a batch it computes the original
maps, every stage's maps, and their similarity to the original maps with the shared map-similarity metric
(Spearman rank correlation with and without absolute values, SSIM, HOG; Adebayo Sec. 3 / official code).
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

MODES = ("cascading", "independent")
INITS = ("default", "normal")
#: which class a randomised model's map explains: the original model's predicted class, kept fixed across stages
#: (``original``), or each randomised model's own predicted class, re-taken at every stage (``retaken``, what the
#: official notebooks do: ``prediction_class = imglogits.argmax()`` inside the randomisation loop)
TARGET_CONVENTIONS = ("original", "retaken")


# --------------------------------------------------------------------------------------------- layers
def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def randomizable_layers(model: nn.Module, example_input: torch.Tensor | None = None) -> list[str]:
    """Names of the layers that own parameters, **from the logits down** (the randomisation order).

    The order is the forward execution order when ``example_input`` is given (traced with forward hooks),
    otherwise the registration order (which is the forward order for sequential nets such as ours and
    torchvision's). Names are relative to ``model`` (``net.classifier`` on a ``Normalized`` wrapper).
    """
    names = {id(m): n for n, m in model.named_modules() if n and _owns_parameters(m)}
    if not names:
        raise ValueError(f"{type(model).__name__} has no layer with parameters to randomise")
    if example_input is None:
        forward_order = [n for n, m in model.named_modules() if n and _owns_parameters(m)]
    else:
        seen: list[str] = []
        handles = []
        for n, m in model.named_modules():
            if id(m) in names:
                handles.append(m.register_forward_pre_hook(lambda mod, args, n=n: seen.append(n) if n not in seen else None))
        try:
            with torch.no_grad():
                model(example_input)
        finally:
            for h in handles:
                h.remove()
        unused = [n for n in names.values() if n not in seen]
        forward_order = seen + unused  # layers never called (e.g. aux heads) go last in forward order
    return list(reversed(forward_order))


def resolve_order(model: nn.Module, order: Sequence[str] | None = None, example_input: torch.Tensor | None = None) -> list[str]:
    """Validate an explicit layer/block order (top to bottom) or derive the default one.

    A stage may join several layers with ``+`` (``"features.23+features.24"``: a conv and its BatchNorm), randomised
    together as one block, as the paper randomises Inception v3's blocks; each layer keeps its own seed
    (:func:`layer_seed` of its full name), so it gets the same random weights whether it is randomised alone or in a
    block, and whether it is named from the wrapper or from the bare network."""
    if order is None:
        return randomizable_layers(model, example_input)
    order = list(order)
    if not order:
        raise ValueError("order is empty; pass None for every layer with parameters, from the logits down")
    known = dict(model.named_modules())
    parts = [p for stage in order for p in stage_layers(stage)]
    if len(set(parts)) != len(parts):
        raise ValueError(f"order names a layer twice: {order}")
    for name in parts:
        # Names relative to the bare network inside ``Normalized`` are accepted too.
        if name not in known and f"net.{name}" not in known:
            import difflib

            close = difflib.get_close_matches(name, [n for n in known if n], n=3)
            raise ValueError(f"layer {name!r} not found in {type(model).__name__}; close matches: {close}")
        if not any(True for _ in _get(model, name).parameters()):
            raise ValueError(f"layer {name!r} has no parameters; randomising it would change nothing")
    return order


def stage_layers(stage: str) -> list[str]:
    """The layers of one randomisation stage (``"a+b"`` -> ``["a", "b"]``)."""
    layers = [p.strip() for p in stage.split("+")]
    if any(not p for p in layers):
        raise ValueError(f"empty layer name in stage {stage!r}; join layer names with '+', e.g. 'features.0+features.1'")
    return layers


def _reinitialize_stage(model: nn.Module, stage: str, init: str, seed: int, mean: float, std: float) -> None:
    for name in stage_layers(stage):
        # seeded by the full name: a layer named relative to the bare network gets the same weights
        full = _full_name(model, name)
        reinitialize_(model.get_submodule(full), init, layer_seed(seed, full), mean, std)


def _full_name(model: nn.Module, name: str) -> str:
    """``name`` as ``model`` names it: names relative to the bare network inside ``Normalized`` gain ``net.``."""
    try:
        model.get_submodule(name)
        return name
    except AttributeError:
        return f"net.{name}"


def _get(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(_full_name(model, name))


def layer_seed(seed: int, name: str) -> int:
    """The seed of one layer's random weights: a function of the run's seed and the layer's name only."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


@torch.no_grad()
def reinitialize_(layer: nn.Module, init: str = "default", seed: int = 0, mean: float = 0.0, std: float = 0.1) -> nn.Module:
    """Re-initialise every parameter of ``layer`` (and its sub-layers) in place.

    ``init="default"``: each sub-layer's own ``reset_parameters()`` (PyTorch's initialiser for that layer
    type; BatchNorm also resets its running statistics). ``init="normal"``: every parameter drawn from
    N(mean, std); BatchNorm running statistics are reset. The values are drawn on the CPU from a generator
    seeded with ``seed`` and then copied, so they are identical on every device.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {INITS}")
    if std <= 0 and init == "normal":
        raise ValueError(f"std must be > 0 for init='normal', got {std}")
    modules = [m for m in layer.modules() if _owns_parameters(m) or hasattr(m, "reset_running_stats")]
    if init == "default":
        missing = [type(m).__name__ for m in modules if _owns_parameters(m) and not hasattr(m, "reset_parameters")]
        if missing:
            raise ValueError(f"layers {missing} have no reset_parameters(); use init='normal' for them")
        # A CPU clone is reset under a forked, seeded RNG: the global RNG stream is left untouched.
        clone = copy.deepcopy(layer).to("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in clone.modules():
                if _owns_parameters(m) or hasattr(m, "reset_running_stats"):
                    m.reset_parameters() if hasattr(m, "reset_parameters") else m.reset_running_stats()
        for dst, src in zip(layer.parameters(), clone.parameters()):
            dst.copy_(src.to(dst.device, dst.dtype))
        for dst, src in zip(layer.buffers(), clone.buffers()):
            dst.copy_(src.to(dst.device, dst.dtype))
        return layer
    g = torch.Generator().manual_seed(seed)
    for p in layer.parameters():
        p.copy_((torch.randn(p.shape, generator=g, dtype=torch.float32) * std + mean).to(p.device, p.dtype))
    for m in modules:
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()
    return layer


# --------------------------------------------------------------------------------------------- stages
@dataclass
class RandomizedModel:
    """One stage of a randomisation test: a deep copy of the model with ``layers`` re-initialised."""

    mode: str
    stage: str  # the layer re-initialised last (cascading) or alone (independent)
    index: int  # 0 = top (logits)
    layers: tuple[str, ...]
    model: nn.Module


def _check_common(model: nn.Module, init: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {INITS}")


def randomization_stages(
    model: nn.Module,
    mode: str,
    order: Sequence[str] | None = None,
    init: str = "default",
    seed: int = 0,
    mean: float = 0.0,
    std: float = 0.1,
    example_input: torch.Tensor | None = None,
) -> Iterator[RandomizedModel]:
    """The stages of a randomisation test of ``model`` in ``mode`` (:data:`MODES`), each a deep copy of ``model``.

    ``cascading``: stage k has ``order[0..k]`` re-initialised (top down, cumulative); the last stage is the fully
    re-initialised network when ``order`` covers every layer. ``independent``: stage k has only ``order[k]``
    re-initialised. ``order``: layer/block names from the logits down (default: :func:`randomizable_layers`).
    A bad ``mode`` fails at once; the other arguments are checked when the first stage is drawn.
    """
    if mode not in MODES:
        raise ValueError(f"unknown randomisation mode {mode!r}; use one of {MODES}")
    return _stages(model, mode, order, init, seed, mean, std, example_input)


def _stages(model, mode, order, init, seed, mean, std, example_input) -> Iterator[RandomizedModel]:
    _check_common(model, init)
    order = resolve_order(model, order, example_input)
    cascading = mode == "cascading"
    working = copy.deepcopy(model) if cascading else None
    for k, name in enumerate(order):
        stage_model = working if cascading else copy.deepcopy(model)
        _reinitialize_stage(stage_model, name, init, seed, mean, std)
        if cascading:
            # Each stage is its own copy: what a caller does to one stage cannot leak into the next.
            yield RandomizedModel(mode, name, k, tuple(order[: k + 1]), copy.deepcopy(stage_model))
        else:
            yield RandomizedModel(mode, name, k, (name,), stage_model)


def cascading_randomization(model: nn.Module, *args, **kwargs) -> Iterator[RandomizedModel]:
    """Stage k: a deep copy of ``model`` with ``order[0..k]`` re-initialised (top down, cumulative);
    ``randomization_stages(model, "cascading", ...)``, the same arguments."""
    return randomization_stages(model, "cascading", *args, **kwargs)


def independent_randomization(model: nn.Module, *args, **kwargs) -> Iterator[RandomizedModel]:
    """Stage k: a deep copy of ``model`` with only ``order[k]`` re-initialised;
    ``randomization_stages(model, "independent", ...)``, the same arguments."""
    return randomization_stages(model, "independent", *args, **kwargs)


# --------------------------------------------------------------------------------------------- runner
def _default_similarity() -> nn.Module:
    from lightning_modules.metrics.similarity import MapSimilarity

    return MapSimilarity()


def _key(*parts: str) -> str:
    # ModuleDict keys may not contain dots; layer names do.
    return "|".join(p.replace(".", ":") for p in parts)


class ModelRandomizationTest(nn.Module):
    """Runs the model randomisation test for several explainers on batches; similarities as torchmetrics.

    One similarity metric per (mode, stage, method) lives in ``self.metrics`` (a ``ModuleDict``), so a
    LightningModule that owns this runner gets device placement and DDP synchronisation for free. Call
    :meth:`update` once per batch and :meth:`compute` at the end. The first ``keep_examples`` images' maps
    (original and every stage) are kept for the figure grid.

    ``conventions``: which class each stage's map explains (:data:`TARGET_CONVENTIONS`): ``original`` keeps
    ``targets`` fixed across stages; ``retaken`` explains each randomised model's own predicted class (the official
    notebooks), and records per stage the share of images whose re-taken class equals the original one
    (``agreement``). Both conventions compare with the same original maps (the trained model's prediction).
    """

    def __init__(
        self,
        explainers: Mapping[str, Callable],
        order: Sequence[str],
        modes: Sequence[str] = MODES,
        init: str = "default",
        seed: int = 0,
        mean: float = 0.0,
        std: float = 0.1,
        similarity: Callable[[], nn.Module] | None = None,
        keep_examples: int = 4,
        conventions: Sequence[str] = ("original",),
    ):
        super().__init__()
        if not explainers:
            raise ValueError("no explainers given; pass {name: create_explainer(name)}")
        for mode in modes:
            if mode not in MODES:
                raise ValueError(f"unknown randomisation mode {mode!r}; use one of {MODES}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; use one of {INITS}")
        bad = [c for c in conventions if c not in TARGET_CONVENTIONS]
        if bad or not conventions or len(set(conventions)) != len(conventions):
            raise ValueError(f"conventions must be distinct names of {TARGET_CONVENTIONS}, got {list(conventions)}")
        self.conventions = tuple(conventions)
        self.explainers = dict(explainers)
        self.order = list(order)
        self.modes = tuple(modes)
        self.init, self.seed, self.mean, self.std = init, seed, mean, std
        self.keep_examples = int(keep_examples)
        make = similarity or _default_similarity
        self.metrics = nn.ModuleDict(
            {self._metric_key(conv, mode, stage, method): make() for conv in self.conventions for mode in self.modes
             for stage in self.order for method in self.explainers}
        )
        from torchmetrics import MeanMetric

        self.agreement = nn.ModuleDict(
            {_key(mode, stage): MeanMetric() for mode in self.modes for stage in self.order} if "retaken" in self.conventions else {}
        )
        self.examples: dict = {"images": None, "targets": None, "original": {}, "stages": {m: {} for m in self.modes}}

    @classmethod
    def for_model(cls, model: nn.Module, explainers: Mapping[str, Callable], order: Sequence[str] | None = None,
                  example_input: torch.Tensor | None = None, **kwargs) -> "ModelRandomizationTest":
        return cls(explainers, resolve_order(model, order, example_input), **kwargs)

    @staticmethod
    def _metric_key(convention: str, mode: str, stage: str, method: str) -> str:
        # the original convention keeps the keys it always had
        return _key(mode, stage, method) if convention == "original" else _key(convention, mode, stage, method)

    def stages(self, model: nn.Module, mode: str) -> Iterator[RandomizedModel]:
        return randomization_stages(model, mode, order=self.order, init=self.init, seed=self.seed, mean=self.mean, std=self.std)

    def explain(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: explainer(model, images, targets) for name, explainer in self.explainers.items()}

    def update(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
               ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Explain ``images`` with the original model and every stage; update the similarity metrics
        (``metric.update(stage_maps, original_maps[, ids])``; ``ids`` = ``batch["id"]`` de-duplicates samples
        that a distributed sampler pads). Returns the original maps (method -> (B, 1, H, W))."""
        original = self.explain(model, images, targets)
        keep = self.examples["images"] is None and self.keep_examples > 0
        if keep:
            n = min(self.keep_examples, images.shape[0])
            self.examples["images"] = images[:n].detach().cpu()
            self.examples["targets"] = targets[:n].detach().cpu()
            self.examples["original"] = {k: v[:n].cpu() for k, v in original.items()}
        for mode in self.modes:
            for stage in self.stages(model, mode):
                for conv in self.conventions:
                    if conv == "original":
                        stage_targets = targets
                    else:
                        with torch.no_grad():
                            stage_targets = stage.model(images).argmax(1)
                        self.agreement[_key(mode, stage.stage)].update((stage_targets == targets).float())
                    maps = self.explain(stage.model, images, stage_targets)
                    for method, m in maps.items():
                        metric = self.metrics[self._metric_key(conv, mode, stage.stage, method)]
                        if ids is None:
                            metric.update(m, original[method])
                        else:
                            metric.update(m, original[method], ids)
                    if keep and conv == self.conventions[-1]:
                        self.examples["stages"][mode][stage.stage] = {k: v[:n].cpu() for k, v in maps.items()}
                del stage
        return original

    def compute(self, per_sample: bool = False, convention: str = "original") -> dict[str, dict[str, dict[str, dict]]]:
        """mode -> stage -> method -> the similarity metric's ``compute()`` (measure -> mean), or with
        ``per_sample=True`` its ``per_sample()`` (measure -> (N,) values, for mean +- spread), of one of the
        target ``conventions``."""
        if convention not in self.conventions:
            raise ValueError(f"convention {convention!r} was not run; this test runs {list(self.conventions)}")
        out: dict = {}
        for mode in self.modes:
            out[mode] = {}
            for stage in self.order:
                out[mode][stage] = {}
                for method in self.explainers:
                    metric = self.metrics[self._metric_key(convention, mode, stage, method)]
                    out[mode][stage][method] = metric.per_sample() if per_sample else metric.compute()
        return out

    def compute_agreement(self) -> dict[str, dict[str, float]]:
        """mode -> stage -> share of images whose re-taken predicted class equals the original one (``retaken`` only)."""
        if "retaken" not in self.conventions:
            raise ValueError("agreement is measured only with the 'retaken' convention")
        return {mode: {stage: float(self.agreement[_key(mode, stage)].compute()) for stage in self.order} for mode in self.modes}

    def reset(self) -> None:
        for m in list(self.metrics.values()) + list(self.agreement.values()):
            m.reset()
        self.examples = {"images": None, "targets": None, "original": {}, "stages": {m: {} for m in self.modes}}
