"""Synthetic scenes: determinism, the batch schema, ground truth consistent with the pixels, the
counterfactual renders, the spurious artifact, caching, bad input. Small splits (32 px) keep it fast."""

import math

import pytest
import torch

from lightning_modules.data import schema, synthetic
from lightning_modules.data.schema import collate_batch, validate_batch
from lightning_modules.data.synthetic import ScenesConfig, SyntheticScenes, SyntheticScenesDataModule, render_split

SMALL = dict(image_size=32, train_size=300, val_size=200, test_size=100, heldout_size=50)


def _cfg(**kw):
    return ScenesConfig(**{**SMALL, **kw})


def _all(ds):
    return ds.__getitems__(range(len(ds)))


def test_same_seed_same_scenes_other_seed_other_scenes():
    a = render_split(_cfg(), "val")
    b = render_split(_cfg(), "val")
    for k in a:
        assert torch.equal(a[k].nan_to_num(-7), b[k].nan_to_num(-7)), k
    c = render_split(_cfg(seed=1), "val")
    assert not torch.equal(a["image"], c["image"])
    # splits are different draws, not copies
    assert not torch.equal(render_split(_cfg(), "test")["image"][:50], a["image"][:50])


def test_batch_follows_the_schema():
    ds = SyntheticScenes("val", _cfg(max_objects=3, multi_object_prob=0.5), cache=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, collate_fn=collate_batch)
    b = next(iter(loader))
    validate_batch(b, num_classes=10, channels=3)
    assert b["image"].shape == (16, 3, 32, 32) and b["image"].dtype == torch.float32
    assert 0 <= b["image"].min() and b["image"].max() <= 1
    assert b["mask"].dtype == torch.bool and b["mask"].shape == (16, 1, 32, 32)
    assert b["boxes"].shape == (16, 3, 4) and b["box_labels"].shape == (16, 3)
    assert b["keypoints"]["eyes"].shape == (16, 6, 2) and b["keypoints"]["feet"].shape == (16, 6, 2)
    assert b["difficult"].dtype == torch.bool and torch.equal(b["id"], torch.arange(16))
    # padding: objects that do not exist have label -1 and NaN keypoints
    absent = b["box_labels"] == -1
    assert absent.any() and (~absent[:, 0]).all()
    assert torch.isnan(b["keypoints"]["eyes"].view(16, 3, 2, 2)[absent]).all()
    assert not torch.isnan(b["keypoints"]["eyes"].view(16, 3, 2, 2)[~absent]).any()
    # a single sample has the same content as row i of a batch
    one = ds[5]
    assert torch.equal(one["image"], b["image"][5]) and one["label"] == b["label"][5]


def test_ground_truth_agrees_with_the_pixels():
    cfg = _cfg(image_size=64, max_objects=3, multi_object_prob=0.4)
    d = _all(SyntheticScenes("val", cfg, cache=False))
    n = d["label"].shape[0]
    assert torch.equal(d["box_labels"][:, 0], d["label"])  # object 0 is the main object
    # every mask pixel lies inside a box of the label's class; every such box holds mask pixels
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    inside = torch.zeros(n, 64, 64, dtype=torch.bool)
    for j in range(3):
        bx = d["boxes"][:, j].view(n, 4, 1, 1)
        same = (d["box_labels"][:, j] == d["label"]).view(n, 1, 1)
        inside |= same & (xs >= bx[:, 0]) & (xs < bx[:, 2]) & (ys >= bx[:, 1]) & (ys < bx[:, 3])
    assert not (d["mask"][:, 0] & ~inside).any()
    assert (d["mask"].flatten(1).sum(1) > 20).all()
    # head and feet are parts of the mask; eyes keypoints sit on the head, feet keypoints on the feet
    assert not (d["head_mask"] & ~d["mask"]).any() and not (d["feet_mask"] & ~d["mask"]).any()
    for part, key in (("head_mask", "eyes"), ("feet_mask", "feet")):
        kp = d["keypoints"][key]
        ok = ~torch.isnan(kp[..., 0])
        b_idx = torch.arange(n).view(n, 1).expand_as(ok)[ok]
        x, y = kp[..., 0][ok].floor().long(), kp[..., 1][ok].floor().long()
        assert d[part][b_idx, 0, y, x].float().mean() > 0.97, part
    # difficult = several objects or a small main object
    big = (d["boxes"][:, 0, 2] - d["boxes"][:, 0, 0]) * (d["boxes"][:, 0, 3] - d["boxes"][:, 0, 1])
    single_large = (d["n_objects"] == 1) & (big > 0.15 * 64 * 64)
    assert not d["difficult"][single_large].any()
    assert d["difficult"][d["n_objects"] > 1].all()


def test_other_class_objects_are_not_in_the_mask():
    d = _all(SyntheticScenes("val", _cfg(min_objects=2, max_objects=2, extra_object_classes="any"), cache=False))
    other = d["box_labels"][:, 1] != d["label"]
    assert other.any()
    # the union of all objects covers more than the label's mask exactly where another class is present
    extra = (d["object_mask"] & ~d["mask"]).flatten(1).any(1)
    assert torch.equal(extra, other)


def test_removing_the_heads_changes_only_head_pixels():
    ds = SyntheticScenes("val", _cfg(), cache=False)
    d = _all(ds)
    no_head = _all(ds.counterfactual(("head",)))
    changed = (d["image"] != no_head["image"]).any(1, keepdim=True)
    assert changed.any()
    assert not (changed & ~d["head_mask"]).any()
    # every other output is unchanged: the counterfactual is the same scene
    assert torch.equal(d["label"], no_head["label"]) and torch.equal(d["boxes"], no_head["boxes"])
    no_feet = _all(ds.counterfactual(("feet",)))
    changed = (d["image"] != no_feet["image"]).any(1, keepdim=True)
    assert changed.any() and not (changed & ~d["feet_mask"]).any()
    with pytest.raises(ValueError, match="unknown parts"):
        ds.counterfactual(("tail",))


def test_heads_carry_the_class_and_feet_do_not():
    """Mean colour of head pixels differs by class (red vs blue family); feet colours do not."""
    d = _all(SyntheticScenes("train", _cfg(train_size=1500), cache=False))
    img = d["image"]

    def part_means(mask):
        m = mask.float()
        per_image = (img * m).sum((2, 3)) / m.sum((2, 3)).clamp(min=1)
        return torch.stack([per_image[d["label"] == c].mean(0) for c in range(10)])

    head, feet = part_means(d["head_mask"]), part_means(d["feet_mask"])
    red, blue = head[:5].mean(0), head[5:].mean(0)
    assert red[0] - blue[0] > 0.4 and blue[2] - red[2] > 0.4
    assert (feet - feet.mean(0)).abs().max() < 0.05


def test_spurious_artifact_correlates_with_the_label_in_training_only():
    dm = SyntheticScenesDataModule(**{**SMALL, "train_size": 1000, "val_size": 1000}, spurious_rate=0.9, cache=False)
    dm.setup()
    tr, va = _all(dm.dataset("train")), _all(dm.dataset("val"))
    agree_train = (tr["artifact_class"] == tr["label"]).float().mean()
    agree_val = (va["artifact_class"] == va["label"]).float().mean()
    assert abs(agree_train - (0.9 + 0.1 / 10)) < 0.03
    assert abs(agree_val - 0.1) < 0.03
    none = _all(SyntheticScenes("train", _cfg(), cache=False))
    assert (none["artifact_class"] == -1).all()


def test_cache_is_written_and_reused(tmp_path, monkeypatch):
    cfg = _cfg()
    a = SyntheticScenes("test", cfg, root=tmp_path)
    files = list((tmp_path / "scenes").glob("test-*.pt"))
    assert len(files) == 1 and cfg.content_hash("test") in files[0].name

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(synthetic, "render_split", no_render)
    b = SyntheticScenes("test", cfg, root=tmp_path)
    assert torch.equal(a.data["image"], b.data["image"])
    # a different config is a different file
    assert ScenesConfig(**{**SMALL, "seed": 3}).content_hash("test") != cfg.content_hash("test")
    # another split's size does not change this split's hash
    assert ScenesConfig(**{**SMALL, "train_size": 5}).content_hash("test") == cfg.content_hash("test")


def test_image_size_128_and_bounds():
    d = render_split(ScenesConfig(image_size=128, max_objects=2, multi_object_prob=0.5), "val", size=40)
    assert d["image"].shape == (40, 3, 128, 128)
    assert (d["boxes"][..., 2] <= 128).all() and (d["boxes"][..., :2] >= 0).all()


def test_label_permutation_keeps_the_histogram_of_training_labels_only():
    base = SyntheticScenesDataModule(**SMALL, cache=False)
    perm = SyntheticScenesDataModule(**SMALL, cache=False, label_permutation_seed=7)
    y0, y1 = base.dataset("train").data["label"], perm.dataset("train").data["label"]
    assert not torch.equal(y0, y1) and torch.equal(y0.sort().values, y1.sort().values)
    assert torch.equal(base.dataset("val").data["label"], perm.dataset("val").data["label"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=1), "num_classes"),
    (dict(num_classes=21), "num_classes"),
    (dict(image_size=8), "image_size"),
    (dict(min_objects=3, max_objects=2), "min_objects"),
    (dict(spurious_rate=1.5), "spurious_rate"),
    (dict(extra_object_classes="all"), "extra_object_classes"),
])
def test_bad_config_fails_early(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScenesConfig(**kwargs)


def test_unknown_split_and_profile():
    with pytest.raises(ValueError, match="unknown split"):
        SyntheticScenes("training", _cfg(), cache=False)
    with pytest.raises(ValueError, match="unknown scenes profile"):
        SyntheticScenesDataModule.from_profile("huge")


def test_collate_pads_boxes_and_keypoints():
    samples = [
        {"image": torch.zeros(3, 4, 4), "label": torch.tensor(1), "boxes": torch.ones(1, 4), "box_labels": torch.tensor([1]),
         "keypoints": {"eyes": torch.ones(2, 2)}, "id": 0},
        {"image": torch.zeros(3, 4, 4), "label": torch.tensor(2), "boxes": torch.ones(3, 4), "box_labels": torch.tensor([2, 0, 2]),
         "keypoints": {"eyes": torch.ones(6, 2)}, "id": 1},
    ]
    b = collate_batch(samples)
    assert b["boxes"].shape == (2, 3, 4) and (b["boxes"][0, 1:] == 0).all()
    assert b["box_labels"].tolist() == [[1, -1, -1], [2, 0, 2]]
    assert torch.isnan(b["keypoints"]["eyes"][0, 2:]).all() and not torch.isnan(b["keypoints"]["eyes"][1]).any()
    assert torch.equal(b["id"], torch.tensor([0, 1]))


def test_validate_batch_names_the_problem():
    good = {"image": torch.rand(2, 3, 8, 8), "label": torch.tensor([0, 1])}
    validate_batch(good, num_classes=2)
    bad = dict(good, image=good["image"].clone())
    bad["image"][0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        validate_batch(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\] pixel space"):
        validate_batch(dict(good, image=good["image"] * 255))
    with pytest.raises(ValueError, match="num_classes=2"):
        validate_batch(dict(good, label=torch.tensor([0, 5])), num_classes=2)
    with pytest.raises(ValueError, match="channels"):
        validate_batch(good, channels=1)
    with pytest.raises(ValueError, match="'image' and 'label'"):
        validate_batch({"image": good["image"]})


def test_stratified_split_is_exact_and_seeded():
    y = torch.arange(10).repeat_interleave(torch.tensor([5, 7, 9, 11, 13, 5, 7, 9, 11, 23]))
    a, b = schema.stratified_split(y, 80, seed=0)
    assert a.numel() == 80 and b.numel() == y.numel() - 80
    assert torch.equal(torch.cat([a, b]).sort().values, torch.arange(y.numel()))
    frac = torch.bincount(y[a], minlength=10).double() / torch.bincount(y, minlength=10)
    assert (frac - 80 / y.numel()).abs().max() < 0.15
    assert torch.equal(a, schema.stratified_split(y, 80, seed=0)[0])
    assert not torch.equal(a, schema.stratified_split(y, 80, seed=1)[0])
