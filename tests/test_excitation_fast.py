"""Excitation backprop's faster implementation (issue 43) against the implementation it replaced.

The reference below is the code before issue 43, condensed: every rule module's forward recorded in the graph and
wrapped by an identity Function that copies its output, the residual split's hooks on every block, the whole forward
(below the saliency layer too) recorded, the clamped weights rebuilt in every backward, ``F.interpolate`` for the
upsampling. The new code must give the same layer maps bit for bit and the same full maps to float rounding.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.base import hooks_guard, model_state_guard
from lightning_modules.explainers.excitation import (
    RULE_MODULES,
    _NORMS,
    classifier_layer,
    default_excitation_layer,
    linear_interpolation_matrix,
    residual_blocks,
    upsample_bilinear,
)
from lightning_modules.models import load_model, resolve_layer


# ------------------------------------------------------------------ the implementation before issue 43
class _OldRule(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, fwd):
        ctx.save_for_backward(x)
        ctx.fwd = fwd
        return y.clone()

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            z = ctx.fwd(xd)
            scaled = torch.where(z > 0, grad_out / z.clamp_min(1e-30), 0.0)
            (g,) = torch.autograd.grad(z, xd, scaled)
        return g * x.detach(), None, None


class _OldPass(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.same = x.shape == y.shape
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        return (g if ctx.same else None), None


def _share(rec, key):
    total = rec["main"] + rec["shortcut"]
    return torch.where(total > 0, rec[key] / total.clamp_min(1e-30), torch.zeros_like(total))


class _OldShare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, rec, key):
        ctx.rec, ctx.key = rec, key
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        if ctx.key == "main":
            ctx.rec["grad"] = grad
        return grad * _share(ctx.rec, ctx.key), None, None


class _OldCorrection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rec):
        ctx.rec = rec
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        if "grad" not in ctx.rec:
            return grad, None
        return grad - ctx.rec["grad"] * _share(ctx.rec, "main"), None


def _old_positive(module, state):
    if isinstance(module, nn.Linear):
        return lambda x: F.linear(x, (-module.weight if state["negate"] and module is state["classifier"] else module.weight).clamp(min=0))
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return lambda x: module._conv_forward(
            x, (-module.weight if state["negate"] and module is state["classifier"] else module.weight).clamp(min=0), None)
    return module.forward


def old_layer_maps(model, images, targets, layer_name=None, contrastive=False):
    layer = resolve_layer(model, layer_name if layer_name is not None else default_excitation_layer(model))
    state = {"negate": False, "classifier": classifier_layer(model), "active": False}
    store = []
    with model_state_guard(model), torch.enable_grad(), hooks_guard() as handles:
        for m in model.modules():
            if isinstance(m, RULE_MODULES):
                handles.append(m.register_forward_hook(
                    lambda _m, i, o, f=_old_positive(m, state): _OldRule.apply(i[0], o, f) if state["active"] else None))
            elif isinstance(m, _NORMS):
                handles.append(m.register_forward_hook(lambda _m, i, o: _OldPass.apply(i[0], o) if state["active"] else None))
        for block, main, short in residual_blocks(model):
            rec: dict = {}

            def pre(_m, args, rec=rec, identity=short is None):
                rec.clear()
                if identity:
                    rec["shortcut"] = args[0].detach().clone()
                    return (_OldCorrection.apply(args[0], rec),) + tuple(args[1:])
                return None

            def on(key, rec=rec):
                def hook(_m, _i, out):
                    rec[key] = out.detach().clone()
                    return _OldShare.apply(out, rec, key)
                return hook

            handles.append(block.register_forward_pre_hook(pre))
            handles.append(main.register_forward_hook(on("main")))
            if short is not None:
                handles.append(short.register_forward_hook(on("shortcut")))

        def at_layer(_m, _i, out):
            state["active"] = True
            act = out.detach().requires_grad_(True)
            store.append(act)
            return act

        handles.append(layer.register_forward_hook(at_layer))
        logits = model(images.detach())
        signal = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        (mwp,) = torch.autograd.grad(logits, store[0], signal, retain_graph=contrastive)
        maps = mwp.sum(1, keepdim=True)
        if contrastive:
            state["negate"] = True
            maps = maps - torch.autograd.grad(logits, store[0], signal)[0].sum(1, keepdim=True)
    return maps


def old_maps(model, images, targets, contrastive=False):
    maps = old_layer_maps(model, images, targets, contrastive=contrastive)
    if contrastive:
        maps = maps.clamp_min(0)
    return F.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)


# ------------------------------------------------------------------ tests
def _model(name):
    torch.manual_seed(0)
    if name.startswith("scenes_v2"):
        from lightning_modules.benchmarks.explainers import load_bench_model

        try:
            model, cfg, _ = load_bench_model(name)
        except Exception as e:  # the shipped weights are not in this checkout
            pytest.skip(f"{name}: {e}")
    else:
        model, cfg = load_model(name)
    return model, cfg


@pytest.mark.parametrize("name", ["scenes_v2_resnet", "scenes_v2_vgg", "resnet8", "scenes_cnn", "mnist_cnn"])
def test_maps_equal_the_implementation_before_issue_43(name):
    model, cfg = _model(name)
    c, h, w = cfg.input_size
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, c, h, w, generator=g)
    t = torch.randint(0, 10, (4,), generator=g)
    for contrastive in (False, True):
        expl = create_explainer("contrastive_excitation_backprop" if contrastive else "excitation_backprop")
        with model_state_guard(model), torch.enable_grad():
            got = expl.layer_maps(model, x, t)
        assert torch.equal(got, old_layer_maps(model, x, t, contrastive=contrastive)), (name, contrastive)
        ref = old_maps(model, x, t, contrastive)
        torch.testing.assert_close(expl(model, x, t), ref, rtol=1e-5, atol=1e-6 * ref.abs().max().item())


@pytest.mark.parametrize("layer", ["layer3.0.act1", "layer3.0.conv2", "layer3.1", "layer3.1.bn1", "layer2.0.downsample.1"])
def test_layers_inside_or_at_a_residual_block_equal_the_old_implementation(layer):
    """A layer inside a block (its sum above the layer), a block itself, the main branch's last module and the
    shortcut branch: the blocks the new code leaves alone below the layer never matter."""
    model, cfg = _model("scenes_v2_resnet")
    x = torch.rand(3, *cfg.input_size, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([0, 5, 11])
    for contrastive in (False, True):
        expl = create_explainer("contrastive_excitation_backprop" if contrastive else "excitation_backprop", layer=layer)
        with model_state_guard(model), torch.enable_grad():
            got = expl.layer_maps(model, x, t)
        assert torch.equal(got, old_layer_maps(model, x, t, layer, contrastive)), (layer, contrastive)


def test_no_trace_left_and_grad_mode_restored():
    model, cfg = _model("resnet8")
    x = torch.rand(2, *cfg.input_size)
    n_hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    for mode in (True, False):
        torch.set_grad_enabled(mode)
        try:
            create_explainer("contrastive_excitation_backprop")(model, x, torch.tensor([1, 2]))
            assert torch.is_grad_enabled() is mode
        finally:
            torch.set_grad_enabled(True)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == n_hooks
    out = model(x)  # an ordinary forward afterwards records its graph as usual
    assert out.requires_grad == any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("src,dst", [((4, 4), (64, 64)), ((8, 5), (64, 37)), ((16, 16), (64, 64)), ((1, 3), (7, 9))])
def test_upsample_bilinear_equals_interpolate(src, dst):
    maps = torch.randn(3, 1, *src, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(maps, size=dst, mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsample_bilinear(maps, dst), ref, rtol=1e-5, atol=1e-6)
    assert linear_interpolation_matrix(src[0], dst[0]).shape == (dst[0], src[0])
    assert upsample_bilinear(maps, src) is maps


@pytest.mark.parametrize("name", ["excitation_backprop", "contrastive_excitation_backprop"])
def test_a_forward_that_raises_leaves_grad_mode_and_hooks_as_they_were(name):
    """The rule pre-hooks turn gradient recording off around each module's own forward: an exception inside the
    forward must not leave it off, nor leave hooks behind."""

    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), Boom(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    explainer = create_explainer(name, layer="0")
    for grad_mode in (True, False):
        with torch.set_grad_enabled(grad_mode):
            with pytest.raises(RuntimeError, match="boom"):
                explainer.attribute(net, torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))
            assert torch.is_grad_enabled() is grad_mode
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


@pytest.mark.parametrize("module, shape", [
    (nn.Conv2d(6, 4, 3, stride=2, padding=1, dilation=1, groups=2), (2, 6, 9, 9)),
    (nn.Conv2d(4, 8, 3, padding=2, dilation=2, bias=False), (2, 4, 7, 5)),
    (nn.Conv1d(3, 5, 4, stride=3), (2, 3, 17)),
    (nn.Linear(7, 3), (2, 5, 7)),
])
def test_closed_form_vector_jacobian_product_equals_autograd(module, shape):
    """The rule's closed-form ``J_f+^T g`` (conv input gradient, ``g @ w+``) against autograd through ``f+``."""
    from lightning_modules.explainers.excitation import _ExcitatoryRule

    torch.manual_seed(0)
    rule = _ExcitatoryRule(module, {"negate": False, "classifier": None, "weights": {}})
    assert rule.closed_form
    x = torch.rand(shape, requires_grad=True)
    z = rule.forward(x)
    g = torch.rand_like(z)
    (ref,) = torch.autograd.grad(z, x, g)
    assert torch.equal(rule.vjp(g, x.detach()), ref)
    assert not _ExcitatoryRule(nn.Conv2d(2, 2, 3, padding="same"), {"negate": False, "classifier": None}).closed_form
    assert not _ExcitatoryRule(nn.MaxPool2d(2), {"negate": False, "classifier": None}).closed_form
