"""Cross-checks: our explainers equal Captum called directly with the same settings, and independent
re-computations with plain autograd (so a wrong Captum call and a wrong Captum both show up)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

from lightning_modules.explainers import create_explainer
from lightning_modules.models import load_model, resolve_layer


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model, _ = load_model("scenes_cnn")
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 2, 5, 9])
    return model, images, targets


def _leaf(x):
    return x.detach().clone().requires_grad_(True)


def _autograd_input_grad(model, images, targets):
    x = _leaf(images)
    model(x).gather(1, targets[:, None]).sum().backward()
    return x.grad


def test_gradient_equals_captum_and_autograd(setup):
    model, images, targets = setup
    ours = create_explainer("gradient")(model, images, targets)
    captum = Saliency(model).attribute(_leaf(images), target=targets, abs=True).amax(1, keepdim=True)
    torch.testing.assert_close(ours, captum)
    torch.testing.assert_close(ours, _autograd_input_grad(model, images, targets).abs().amax(1, keepdim=True))


def test_input_x_gradient_equals_captum(setup):
    model, images, targets = setup
    ours = create_explainer("input_x_gradient")(model, images, targets)
    captum = InputXGradient(model).attribute(_leaf(images), target=targets).sum(1, keepdim=True)
    torch.testing.assert_close(ours, captum)
    torch.testing.assert_close(ours, (images * _autograd_input_grad(model, images, targets)).sum(1, keepdim=True))


def test_integrated_gradients_equals_captum_and_riemann_sum(setup):
    model, images, targets = setup
    ours = create_explainer("integrated_gradients", steps=20, samples_batch_size=16)(model, images, targets)
    captum = IntegratedGradients(model).attribute(_leaf(images), baselines=0.0, target=targets, n_steps=20).sum(1, keepdim=True)
    torch.testing.assert_close(ours, captum, rtol=1e-4, atol=1e-6)
    # Independent: midpoint Riemann sum of the path integral (Sundararajan et al. Eq. 3) with many steps.
    ours_mid = create_explainer("integrated_gradients", steps=32, method="riemann_middle")(model, images, targets)
    alphas = (torch.arange(32) + 0.5) / 32
    grads = sum(_autograd_input_grad(model, a * images, targets) for a in alphas) / 32
    torch.testing.assert_close(ours_mid, (images * grads).sum(1, keepdim=True), rtol=1e-4, atol=1e-6)


def test_smoothgrad_equals_captum_with_the_same_seed(setup):
    model, images, targets = setup
    for nt_type in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        ours = create_explainer(nt_type, n_samples=6, stdev=0.1, seed=7, samples_batch_size=8)(model, images, targets)
        torch.manual_seed(7)
        captum = NoiseTunnel(Saliency(model)).attribute(
            _leaf(images), nt_type=nt_type, nt_samples=6, nt_samples_batch_size=2, stdevs=0.1, target=targets, abs=False)
        torch.testing.assert_close(ours, captum.abs().amax(1, keepdim=True), rtol=1e-4, atol=1e-8)


def test_smoothgrad_is_the_mean_gradient_over_noise(setup):
    """Smilkov Eq. 3 recomputed by hand: same noise draws (seeded global RNG, Captum's draw order)."""
    model, images, targets = setup
    ours = create_explainer("smoothgrad", n_samples=5, stdev=0.2, seed=3, samples_batch_size=None)(model, images, targets)
    torch.manual_seed(3)
    noisy = images.repeat_interleave(5, 0) + torch.normal(0.0, 0.2, (20, 3, 32, 32))
    grads = _autograd_input_grad(model, noisy, targets.repeat_interleave(5)).view(4, 5, 3, 32, 32).mean(1)
    torch.testing.assert_close(ours, grads.abs().amax(1, keepdim=True), rtol=1e-4, atol=1e-8)


def test_seeded_noise_does_not_touch_the_global_rng(setup):
    model, images, targets = setup
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    create_explainer("smoothgrad", n_samples=2)(model, images, targets)
    torch.testing.assert_close(torch.rand(3), expected)


def test_guided_backprop_and_deconvnet_equal_captum(setup):
    model, images, targets = setup
    ours = create_explainer("guided_backprop")(model, images, targets)
    captum = GuidedBackprop(model).attribute(_leaf(images), target=targets).abs().amax(1, keepdim=True)
    torch.testing.assert_close(ours, captum)
    ours_d = create_explainer("deconvnet", reduction="sum")(model, images, targets)
    captum_d = Deconvolution(model).attribute(_leaf(images), target=targets).sum(1, keepdim=True)
    torch.testing.assert_close(ours_d, captum_d)
    assert not torch.allclose(ours, create_explainer("gradient")(model, images, targets))


def test_guided_backprop_by_hand(setup):
    """Springenberg Sec. 3.4: at every ReLU pass only positive gradient where the input was positive."""
    model, images, targets = setup
    handles = [m.register_full_backward_hook(lambda m, gin, gout: (gin[0].clamp(min=0),))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        ref = _autograd_input_grad(model, images, targets)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(create_explainer("guided_backprop", reduction="sum")(model, images, targets),
                               ref.sum(1, keepdim=True), rtol=1e-4, atol=1e-8)


def test_gradcam_equals_captum_and_hand_computation(setup):
    model, images, targets = setup
    layer = resolve_layer(model, None)
    ours = create_explainer("gradcam")(model, images, targets)
    cam = LayerGradCam(model, layer).attribute(_leaf(images), target=targets, relu_attributions=True)
    torch.testing.assert_close(ours, LayerAttribution.interpolate(cam, (32, 32), interpolate_mode="bilinear"))
    # Selvaraju Eq. 1-2 by hand: weights = spatial mean of the gradient at the layer.
    store = []
    h = layer.register_forward_hook(lambda m, i, o: store.append(o))
    try:
        logits = model(_leaf(images))
    finally:
        h.remove()
    (g,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), store[0])
    hand = F.relu((g.mean((2, 3), keepdim=True) * store[0]).sum(1, keepdim=True)).detach()
    torch.testing.assert_close(ours, F.interpolate(hand, (32, 32), mode="bilinear", align_corners=False))
    # A layer override is honoured (a different layer gives a different map).
    other = create_explainer("gradcam", layer="features.3")(model, images, targets)
    assert not torch.allclose(other, ours)


def test_guided_gradcam_equals_captum(setup):
    model, images, targets = setup
    ours = create_explainer("guided_gradcam")(model, images, targets)
    captum = GuidedGradCam(model, resolve_layer(model, None)).attribute(_leaf(images), target=targets)
    torch.testing.assert_close(ours, captum.abs().amax(1, keepdim=True))


@pytest.mark.parametrize("window,stride,fill", [(8, 4, 0.5), (6, 3, 0.0)])
def test_occlusion_equals_captum(setup, window, stride, fill):
    model, images, targets = setup
    ours = create_explainer("occlusion", window=window, stride=stride, fill=fill, samples_batch_size=40)(model, images, targets)
    captum = Occlusion(model).attribute(images, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
                                        baselines=fill, target=targets, perturbations_per_eval=1)
    torch.testing.assert_close(ours, captum[:, :1], rtol=1e-4, atol=1e-6)
    # every window Captum scores, the border-cut ones included: ceil((32 - window) / stride) + 1 per axis
    assert create_explainer("occlusion", window=window, stride=stride).n_windows(32, 32) == (-(-(32 - window) // stride) + 1) ** 2


def test_lime_equals_captum_lime_with_the_same_samples(setup):
    """Our batched LIME vs Captum's Lime (one image at a time) given the same superpixels, on/off patterns,
    fill image, kernel (sqrt(exp(-d^2/0.25^2)), cosine distance) and sklearn Ridge(alpha=1)."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    from lightning_modules.explainers.perturbation import segment_images

    model, images, targets = setup
    ours_expl = create_explainer("lime", n_samples=120, seed=5)
    ours = ours_expl(model, images[:2], targets[:2])
    segs = segment_images(images[:2], "slic")
    k = int(segs.max()) + 1
    z = ours_expl.patterns(k, images.device)

    def kernel(_orig, _pert, interp, **_):
        on = interp.float().flatten()
        cos = on.sum() / (on.norm() * on.numel() ** 0.5).clamp_min(1e-12)
        return torch.sqrt(torch.exp(-((1 - cos) ** 2) / 0.25**2))

    prob_model = lambda x: model(x).softmax(1)  # noqa: E731
    for i in range(2):
        seg = segs[i]
        k_i = int(seg.max()) + 1
        rows = iter(z[:, :k_i])
        lime = Lime(prob_model, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=kernel,
                    perturb_func=lambda *_a, **_k: next(rows)[None])
        # Hidden superpixels take their mean colour (lime's hide_color=None).
        fill = torch.zeros_like(images[i])
        for s in range(k_i):
            sel = seg == s
            fill[:, sel] = images[i][:, sel].mean(1, keepdim=True)
        ref = lime.attribute(images[i : i + 1], target=int(targets[i]), baselines=fill[None],
                             feature_mask=seg[None, None].expand(1, 3, -1, -1), n_samples=120)
        torch.testing.assert_close(ours[i : i + 1], ref[:, :1], rtol=2e-3, atol=1e-6)


@pytest.fixture(scope="module")
def bench_batch():
    """The benchmark's setting (scenes_cnn, 64 px, a batch of 8): where the rewritten methods are timed."""
    torch.manual_seed(0)
    model, _ = load_model("scenes_cnn")
    gen = torch.Generator().manual_seed(5)
    return model, torch.rand(8, 3, 64, 64, generator=gen), torch.randint(0, 10, (8,), generator=gen)


@pytest.mark.parametrize("reduction", ["sum", "abs_max", "max_abs_signed"])
def test_guided_backprop_and_deconvnet_are_bit_identical_to_captum(bench_batch, reduction):
    """Our ReLU hooks replace Captum's (which clone every ReLU input): same numbers, not merely close."""
    model, images, targets = bench_batch
    from lightning_modules.explainers.base import reduce_channels

    for name, oracle in (("guided_backprop", GuidedBackprop), ("deconvnet", Deconvolution)):
        ours = create_explainer(name, reduction=reduction)(model, images, targets)
        ref = reduce_channels(oracle(model).attribute(_leaf(images), target=targets).detach(), reduction)
        assert torch.equal(ours, ref), name


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("n_samples,chunk", [(7, 24), (5, None)])
def test_noise_tunnel_methods_are_bit_identical_to_captum(bench_batch, nt_type, n_samples, chunk):
    """Same draws, same sums: chunks of 3 samples per image with a remainder of 1 (7 = 2 x 3 + 1), and one chunk."""
    model, images, targets = bench_batch
    ours = create_explainer(nt_type, n_samples=n_samples, stdev=0.15, seed=4, samples_batch_size=chunk,
                            reduction="sum")(model, images, targets)
    per = n_samples if chunk is None else max(1, min(n_samples, chunk // images.shape[0]))
    torch.manual_seed(4)
    ref = NoiseTunnel(Saliency(model)).attribute(
        _leaf(images), nt_type=nt_type, nt_samples=n_samples, nt_samples_batch_size=per, stdevs=0.15, target=targets,
        abs=False).sum(1, keepdim=True)
    assert torch.equal(ours, ref)


class _InplaceNet(nn.Module):
    def __init__(self, inplace: bool):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.relu1, self.relu2 = nn.ReLU(inplace=inplace), nn.ReLU(inplace=inplace)
        self.fc = nn.Linear(6, 4)
        self.num_classes = 4

    def forward(self, x):
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).mean((2, 3)))


def test_modified_relus_handle_in_place_relus():
    """torchvision/timm nets use in-place ReLUs: the maps equal the out-of-place net's (Captum) and the modules'
    ``inplace`` flag is restored."""
    torch.manual_seed(1)
    net = _InplaceNet(inplace=True)
    ref_net = _InplaceNet(inplace=False)
    ref_net.load_state_dict(net.state_dict())
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 3])
    for name, oracle in (("guided_backprop", GuidedBackprop), ("deconvnet", Deconvolution)):
        ours = create_explainer(name, reduction="sum")(net, images, targets)
        ref = oracle(ref_net).attribute(_leaf(images), target=targets).sum(1, keepdim=True)
        torch.testing.assert_close(ours, ref)
        assert ours.abs().sum() > 0
    assert net.relu1.inplace and net.relu2.inplace
    assert not any(m._forward_hooks for m in net.modules())
