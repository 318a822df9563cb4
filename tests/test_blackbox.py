"""The embedded black box: shipped (hash-checked) for the named profiles; retrained on request into a cache that
is trained once and reloaded (weights_only) without retraining; frozen, deterministic given its seed, and using
the intended evidence (the heads, not the feet)."""

import json

import pytest
import torch

from lightning_modules.models import blackbox, load_model
from lightning_modules.models.blackbox import blackbox_dir, blackbox_info, evidence_check
from lightning_modules.data.synthetic import SyntheticScenes


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bb")
    load_model("blackbox_smoke", weights="retrain", root=root)
    return root


def test_trains_once_then_loads_from_the_cache(smoke_root, monkeypatch):
    out = blackbox_dir("smoke", smoke_root)
    assert (out / "model.pt").is_file() and (out / "info.json").is_file()
    state = torch.load(out / "model.pt", weights_only=True)  # a plain state dict
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    def no_training(*a, **k):
        raise AssertionError("trained again although the black box is cached")

    monkeypatch.setattr(blackbox, "train_blackbox", no_training)
    monkeypatch.setenv("SALIENCY_SHIPPED_WEIGHTS", str(smoke_root / "nothing_shipped"))
    m1, cfg = load_model("blackbox_smoke", weights="embedded", root=smoke_root)
    m2, _ = load_model("blackbox_smoke", weights="embedded", root=smoke_root)
    assert not m1.training and not any(p.requires_grad for p in m1.parameters())
    assert cfg.input_size[0] == 3 and m1.scenes_config.image_size == 32
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(m1(x), m2(x))
    info = blackbox_info("smoke", root=smoke_root)
    assert {"val_accuracy", "test_accuracy", "training_s", "val"} <= set(info)
    assert info["val"]["chance"] == pytest.approx(0.1)
    # the recorded accuracy is the loaded model's accuracy on the validation split
    val = SyntheticScenes("val", m1.scenes_config, root=smoke_root)
    assert blackbox.accuracy(m1, val) == pytest.approx(info["val_accuracy"])


def test_same_seed_same_weights(smoke_root, tmp_path):
    load_model("blackbox_smoke", weights="retrain", root=tmp_path)
    a = torch.load(blackbox_dir("smoke", smoke_root) / "model.pt", weights_only=True)
    b = torch.load(blackbox_dir("smoke", tmp_path) / "model.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ia = json.loads((blackbox_dir("smoke", smoke_root) / "info.json").read_text())
    ib = json.loads((blackbox_dir("smoke", tmp_path) / "info.json").read_text())
    assert ia["val"] == ib["val"] and ia["test_accuracy"] == ib["test_accuracy"]


def test_weights_do_not_depend_on_the_callers_thread_count(smoke_root, tmp_path):
    """The black box trains at a fixed thread count, so a caller's torch.set_num_threads does not change it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_model("blackbox_smoke", weights="retrain", root=tmp_path)
        assert torch.get_num_threads() == 1  # restored
    finally:
        torch.set_num_threads(before)
    a = torch.load(blackbox_dir("smoke", smoke_root) / "model.pt", weights_only=True)
    b = torch.load(blackbox_dir("smoke", tmp_path) / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_profile():
    with pytest.raises(ValueError, match="blackbox_default"):
        load_model("blackbox_huge", weights="embedded")


def test_default_black_box_uses_the_heads_not_the_feet():
    """On the cached default black box (trained on first use otherwise: minutes): removing the heads (the
    class evidence) drops validation accuracy to near chance, removing the feet (shared by all classes)
    barely changes it."""
    model, _ = load_model("blackbox_default", weights="embedded")
    val = SyntheticScenes("val", model.scenes_config)
    sub = SyntheticScenes("val", model.scenes_config, data={k: v[:500] for k, v in val.data.items()})
    ev = evidence_check(model, sub)
    assert ev["accuracy"] >= 0.95
    assert ev["accuracy_heads_removed"] < ev["chance"] + 0.1
    assert ev["accuracy_feet_removed"] > ev["accuracy"] - 0.03
