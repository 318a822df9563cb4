"""adebayo2018's published configuration (configs/adebayo2018/paper.yaml) loads and validates end to end on tiny
files in the real formats: MNIST and Fashion-MNIST idx files, ImageNet val (class folders + synset mapping, JPEG)
and torchvision's Inception v3 weights under their published file name (random weights; the file's SHA-256 prefix
is put into the published URL, as the loader checks it)."""

import json

import pytest
import torch
import yaml

from paper_files import publish_torchvision_weights, write_imagenet_val
from replications.adebayo2018.__main__ import main

PAPER = "configs/adebayo2018/paper.yaml"


@pytest.fixture
def paper_data(tmp_path, monkeypatch):
    from test_data_mnist import make_root

    imnet = write_imagenet_val(tmp_path / "imagenet")
    mnist, fashion = tmp_path / "mnist", tmp_path / "fashion_mnist"
    make_root(mnist, n_test=20, n_train=30)  # the official layout: train and t10k files
    make_root(fashion, n_test=20, n_train=30, gz=False, seed=1)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(tmp_path / "weights"))
    return imnet, mnist, fashion


@pytest.fixture
def inception_weights(tmp_path, monkeypatch):
    """Random Inception v3 weights (with the aux head, as torchvision publishes them) under the published name
    pattern ``inception_v3_google-<sha256 prefix>.pth``."""
    import torchvision

    weights = tmp_path / "weights"
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    name = publish_torchvision_weights(net, torchvision.models.Inception_V3_Weights.IMAGENET1K_V1, weights, monkeypatch)
    assert name.startswith("inception_v3_google-") and name.endswith(".pth")
    return weights


def _overrides(imnet, mnist, fashion):
    """Only roots, devices and sizes: the tiny data has 3 ImageNet images and 20 + 30 digits per dataset."""
    return [
        "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--data.imagenet", json.dumps({"root": str(imnet), "image_size": 75}),
        "--data.digits_roots", json.dumps({"mnist": str(mnist), "fashion_mnist": str(fashion)}),
        # our own tiny idx files are not the published ones: their MD5 differs by construction
        "--data.digits_kwargs", json.dumps({"mnist": {"verify_md5": False}, "fashion_mnist": {"verify_md5": False}}),
        "--data.scenes_test_images", "2", "--data.digits_test_images", "4", "--data.batch_size", "2",
    ]


def test_paper_config_is_the_published_setting():
    cfg = yaml.safe_load(open(PAPER))
    m, d = cfg["model"], cfg["data"]
    assert m["blackbox_model"] == "inception_v3" and len(m["blackbox_order"]) == 17
    assert d["digits"] == ["mnist", "fashion_mnist"] and d["imagenet"]["image_size"] == 299
    assert d["scenes_test_images"] == 200  # the paper's 200 ImageNet validation images
    exps = m["data_randomisation"]
    assert {(e["dataset"], e["true_labels"]["model_name"]) for e in exps.values()} == {
        ("mnist", "mnist_cnn"), ("mnist", "mnist_mlp"), ("fashion_mnist", "mnist_cnn"), ("fashion_mnist", "mnist_mlp")}
    for e in exps.values():
        t, r = e["true_labels"], e["random_labels"]
        # official code: Adam 1e-4, batch 50, L2 0.001, 50 epochs (true) / 100 epochs (permuted), whole training set
        assert (t["lr"], t["batch_size"], t["weight_decay"], t["max_epochs"]) == (1e-4, 50, 1e-3, 50)
        assert (r["lr"], r["batch_size"], r["weight_decay"], r["max_epochs"]) == (1e-4, 50, 1e-3, 100)
        assert "subset" not in r and r["model_name"] == t["model_name"]
        if t["model_name"] == "mnist_mlp":
            assert not {"gradcam", "guided_gradcam"} & set(e["methods"])  # an MLP has no conv layer


def test_paper_config_validates_on_tiny_real_format_files(paper_data, inception_weights):
    """``validate --config paper.yaml``: the pretrained Inception v3 is found and hash-checked, its 17 blocks resolve,
    ImageNet val is read and classified, MNIST and Fashion-MNIST are read from idx files, the CNN and the MLP run on
    them, and every configured method explains every model once."""
    cli = main(["validate", "--config", PAPER, *_overrides(*paper_data)])
    module, dm = cli.model, cli.datamodule
    metrics = cli.trainer.callback_metrics
    assert dm.loader_names == ["imagenet", "mnist", "fashion_mnist"]
    assert {k: v["train_images"] for k, v in dm.digits_info.items()} == {"mnist": 30, "fashion_mnist": 30}
    assert "official" in str(dm.digits_info["mnist"]["split"])
    expected = {"val/blackbox_acc"} | {f"val/{n}_untrained_acc" for n in
                                       ("mnist_cnn", "mnist_mlp", "fashion_mnist_cnn", "fashion_mnist_mlp")}
    assert expected <= set(metrics), sorted(metrics)
    for k in expected:
        assert 0.0 <= float(metrics[k]) <= 1.0
    assert type(module.blackbox.net).__name__ == "Inception3" and module.blackbox.net.fc.out_features == 1000
    assert module.validation_info["blackbox_order"][0] == "fc" and len(module.validation_info["blackbox_order"]) == 17
    assert module.validation_info["mnist_cnn_order"] == ["net.classifier", "net.fc1", "net.features.3", "net.features.0"]
    assert set(module.validation_info["explained"]) == {"blackbox", "mnist_cnn_untrained", "mnist_mlp_untrained",
                                                        "fashion_mnist_cnn_untrained", "fashion_mnist_mlp_untrained"}


def test_paper_config_missing_weights_names_the_file(paper_data):
    with pytest.raises(FileNotFoundError, match=r"inception_v3_google-[0-9a-f]{8}\.pth"):
        main(["validate", "--config", PAPER, *_overrides(*paper_data)])


def test_paper_config_missing_fashion_mnist_names_the_files(paper_data, tmp_path):
    imnet, mnist, _ = paper_data
    with pytest.raises(FileNotFoundError, match=r"fashion_mnist test files .*t10k-images-idx3-ubyte"):
        main(["validate", "--config", PAPER, *_overrides(imnet, mnist, tmp_path / "nowhere")])
