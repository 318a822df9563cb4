"""The cached real-MNIST CNN (lightning_modules/models/mnist.py) that ghorbani2019's MNIST part attacks: trained on
the shipped MNIST's fixed split, cached by config hash, reproducible whatever the caller's thread count."""

import json

import pytest
import torch

from lightning_modules.models import (
    MNIST_MODEL_PROFILES,
    MnistModelConfig,
    load_model,
    mnist_datamodule,
    mnist_model_dir,
    trained_mnist_model,
)

#: a few seconds: 200 digits, one epoch
TINY = MnistModelConfig(max_epochs=1, train_subset=200, batch_size=50)


def test_trains_once_caches_and_reloads(tmp_path):
    torch.set_num_threads(1)  # the training pins its own count (2) and restores the caller's
    model, data_config = trained_mnist_model(TINY, root=tmp_path)
    assert torch.get_num_threads() == 1
    out = mnist_model_dir(TINY, tmp_path)
    info = json.loads((out / "info.json").read_text())
    assert info["torch_threads"] == 2 and info["train_images"] == 200 and info["test_images"] == 2000
    assert info["split"]["train_images"] == 8000 and not info["split"]["official"]
    assert model.mnist_info == info and data_config.mean == (0.1307,)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    # [0, 1] digits in, 10 logits out; better than chance after 200 digits
    dm = mnist_datamodule(TINY)
    dm.setup("test")
    x, y = dm.datasets["test"].tensors()
    assert x.shape[1:] == (1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert info["test_accuracy"] > 0.3
    # the second call loads the cache (no training): the file is untouched and the weights identical
    mtime = (out / "model.pt").stat().st_mtime_ns
    again, _ = trained_mnist_model(TINY, root=tmp_path)
    assert (out / "model.pt").stat().st_mtime_ns == mtime
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # retraining (another caller thread count) gives bit-identical weights: the count is pinned
    torch.set_num_threads(2)
    retrained, _ = trained_mnist_model(TINY, root=tmp_path, retrain=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), retrained.state_dict().values()))


def test_profiles_and_errors(tmp_path):
    assert MNIST_MODEL_PROFILES["default"].model_name == "mnist_cnn"
    assert MNIST_MODEL_PROFILES["default"].test_only_train_size == 8000
    assert mnist_model_dir("default") != mnist_model_dir("smoke")
    with pytest.raises(ValueError, match="unknown MNIST model profile"):
        trained_mnist_model("large")
    with pytest.raises(ValueError, match="mnist_cnn_default"):
        load_model("mnist_cnn_large", weights="embedded")
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        trained_mnist_model(TINY, root=tmp_path, mnist_root=tmp_path / "nowhere")
