"""RISE (Petsiuk et al. 2018): masks against scikit-image, known-answer maps, batching/chunking invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from skimage.transform import resize

from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.rise import RISE, bilinear_matrix, generate_rise_masks
from lightning_modules.models import Normalized


class RegionMean(nn.Module):
    """Logits: class 0 = scale * mean of a fixed region of the image (all channels), class 1 = 0."""

    def __init__(self, region: tuple[slice, slice], scale: float = 1.0, n_classes: int = 2):
        super().__init__()
        self.region = region
        self.scale = scale
        self.n_classes = n_classes

    def forward(self, x):
        v = self.scale * x[:, :, self.region[0], self.region[1]].mean(dim=(1, 2, 3))
        out = torch.zeros(x.shape[0], self.n_classes, dtype=x.dtype, device=x.device)
        out[:, 0] = v
        return out


class TinyConv(nn.Module):
    def __init__(self, k: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, k))

    def forward(self, x):
        return self.net(x)


class CountingModel(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.batch_sizes: list[int] = []
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.batch_sizes.append(x.shape[0])
        self.inputs.append(x.clone())
        return self.inner(x)


# --------------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("n_in,n_out", [(7, 64), (7, 80), (5, 18), (1, 9), (8, 232)])
def test_bilinear_matrix_equals_skimage_resize(n_in, n_out):
    rng = np.random.default_rng(0)
    g = rng.random((n_in, n_in))
    ref = resize(g, (n_out, n_out), order=1, mode="reflect", anti_aliasing=False)
    A = bilinear_matrix(n_in, n_out, dtype=torch.float64).numpy()
    np.testing.assert_allclose(A @ g @ A.T, ref, atol=1e-12)


def test_masks_equal_the_official_construction():
    """Grid ~ Bernoulli(p), skimage bilinear resize to (s+1)*cell, crop at the shift: rebuilt with the same draws."""
    N, s, p, H, W, seed = 6, 4, 0.5, 18, 22, 3
    masks = generate_rise_masks(N, s, p, (H, W), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    grids = (torch.rand(N, s, s, generator=gen) < p).double().numpy()
    ch, cw = math.ceil(H / s), math.ceil(W / s)
    sh = torch.randint(0, ch, (N,), generator=gen).numpy()
    sw = torch.randint(0, cw, (N,), generator=gen).numpy()
    for i in range(N):
        up = resize(grids[i], ((s + 1) * ch, (s + 1) * cw), order=1, mode="reflect", anti_aliasing=False)
        ref = up[sh[i]:sh[i] + H, sw[i]:sw[i] + W]
        np.testing.assert_allclose(masks[i, 0].numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("p", [0.5, 0.1])
def test_mask_statistics(p):
    m = generate_rise_masks(3000, 7, p, (32, 40), seed=0)
    assert m.shape == (3000, 1, 32, 40) and m.dtype == torch.float32
    assert 0.0 <= float(m.min()) and float(m.max()) <= 1.0
    assert abs(float(m.mean()) - p) < 0.01
    # Every pixel is kept with probability ~p over the masks (no position bias from the shifted crop).
    per_pixel = m.mean(dim=0)
    assert float((per_pixel - p).abs().max()) < 0.07


def test_masks_deterministic_by_seed_and_cached():
    a = generate_rise_masks(50, 7, 0.5, (24, 24), seed=5)
    b = generate_rise_masks(50, 7, 0.5, (24, 24), seed=5)
    c = generate_rise_masks(50, 7, 0.5, (24, 24), seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Chunked generation gives the same masks.
    assert torch.equal(a, generate_rise_masks(50, 7, 0.5, (24, 24), seed=5, chunk=7))
    rise = RISE(n_masks=50, seed=5)
    m1 = rise.masks((24, 24), "cpu")
    assert rise.masks((24, 24), "cpu") is m1 and torch.equal(m1, a)
    assert rise.masks((16, 24), "cpu").shape == (50, 1, 16, 24)


# --------------------------------------------------------------------------------------------- known answers
def test_map_equals_the_formula_computed_by_hand():
    model = TinyConv(k=3).eval()
    img = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    rise = RISE(n_masks=40, grid_size=3, p=0.5, seed=2, baseline=0.0, max_batch_elements=9)
    got = rise(model, img, torch.tensor([1]))
    masks = generate_rise_masks(40, 3, 0.5, (12, 12), seed=2)
    ref = torch.zeros(12, 12)
    with torch.no_grad():
        for i in range(40):
            prob = model(img * masks[i:i + 1]).softmax(1)[0, 1]
            ref += prob * masks[i, 0]
    ref /= 40 * 0.5
    torch.testing.assert_close(got[0, 0], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("output", ["identity", "softmax"])
def test_map_is_highest_on_the_region_the_model_reads(output):
    region = (slice(4, 12), slice(20, 28))
    model = RegionMean(region, scale=1.0 if output == "identity" else 8.0)
    img = torch.ones(1, 3, 32, 32)
    rise = RISE(n_masks=1500, grid_size=4, p=0.5, seed=0, baseline=0.0, output=output)
    sal = rise(model, img, torch.tensor([0]))[0, 0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[region] = True
    assert float(sal[inside].mean()) > float(sal[~inside].mean()) + 0.05
    peak = divmod(int(sal.argmax()), 32)
    assert inside[peak], f"peak at {peak}, outside the region"


def test_identity_output_expected_value():
    """With f = mean of the whole image on an all-ones image, E[f(I*M) M(u)] / p = E[mean(M) M(u)] / p ~ p + Var/p > 0:
    the map is flat (no position preferred) around the hand-computed value."""
    model = RegionMean((slice(None), slice(None)))
    img = torch.ones(1, 3, 16, 16)
    rise = RISE(n_masks=4000, grid_size=4, p=0.5, seed=0, baseline=0.0, output="identity")
    sal = rise(model, img, 0)[0, 0]
    masks = rise.masks((16, 16), "cpu")
    expect = float((masks.mean(dim=(1, 2, 3)).view(-1, 1, 1) * masks[:, 0]).mean(0).mean() / 0.5)
    assert abs(float(sal.mean()) - expect) < 1e-4
    assert float(sal.std()) < 0.05 * float(sal.mean())


# --------------------------------------------------------------------------------------------- batching
def test_batched_equals_per_image_and_chunking_does_not_matter():
    model = TinyConv(k=4).eval()
    imgs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 3, 1])
    big = RISE(n_masks=60, grid_size=4, seed=1, max_batch_elements=1000)(model, imgs, targets)  # 2 images per pass... all masks
    small = RISE(n_masks=60, grid_size=4, seed=1, max_batch_elements=7)(model, imgs, targets)
    per_image = torch.cat([RISE(n_masks=60, grid_size=4, seed=1, max_batch_elements=25)(model, imgs[i:i + 1], targets[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(big, small, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(big, per_image, atol=1e-5, rtol=1e-5)


def test_all_classes_pass_equals_per_class():
    model = TinyConv(k=4).eval()
    imgs = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    rise = RISE(n_masks=50, grid_size=4, seed=0, max_batch_elements=30)
    counting = CountingModel(model)
    all_maps = rise.explain_all_classes(counting, imgs)
    passes_all = len(counting.batch_sizes)
    assert all_maps.shape == (2, 4, 16, 16)
    assert passes_all == rise.last_forward_passes
    for c in range(4):
        torch.testing.assert_close(all_maps[:, c:c + 1], rise(model, imgs, torch.full((2,), c)), atol=1e-5, rtol=1e-5)
    # Softmax outputs sum to one, so the class maps sum to sum_i M_i / (N p) at every pixel.
    masks = rise.masks((16, 16), "cpu")
    torch.testing.assert_close(all_maps.sum(1), masks.sum(0).expand(2, -1, -1) / (50 * 0.5), atol=1e-4, rtol=1e-4)


def test_chunks_respect_max_batch_elements_and_memory_budget():
    model = CountingModel(TinyConv(k=4).eval())
    imgs = torch.rand(3, 3, 16, 16)
    rise = RISE(n_masks=40, grid_size=4, max_batch_elements=16)
    rise(model, imgs, 0)
    assert max(model.batch_sizes) <= 16 and sum(model.batch_sizes) == 3 * 40
    # Budget-sized chunks: a tiny budget gives small chunks, a large one a single pass per image batch.
    tiny = RISE(n_masks=40, grid_size=4, memory_budget_mb=0.05)
    model.batch_sizes.clear()
    tiny(model, imgs, 0)
    per_sample = 3 * 16 * 16 * 4
    assert tiny.last_chunk_size < 40 and max(model.batch_sizes) <= tiny.last_chunk_size
    assert tiny.last_chunk_size * per_sample <= 0.05 * 2**20
    huge = RISE(n_masks=40, grid_size=4, memory_budget_mb=64)
    model.batch_sizes.clear()
    huge(model, imgs, 0)
    assert huge.last_forward_passes == 1 and model.batch_sizes[-1] == 120


def test_model_mean_baseline_fills_removed_pixels_with_the_mean_colour():
    mean = (0.2, 0.4, 0.6)
    inner = CountingModel(TinyConv(k=3))
    model = Normalized(inner, mean, (1.0, 1.0, 1.0)).eval()
    img = torch.rand(1, 3, 16, 16)
    rise = RISE(n_masks=8, grid_size=4, seed=0, max_batch_elements=8)
    rise(model, img, 0)
    masks = rise.masks((16, 16), "cpu")
    m = torch.tensor(mean).view(1, 3, 1, 1)
    expected = (m + masks * (img - m) - m)  # the wrapper normalises: (x - mean) / 1
    torch.testing.assert_close(inner.inputs[0], expected, atol=1e-6, rtol=1e-6)


def test_deterministic_across_calls_and_registered():
    model = TinyConv().eval()
    imgs = torch.rand(2, 3, 16, 16)
    a = create_explainer("rise", n_masks=30, grid_size=4, seed=9)(model, imgs, 1)
    b = create_explainer("rise", n_masks=30, grid_size=4, seed=9)(model, imgs, 1)
    assert isinstance(create_explainer("rise"), RISE)
    assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_masks": 0}, "n_masks"),
        ({"grid_size": 0}, "grid_size"),
        ({"p": 0.0}, "p must"),
        ({"p": 1.5}, "p must"),
        ({"max_batch_elements": 0}, "max_batch_elements"),
        ({"memory_budget_mb": 0}, "memory_budget_mb"),
        ({"output": "probs"}, "output"),
        ({"baseline": "blur"}, "baseline"),
    ],
)
def test_bad_arguments_fail_early(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RISE(**kwargs)


def test_bad_inputs_fail_with_clear_messages():
    model = TinyConv(k=4).eval()
    rise = RISE(n_masks=8, grid_size=4)
    with pytest.raises(ValueError, match="4-D"):
        rise(model, torch.rand(3, 16, 16), 0)
    bad = torch.rand(1, 3, 16, 16)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rise(model, bad, 0)
    with pytest.raises(ValueError, match="out of range"):
        rise(model, torch.rand(1, 3, 16, 16), 7)


def test_class_scores_and_mask_prefixes():
    model = TinyConv(k=4).eval()
    imgs = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    rise = RISE(n_masks=40, grid_size=4, seed=0, max_batch_elements=13)
    scores = rise.class_scores(model, imgs)
    assert scores.shape == (2, 40, 4)
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, 40))
    full = rise.maps_from_scores(scores[:, :, 2], (16, 16))
    torch.testing.assert_close(full, rise(model, imgs, 2), atol=1e-5, rtol=1e-5)
    # The first n masks: the hand formula with those masks only.
    masks = rise.masks((16, 16), "cpu")[:10, 0]
    ref = torch.einsum("bn,nhw->bhw", scores[:, :10, 1], masks) / (10 * 0.5)
    torch.testing.assert_close(rise.maps_from_scores(scores[:, :, 1], (16, 16), n=10)[:, 0], ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="n_masks"):
        rise.maps_from_scores(scores[:, :, 1], (16, 16), n=41)
