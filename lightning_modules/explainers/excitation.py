"""Excitation backprop and its contrastive variant (Zhang, Lin, Brandt, Shen, Sclaroff 2016, "Top-down Neural
Attention by Excitation Backprop", ECCV; arXiv 1608.00507). Not in Captum: our own autograd hooks.

Marginal winning probability (MWP, Sec. 3.2, Eq. 2-4): a top-down signal (one-hot on the target class)
is passed back layer by layer; a linear layer ``y_i = sum_j w_ij x_j`` with non-negative inputs ``x``
hands parent ``i``'s probability to child ``j`` in proportion to its excitatory contribution:

    P(a_j) = sum_i  x_j w+_ij / (sum_k x_k w+_ik) * P(a_i),        w+ = max(w, 0), bias ignored

which, written as ``x * J^T(p / f+(x))`` with ``f+`` the layer with weights ``w+``, is one vector-Jacobian
product (the form TorchRay and the authors' Caffe code use). Average/max pooling use the same rule with
their own weights; batch norm passes the signal unchanged; ReLU, flatten, dropout, concatenation use the
ordinary gradient. The rule conserves probability mass, so the MWP map at a layer sums to 1 (Eq. 4).

Contrastive excitation backprop (Sec. 3.3, Eq. 5-6): the dual unit of the target has the classifier's
weights negated; its MWP map is subtracted from the target's. Because the backward rule is linear in the
signal, this equals TorchRay's "subtract at the contrast layer" formulation at any contrast layer. The
positive part is kept (``clamp=True``, as TorchRay and the paper's figures do).

Implementation: forward hooks on the linear / pooling / batch-norm modules above the saliency layer wrap each
output in an autograd Function whose backward applies the rule; one forward pass, one backward pass per map
(two for the contrastive variant, sharing the forward and the rule's positive forwards ``f+``, which do not depend on
the signal; only the classifier's, negated for the dual, runs twice). Residual sums ``s = main + shortcut`` (ResNet basic/bottleneck
blocks of torchvision, timm and ours) split the signal in proportion to the summands (TorchRay's
element-wise-sum rule), through hooks on the block, its last batch norm and its shortcut, since the addition
itself is functional; other functional additions get the plain gradient, which duplicates mass
(``normalize=True`` then still gives a distribution).

Default saliency layers (``layer=None``): TorchRay's benchmark settings where they exist (vgg ``features.23``
= pool4, resnet ``layer3``), an analogous mid-level layer otherwise: googlenet ``maxpool2`` (Caffe's
``pool2/3x3_s2``; our choice, unconfirmed against the authors' demo), alexnet ``features.5`` (pool2),
squeezenet ``features.6``, inception_v3 ``Mixed_6e``; our nets: scenes_cnn ``features.9`` (the ReLU feeding
the last conv, 1/4 resolution: the input of the last conv stage, as VGG's pool4 is; ``nets.py`` keeps that
index stable), resnet8 ``layer2``, mnist_cnn ``features.2`` (first pool, 14x14).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.explainers.base import Explainer, hooks_guard, register_explainer
from lightning_modules.models import resolve_layer, unwrap

#: Default saliency layers, relative to the bare network (see the module docstring); a callable picks the
#: layer from the network itself.
DEFAULT_EXCITATION_LAYERS = {
    "scenescnn": "features.9",
    "scenesvgg": "features.12",  # the last ReLU of the second stage (16 px), before its pool
    "resnet8": "layer2",
    "mnistcnn": "features.2",
    "vgg": "features.23",
    "resnet": "layer3",
    "googlenet": "maxpool2",
    "inception_v3": "Mixed_6e",
    "inception3": "Mixed_6e",
    "alexnet": "features.5",
    "squeezenet": "features.6",
}

_POOLS = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool1d, nn.MaxPool1d,
          nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def default_excitation_layer(model: nn.Module) -> str:
    net = unwrap(model)
    names = [type(net).__name__.lower(), getattr(getattr(model, "data_config", None), "name", "") or ""]
    for key, layer in DEFAULT_EXCITATION_LAYERS.items():
        if any(n == key or n.startswith(key) for n in names if n):
            return layer(net) if callable(layer) else layer
    raise ValueError(
        f"no default excitation-backprop layer known for {type(net).__name__}; pass layer='<module name>' "
        "(a mid-level layer whose output is non-negative, e.g. a ReLU or pooling output)"
    )


def classifier_layer(model: nn.Module) -> nn.Module:
    """The last Linear / Conv module with weights (TorchRay's choice of the layer the dual negates)."""
    last = None
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            last = m
    if last is None:
        raise ValueError(f"{type(model).__name__} has no Linear/Conv layer to build the contrastive dual from")
    return last


def _identity_output(ctx, x, y):
    """``y`` itself as the Function's output where that is safe (``y`` computed without a graph and not ``x``:
    declared modified in place, so autograd re-labels it instead of copying it), else a copy (the old way)."""
    if y is not x and not y.requires_grad and y._base is None:
        ctx.mark_dirty(y)
        return y
    return y.clone()


def _positive_part_divisor(total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(divisor, step)`` such that ``(p / divisor) * step`` is ``p / total`` where ``total > 0`` and 0 elsewhere,
    the same values as ``torch.where(total > 0, p / total.clamp_min(1e-30), 0)`` (``* 1.0`` is exact; a zero may
    come out as ``-0.0``), with vectorised arithmetic only: on a CPU, on the (32, 64, 4, 4) tensors above
    scenes_v2_resnet's layer, ``where`` and ``masked_fill`` took 50-110 us each against 4-7 us for ``clamp``, ``sign``,
    ``maximum`` or a division. ``divisor`` is 1 where ``total <= 0``, so nothing overflows there."""
    step = total.clamp_min(0).sign_()
    return torch.maximum(total.clamp_min(1e-30), 1.0 - step), step


class _LinearRule(torch.autograd.Function):
    """Identity forward on ``y = f(x)``; backward: ``x * J_f+^T (p / f+(x))`` (Eq. 2-3 of Zhang et al.).

    ``rule`` is the module's ``_ExcitatoryRule``: ``f+`` and, for convolutions and linear layers, its
    vector-Jacobian product in closed form (the input gradient of the same kernel autograd would call, without
    recording ``f+``'s graph or a nested autograd call); pooling differentiates its own forward. ``f+(x)`` and the
    terms of ``1 / f+(x)`` do not depend on the signal ``p``: with ``reuse`` (every module but the classifier,
    whose ``f+`` the contrastive dual negates) the first backward keeps them for the second (the contrastive
    variant's dual pass), which then runs only the vector-Jacobian product."""

    @staticmethod
    def forward(ctx, x, y, rule, reuse=False):
        ctx.save_for_backward(x)
        ctx.rule = rule
        ctx.reuse = reuse
        ctx.kept = None
        return _identity_output(ctx, x, y)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        rule = ctx.rule
        kept = ctx.kept
        if kept is None:
            if rule.closed_form:
                with torch.no_grad():
                    z = rule.forward(x)
                xd = None
            else:
                with torch.enable_grad():
                    xd = x.detach().requires_grad_(True)
                    z = rule.forward(xd)
            kept = (xd, z) + _positive_part_divisor(z.detach())
            if ctx.reuse:
                ctx.kept = kept
        xd, z, divisor, step = kept
        scaled = (grad_out / divisor).mul_(step)  # p / f+(x) where f+(x) > 0, else 0
        if xd is None:
            return rule.vjp(scaled, x).mul_(x), None, None, None
        (g,) = torch.autograd.grad(z, xd, scaled, retain_graph=ctx.reuse)
        return g * x, None, None, None


class _PassThrough(torch.autograd.Function):
    """Identity forward on ``y = f(x)``; backward hands the signal to ``x`` unchanged (batch norm)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.same_shape = x.shape == y.shape
        return _identity_output(ctx, x, y)

    @staticmethod
    def backward(ctx, grad_out):
        return (grad_out if ctx.same_shape else None), None


#: Modules whose backward the rule replaces by the VJP of their excitatory forward ``f+`` (``_LinearRule``).
RULE_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d) + _POOLS


def excitatory_forward(module: nn.Module):
    """``f+`` of one of ``RULE_MODULES``: only the excitatory (positive) weights, no bias; pooling is itself (the
    pass the rule runs once per module above the saliency layer and per backward; the benchmarks time it)."""
    return _ExcitatoryRule(module, {"negate": False, "classifier": None}).forward


class _ExcitatoryRule:
    """``f+`` of a rule module: the module with only excitatory (positive) weights and no bias; pooling is itself.
    The clamped weights are made once per map (cached in ``state["weights"]`` where the state has that key:
    ``layer_maps`` gives each call a fresh one), not once per backward pass. ``closed_form``: ``vjp`` gives
    ``J_f+^T g`` directly (a convolution's input gradient, ``g @ w+`` for a linear layer); else (pooling, string
    padding, non-zero padding modes) the rule differentiates ``forward``."""

    def __init__(self, module: nn.Module, state: dict):
        self.module, self.state = module, state
        conv = isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
        self.closed_form = isinstance(module, nn.Linear) or (
            conv and not isinstance(module.padding, str) and module.padding_mode == "zeros")

    def weight(self) -> torch.Tensor:
        module, state = self.module, self.state
        negate = state["negate"] and module is state["classifier"]
        cache = state.get("weights")
        if cache is None:
            return (-module.weight if negate else module.weight).clamp(min=0)
        key = (id(module), negate)
        w = cache.get(key)
        if w is None:
            with torch.no_grad():
                w = cache[key] = (-module.weight if negate else module.weight).clamp(min=0)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = self.module
        if isinstance(module, nn.Linear):
            return F.linear(x, self.weight())
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return module._conv_forward(x, self.weight(), None)
        return module.forward(x)  # pooling (its forward, not its hooks): the same non-negative weights

    def vjp(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``J_f+^T grad`` at the input ``x`` (only where ``closed_form``)."""
        module, w = self.module, self.weight()
        if isinstance(module, nn.Linear):
            return grad.matmul(w)
        return torch.ops.aten.convolution_backward(
            grad, x, w, None, list(module.stride), list(module.padding), list(module.dilation), False,
            [0] * (w.dim() - 2), module.groups, [True, False, False])[0]


def _shares(rec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(main / s, shortcut / s) where ``s = main + shortcut > 0``, else 0: computed once per forward (the
    contrastive variant's two backward passes read them twice)."""
    if "shares" not in rec:
        divisor, step = _positive_part_divisor(rec["main"] + rec["shortcut"])
        rec["shares"] = tuple((rec[k] / divisor).mul_(step) for k in ("main", "shortcut"))
    return rec["shares"]


class _ResidualShare(torch.autograd.Function):
    """Identity forward on one summand of a residual sum ``s = main + shortcut``; backward hands it its share
    ``summand / s`` of the signal at ``s`` (TorchRay's element-wise-sum rule). The main branch's backward also
    records the signal at ``s`` for the identity correction below."""

    @staticmethod
    def forward(ctx, y, rec, key):
        ctx.rec, ctx.key = rec, key
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        rec = ctx.rec
        if ctx.key == "main":
            rec["grad"] = grad
        return grad * _shares(rec)[0 if ctx.key == "main" else 1], None, None


class _IdentityShortcutCorrection(torch.autograd.Function):
    """On the input ``x`` of a block whose shortcut is the identity: plain autograd hands ``x`` the whole
    signal at ``s`` through the shortcut; remove the main branch's share so the shortcut gets ``x / s``."""

    @staticmethod
    def forward(ctx, x, rec):
        ctx.rec = rec
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        rec = ctx.rec
        if "grad" not in rec:
            return grad, None
        return grad - rec["grad"] * _shares(rec)[0], None


def residual_blocks(model: nn.Module):
    """(block, last module of the main branch, shortcut module or None for the identity) of every ResNet
    basic/bottleneck block (torchvision and timm naming: conv1, bn2[, bn3], downsample; ours: shortcut)."""
    for m in model.modules():
        if not (hasattr(m, "conv1") and isinstance(getattr(m, "bn2", None), nn.Module)):
            continue
        if not (hasattr(m, "downsample") or hasattr(m, "shortcut")):
            continue
        main = m.bn3 if isinstance(getattr(m, "bn3", None), nn.Module) else m.bn2
        short = getattr(m, "downsample", None) if hasattr(m, "downsample") else getattr(m, "shortcut", None)
        if isinstance(short, nn.Sequential) and len(short) == 0:
            short = None
        yield m, main, short


def _residual_hooks(model: nn.Module, handles: list, state: dict) -> None:
    """The residual split (``_ResidualShare``) on every block the backward pass reaches: while
    ``state["active"]`` is False (below the saliency layer) a block is left alone, unless the layer
    (``state["layer"]``) is inside it (then its sum is above the layer and the block is wrapped as a whole)."""
    layer = state.get("layer")
    for block, main, short in residual_blocks(model):
        rec: dict = {}
        always = layer is not None and layer is not block and any(m is layer for m in block.modules())

        def on(rec=rec, always=always):
            return always or state.get("active", True)

        def pre(_m, args, rec=rec, identity=short is None, on=on):
            rec.clear()
            if not on():
                return None
            x = args[0]
            if identity:
                # the block reads the copy returned here; ``x`` itself is not touched again (no clone needed)
                rec["shortcut"] = x.detach()
                return (_IdentityShortcutCorrection.apply(x, rec),) + tuple(args[1:])
            return None

        def on_main(_m, _i, out, rec=rec, on=on):
            if not on():
                return None
            # ``out`` itself is kept: the block adds its shortcut in place to the copy returned here
            rec["main"] = out.detach()
            return _ResidualShare.apply(out, rec, "main")

        handles.append(block.register_forward_pre_hook(pre))
        handles.append(main.register_forward_hook(on_main))
        if short is not None:
            def on_short(_m, _i, out, rec=rec, on=on):
                if not on():
                    return None
                rec["shortcut"] = out.detach()
                return _ResidualShare.apply(out, rec, "shortcut")

            handles.append(short.register_forward_hook(on_short))


def excitation_hooks(model: nn.Module, handles: list, state: dict) -> None:
    """Register the rule hooks on every supported module of ``model`` (handles go to ``handles``);
    residual blocks split the signal at their sum between the two branches. While ``state["active"]`` is False
    the per-module hooks leave outputs alone (``layer_maps`` turns it on at the saliency layer: the backward pass
    stops there, so wrapping the modules below it would only copy their outputs). Where active, a rule module's
    own forward runs without recording a graph (its backward is the rule's, never autograd's): a pre-hook turns
    gradient recording off, the forward hook turns it back on and wraps the output."""
    toggled: list[bool] = []

    def pre(_m, _args):
        off = bool(state.get("active", True)) and torch.is_grad_enabled()
        if off:
            torch.set_grad_enabled(False)
        toggled.append(off)

    def resume() -> None:
        if toggled.pop():
            torch.set_grad_enabled(True)

    for m in model.modules():
        if isinstance(m, RULE_MODULES):
            rule = _ExcitatoryRule(m, state)

            def hook(_m, inputs, out, rule=rule, reuse=m is not state.get("classifier")):
                resume()
                return _LinearRule.apply(inputs[0], out, rule, reuse) if state.get("active", True) else None
        elif isinstance(m, _NORMS):
            def hook(_m, inputs, out):
                resume()
                return _PassThrough.apply(inputs[0], out) if state.get("active", True) else None
        else:
            continue
        # prepend: the pre-hook must run right before the module's own forward, after any other pre-hook
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(hook, prepend=True))
    # After the per-module rules, so the residual share wraps the (pass-through) batch-norm output.
    _residual_hooks(model, handles, state)


_LINEAR_WEIGHTS: dict = {}


def linear_interpolation_matrix(n_in: int, n_out: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D linear interpolation (``align_corners=False``), read off ``F.interpolate`` of
    the unit impulses; cached per size, device and dtype."""
    key = (n_in, n_out, str(device), dtype)
    m = _LINEAR_WEIGHTS.get(key)
    if m is None:
        eye = torch.eye(n_in, device=device, dtype=dtype).unsqueeze(1)  # n_in impulses, (n_in, 1, n_in)
        m = _LINEAR_WEIGHTS[key] = F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[:, 0].T.contiguous()
    return m


def upsample_bilinear(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(maps, size, mode="bilinear", align_corners=False)`` of (B, 1, h, w) maps as ``L @ m @ R^T``
    (bilinear interpolation is separable into two 1-D linear ones): the same values to float rounding (tested), at
    a fraction of the cost for the few-cell maps of a mid-level layer (on a CPU the kernel costs about 5 % of a
    whole excitation-backprop call at batch 32)."""
    h, w = maps.shape[-2:]
    if (h, w) == tuple(size):
        return maps
    left = linear_interpolation_matrix(h, size[0], maps.device, maps.dtype)  # (H, h)
    right = linear_interpolation_matrix(w, size[1], maps.device, maps.dtype)  # (W, w)
    return torch.matmul(torch.matmul(left, maps), right.T)


@register_explainer("excitation_backprop")
class ExcitationBackprop(Explainer):
    """``layer``: where the MWP map is read (None: the per-architecture default above). ``normalize``: divide
    each map by its total mass (exactly a distribution even where mass leaks, e.g. functional residual adds);
    off by default since the rule conserves mass on plain conv nets (tests check the sum is 1)."""

    contrastive = False

    def __init__(self, layer: str | None = None, normalize: bool = False, clamp: bool = True):
        self.layer = layer
        self.normalize = normalize
        self.clamp = clamp

    def layer_maps(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) MWP map at the layer (channels summed; contrastive: target minus dual, unclamped)."""
        layer = resolve_layer(model, self.layer if self.layer is not None else default_excitation_layer(model))
        state = {"negate": False, "classifier": classifier_layer(model), "active": False, "layer": layer, "weights": {}}
        store: list[torch.Tensor] = []

        def at_layer(_m, _i, out):
            # The map is the signal at the layer's output: the graph below it is never traversed, so the output
            # starts a fresh one, and the rules apply from the next module on. Below the layer the forward runs
            # without recording a graph (nothing there is ever differentiated); it is turned on here.
            state["active"] = True
            torch.set_grad_enabled(True)
            act = out.detach().requires_grad_(True)
            store.append(act)
            return act

        grad_mode = torch.is_grad_enabled()
        with hooks_guard() as handles:
            excitation_hooks(model, handles, state)
            # Registered after the rule hooks, so the layer's own rule hook runs first (inactive: its output is the map's).
            handles.append(layer.register_forward_hook(at_layer))
            try:
                torch.set_grad_enabled(False)
                logits = model(images.detach())
            finally:
                torch.set_grad_enabled(grad_mode)
        if len(store) != 1 or store[0].dim() < 3:
            raise ValueError(f"excitation layer must be called once per forward and give (B, C, ...) maps; got {len(store)} calls")
        act = store[0]
        signal = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        (mwp,) = torch.autograd.grad(logits, act, signal, retain_graph=self.contrastive)
        maps = self._channel_sum(mwp)
        if self.contrastive:
            state["negate"] = True  # the dual unit: classifier weights negated (read in the backward rule)
            (dual,) = torch.autograd.grad(logits, act, signal)
            maps = maps - self._channel_sum(dual)
        return maps

    def _channel_sum(self, mwp: torch.Tensor) -> torch.Tensor:
        maps = mwp.sum(dim=1, keepdim=True)
        if maps.dim() == 3:
            maps = maps.unsqueeze(-1)
        if self.normalize:
            maps = maps / maps.flatten(1).sum(1).view(-1, 1, 1, 1).clamp_min(1e-30)
        return maps

    def attribute(self, model, images, targets):
        maps = self.layer_maps(model, images, targets)
        if self.contrastive and self.clamp:
            maps = maps.clamp_min(0)
        return upsample_bilinear(maps, tuple(images.shape[-2:]))


@register_explainer("contrastive_excitation_backprop")
class ContrastiveExcitationBackprop(ExcitationBackprop):
    """Target MWP minus the dual (negated-classifier) MWP at ``layer``; positive part kept (``clamp``)."""

    contrastive = True
