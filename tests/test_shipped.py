"""Shipped embedded weights: hash-checked loading, clear failures, and retraining that reproduces them."""

from __future__ import annotations

import json

import pytest
import torch

from lightning_modules.models import BLACKBOX_PROFILES, MNIST_MODEL_PROFILES, load_model, shipped, unwrap


def test_ship_and_load_round_trip(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    path = shipped.ship("toy", state, {"accuracy": 0.5}, config_hash="abc", directory=tmp_path)
    assert path.stat().st_mode & 0o044, "shipped files must be readable by others"
    loaded, info = shipped.load_shipped("toy", config_hash="abc", directory=tmp_path)
    assert shipped.state_dict_equal(loaded, state) and info == {"accuracy": 0.5}
    assert shipped.list_shipped(tmp_path) == ["toy"]


def test_corrupt_or_replaced_file_fails_with_the_fix(tmp_path):
    shipped.ship("toy", {"w": torch.zeros(3)}, {}, directory=tmp_path)
    f = tmp_path / "toy.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(shipped.ShippedWeightsError, match="git checkout -- weights/"):
        shipped.load_shipped("toy", directory=tmp_path)
    f.unlink()
    with pytest.raises(shipped.ShippedWeightsError, match="missing"):
        shipped.load_shipped("toy", directory=tmp_path)


def test_config_mismatch_and_unknown_name(tmp_path):
    shipped.ship("toy", {"w": torch.zeros(3)}, {}, config_hash="old", directory=tmp_path)
    with pytest.raises(shipped.ShippedWeightsError, match="retrain and ship"):
        shipped.load_shipped("toy", config_hash="new", directory=tmp_path)
    with pytest.raises(shipped.ShippedWeightsError, match="no shipped weights named 'nope'"):
        shipped.load_shipped("nope", directory=tmp_path)
    (tmp_path / shipped.MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(shipped.ShippedWeightsError, match="JSON object"):
        shipped.read_manifest(tmp_path)


@pytest.mark.parametrize("name", ["blackbox_default", "blackbox_smoke", "mnist_cnn_default", "mnist_cnn_smoke"])
def test_every_report_model_is_shipped_with_its_config(name):
    entry = shipped.shipped_entry(name)
    assert entry is not None, f"{name} is not shipped: run `python -m replications train-embedded {name}`"
    profile = name.rsplit("_", 1)[1]
    cfg = (BLACKBOX_PROFILES if name.startswith("blackbox") else MNIST_MODEL_PROFILES)[profile]
    assert entry["config_hash"] == cfg.content_hash()
    shipped.verify_shipped(name, cfg.content_hash())


def test_loaders_use_the_shipped_weights_without_training(tmp_path):
    model, _ = load_model("blackbox_smoke", weights="embedded", root=tmp_path)
    state, _ = shipped.load_shipped("blackbox_smoke")
    assert shipped.state_dict_equal(unwrap(model).state_dict(), state)
    assert not (tmp_path / "blackbox").exists(), "a shipped model must not be retrained or cached"
    model, _ = load_model("mnist_cnn_smoke", weights="embedded", root=tmp_path)
    assert not (tmp_path / "mnist_model").exists()
    assert model.mnist_info["test_accuracy"] == shipped.shipped_entry("mnist_cnn_smoke")["info"]["test_accuracy"]


#: Retraining on another machine gives other weights (CPU kernels differ), so what must be reproduced is the
#: accuracy: measured between two machines for the default black box, 0.972 vs 0.973 validation accuracy.
ACCURACY_TOLERANCE = 0.01


def test_retraining_the_smoke_models_reproduces_their_shipped_accuracy(tmp_path):
    # the smoke models are trained for seconds and are far from converged, so their accuracy is noisier than the
    # default models'; the tolerance is wider (the shipped smoke black box is at ~0.15 on 10 classes)
    _, _ = load_model("blackbox_smoke", weights="retrain", root=tmp_path)
    info = json.loads(next((tmp_path / "blackbox").glob("*/info.json")).read_text())
    shipped_info = shipped.shipped_entry("blackbox_smoke")["info"]
    assert abs(info["val_accuracy"] - shipped_info["val_accuracy"]) <= 0.1


@pytest.mark.slow
def test_retraining_the_default_black_box_reproduces_its_shipped_accuracy(tmp_path):
    model, _ = load_model("blackbox_default", weights="retrain", root=tmp_path)
    shipped_info = shipped.shipped_entry("blackbox_default")["info"]
    assert abs(model.blackbox_info["val_accuracy"] - shipped_info["val_accuracy"]) <= ACCURACY_TOLERANCE
    assert abs(model.blackbox_info["test_accuracy"] - shipped_info["test_accuracy"]) <= ACCURACY_TOLERANCE


@pytest.mark.slow
def test_retraining_the_default_mnist_cnn_reproduces_its_shipped_accuracy(tmp_path):
    model, _ = load_model("mnist_cnn_default", weights="retrain", root=tmp_path)
    shipped_info = shipped.shipped_entry("mnist_cnn_default")["info"]
    assert abs(model.mnist_info["test_accuracy"] - shipped_info["test_accuracy"]) <= ACCURACY_TOLERANCE
