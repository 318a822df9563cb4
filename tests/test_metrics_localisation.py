"""Pointing game, weak localisation, smallest suppressing box and keypoint intensity: hand-built heatmaps with
known answers, Quantus' PointingGame, bad input."""

import numpy as np
import pytest
import torch

from conftest_quantus import quantus
from lightning_modules.metrics import (
    KeypointIntensity, PointingGame, SmallestSuppressingBox, WeakLocalisation, center_heatmaps, tune_and_evaluate,
)
from lightning_modules.metrics.localisation import kept_regions, region_boxes
from lightning_modules.metrics.pointing import boxes_to_mask, default_tolerance, pointing_hits

H = W = 20


def _peak(points, h=H, w=W):
    """Maps with a single maximum at each (x, y)."""
    maps = torch.rand(len(points), 1, h, w, generator=torch.Generator().manual_seed(0)) * 0.5
    for i, (x, y) in enumerate(points):
        maps[i, 0, y, x] = 2.0
    return maps


def test_pointing_oracle_is_100_and_anti_oracle_0():
    boxes = torch.tensor([[[2.0, 3.0, 8.0, 9.0]], [[10.0, 10.0, 18.0, 16.0]], [[0.0, 0.0, 5.0, 5.0]]])
    labels = torch.tensor([0, 1, 1])
    oracle = _peak([(5, 6), (12, 12), (1, 1)])
    anti = _peak([(19, 19), (0, 0), (19, 19)])
    pg = PointingGame(tolerance=1.0)
    pg.update(oracle, labels, boxes=boxes, box_labels=labels[:, None])
    assert float(pg.compute()["all"]) == 1.0
    pg = PointingGame(tolerance=1.0)
    pg.update(anti, labels, boxes=boxes, box_labels=labels[:, None])
    assert float(pg.compute()["all"]) == 0.0


def test_pointing_tolerance_is_strict_and_scaled():
    mask = torch.zeros(1, 1, H, W, dtype=torch.bool)
    mask[0, 0, 5:10, 5:10] = True
    point = _peak([(12, 7)])  # 3 px right of column 9, the mask's last
    assert not pointing_hits(point, mask, 3.0)  # d^2 = 9 is not < 9
    assert pointing_hits(point, mask, 3.01)
    assert default_tolerance(224, 224) == 15.0 and default_tolerance(112, 112) == 7.5


def test_pointing_per_class_mean_and_difficult():
    masks = torch.zeros(4, 1, H, W, dtype=torch.bool)
    masks[:, :, :10] = True  # object in the top half
    maps = _peak([(3, 2), (3, 2), (3, 15), (3, 2)])  # the third misses
    classes = torch.tensor([0, 0, 1, 1])
    pg = PointingGame(tolerance=1.0)
    pg.update(maps, classes, masks=masks, difficult=torch.tensor([False, True, True, False]), ids=torch.arange(4))
    out = pg.compute()
    assert float(out["all"]) == pytest.approx((1.0 + 0.5) / 2)  # class 0: 2/2, class 1: 1/2; not 3/4
    assert float(out["difficult"]) == pytest.approx((1.0 + 0.0) / 2)


def test_center_baseline_points_at_the_centre():
    maps = center_heatmaps(2, H, W)
    flat = maps.flatten(1).argmax(1)
    assert (flat == (H // 2) * W + W // 2).all()
    masks = torch.zeros(2, 1, H, W, dtype=torch.bool)
    masks[0, 0, 8:12, 8:12] = True  # contains the centre
    masks[1, 0, 0:3, 0:3] = True  # far corner
    assert pointing_hits(maps, masks, 2.0).tolist() == [True, False]


def test_pointing_matches_quantus():
    """With tolerance=1 (only the maximum itself) and a unique maximum, TorchRay's rule is Quantus' PointingGame."""
    g = torch.Generator().manual_seed(1)
    a = torch.rand(8, 1, H, W, generator=g)
    s = torch.rand(8, 1, H, W, generator=g) > 0.6
    x = torch.rand(8, 3, H, W, generator=g)
    y = torch.zeros(8, dtype=torch.long)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * H * W, 2))
    theirs = quantus.PointingGame(disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), s_batch=s.numpy().astype(float),
        device="cpu")
    pg = PointingGame(tolerance=1.0)
    pg.update(a, y, masks=s)
    ours = pg.per_sample()["hits"].numpy()
    np.testing.assert_array_equal(ours, np.array(theirs, dtype=bool))
    assert 0 < ours.sum() < 8  # both outcomes present


def test_boxes_to_mask_and_bad_boxes():
    boxes = torch.tensor([[[1.0, 2.0, 4.0, 3.0], [0.0, 0.0, 2.0, 2.0]]])
    mask = boxes_to_mask(boxes, torch.tensor([[0, 1]]), torch.tensor([0]), 5, 5)
    expected = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    expected[0, 0, 2, 1:4] = True
    assert torch.equal(mask, expected)
    pg = PointingGame()
    maps = torch.rand(1, 1, 5, 5)
    with pytest.raises(ValueError, match="no box of their target class"):
        pg.update(maps, 2, boxes=boxes, box_labels=torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="empty or out-of-image"):
        pg.update(maps, 0, boxes=torch.tensor([[[3.0, 3.0, 3.0, 4.0]]]), box_labels=torch.tensor([[0]]))
    with pytest.raises(ValueError, match="empty mask"):
        pg.update(maps, 0, masks=torch.zeros(1, 1, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not match heatmaps"):
        pg.update(maps, 0, masks=torch.ones(1, 1, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        pg.update(torch.full((1, 1, 5, 5), float("nan")), 0, masks=torch.ones(1, 1, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="exactly one"):
        pg.update(maps, 0)


def test_thresholds_and_boxes_hand_computed():
    heat = torch.zeros(1, 1, 6, 8)
    heat[0, 0, 1, 2] = 4.0
    heat[0, 0, 3, 5] = 2.0
    heat[0, 0, 4, 6] = 1.0  # total energy 7, mean 7/48
    alphas = torch.tensor([0.0, 0.4, 0.6, 0.9])
    value = region_boxes(kept_regions(heat, alphas, "value"))[0]
    # value: keep h >= alpha * 4 (and h > 0)
    assert value.tolist() == [[2, 1, 7, 5], [2, 1, 6, 4], [2, 1, 3, 2], [2, 1, 3, 2]]
    energy = region_boxes(kept_regions(heat, alphas, "energy"))[0]
    # cumulative 4, 6, 7: alpha 0 keeps nothing (whole image), 0.4*7=2.8 -> 1 px, 0.6*7=4.2 -> 2 px, 0.9*7=6.3 -> 3 px
    assert energy.tolist() == [[0, 0, 8, 6], [2, 1, 3, 2], [2, 1, 6, 4], [2, 1, 7, 5]]
    mean = region_boxes(kept_regions(heat, torch.tensor([10.0, 20.0]), "mean"))[0]
    # 10 * 7/48 = 1.46 keeps 4 and 2; 20 * 7/48 = 2.9 keeps 4
    assert mean.tolist() == [[2, 1, 6, 4], [2, 1, 3, 2]]


def test_weak_localisation_error_and_tuning():
    gt = torch.tensor([[[4.0, 4.0, 12.0, 12.0]]]).expand(3, 1, 4)
    labels = torch.zeros(3, dtype=torch.long)
    heat = torch.zeros(3, 1, H, W)
    heat[:, :, 4:12, 4:12] = 1.0
    heat[:, :, 0, 19] = 0.3  # a weak distant blob: kept at low alpha -> box too large
    wl = WeakLocalisation("value", alphas=(0.1, 0.5))
    wl.update(heat, labels, gt, labels[:, None])
    torch.testing.assert_close(wl.compute(), torch.tensor([1.0, 0.0]))
    test = WeakLocalisation("value", alphas=(0.1, 0.5))
    test.update(heat[:2], labels[:2], gt[:2], labels[:2, None])
    out = tune_and_evaluate(wl, test)
    assert out["alpha"] == 0.5 and out["heldout_error"] == 0.0 and out["test_error"] == 0.0
    # IoU just below 0.5 is an error: predicted 8x8 box vs a GT box of area 64 shifted to IoU 32/96
    shifted = torch.tensor([[[8.0, 4.0, 16.0, 12.0]]])
    wl2 = WeakLocalisation("value", alphas=(0.5,))
    wl2.update(heat[:1], labels[:1], shifted, labels[:1, None])
    assert float(wl2.compute()) == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        wl2.update(-heat[:1], labels[:1], shifted, labels[:1, None])
    with pytest.raises(ValueError, match="unknown threshold"):
        WeakLocalisation("otsu")


class BlobModel(torch.nn.Module):
    """Class 0's logit is the contrast of a bright square at rows/cols 6..13 of a dark image."""

    def forward(self, x):
        inside = x[:, 0, 6:14, 6:14].mean((1, 2))
        return torch.stack([20.0 * (inside - 0.3), torch.zeros_like(inside)], 1)


def test_smallest_suppressing_box_oracle_vs_diffuse():
    images = torch.zeros(2, 3, H, W)
    images[:, :, 6:14, 6:14] = 1.0
    oracle = torch.zeros(2, 1, H, W)
    oracle[:, :, 6:14, 6:14] = 1.0
    oracle += 0.01 * torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(0))
    diffuse = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(1))
    sb = SmallestSuppressingBox(level=0.05, blur_sigma=3.0, max_batch=37)
    sb.update(BlobModel(), images, oracle, 0)
    oracle_area = float(sb.compute())
    sb2 = SmallestSuppressingBox(level=0.05, blur_sigma=3.0)
    sb2.update(BlobModel(), images, diffuse, 0)
    assert oracle_area <= 64 / 400 + 1e-6  # the object's own 8x8 box (or smaller) suppresses it
    assert float(sb2.compute()) > oracle_area


def test_keypoint_intensity_hand_computed():
    heat = torch.zeros(2, 1, 10, 10)
    heat[0, 0, 2, 3] = 1.0  # an "eye" pixel, the map's max
    heat[1, 0, 8, 8] = 4.0
    nan = float("nan")
    kps = {
        "eyes": torch.tensor([[[3.0, 2.0], [nan, nan]], [[8.0, 8.0], [0.0, 0.0]]]),
        "feet": torch.tensor([[[7.0, 7.0], [nan, nan]], [[nan, nan], [nan, nan]]]),
    }
    ki = KeypointIntensity(("eyes", "feet"), radius=1)
    ki.update(heat, kps, labels=torch.tensor([0, 1]))
    rows = ki.per_sample()["intensity"]
    # sample 0 eyes: 3x3 window around (x=3, y=2) holds the single 1.0 -> 1/9; feet: 0
    # sample 1 eyes: window at (8, 8) -> 1/9 (normalised), at (0,0) clipped 2x2 window -> 0; mean 1/18; feet: none
    torch.testing.assert_close(rows[0], torch.tensor([1 / 9, 0.0]))
    assert rows[1, 0].item() == pytest.approx(1 / 18) and torch.isnan(rows[1, 1])
    out = ki.compute()
    assert float(out["eyes"]) == pytest.approx((1 / 9 + 1 / 18) / 2) and float(out["feet"]) == 0.0
    with pytest.raises(ValueError, match="outside"):
        ki.update(heat, {"eyes": torch.tensor([[[12.0, 1.0]]]).expand(2, 1, 2), "feet": kps["feet"]})
    with pytest.raises(KeyError, match="not in the batch"):
        ki.update(heat, {"eyes": kps["eyes"]})
