"""Scenes v2 (issue 19): ground truth, class design, counterfactual parts, and the shipped deep models."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from lightning_modules.models import shipped
from lightning_modules.data.schema import validate_batch
from lightning_modules.data.scenes_v2 import (
    MAX_CLASSES, PROFILES, ScenesV2, ScenesV2DataModule, SyntheticScenesV2Config, class_name, is_coat_class, render_split,
)
from lightning_modules.metrics.progressive import blur
from lightning_modules.metrics.localisation import box_iou

CFG = PROFILES["smoke"]
#: the v2 models are trained (tens of CPU minutes) and shipped separately from the code; until they are, the tests
#: of the shipped weights say so instead of failing the suite
def _needs(name: str):
    return pytest.mark.skipif(shipped.shipped_entry(name) is None,
                              reason=f"{name} not shipped yet: python -m replications train-embedded {name}")


@pytest.fixture(scope="module")
def val():
    return ScenesV2("val", CFG, data=render_split(CFG, "val"))


def test_render_is_deterministic_and_follows_the_schema(val):
    a, b = render_split(CFG, "val", size=50), render_split(CFG, "val", size=50)
    assert all(torch.equal(a[k], b[k]) for k in a if not a[k].is_floating_point())
    assert all(torch.allclose(a[k], b[k], equal_nan=True) for k in a if a[k].is_floating_point())
    b = val.__getitems__(range(64))
    validate_batch(b, CFG.num_classes, 3)
    assert b["evidence_mask"].shape == b["mask"].shape == (64, 1, 64, 64)
    assert b["evidence_boxes"].shape == b["boxes"].shape
    assert not (b["evidence_mask"] & ~b["mask"]).any(), "the label's evidence lies on the label's object"
    assert b["evidence_mask"].flatten(1).any(1).all() and b["mask"].flatten(1).any(1).all()


def test_class_design():
    assert MAX_CLASSES == 24 and SyntheticScenesV2Config().num_classes == 24
    assert len({class_name(c) for c in range(24)}) == 24
    assert [c for c in range(24) if is_coat_class(c)] == list(range(16, 24))


def test_evidence_boxes_part_vs_coat(val):
    d = val.data
    iou = box_iou(d["evidence_boxes"][:, :1], d["boxes"][:, :1])[:, 0, 0]
    coat = torch.as_tensor(is_coat_class(d["label"].numpy()))
    assert iou[coat].min() > 0.7, "coat classes: the evidence box is about the object box"
    assert iou[~coat].max() < 0.5, "head classes: the evidence is a part"


def test_distractors_and_difficult(val):
    d = val.data
    bl = d["box_labels"]
    assert (bl[:, 0] == d["label"]).all(), "object 0 is the labelled primary"
    others = bl[:, 1:]
    assert not ((others == d["label"][:, None]) & (others >= 0)).any(), "distractor objects are of other classes"
    assert torch.equal(d["difficult"], (d["n_objects"] > 1) | d["small"])
    assert 0.15 < float((d["n_objects"] > 1).float().mean()) < 0.4
    # a distractor object is clearly smaller than the primary
    area = (d["boxes"][..., 2] - d["boxes"][..., 0]) * (d["boxes"][..., 3] - d["boxes"][..., 1])
    has = bl[:, 1:] >= 0
    assert (area[:, 1:][has] <= 0.5 * area[:, :1].expand_as(has)[has]).all()


def test_counterfactual_parts():
    # a re-render with parts omitted draws the same parameters only for the same split size
    sub = ScenesV2("val", CFG, data=render_split(CFG, "val", size=64))
    full = sub.__getitems__(range(64))
    no_ev = sub.counterfactual(("evidence",)).__getitems__(range(64))["image"]
    ev = full["all_evidence_mask"].expand(-1, 3, -1, -1)
    assert torch.equal(no_ev[~ev], full["image"][~ev]), "only the evidence pixels change"
    # inside the evidence the grating is gone: what is left is one flat colour per object (quantisation only)
    grad = (no_ev[..., 1:] - no_ev[..., :-1]).abs()
    inner = ev[..., 1:] & ev[..., :-1]
    assert grad[inner].max() <= 1.5 / 255
    no_ne = sub.counterfactual(("non_evidence",)).__getitems__(range(64))["image"]
    assert torch.equal(no_ne[ev], full["image"][ev]), "removing the non-evidence parts keeps the evidence"


def test_blur_and_mean_fill_remove_the_texture(val):
    b = val.__getitems__(range(64))
    x, ev = b["image"], b["evidence_mask"].expand(-1, 3, -1, -1)
    contrast = lambda im: (im[..., 1:] - im[..., :-1]).abs()[ev[..., 1:] & ev[..., :-1]].mean()  # noqa: E731
    # what is left after the blur is the smooth ramp of the blurred object/background edges (~11%), not the grating
    assert contrast(blur(x, 11, 5.0)) < 0.15 * contrast(x)
    # a grating's own contrast: the same statistic on the mean-filled counterfactual is ~0 (test_counterfactual_parts)


def test_background_has_no_constant_colour(val):
    x = val.__getitems__(range(32))["image"]
    bg = ~val.__getitems__(range(32))["object_mask"].expand(-1, 3, -1, -1)
    per_image_std = torch.stack([x[i][bg[i]].std() for i in range(4)])
    assert (per_image_std > 0.05).all()


def test_datamodule_and_config_errors(tmp_path):
    dm = ScenesV2DataModule(CFG, batch_size=16, root=str(tmp_path))
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (16, 3, 64, 64) and "evidence_mask" in b
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticScenesV2Config(num_classes=30)
    with pytest.raises(ValueError, match="unknown parts"):
        render_split(CFG, "val", omit=("head",), size=4)
    with pytest.raises(ValueError, match="unknown scenes v2 profile"):
        ScenesV2DataModule.from_profile("nope")


# ------------------------------------------------------------------------------------------------ models
def test_architectures_are_deep_relu_nets():
    from lightning_modules.models import load_model, unwrap

    vgg, _ = load_model("scenes_vgg", num_classes=24)
    convs = [m for m in unwrap(vgg).modules() if isinstance(m, torch.nn.Conv2d)]
    relus = [m for m in unwrap(vgg).modules() if isinstance(m, torch.nn.ReLU)]
    assert len(convs) >= 8 and len(relus) >= 8 and not any(r.inplace for r in relus)
    res, _ = load_model("scenes_resnet", num_classes=24)
    from timm.models.resnet import BasicBlock

    assert sum(isinstance(m, BasicBlock) for m in unwrap(res).modules()) >= 8
    assert not any(m.inplace for m in unwrap(res).modules() if isinstance(m, torch.nn.ReLU))
    assert res(torch.rand(2, 3, 64, 64)).shape == (2, 24)


@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs(n)) for n in ("scenes_v2_vgg", "scenes_v2_resnet")])
def test_shipped_v2_models_load_without_training(name, tmp_path):
    from lightning_modules.models import EMBEDDED_V2, load_model

    entry = shipped.shipped_entry(name)
    assert entry is not None, f"run `python -m replications train-embedded {name}`"
    assert entry["config_hash"] == EMBEDDED_V2[name].content_hash()
    assert entry["bytes"] < 5_000_000
    model, dc = load_model(name, weights="embedded", root=tmp_path)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert not (tmp_path / "embedded_v2").exists(), "loading never trains"
    info = model.embedded_info
    assert info["test_accuracy"] >= 0.9
    assert info["test"]["accuracy_evidence_removed"] <= 2.5 * info["test"]["chance"]
    assert info["test"]["accuracy_non_evidence_removed"] >= info["test_accuracy"] - 0.03
    # the shipped accuracy is what the shipped weights give (first 200 test scenes, within sampling noise)
    test = ScenesV2("test", model.scenes_config, data=render_split(model.scenes_config, "test", size=200))
    images, labels = test.tensors()
    with torch.no_grad():
        acc = float((model(images).argmax(1) == labels).float().mean())
    assert abs(acc - info["test_accuracy"]) < 0.06


@_needs("scenes_v2_vgg")
def test_corrupted_v2_weights_fail_with_a_clear_message(tmp_path, monkeypatch):
    from lightning_modules.models import load_model

    src = shipped.weights_dir()
    for f in ("scenes_v2_vgg.safetensors", shipped.MANIFEST_NAME):
        shutil.copy(src / f, tmp_path / f)
    monkeypatch.setenv("SALIENCY_SHIPPED_WEIGHTS", str(tmp_path))
    f = tmp_path / "scenes_v2_vgg.safetensors"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(shipped.ShippedWeightsError, match="corrupt"):
        load_model("scenes_v2_vgg", weights="embedded")
    with pytest.raises(shipped.ShippedWeightsError, match="weights=\"retrain\""):
        load_model("scenes_v2_smoke", weights="embedded")


def test_smoke_training_path(tmp_path):
    from lightning_modules.models import load_model

    model, _ = load_model("scenes_v2_smoke", weights="retrain", root=tmp_path)
    info = json.loads(next((tmp_path / "embedded_v2").glob("*/info.json")).read_text())
    assert info["forward_cost"]["flops_per_image"] > 0 and 0 <= info["test_accuracy"] <= 1
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 24)


#: Retraining on another machine gives other weights (CPU kernels differ); what must reproduce is the accuracy.
#: The full trainings take tens of CPU minutes (too slow for `make test`), so this test retrains the reduced
#: schedule whose accuracy was recorded when the model was shipped (``info["reduced_schedule"]``).
REDUCED_TOLERANCE = 0.03


@_needs("scenes_v2_vgg")
@pytest.mark.slow
def test_retraining_the_reduced_schedule_reproduces_its_recorded_accuracy(tmp_path):
    from lightning_modules.models.embedded_v2 import REDUCED_SCHEDULE, train_embedded_v2

    ref = shipped.shipped_entry("scenes_v2_vgg")["info"]["reduced_schedule"]
    assert ref["config_hash"] == REDUCED_SCHEDULE.content_hash()
    _, info = train_embedded_v2(REDUCED_SCHEDULE, None, root=tmp_path)
    assert abs(info["test_accuracy"] - ref["test_accuracy"]) <= REDUCED_TOLERANCE


@pytest.mark.skipif(not os.environ.get("SALIENCY_FULL_RETRAIN"), reason="full v2 trainings take tens of CPU minutes; "
                    "set SALIENCY_FULL_RETRAIN=1 to run")
@pytest.mark.parametrize("name", ["scenes_v2_vgg", "scenes_v2_resnet"])
def test_full_retraining_reproduces_the_shipped_accuracy(name, tmp_path):
    from lightning_modules.models import load_model

    model, _ = load_model(name, weights="retrain", root=tmp_path)
    assert abs(model.embedded_info["test_accuracy"] - shipped.shipped_entry(name)["info"]["test_accuracy"]) <= 0.02
