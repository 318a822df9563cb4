"""Similarity (Adebayo) and fragility (Ghorbani) metrics: scipy/skimage/Quantus cross-checks, known answers."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from conftest_quantus import quantus
from lightning_modules.metrics import (
    CenterOfMassShift, MapSimilarity, RankCorrelation, TopKIntersection, TopKMaskShare, spearman,
)
from lightning_modules.metrics.keypoints import normalise_maps


def _maps(n=3, h=24, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 1, h, w, generator=g)
    b = a + 0.8 * torch.randn(n, 1, h, w, generator=g)
    return a, b


def test_spearman_matches_scipy_and_quantus_with_ties():
    a, b = _maps()
    a = torch.relu(a).round(decimals=1)  # many ties, zeros included
    b = torch.relu(b).round(decimals=1)
    ours = spearman(a, b)
    for i in range(a.shape[0]):
        ref = spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        q = quantus.functions.similarity_func.correlation_spearman(a[i].flatten().numpy(), b[i].flatten().numpy())
        assert abs(float(ours[i]) - ref) < 1e-5 and abs(float(ours[i]) - q) < 1e-5
    torch.testing.assert_close(spearman(a, a), torch.ones(3))
    torch.testing.assert_close(spearman(a, -a), -torch.ones(3))


def test_map_similarity_abs_vs_no_abs_ssim_hog():
    a, b = _maps()
    m = MapSimilarity()
    m.update(a, -a)  # sign flip: identical up to sign
    out = m.compute()
    assert float(out["spearman_abs"]) == pytest.approx(1.0, abs=1e-6)
    assert float(out["spearman_no_abs"]) == pytest.approx(-1.0, abs=1e-6)
    assert float(out["ssim"]) == pytest.approx(1.0, abs=1e-5) and float(out["hog"]) == pytest.approx(1.0, abs=1e-6)

    m = MapSimilarity()
    m.update(a, b)
    rows = m.per_sample()
    na, nb = normalise_maps(a.abs()), normalise_maps(b.abs())
    for i in range(3):
        ha = hog(na[i, 0].double().numpy(), pixels_per_cell=(8, 8))
        hb = hog(nb[i, 0].double().numpy(), pixels_per_cell=(8, 8))
        assert float(rows["hog"][i]) == pytest.approx(np.corrcoef(ha, hb)[0, 1], abs=1e-5)
        # torchmetrics vs skimage (the official code's SSIM): same window, different covariance normalisation and
        # border handling; measured gap on these noise maps is ~0.04, so only a coarse agreement is asserted
        ref = structural_similarity(na[i, 0].numpy(), nb[i, 0].numpy(), data_range=1.0, win_size=7)
        assert float(rows["ssim"][i]) == pytest.approx(ref, abs=0.06)
        assert float(rows["spearman_abs"][i]) == pytest.approx(
            spearmanr(a[i].abs().flatten(), b[i].abs().flatten()).statistic, abs=1e-5)
    assert 0.0 < float(m.compute()["spearman_no_abs"]) < 0.95


def test_similarity_bad_input():
    a, b = _maps()
    m = MapSimilarity()
    with pytest.raises(ValueError, match="does not match"):
        m.update(a, b[:, :, :20])
    with pytest.raises(ValueError, match="NaN"):
        m.update(a, b * float("nan"))
    with pytest.raises(ValueError, match="pixels_per_cell"):
        MapSimilarity(hog_pixels_per_cell=16).update(a, b)


def test_topk_intersection_matches_quantus_top_k_mask():
    """Ghorbani's top-k intersection = Quantus' TopKIntersection of the original map against the perturbed map's
    top-k pixels given as the 'segmentation' mask."""
    a, b = _maps(n=4)
    k = 50
    m = TopKIntersection(k=k)
    m.update(a, b)
    ours = m.per_sample()["values"].numpy()
    top_b = torch.zeros(4, 24 * 24)
    top_b.scatter_(1, b.flatten(1).topk(k, dim=1).indices, 1.0)
    x = torch.rand(4, 3, 24, 24)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 24 * 24, 2))
    theirs = quantus.TopKIntersection(k=k, disable_warnings=True, normalise=False, abs=False)(
        model=model, x_batch=x.numpy(), y_batch=np.zeros(4, dtype=int), a_batch=a.numpy(),
        s_batch=top_b.view(4, 1, 24, 24).numpy(), device="cpu")
    np.testing.assert_allclose(ours, np.array(theirs), atol=1e-6)
    assert 0 < ours.mean() < 1
    same = TopKIntersection(k=k)
    same.update(a, a)
    assert float(same.compute()) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        TopKIntersection(k=10_000).update(a, b)


def test_topk_mask_share_known_answer_and_quantus():
    """TopKMaskShare = the fraction of a map's top-k pixels inside a mask: by hand on a 1x4 map, and Quantus'
    TopKIntersection (which takes the mask as its 'segmentation') on random maps and masks."""
    m = TopKMaskShare(k=2)
    maps = torch.tensor([[[[4.0, 3.0, 2.0, 1.0]]], [[[1.0, 2.0, 3.0, 4.0]]]])
    masks = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]], [[[0.0, 0.0, 1.0, 1.0]]]])
    m.update(maps, masks, torch.tensor([7, 3]))
    per = m.per_sample()
    assert per["ids"].tolist() == [3, 7] and per["values"].tolist() == [1.0, 0.5]
    a, _ = _maps(n=4)
    seg = (torch.rand(4, 1, 24, 24, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    k = 40
    ours = TopKMaskShare(k=k)
    ours.update(a, seg)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 24 * 24, 2))
    theirs = quantus.TopKIntersection(k=k, disable_warnings=True, normalise=False, abs=False)(
        model=model, x_batch=torch.rand(4, 3, 24, 24).numpy(), y_batch=np.zeros(4, dtype=int), a_batch=a.numpy(),
        s_batch=seg.numpy(), device="cpu")
    np.testing.assert_allclose(ours.per_sample()["values"].numpy(), np.array(theirs), atol=1e-6)
    with pytest.raises(ValueError, match="masks must have the maps' shape"):
        TopKMaskShare(k=2).update(maps, masks[:, :, :, :2])
    with pytest.raises(ValueError, match="k must be"):
        TopKMaskShare(k=5).update(maps, masks)


def test_rank_correlation_and_center_of_mass_shift():
    a, b = _maps()
    rc = RankCorrelation()
    rc.update(a, b)
    torch.testing.assert_close(rc.compute(), spearman(a, b).mean())
    maps = torch.zeros(2, 1, 10, 10)
    maps[0, 0, 2, 3] = 1.0
    maps[1, 0, 5, 5] = 1.0
    maps[1, 0, 5, 7] = 1.0  # centre (5, 6)
    moved = torch.zeros(2, 1, 10, 10)
    moved[0, 0, 5, 7] = 1.0  # (2,3) -> (5,7): shift 5
    moved[1, 0, 5, 6] = 3.0  # same centre
    cm = CenterOfMassShift()
    cm.update(maps, moved)
    torch.testing.assert_close(cm.per_sample()["values"], torch.tensor([5.0, 0.0]))
    with pytest.raises(ValueError, match="non-negative"):
        cm.update(-maps, moved)
    with pytest.raises(ValueError, match="all zero"):
        cm.update(torch.zeros(1, 1, 10, 10), moved[:1])
