"""Known-answer tests of meaningful-perturbation mask learning (Fong & Vedaldi 2017)."""

import math

import pytest
import torch
import torch.nn as nn

from lightning_modules.explainers import create_explainer
from lightning_modules.tasks.mask_learning import (
    MaskConfig,
    MaskUpsampler,
    circle_masks,
    learn_masks,
    normalized_score,
    perturbation_substrate,
    tv_norm,
    upsample_mask,
)

SIZE = 32


class RegionModel(nn.Module):
    """Class 0's logit is the mean brightness inside a known square; class 1 is constant. The evidence for
    class 0 is therefore exactly that square, known by construction."""

    def __init__(self, y0=4, y1=14, x0=18, x1=28, gain=10.0):
        super().__init__()
        self.region = (y0, y1, x0, x1)
        self.gain = gain
        self.bias = nn.Parameter(torch.tensor(0.0))  # a parameter, so requires_grad handling is exercised

    def forward(self, x):
        y0, y1, x0, x1 = self.region
        r = x[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3))
        return torch.stack([self.gain * (r - 0.6) + self.bias, torch.zeros_like(r)], dim=1)


def scene(b=2):
    torch.manual_seed(0)
    x = 0.1 * torch.rand(b, 3, SIZE, SIZE)
    x[:, :, 4:14, 18:28] = 0.9
    return x


FAST = dict(iterations=120, lr=0.1, l1_coeff=1e-3, tv_coeff=1e-2, mask_scale=4, perturbation="constant",
            init="ones", jitter=0, reference_size=SIZE, mask_blur_sigma=0.5, scale_to_image=False)


def test_deletion_mask_removes_the_known_region():
    model, x = RegionModel(), scene()
    res = learn_masks(model, x, 0, FAST)
    deleted = 1 - res.mask
    region = torch.zeros(1, 1, SIZE, SIZE, dtype=torch.bool)
    region[..., 4:14, 18:28] = True
    inside = deleted[region.expand_as(deleted)].view(2, -1).mean(1)
    outside = deleted[~region.expand_as(deleted)].view(2, -1).mean(1)
    assert (inside > 0.5).all(), inside
    assert (outside < 0.15).all(), outside
    assert (res.final_score < 0.5 * res.clean_score).all()


def test_losses_decrease_and_are_recorded_per_image():
    res = learn_masks(RegionModel(), scene(3), 0, FAST)
    assert res.loss_history.shape == (FAST["iterations"], 3)
    first, last = res.loss_history[:5].mean(0), res.loss_history[-5:].mean(0)
    assert (last < 0.5 * first).all(), (first, last)


def test_preservation_keeps_the_known_region():
    cfg = dict(FAST, game="preservation", init="half", l1_coeff=5e-3)
    res = learn_masks(RegionModel(), scene(), 0, cfg)
    kept = res.mask
    assert kept[..., 4:14, 18:28].mean() > 0.6
    outside = kept.clone()
    outside[..., 4:14, 18:28] = float("nan")
    assert outside.nanmean() < 0.2
    assert (res.final_score > 0.5).all()


def test_batched_equals_one_at_a_time_with_jitter_and_noise():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5)).eval()
    x = torch.rand(3, 3, SIZE, SIZE)
    t = torch.tensor([0, 3, 1])
    for perturbation in ("blur", "noise"):  # noise: the draw must not depend on the batch's size
        cfg = dict(iterations=15, mask_scale=4, jitter=4, init="circle", perturbation=perturbation, reference_size=64)
        joint = learn_masks(model, x, t, cfg)
        for i in range(3):
            single = learn_masks(model, x[i:i + 1], t[i:i + 1], cfg)
            torch.testing.assert_close(joint.mask[i:i + 1], single.mask, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(joint.loss_history[:, i], single.loss_history[:, 0], atol=1e-5, rtol=1e-4)


def test_deterministic_given_seed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.rand(2, 3, SIZE, SIZE)
    cfg = dict(iterations=10, mask_scale=4, jitter=4, perturbation="noise", reference_size=64)
    a, b = learn_masks(model, x, 0, cfg), learn_masks(model, x, 0, cfg)
    assert torch.equal(a.mask, b.mask)
    c = learn_masks(model, x, 0, dict(cfg, seed=5))
    assert not torch.equal(a.mask, c.mask)


def test_sizes_scale_with_the_image():
    cfg = MaskConfig()
    px = cfg.scaled(64)
    assert px["blur_sigma"] == pytest.approx(10 * 64 / 224)
    assert px["mask_blur_sigma"] == pytest.approx(5 * 64 / 224)
    assert px["jitter"] == round(4 * 64 / 224) == 1
    assert cfg.scaled(224)["blur_sigma"] == 10
    assert MaskConfig(scale_to_image=False).scaled(64)["blur_sigma"] == 10


@pytest.mark.parametrize("low,size,sigma", [((16, 16), (64, 64), 5 * 64 / 224), ((8, 6), (32, 24), 2.0),
                                            ((28, 28), (112, 112), 2.5), ((4, 4), (16, 16), 0.0), ((5, 5), (20, 20), 9.0)])
def test_fused_upsampler_equals_upsample_then_blur(low, size, sigma):
    """The precomputed L @ m @ R^T operator is the nearest-upsample + reflect-padded Gaussian blur pipeline
    (including the kernel capped to the image), on random masks and in the backward pass."""
    torch.manual_seed(0)
    m = torch.rand(3, 1, *low, requires_grad=True)
    fused = MaskUpsampler(low, size, sigma)(m)
    g = torch.randn_like(fused)
    (gf,) = torch.autograd.grad((fused * g).sum(), m)
    ref = upsample_mask(m, size, sigma)
    (gr,) = torch.autograd.grad((ref * g).sum(), m)
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(gf, gr, atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="MaskUpsampler built for"):
        MaskUpsampler(low, size, sigma)(torch.rand(1, 1, low[0] + 1, low[1]))


def test_tv_norm_hand_computed():
    m = torch.zeros(1, 1, 4, 4)
    m[..., :, 2:] = 1.0  # one vertical edge crossing 4 rows
    assert tv_norm(m, 3.0).item() == pytest.approx(4.0)
    m2 = 0.5 * m
    assert tv_norm(m2, 3.0).item() == pytest.approx(4 * 0.125)
    assert tv_norm(m2, 2.0).item() == pytest.approx(4 * 0.25)


def test_perturbations():
    x = scene(1)
    const = perturbation_substrate(x, "constant", 1.0, 0.1)
    torch.testing.assert_close(const[0, :, 0, 0], x[0].mean(dim=(1, 2)))
    blur = perturbation_substrate(x, "blur", 2.0, 0.1)
    assert blur.std() < x.std()
    torch.testing.assert_close(blur.mean(), x.mean(), atol=0.02, rtol=0)
    g = torch.Generator().manual_seed(0)
    noise = perturbation_substrate(x, "noise", 1.0, 0.1, g)
    # Eq. 3: noise *replaces* the deleted pixels (around the mean colour), it is not added to the image: nothing of
    # the image's content survives in the substrate
    assert 0.05 < (noise - const).std() < 0.12 and noise.min() >= 0 and noise.max() <= 1
    assert abs(torch.corrcoef(torch.stack([noise.flatten(), x.flatten()]))[0, 1]) < 0.1
    with pytest.raises(ValueError, match="perturbation"):
        perturbation_substrate(x, "salt", 1.0, 0.1)


def test_circle_init_picks_the_smallest_suppressing_circle():
    class CentreModel(nn.Module):
        def forward(self, x):  # evidence: brightness of the central 8x8 pixels
            r = x[:, :, 12:20, 12:20].mean(dim=(1, 2, 3))
            return torch.stack([40 * (r - 0.3), torch.zeros_like(r)], 1)

    x = 0.1 * torch.ones(2, 3, SIZE, SIZE)
    x[:, :, 12:20, 12:20] = 0.9
    cfg = dict(FAST, init="circle", iterations=0, init_radii=17, init_circle_sigma=0.0)
    res = learn_masks(CentreModel(), x, 0, cfg)
    # radii step 1.414 px; the 8x8 square's half-diagonal is ~5.7 px (from the pixel-centre grid)
    assert (res.init_radius > 3.0).all() and (res.init_radius < 8.0).all(), res.init_radius
    masks = circle_masks((SIZE, SIZE), torch.tensor([0.0, 100.0]), 0.0)
    assert masks[0].min() == 1 and masks[1].max() == 0


def test_top5_objective_sums_the_clean_top5():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8, 10)).eval()
    x = torch.rand(2, 3, SIZE, SIZE)
    res = learn_masks(model, x, 0, dict(iterations=2, mask_scale=4, objective="top5", init="ones", reference_size=64))
    probs = model(x).softmax(1)
    torch.testing.assert_close(res.clean_score, probs.topk(5, 1).values.sum(1))
    assert res.extras["classes"].shape == (2, 5)


def test_explainer_registry_and_state_restored():
    model = RegionModel().train()
    ex = create_explainer("meaningful_perturbation", **FAST)
    maps = ex(model, scene(), torch.tensor([0, 0]))
    assert maps.shape == (2, 1, SIZE, SIZE)
    assert maps[..., 4:14, 18:28].mean() > maps.mean()
    assert model.training and model.bias.requires_grad


def test_normalized_score():
    s = normalized_score(torch.tensor([0.5, 0.1]), torch.tensor([0.9, 0.9]), torch.tensor([0.1, 0.1]))
    torch.testing.assert_close(s, torch.tensor([0.5, 0.0]))
    undefined = normalized_score(torch.tensor([0.5]), torch.tensor([0.52]), torch.tensor([0.5]))
    assert torch.isnan(undefined).all()


def test_bad_input_fails_early():
    model = RegionModel()
    with pytest.raises(ValueError, match="game"):
        learn_masks(model, scene(), 0, dict(game="erase"))
    with pytest.raises(ValueError, match="unknown mask settings"):
        learn_masks(model, scene(), 0, dict(lambda1=1.0))
    bad = scene()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        learn_masks(model, bad, 0, FAST)
    with pytest.raises(ValueError, match="mask_scale"):
        learn_masks(model, scene(), 0, dict(FAST, mask_scale=64))
    with pytest.raises(ValueError, match="targets"):
        learn_masks(model, scene(2), torch.tensor([0, 1, 0]), FAST)


# DDP: the whole fong2017 replication (masks included) on 1 vs 2 processes is tests/test_fong2017_ddp.py


@pytest.mark.parametrize("k, sigma", [(19, 3.0), (7, 1.43), (31, 5.0), (11, 10.0)])
def test_gaussian_kernel1d_is_torchvision_gaussian_blurs_kernel(k, sigma):
    """The blur matrices are built from the kernel torchvision's ``gaussian_blur`` convolves with: an impulse far from
    the border (no reflection) comes back as exactly that kernel."""
    from torchvision.transforms.v2.functional import gaussian_blur

    from lightning_modules.tasks.mask_learning import gaussian_kernel1d

    n = 3 * k
    impulse = torch.zeros(1, 1, 1, n)
    impulse[..., n // 2] = 1
    blurred = gaussian_blur(impulse, [k, 1], [sigma, sigma])[0, 0, 0]
    assert torch.equal(blurred[n // 2 - k // 2: n // 2 + k // 2 + 1], gaussian_kernel1d(k, sigma))
