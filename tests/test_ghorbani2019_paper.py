"""ghorbani2019's published configuration (configs/ghorbani2019/paper.yaml) loads and validates end to end on tiny
files in the real formats: ImageNet val (class folders + synset mapping, JPEG) and torchvision's SqueezeNet 1.1
weights under their published file name (random weights; the file's SHA-256 prefix is put into the published URL,
as the loader checks it). ``validate`` runs SqueezeNet and its softplus surrogate on the images."""

import pytest
import torch
import yaml

from paper_files import publish_torchvision_weights, write_imagenet_val
from replications.cli import run
from replications.ghorbani2019.data import FragilityData
from replications.ghorbani2019.experiments import FragilityReplication

PAPER = "configs/ghorbani2019/paper.yaml"


@pytest.fixture
def imagenet(tmp_path, monkeypatch):
    root = write_imagenet_val(tmp_path / "imagenet", shift=4)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(tmp_path / "weights"))
    return root


@pytest.fixture
def squeezenet_weights(tmp_path, monkeypatch):
    """Random SqueezeNet 1.1 weights under the published name pattern, the file's own SHA-256 prefix in the URL."""
    import torchvision

    weights = tmp_path / "weights"
    torch.manual_seed(0)
    net = torchvision.models.squeezenet1_1(weights=None)
    publish_torchvision_weights(net, torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1, weights, monkeypatch)
    return weights


def _validate(root, *extra):
    return run(FragilityReplication, "ghorbani2019", datamodule_class=FragilityData, args=[
        "validate", "--config", PAPER,
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
        "--trainer.enable_progress_bar", "false",
        "--data.n_images", "3", "--data.imagenet", f"{{root: {root}, image_size: 64}}", *extra,
    ])


def test_paper_config_validates_on_tiny_real_format_files(imagenet, squeezenet_weights):
    """``validate --config paper.yaml`` with only roots, devices and sizes overridden: the pretrained SqueezeNet is
    found and hash-checked, ImageNet val is read, and SqueezeNet, its softplus surrogate and the simple-gradient
    map run on every image (validation_step)."""
    cli = _validate(imagenet)
    module = cli.model
    metrics = cli.trainer.callback_metrics
    assert float(metrics["val/primary/images"]) == 3
    assert 0.0 <= float(metrics["val/primary/accuracy"]) <= 1.0
    assert 0.0 <= float(metrics["val/primary/surrogate_agreement"]) <= 1.0
    net = module.blackbox.net
    assert type(net).__name__ == "SqueezeNet" and net.classifier[1].out_channels == 1000
    # the weights are the file's (not a fresh random init)
    saved = torch.load(next(squeezenet_weights.iterdir()), weights_only=True)
    assert torch.equal(net.features[0].weight, saved["features.0.weight"])
    # the surrogate is SqueezeNet with softplus(beta=1) (the official code's Keras softplus), the original untouched
    assert module.beta == 1.0
    assert any(isinstance(m, torch.nn.Softplus) and m.beta == 1.0 for m in module.primary.surrogate.modules())
    assert not any(isinstance(m, torch.nn.Softplus) for m in net.modules())


def test_paper_config_missing_weights_names_the_file(imagenet):
    with pytest.raises(FileNotFoundError, match=r"squeezenet1_1-[0-9a-f]{8}\.pth"):
        _validate(imagenet)


def test_paper_config_is_the_published_setting():
    cfg = yaml.safe_load(open(PAPER))
    m = cfg["model"]
    assert m["model"] == {"name": "squeezenet1_1", "pretrained": True}
    assert m["steps"] == 300 and m["alpha"] == 0.5 and m["k"] == 1000 and m["ig_steps"] == 100 and m["beta"] == 1.0
    assert m["epsilons"] == [1, 2, 4, 8] and m["methods"] == ["gradient", "integrated_gradients", "deeplift"]
    assert cfg["data"]["source"] == "imagenet" and cfg["data"]["imagenet"]["image_size"] == 227
    assert cfg["trainer"]["strategy"] == "ddp" and cfg["trainer"]["accelerator"] == "gpu"
    # validate must see batches: a limit_val_batches of 0 would make it a no-op
    assert cfg["trainer"].get("limit_val_batches", 1.0) != 0
