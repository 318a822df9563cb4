"""The one model loader (``lightning_modules.models``): every family builds and runs, checkpoints round-trip,
unsafe or broken files are refused with messages that name the fix, pretrained files are found locally and
hash-checked. No network: every weight file is written by the test."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
import torch
import torch.nn as nn

from lightning_modules.models import DataConfig, Normalized, list_models, load_model, resolve_layer, safe_load

torch.set_num_threads(1)

# (name, expected input size, expected classes). Big ImageNet nets run at batch 1 to keep the file fast.
FAMILIES = [
    ("scenes_cnn", (3, 64, 64), 10),
    ("mnist_cnn", (1, 28, 28), 10),
    ("mnist_mlp", (1, 28, 28), 10),
    ("resnet8", (3, 32, 32), 10),
    ("googlenet", (3, 224, 224), 1000),
    ("alexnet", (3, 224, 224), 1000),
    ("vgg16", (3, 224, 224), 1000),
    ("squeezenet1_1", (3, 224, 224), 1000),
    ("inception_v3", (3, 299, 299), 1000),
    ("resnet50", (3, 224, 224), 1000),  # timm
]


@pytest.mark.parametrize("name,size,n_classes", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_builds_and_runs_at_its_input_size(name, size, n_classes):
    torch.manual_seed(0)
    model, config = load_model(name)
    assert isinstance(config, DataConfig)
    assert config.input_size == size
    assert isinstance(model, Normalized), "models take [0, 1] images: wrapped in Normalized"
    assert not model.training and not any(p.requires_grad for p in model.parameters()), "black-box mode: eval, frozen"
    batch = 2 if size[-1] <= 64 else 1
    x = torch.rand(batch, *size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (batch, n_classes)
    assert torch.isfinite(out).all()
    assert model.num_classes == n_classes
    # The wrapper normalises with the architecture's statistics: same as calling the bare net on normalised input.
    with torch.no_grad():
        ref = model.net(config.normalize(x))
    torch.testing.assert_close(out, ref)


def test_sources_are_the_documented_ones():
    assert load_model("googlenet")[1].source == "torchvision"
    assert load_model("resnet8")[1].source == "local"
    assert load_model("timm/resnet18")[1].source == "timm"
    assert "googlenet" in list_models() and "scenes_cnn" in list_models()


def test_saved_state_dict_reloads_equal(tmp_path):
    torch.manual_seed(0)
    model, _ = load_model("resnet8", num_classes=7)
    path = tmp_path / "resnet8.pt"
    torch.save(model.net.state_dict(), path)
    torch.manual_seed(1)  # a different random init, so equality can only come from the file
    fresh, _ = load_model("resnet8", num_classes=7)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(fresh(x), model(x))
    reloaded, _ = load_model("resnet8", num_classes=7, checkpoint=path)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))


def test_state_dict_of_the_wrapper_reloads_equal(tmp_path):
    """``model.state_dict()`` of the Normalized wrapper has ``net.`` keys; the loader strips them."""
    torch.manual_seed(0)
    model, _ = load_model("scenes_cnn")
    path = tmp_path / "wrapped.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)
    reloaded, _ = load_model("scenes_cnn", checkpoint=path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))


@pytest.mark.parametrize("prefix", ["model.", "model.net.", "module."])
def test_lightning_ckpt_loads(tmp_path, prefix):
    """A Lightning checkpoint: ``{'state_dict': {'<attr>.<param>': ...}, 'epoch': ..., ...}``. A task that holds the
    loader's (Normalized) model as ``self.model`` saves ``model.net.<param>``."""
    torch.manual_seed(0)
    model, _ = load_model("mnist_cnn")
    ckpt = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": {prefix + k: v for k, v in model.net.state_dict().items()},
        "hyper_parameters": {"lr": 1e-3, "arch": "mnist_cnn"},
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    torch.manual_seed(1)
    reloaded, _ = load_model("mnist_cnn", checkpoint=path)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))


class _Payload:
    """A custom class: unpickling it would run arbitrary code paths; weights_only must refuse it."""

    def __init__(self):
        self.weight = torch.zeros(3)


@pytest.mark.parametrize("payload", ["object", "function"])
def test_checkpoint_with_pickled_code_is_refused(tmp_path, payload):
    path = tmp_path / "evil.pt"
    if payload == "object":
        torch.save(_Payload(), path)
    else:
        torch.save({"state_dict": {}, "hook": os.system}, path)
    with pytest.raises(ValueError, match=r"refusing to load .*weights_only=True"):
        safe_load(path)
    with pytest.raises(ValueError, match="refusing to load"):
        load_model("scenes_cnn", checkpoint=path)


def test_corrupt_or_truncated_checkpoint_is_a_clear_error(tmp_path):
    model, _ = load_model("scenes_cnn")
    good = tmp_path / "good.pt"
    torch.save(model.net.state_dict(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match=r"corrupt or truncated"):
            load_model("scenes_cnn", checkpoint=path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("scenes_cnn", checkpoint=tmp_path / "missing.pt")


def test_checkpoint_of_another_architecture_names_the_mismatch(tmp_path):
    model, _ = load_model("mnist_mlp")
    path = tmp_path / "mlp.pt"
    torch.save(model.net.state_dict(), path)
    with pytest.raises(ValueError, match="does not match the architecture|does not fit the model"):
        load_model("mnist_cnn", checkpoint=path)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="resnet50") as err:
        load_model("resnet5O")  # letter O, a typo
    assert "Close matches" in str(err.value)
    with pytest.raises(KeyError, match="scenes_cnn"):
        load_model("scene_cnn")


def test_class_count_mismatch_names_num_classes(tmp_path):
    model, _ = load_model("scenes_cnn", num_classes=10)
    path = tmp_path / "scenes10.pt"
    torch.save(model.net.state_dict(), path)
    with pytest.raises(ValueError, match=r"num_classes=10") as err:
        load_model("scenes_cnn", num_classes=5, checkpoint=path)
    assert "classifier.weight" in str(err.value)
    # The torchvision path: pretrained weights have 1000 classes.
    with pytest.raises(ValueError, match="num_classes=20"):
        load_model("squeezenet1_1", pretrained=True, num_classes=20, weights_dir=tmp_path)


def test_pretrained_without_file_names_the_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty hub cache
    monkeypatch.setenv("SALIENCY_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as err:
        load_model("squeezenet1_1", pretrained=True, weights_dir=tmp_path / "weights")
    msg = str(err.value)
    assert "squeezenet1_1-b8a52dc0.pth" in msg
    assert str(tmp_path / "weights") in msg and str(tmp_path / "data" / "weights") in msg
    with pytest.raises(FileNotFoundError, match="resnet50"):
        load_model("resnet50", pretrained=True, weights_dir=tmp_path / "weights")
    with pytest.raises(ValueError, match="no published weights"):
        load_model("scenes_cnn", pretrained=True)


def _random_squeezenet_state_dict(seed: int) -> dict:
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.squeezenet1_1(weights=None).state_dict()


def test_pretrained_file_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    """A file saved under the published name ``squeezenet1_1-b8a52dc0.pth`` whose SHA-256 does not start with
    ``b8a52dc0`` (random weights) must be refused, not silently used."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(_random_squeezenet_state_dict(0), weights / "squeezenet1_1-b8a52dc0.pth")
    with pytest.raises(ValueError, match=r"fails its hash check"):
        load_model("squeezenet1_1", pretrained=True, weights_dir=weights)


def test_pretrained_file_with_matching_hash_loads(tmp_path, monkeypatch):
    """The honest success path of the hash check: the test hashes the file it wrote, names it with that prefix and
    points the published URL at that name (the real ``b8a52dc0`` file is not available offline)."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    weights = tmp_path / "weights"
    weights.mkdir()
    sd = _random_squeezenet_state_dict(0)
    staging = tmp_path / "staging.pth"
    torch.save(sd, staging)
    prefix = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    published = f"squeezenet1_1-{prefix}.pth"
    shutil.move(staging, weights / published)
    enum_member = torchvision.models.get_model_weights("squeezenet1_1").DEFAULT
    monkeypatch.setattr(enum_member.value, "url", f"https://download.pytorch.org/models/{published}")
    model, config = load_model("squeezenet1_1", pretrained=True, weights_dir=weights)
    ref = torchvision.models.squeezenet1_1(weights=None)
    ref.load_state_dict(sd)
    ref.eval()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(config.normalize(x)), rtol=0, atol=0)
    # Flip one byte: same name, different hash -> refused.
    data = bytearray((weights / published).read_bytes())
    data[-10] ^= 0xFF
    (weights / published).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="fails its hash check"):
        load_model("squeezenet1_1", pretrained=True, weights_dir=weights)


def test_pretrained_timm_file_without_hash_suffix_loads(tmp_path, monkeypatch):
    """timm weights may sit under the plain model name (``resnet18.pth``); there is no hash to check."""
    import timm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    torch.manual_seed(0)
    src = timm.create_model("resnet18", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "weights" / "resnet18.pth")
    model, config = load_model("resnet18", pretrained=True)  # found through $SALIENCY_WEIGHTS
    src.eval()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(config.normalize(x)), rtol=0, atol=0)


def test_torchvision_pretrained_googlenet_drops_aux_heads(tmp_path, monkeypatch):
    """torchvision publishes googlenet with aux heads and transform_input; the loader builds that, loads, then drops
    the aux heads so the model returns plain logits."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    torch.manual_seed(0)
    src = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=True)
    staging = tmp_path / "g.pth"
    torch.save(src.state_dict(), staging)
    prefix = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    (tmp_path / "w").mkdir()
    shutil.move(staging, tmp_path / "w" / f"googlenet-{prefix}.pth")
    member = torchvision.models.get_model_weights("googlenet").DEFAULT
    monkeypatch.setattr(member.value, "url", f"https://x/googlenet-{prefix}.pth")
    model, config = load_model("googlenet", pretrained=True, weights_dir=tmp_path / "w")
    src.eval()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, src(config.normalize(x)), rtol=0, atol=0)
    assert out.shape == (1, 1000)


def test_wrong_input_channels_or_size_is_a_clear_error():
    model, _ = load_model("scenes_cnn")
    with pytest.raises(ValueError, match=r"expected 3 input channels, got 1"):
        model(torch.rand(2, 1, 64, 64))
    mnist, _ = load_model("mnist_cnn")
    with pytest.raises(ValueError, match=r"takes 28x28 inputs, got 32x32.*Resize"):
        mnist(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        mnist(torch.rand(1, 28, 28))
    # in_chans changes what the hook expects (grey-scale scenes).
    grey, cfg = load_model("scenes_cnn", in_chans=1)
    assert cfg.input_size == (1, 64, 64)
    assert grey(torch.rand(2, 1, 64, 64)).shape == (2, 10)


def test_freeze_false_keeps_the_model_trainable():
    model, _ = load_model("resnet8", freeze=False)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_normalize_inputs_false_returns_the_bare_network():
    model, cfg = load_model("mnist_cnn", normalize_inputs=False)
    assert not isinstance(model, Normalized)
    assert isinstance(model, nn.Module) and model.data_config == cfg


def test_resolve_layer_default_and_by_name():
    model, _ = load_model("squeezenet1_1")
    assert resolve_layer(model) is model.net.features[12]
    assert resolve_layer(model, "net.features.12") is resolve_layer(model, "features.12")
    with pytest.raises(ValueError, match="close matches"):
        resolve_layer(model, "features.122")
    scenes, _ = load_model("scenes_cnn")
    assert resolve_layer(scenes) is scenes.net.features[11]


def test_pretrained_torchvision_uses_the_papers_original_weights(tmp_path, monkeypatch):
    """torchvision's DEFAULT resnet50 weights are V2 (resnet50-11ad3fa6.pth); the papers used V1
    (resnet50-0676ba61.pth), which timm also names ``resnet50.tv_in1k``."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth"):
        load_model("torchvision/resnet50", pretrained=True, weights_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth"):
        load_model("resnet50.tv_in1k", pretrained=True, weights_dir=tmp_path)


def test_lightning_ckpt_with_other_attributes_loads_only_the_model(tmp_path):
    """A task's checkpoint also holds other modules' state (a loss weight, a teacher); only ``model.net.*`` is the
    network. resnet8 has nested names (``layer1.conv1.weight`` ends like ``conv1.weight`` would): the prefix must be
    the one that matches most keys."""
    torch.manual_seed(0)
    model, _ = load_model("resnet8")
    sd = {f"model.net.{k}": v for k, v in model.net.state_dict().items()}
    sd["criterion.weight"] = torch.ones(10)
    sd["teacher.classifier.weight"] = torch.zeros(10, 64)
    torch.save({"state_dict": sd, "epoch": 1}, tmp_path / "task.ckpt")
    torch.manual_seed(1)
    reloaded, _ = load_model("resnet8", checkpoint=tmp_path / "task.ckpt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))
