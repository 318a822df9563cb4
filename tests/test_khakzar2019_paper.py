"""khakzar2019's published configuration (configs/khakzar2019/paper.yaml) loads and validates end to end on tiny
files in the real formats: ImageNet val (class folders + synset mapping, JPEG), CIFAR-10 (python pickles) and
torchvision's ResNet50 weights under their published file name (random weights; the file's SHA-256 prefix is put
into the published URL, as the loader checks it)."""

import json

import pytest
import torch
import yaml

from paper_files import publish_torchvision_weights, write_imagenet_val
from replications.khakzar2019.__main__ import main


@pytest.fixture
def paper_data(tmp_path, monkeypatch):
    from test_data_cifar import make_root
    imnet = write_imagenet_val(tmp_path / "imagenet")
    cifar = tmp_path / "cifar"
    make_root(cifar, n=12)  # 5 x 12 training, 12 test images
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(tmp_path / "weights"))
    return imnet, cifar


@pytest.fixture
def resnet50_weights(tmp_path, monkeypatch):
    """Random ResNet50 weights under the published name pattern, the file's own SHA-256 prefix in the URL."""
    import torchvision

    weights = tmp_path / "weights"
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None)
    publish_torchvision_weights(net, torchvision.models.ResNet50_Weights.IMAGENET1K_V1, weights, monkeypatch)
    return weights


def test_paper_config_is_the_published_setting():
    cfg = yaml.safe_load(open("configs/khakzar2019/paper.yaml"))
    m = cfg["model"]
    assert m["classifier"] == {"name": "torchvision/resnet50", "pretrained": True}
    assert cfg["data"]["class_path"].endswith("ImageNetValDataModule") and cfg["data"]["init_args"]["limit"] == 1000
    roar = m["roar"]["cifar10"]
    assert roar["data"]["class_path"].endswith("CIFAR10DataModule") and roar["model"] == "resnet8"
    assert roar["fractions"] == [0.1, 0.3, 0.5, 0.7, 0.9] and roar["epochs"] == 50 and roar["batch_size"] == 256
    assert m["sanity"]["std"] == 0.1 and cfg["seed_everything"] == 12 and cfg["trainer"]["strategy"] == "ddp"


def test_paper_config_validates_on_tiny_real_format_files(paper_data, resnet50_weights):
    """``validate --config paper.yaml`` with only roots/devices (and the tiny data's val split) overridden: the
    pretrained ResNet50 is found and hash-checked, ImageNet val is read and classified, CIFAR-10 is read for ROAR,
    and the paper's sanity-check layer order resolves on the ResNet50."""
    imnet, cifar = paper_data
    cli = main([
        "validate", "--config", "configs/khakzar2019/paper.yaml",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
        "--data.init_args.root", str(imnet), "--data.init_args.image_size", "64",
        "--model.roar.cifar10.data", json.dumps({
            "class_path": "lightning_modules.data.cifar.CIFAR10DataModule",
            "init_args": {"root": str(cifar), "verify_md5": False, "val_size": 12, "batch_size": 256, "seed": 0}}),
        "--model.roar.cifar10.accelerator", "cpu",
    ])
    module = cli.model
    assert "val/acc" in cli.trainer.callback_metrics
    assert 0.0 <= float(cli.trainer.callback_metrics["val/acc"]) <= 1.0
    assert module.roar_info == {"cifar10": {"train_images": 60 - 12, "test_images": 12}}
    assert type(module.model.net).__name__ == "ResNet" and module.model.net.fc.out_features == 1000
    sanity = module.experiments["a_sanity_checks"].test
    assert sanity.order[0] == "fc" and len(sanity.order) == 17
    first = next(iter(sanity.stages(module.model, "cascading")))
    assert first.stage == "fc" and not torch.equal(first.model.net.fc.weight, module.model.net.fc.weight)


def test_paper_config_missing_weights_names_the_file(paper_data):
    imnet, cifar = paper_data
    with pytest.raises(FileNotFoundError, match=r"resnet50-[0-9a-f]{8}\.pth"):
        main(["validate", "--config", "configs/khakzar2019/paper.yaml", "--trainer.accelerator", "cpu",
              "--trainer.strategy", "auto", "--data.init_args.root", str(imnet)])


def test_imagenet_seeded_subset_is_random_reproducible_and_in_file_order(paper_data):
    """``limit`` + ``limit_seed``: Khakzar's 1,000 random validation images (seed 12), as a seeded random subset."""
    import random

    from lightning_modules.data.imagenet import ImageNetValDataModule

    imnet, _ = paper_data

    def names(**kw):
        dm = ImageNetValDataModule(imnet, image_size=32, **kw)
        dm.setup()
        return [p.name for p, *_ in dm.val_set.samples]

    everything = names()
    assert len(everything) == 3
    assert names(limit=2) == everything[:2]
    expected = [everything[i] for i in sorted(random.Random(12).sample(range(3), 2))]
    assert names(limit=2, limit_seed=12) == expected == names(limit=2, limit_seed=12)
    assert names(limit=5, limit_seed=12) == everything  # a limit above the size keeps all
