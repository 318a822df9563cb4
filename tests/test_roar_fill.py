"""ROAR without leakage: ROAD's noisy linear imputation (Rong et al. 2022) and the mask-only control row."""

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.tasks.roar import (
    ROAD_NEIGHBOURS, RoarConfig, RoarPipeline, mask_images, mask_only_name, noisy_linear_impute, removal_mask, summarize,
)


def _ramp(h=12, w=14, channels=2):
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.stack([0.1 + 0.03 * yy + 0.05 * xx, 0.9 - 0.02 * yy + 0.01 * xx][:channels])[None].float()


def test_linear_ramp_with_a_hole_is_filled_exactly_by_linear_interpolation():
    """The weighted mean of the 8 neighbours of a linear function is its centre value: an interior hole (here an
    L-shaped one, removed neighbours being unknowns too) is restored exactly without noise."""
    img = _ramp()
    removed = torch.zeros(1, 1, 12, 14, dtype=torch.bool)
    removed[..., 3:9, 2:6] = True
    removed[..., 6:9, 6:12] = True
    out = noisy_linear_impute(img, removed, noise=0.0)
    torch.testing.assert_close(out, img, rtol=0, atol=1e-6)
    assert not torch.equal(img, torch.where(removed, torch.zeros_like(img), img))  # the hole was not trivial


def test_removed_pixels_are_the_weighted_mean_of_their_in_image_neighbours():
    """ROAD's system everywhere, borders included: x_i = sum_j w_j x_j / sum_j w_j over in-image neighbours."""
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 2, 9, 11, generator=g)
    removed = torch.rand(3, 1, 9, 11, generator=g) < 0.6
    out = noisy_linear_impute(img, removed, noise=0.0).double()
    kernel = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    for (dy, dx), w in ROAD_NEIGHBOURS:
        kernel[0, 0, 1 + dy, 1 + dx] = w
    weighted = F.conv2d(out.reshape(-1, 1, 9, 11), kernel, padding=1).view_as(out)
    total = F.conv2d(torch.ones(1, 1, 9, 11, dtype=torch.float64), kernel, padding=1)
    mean = weighted / total
    torch.testing.assert_close(out[removed.expand_as(out)], mean[removed.expand_as(out)], rtol=0, atol=1e-6)
    assert torch.equal(out.float()[~removed.expand_as(out)], img[~removed.expand_as(img)])
    assert sorted(w for _, w in ROAD_NEIGHBOURS) == [1 / 12] * 4 + [1 / 6] * 4


def test_batched_equals_per_image_and_does_not_depend_on_the_chunk():
    g = torch.Generator().manual_seed(1)
    img = torch.rand(7, 3, 10, 10, generator=g)
    removed = removal_mask(torch.rand(7, 1, 10, 10, generator=g), 0.7)
    batched = noisy_linear_impute(img, removed, noise=0.0)
    per_image = torch.cat([noisy_linear_impute(img[i:i + 1], removed[i:i + 1], noise=0.0) for i in range(7)])
    torch.testing.assert_close(batched, per_image, rtol=0, atol=1e-6)
    torch.testing.assert_close(noisy_linear_impute(img, removed, noise=0.0, chunk=3), batched, rtol=0, atol=1e-6)


def test_noise_is_gaussian_on_removed_pixels_only_and_seeded():
    g = torch.Generator().manual_seed(2)
    img = torch.rand(64, 1, 16, 16, generator=g)
    removed = removal_mask(torch.rand(64, 1, 16, 16, generator=g), 0.5)
    clean = noisy_linear_impute(img, removed, noise=0.0)
    noisy = noisy_linear_impute(img, removed, noise=0.05, generator=torch.Generator().manual_seed(3))
    again = noisy_linear_impute(img, removed, noise=0.05, generator=torch.Generator().manual_seed(3))
    assert torch.equal(noisy, again)
    delta = (noisy - clean)[removed]
    assert delta.std().item() == pytest.approx(0.05, rel=0.05) and abs(delta.mean().item()) < 0.005
    assert torch.equal(noisy[~removed], img[~removed])


def test_regions_without_kept_neighbours_take_the_fallback_and_bad_input_fails():
    img = torch.rand(2, 3, 6, 6)
    removed = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    removed[0] = True  # image 0 fully removed: no boundary values
    removed[1, :, 2:4, 2:4] = True
    fallback = torch.tensor([0.2, 0.4, 0.6])
    out = noisy_linear_impute(img, removed, noise=0.0, fallback=fallback)
    assert torch.allclose(out[0], fallback.view(3, 1, 1).expand(3, 6, 6))
    assert out[1].isfinite().all() and not torch.allclose(out[1, :, 2, 2], fallback)
    with pytest.raises(ValueError, match="removed"):
        noisy_linear_impute(img, removed[:1])
    with pytest.raises(ValueError, match="fill"):
        RoarConfig(fill="inpaint")


def _label_in_the_mask_problem(n=160, size=16, seed=0):
    """Images carry no label information (noise); the 'explanation' removes the left half of class-0 images and
    the right half of class-1 images: a removal pattern that encodes the label."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    y = torch.arange(n) % 2
    attr = torch.rand(n, 1, size, size, generator=g) * 0.1
    left = torch.zeros(1, 1, size, size)
    left[..., : size // 2] = 1.0
    attr = attr + torch.where(y.view(-1, 1, 1, 1) == 0, left, 1 - left)
    split = n * 3 // 4
    return (x[:split], y[:split]), (x[split:], y[split:]), attr[:split], attr[split:]


def test_mask_only_control_learns_a_label_encoding_removal_pattern(tmp_path):
    train, test, attr_train, attr_test = _label_in_the_mask_problem()
    rand_train, rand_test = torch.rand_like(attr_train), torch.rand_like(attr_test)
    cfg = RoarConfig(model_name="scenes_cnn", model_kwargs={"width": 4, "in_chans": 1}, fractions=(0.5,), seeds=(0,),
                     max_epochs=4, batch_size=16, lr=3e-3, reference=False, fill="noisy_linear", mask_only_control=True)
    pipe = RoarPipeline(cfg, tmp_path, num_classes=2)
    rows = pipe.run(train, test, {"leaky": (attr_train, attr_test), "random": (rand_train, rand_test)})
    assert [r["method"] for r in rows] == ["leaky", mask_only_name("leaky"), "random", mask_only_name("random")]
    acc = summarize(rows)
    assert acc[mask_only_name("leaky")][0.5] >= 0.9  # the removal pattern alone gives the label away
    assert acc[mask_only_name("random")][0.5] <= 0.75  # a random pattern does not
    # the control's inputs are the removal masks themselves
    m = removal_mask(attr_test, 0.5)
    assert torch.equal(mask_images(m, 3)[:, 1:2], m.float())
    # results of a non-default fill are stored under their own names; the control's do not depend on the fill
    names = sorted(p.name for p in (tmp_path / "results").glob("*.json"))
    assert "leaky_0.50_0_noisy_linear0.01s0.json" in names and "leaky+mask_only_0.50_0.json" in names


def test_roar_noisy_linear_fill_stays_in_pixel_range(tmp_path):
    """The imputation's noise next to saturated pixels leaves [0, 1]; the ROAR fill clips it (the retrained models
    take [0, 1] pixels), and leaves the kept pixels untouched."""
    g = torch.Generator().manual_seed(0)
    img = (torch.rand(4, 3, 12, 12, generator=g) > 0.5).float()  # only 0 and 1: every neighbour mean is at an edge
    removed = torch.rand(4, 1, 12, 12, generator=g) > 0.6
    pipe = RoarPipeline(RoarConfig(fill="noisy_linear", fill_noise=0.2), tmp_path, num_classes=2)
    out = pipe.fill_removed(img, removed, img.mean(dim=(0, 2, 3)), seed=0)
    raw = noisy_linear_impute(img, removed, 0.2, torch.Generator().manual_seed(0), fallback=img.mean(dim=(0, 2, 3)))
    assert raw.min() < 0 or raw.max() > 1  # the unclipped imputation does leave the range here
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out, raw.clamp(0, 1))
    keep = ~removed.expand_as(img)
    assert torch.equal(out[keep], img[keep])
