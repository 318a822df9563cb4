"""Deletion / insertion (RISE) and pixel perturbation (Khakzar): known answers on a model whose output depends on a
known region, agreement with Quantus' PixelFlipping, chunking invariance and bad input."""

import numpy as np
import pytest
import torch

from conftest_quantus import quantus
from lightning_modules.metrics import DeletionAUC, InsertionAUC, PixelPerturbation
from lightning_modules.metrics.progressive import trapezoid_auc

H = W = 16
REGION = (slice(4, 10), slice(5, 11))  # rows, cols of the evidence


class RegionModel(torch.nn.Module):
    """Class 0's logit grows with the brightness of channel 0 inside REGION; class 1's logit is 0."""

    def forward(self, x):
        evidence = x[:, 0, REGION[0], REGION[1]].mean((1, 2))
        return torch.stack([12.0 * (evidence - 0.45), torch.zeros_like(evidence)], 1)


def _scene(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = 0.5 * torch.rand(n, 3, H, W, generator=g)
    images[:, :, REGION[0], REGION[1]] = 1.0
    region = torch.zeros(n, 1, H, W)
    region[:, :, REGION[0], REGION[1]] = 1.0
    noise = 0.01 * torch.rand(n, 1, H, W, generator=g)  # distinct values, no ties
    oracle = region + noise
    anti = 1.0 - region + noise
    random = torch.rand(n, 1, H, W, generator=g)
    return images, oracle, anti, random


def test_deletion_orders_oracle_random_anti():
    images, oracle, anti, random = _scene()
    model = RegionModel()
    aucs = {}
    for name, maps in (("oracle", oracle), ("random", random), ("anti", anti)):
        m = DeletionAUC(pixels_per_step=8, substrate="zeros")
        m.update(model, images, maps, 0)
        aucs[name] = float(m.compute())
    assert aucs["oracle"] < aucs["random"] < aucs["anti"], aucs
    assert aucs["oracle"] < 0.25 and aucs["anti"] > 0.6, aucs


def test_insertion_orders_reverse():
    images, oracle, anti, random = _scene()
    model = RegionModel()
    aucs = {}
    for name, maps in (("oracle", oracle), ("random", random), ("anti", anti)):
        m = InsertionAUC(pixels_per_step=8)
        m.update(model, images, maps, 0)
        aucs[name] = float(m.compute())
    assert aucs["oracle"] > aucs["random"] > aucs["anti"], aucs


def test_deletion_hand_computed_curve_and_auc():
    # 2x2 image, 1 pixel per step; model = mean of channel 0 as a logit vs 0 -> prob = sigmoid(mean)
    class MeanModel(torch.nn.Module):
        def forward(self, x):
            m = x[:, 0].mean((1, 2))
            return torch.stack([m, torch.zeros_like(m)], 1)

    images = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]) / 4
    heat = torch.tensor([[[[0.1, 0.9], [0.5, 0.2]]]])  # order: (0,1)=0.5, (1,0)=0.75, (1,1)=1.0, (0,0)=0.25
    m = DeletionAUC(pixels_per_step=1, substrate="zeros")
    curve = m.curves(MeanModel(), images, heat, 0)[0]
    means = torch.tensor([10.0, 8.0, 5.0, 1.0, 0.0]) / 16
    expected = torch.sigmoid(means)
    torch.testing.assert_close(curve, expected)
    m.update(MeanModel(), images, heat, 0)
    auc = (expected.sum() - expected[0] / 2 - expected[-1] / 2) / 4
    torch.testing.assert_close(m.compute(), auc)
    assert abs(float(auc) - np.trapezoid(expected.numpy(), dx=0.25)) < 1e-6


def test_default_steps_follow_rise_at_224():
    m = DeletionAUC()
    counts = m.step_counts(224, 224)
    assert counts.numel() == 29 and counts[1] == 224 * 8 and counts[-1] == 224 * 224
    assert m.step_counts(64, 64).numel() == 29


def test_chunking_and_targets_none():
    images, oracle, _, _ = _scene(n=3)
    model = RegionModel()
    small = DeletionAUC(pixels_per_step=7, substrate="zeros", max_batch=4).curves(model, images, oracle, None)
    big = DeletionAUC(pixels_per_step=7, substrate="zeros", max_batch=10_000).curves(model, images, oracle, 0)
    torch.testing.assert_close(small, big)  # targets=None picks the top-1 class, here class 0


def test_mean_substrate_uses_model_mean_and_fails_without_it():
    images, oracle, _, _ = _scene(n=2)
    model = RegionModel()
    with pytest.raises(ValueError, match="mean colour"):
        DeletionAUC(substrate="mean").curves(model, images, oracle, 0)
    model.register_buffer("mean", torch.tensor([0.45, 0.2, 0.1]).view(1, 3, 1, 1))
    c = DeletionAUC(substrate="mean", pixels_per_step=H * W).curves(model, images, oracle, 0)
    # all pixels deleted -> evidence = 0.45 -> logit 0 -> prob 0.5
    torch.testing.assert_close(c[:, -1], torch.full((2,), 0.5))


def _tiny_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()


def test_deletion_curve_matches_quantus_pixel_flipping():
    """Quantus PixelFlipping == our deletion curve without its step 0 (Quantus scores only perturbed inputs).

    Quantus flips ``features_in_step`` entries of the (C*H*W) attribution, so we give it the map repeated over
    the 3 channels and 3 * pixels_per_step features per step (distinct map values keep a pixel's 3 channels
    together in its order). Its ``return_auc_per_sample`` is an unnormalised np.trapz over the perturbed steps
    only, a different AUC; the curves are what must agree.
    """
    g = torch.Generator().manual_seed(3)
    x, a = torch.rand(5, 3, 12, 12, generator=g), torch.rand(5, 1, 12, 12, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1])
    model = _tiny_cnn()
    ours = DeletionAUC(pixels_per_step=4, substrate="zeros").curves(model, x, a, y)
    q = quantus.PixelFlipping(features_in_step=12, perturb_baseline=0.0, normalise=False, abs=False,
                              disable_warnings=True)
    theirs = np.array(q(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.expand(-1, 3, -1, -1).numpy(),
                        device="cpu"))
    assert theirs.shape == (5, 36)
    np.testing.assert_allclose(ours[:, 1:].numpy(), theirs, atol=1e-5)


def test_pixel_perturbation_morf_lerf_and_quantus():
    images, oracle, _, _ = _scene()
    model = RegionModel()
    fractions = (0.0, 0.25, 0.5, 0.75, 1.0)
    morf = PixelPerturbation("morf", fractions, substrate="zeros", output="logit")
    lerf = PixelPerturbation("lerf", fractions, substrate="zeros", output="logit")
    morf.update(model, images, oracle, 0, ids=torch.arange(4))
    lerf.update(model, images, oracle, 0, ids=torch.arange(4))
    m, l_ = morf.compute(), lerf.compute()
    assert m[1] < l_[1] and m[2] < l_[2]  # removing the evidence first hurts more
    torch.testing.assert_close(m[0], l_[0])
    torch.testing.assert_close(m[-1], l_[-1])
    # Quantus with 12 pixels (= 1/12 of 144) per step on a 12x12 image reproduces the MoRF curve
    g = torch.Generator().manual_seed(5)
    x, a = torch.rand(3, 3, 12, 12, generator=g), torch.rand(3, 1, 12, 12, generator=g)
    y = torch.tensor([2, 0, 1])
    net = _tiny_cnn()
    twelfths = [i / 12 for i in range(13)]
    ours = PixelPerturbation("morf", twelfths, substrate="zeros", output="prob").curves(net, x, a, y)
    q = quantus.PixelFlipping(features_in_step=36, perturb_baseline=0.0, normalise=False, abs=False,
                              disable_warnings=True)
    theirs = np.array(q(model=net, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.expand(-1, 3, -1, -1).numpy(),
                        device="cpu"))
    np.testing.assert_allclose(ours[:, 1:].numpy(), theirs, atol=1e-5)


def test_trapezoid_auc_matches_numpy():
    curves = torch.rand(3, 9, dtype=torch.float64)
    np.testing.assert_allclose(trapezoid_auc(curves).numpy(), np.trapezoid(curves.numpy(), dx=1 / 8, axis=1))


def test_bad_input():
    images, oracle, _, _ = _scene(n=2)
    model = RegionModel()
    m = DeletionAUC(substrate="zeros")
    with pytest.raises(ValueError, match="does not match images"):
        m.update(model, images, oracle[:, :, :8], 0)
    nan_maps = oracle.clone()
    nan_maps[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m.update(model, images, nan_maps, 0)
    with pytest.raises(ValueError, match="4-D"):
        m.update(model, images[0], oracle[0], 0)
    with pytest.raises(ValueError, match="mode"):
        DeletionAUC().__class__.__bases__[0](mode="remove")
    with pytest.raises(ValueError, match="unknown substrate"):
        DeletionAUC(substrate="grey").curves(model, images, oracle, 0)
    with pytest.raises(ValueError, match="order"):
        PixelPerturbation("random")
    with pytest.warns(UserWarning, match="before the ``update``"), pytest.raises(RuntimeError, match="before any update"):
        DeletionAUC().compute()
    m.update(model, images, oracle, 0)
    with pytest.raises(ValueError, match="one image size"):
        m.update(model, images[:, :, :8, :8], oracle[:, :, :8, :8], 0)


def test_progressive_steps_are_the_where_of_start_and_finish_bit_for_bit():
    """The engine builds step images by ``lerp`` with 0/1 weights: the same pixels as ``torch.where`` (checked on
    the model's inputs, a broadcast substrate and a full one, partial blocks of steps)."""
    import torch.nn as nn

    from lightning_modules.metrics.progressive import pixel_ranks, progressive_scores

    g = torch.Generator().manual_seed(0)
    images = torch.randn(5, 3, 6, 7, generator=g) * 1e3
    seen: list[torch.Tensor] = []

    class Record(nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return x.flatten(1)[:, :4]

    ranks = pixel_ranks(torch.rand(5, 1, 6, 7, generator=g))
    counts = torch.tensor([0, 5, 17, 30, 42])
    targets = torch.zeros(5, dtype=torch.long)
    full = torch.rand(5, 3, 6, 7, generator=g)
    for finish, max_batch in ((torch.full((1, 3, 1, 1), -0.5).expand_as(images), 10), (full, 3), (full, 256)):
        seen.clear()  # 10: two images per forward; 3: an image's steps split over two forwards; 256: all at once
        progressive_scores(Record(), images, finish, ranks, counts, targets, max_batch=max_batch, output="logit")
        got = torch.cat(seen).view(5, 5, 3, 6, 7)
        take = (ranks[:, None, :] < counts[None, :, None]).view(5, 5, 1, 6, 7)
        assert torch.equal(got, torch.where(take, finish[:, None], images[:, None]))
