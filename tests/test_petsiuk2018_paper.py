"""petsiuk2018's published configurations (configs/petsiuk2018/paper*.yaml) load and validate end to end on tiny files
in the real formats, with only roots, devices and image sizes overridden on the command line:

- ImageNet val (class folders + LOC_synset_mapping.txt, JPEG) for Table 1;
- VOC2007 test (JPEGImages + Annotations XML with difficult objects + ImageSets/Main/test.txt) and TorchRay's
  difficult list, or COCO val2014 (instances JSON read by pycocotools) and its difficult list, for Table 2;
- torchvision's ResNet50 weights under their published name (random weights; the file's SHA-256 prefix is put into
  the published URL, as the loader checks it) and TorchRay's Caffe-converted pointing-game ResNet50s under their
  published names, written here in the Caffe layout (BatchNorm + Scale pairs, BGR first convolution).

``validate`` runs the models on the data (top-1 accuracy on ImageNet val, top-1 class present in the image for the
pointing model). Plus: the Caffe conversion gives the Caffe network's outputs on Caffe-preprocessed input, and
missing weight files give an error that names the file."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn as nn
import yaml

from lightning_modules.utils import REPO_ROOT
from replications.petsiuk2018 import pointing_models as pm
from paper_files import save_with_sha_prefix, write_imagenet_val
from replications.petsiuk2018.__main__ import main
from replications.petsiuk2018.experiments.a_causal import DELETION_SUBSTRATES

torch.set_num_threads(1)

CONFIGS = REPO_ROOT / "configs" / "petsiuk2018"
CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


# --------------------------------------------------------------------------------------------- writers
def _randomise_batchnorm(net: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)


_BN_PARAM = re.compile(r"^(.*(?:bn\d|downsample\.1))\.(weight|bias|running_mean|running_var)$")


def torchray_resnet50_state(caffe_net: nn.Module) -> dict:
    """The state dict of a Caffe ResNet50 in the layout of TorchRay's files: BatchNorm statistics under ``bnK.0.*``,
    the Scale layer's affine parameters under ``bnK.1.*`` (also in ``downsample.1``), no step counters; the first
    convolution as the Caffe network has it (BGR input channels)."""
    out = {}
    for k, v in caffe_net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        m = _BN_PARAM.match(k)
        if m:
            k = f"{m.group(1)}.{'1' if m.group(2) in ('weight', 'bias') else '0'}.{m.group(2)}"
        out[k] = v.clone()
    return out


def caffe_input(x: torch.Tensor) -> torch.Tensor:
    """Caffe's preprocessing of [0, 1] RGB images: BGR channel order, [0, 255], BGR mean pixel subtracted."""
    return x.flip(1) * 255 - CAFFE_MEAN_BGR


class _Weights:
    folder = None
    caffe_voc07: nn.Module  # the Caffe network written as TorchRay's VOC07 file (the known answer's reference)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """torchvision's ResNet50 (random) and TorchRay's VOC07 / COCO ResNet50s (random, Caffe layout) under their
    published names, with the names' hash prefixes patched in for the time of this module."""
    import torchvision

    w = _Weights()
    w.folder = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        torch.manual_seed(0)
        tv = save_with_sha_prefix(torchvision.models.resnet50(weights=None).state_dict(), w.folder, "resnet50-{}.pth")
        mp.setattr(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.value, "url", f"https://download.pytorch.org/models/{tv}")
        for dataset, short in (("voc07", "voc"), ("coco", "coco")):
            net = pm.caffe_resnet50(pm.NUM_CLASSES[dataset])
            _randomise_batchnorm(net)
            name = save_with_sha_prefix(torchray_resnet50_state(net), w.folder, f"resnet50_{short}-{{}}.pth.tar")
            mp.setitem(pm.TORCHRAY_FILES, ("resnet50", dataset), name)
            if dataset == "voc07":
                w.caffe_voc07 = net.eval()
        yield w


@pytest.fixture
def paper_data(tmp_path, monkeypatch):
    """Tiny ImageNet val (class folders), VOC2007 test and COCO val2014 (80 categories) trees + difficult lists."""
    from test_paper_data import _coco_tree, _voc_tree

    imnet = tmp_path / "imagenet"
    write_imagenet_val(imnet)
    voc, voc_difficult = _voc_tree(tmp_path)
    coco, coco_difficult = _coco_tree(tmp_path)
    # COCO has 80 categories (the pointing models score 80): the tiny JSON's 3 plus 77 without annotations
    ann = coco / "annotations" / "instances_val2014.json"
    js = json.loads(ann.read_text())
    js["categories"] += [{"id": 100 + k, "name": f"extra{k}", "supercategory": "none"} for k in range(77)]
    ann.write_text(json.dumps(js))
    rows = [line.split("\t") for line in coco_difficult.read_text().splitlines()]
    coco_difficult.write_text("".join("\t".join(r + ["0"] * 77) + "\n" for r in rows))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(tmp_path / "no_weights"))
    return {"imagenet": imnet, "voc": voc, "voc_difficult": voc_difficult, "coco": coco, "coco_difficult": coco_difficult}


def _args(config: str, data: dict, pointing: str = "voc", size: int = 64) -> list[str]:
    """``validate --config <config>`` with only devices, roots and image sizes overridden."""
    return [
        "validate", "--config", str(CONFIGS / config),
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
        "--trainer.enable_progress_bar", "false",
        "--data.imagenet.root", str(data["imagenet"]), "--data.imagenet.image_size", str(size),
        "--data.pointing.root", str(data[pointing]), "--data.pointing.image_size", str(size),
        "--data.pointing.difficult_list", str(data[f"{pointing}_difficult"]),
    ]


# --------------------------------------------------------------------------------------------- the published setting
def _cfg(name):
    return yaml.safe_load((CONFIGS / name).read_text())


@pytest.mark.parametrize("name, arch, dataset", [
    ("paper.yaml", "resnet50", "voc07"), ("paper_coco.yaml", "resnet50", "coco"),
    ("paper_vgg16.yaml", "vgg16", "voc07"), ("paper_vgg16_coco.yaml", "vgg16", "coco"),
])
def test_paper_configs_hold_the_published_setting(name, arch, dataset):
    """PAPERS.md section 2: N = 4000 masks, s = 7, p = 0.5, softmax; 224 px; ImageNet val for Table 1 with
    torchvision's pretrained model; Table 2 on VOC07 / COCO with Zhang et al.'s fine-tuned model of the same
    architecture and the difficult list; several GPUs with DDP."""
    cfg = _cfg(name)
    m, d, t = cfg["model"], cfg["data"], cfg["trainer"]
    assert m["methods"]["rise"]["n_masks"] == 4000 and m["methods"]["rise"]["grid_size"] == 7
    assert m["methods"]["rise"]["p"] == 0.5
    assert {"rise", "gradcam", "occlusion", "lime"} <= set(m["methods"])  # Table 1's methods
    assert m["model"] == {"name": f"torchvision/{arch}", "pretrained": True}
    assert m["pointing_model"] == {"torchray": arch, "dataset": dataset}
    assert m["pointing_reference"] == f"{'VOC07' if dataset == 'voc07' else 'COCO'} {'ResNet50' if arch == 'resnet50' else 'VGG16'}"
    assert m["causal"]["blur_kernel"] == 11 and m["causal"]["blur_sigma"] == 5.0
    # deletion runs on every substrate, the paper's mean colour first; a config cannot pick another one
    assert "substrate" not in m["causal"] and DELETION_SUBSTRATES[0] == "mean"
    assert m["causal"].get("pixels_per_step") is None  # None = 224 * 8 px per step at 224 px
    assert d["source"] == "paper" and d["imagenet"]["image_size"] == 224 and d["pointing"]["image_size"] == 224
    assert d["pointing_dataset"] == dataset and d["n_images"] == 50000
    assert d["pointing"]["difficult_list"].endswith(f"pointing_game_ebp_{'voc07' if dataset == 'voc07' else 'coco'}_difficult.txt")
    assert t["strategy"] == "ddp" and t["devices"] > 1 and t["accelerator"] == "gpu"
    assert t.get("limit_val_batches", 1.0) != 0, "validate must run the models on the data"


# --------------------------------------------------------------------------------------------- the Caffe pointing models
def test_torchray_resnet50_reproduces_the_caffe_network(weights, monkeypatch):
    """Known answer: the loaded model on [0, 1] RGB images gives the Caffe network's logits on Caffe-preprocessed
    (BGR, 0-255, mean-subtracted) input; the Caffe architecture's differences are in place."""
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(weights.folder))
    model = pm.load_torchray_model("resnet50", "voc07")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = weights.caffe_voc07(caffe_input(x))  # the Caffe network the fixture wrote, on Caffe's input
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    net = model.net
    assert net.conv1.bias is not None and net.maxpool.padding == 0 and net.maxpool.ceil_mode
    assert net.layer2[0].conv1.stride == (2, 2) and net.layer2[0].conv2.stride == (1, 1)
    assert model.num_classes == 20 and model.data_config.name == "resnet50" and not any(p.requires_grad for p in model.parameters())


def test_torchray_vgg16_conversion_reproduces_the_caffe_network():
    """Known answer for VGG16 (in memory: a 528 MB file is not worth writing): Caffe's dropout-free fc indices and
    4-d fc6 weights, BGR first convolution, rounding-up max-pools."""
    torch.manual_seed(0)
    net = pm.caffe_vgg16(20).eval()
    assert all(m.ceil_mode for m in net.modules() if isinstance(m, nn.MaxPool2d))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(caffe_input(x))
    caffe_keys = {"classifier.0": "classifier.0", "classifier.3": "classifier.2", "classifier.6": "classifier.4"}
    state = {}
    for k, v in net.state_dict().items():
        layer, _, param = k.rpartition(".")
        if layer in caffe_keys:
            k = f"{caffe_keys[layer]}.{param}"
            if layer == "classifier.0" and param == "weight":
                v = v.reshape(4096, 512, 7, 7)  # Caffe's fc6 is stored as a 7x7 convolution
        state[k] = v
    net.load_state_dict(pm.convert_caffe_vgg16(state))
    model = pm.Normalized(net, tuple(m / 255 for m in pm.CAFFE_MEAN_RGB), (1 / 255,) * 3)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_unknown_pointing_model_is_refused():
    with pytest.raises(ValueError, match="no TorchRay pointing model"):
        pm.load_torchray_model("googlenet", "voc07")


# --------------------------------------------------------------------------------------------- validate end to end
def _val_accuracy_by_hand(module, dm) -> float:
    loader = dm._paper["causal"].val_dataloader()
    hits = [(module.blackbox(b["image"]).argmax(1) == b["label"]).float() for b in loader]
    return float(torch.cat(hits).mean())


def test_paper_config_validates_on_tiny_real_format_files(paper_data, weights, monkeypatch):
    """``validate --config paper.yaml``: torchvision's ResNet50 is found and hash-checked, ImageNet val is classified,
    the TorchRay VOC07 ResNet50 classifies the VOC07 test images (pairs read with their difficult flags)."""
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(weights.folder))
    cli = main(_args("paper.yaml", paper_data))
    module, metrics = cli.model, cli.trainer.callback_metrics
    assert type(module.blackbox.net).__name__ == "ResNet" and module.blackbox.net.fc.out_features == 1000
    assert module.blackbox.data_config.source == "torchvision"
    assert module.pointing_blackbox.data_config.source == "torchray" and module.pointing_blackbox.net.fc.out_features == 20
    # every image was run: 3 ImageNet images; VOC images 000001 and 000004 (000002's only pair is all-difficult)
    assert module.validation["acc"]["samples"] == 3 and module.validation["pointing_top1_in_image"]["samples"] == 2
    assert float(metrics["val/acc"]) == pytest.approx(_val_accuracy_by_hand(module, cli.datamodule))
    assert 0.0 <= float(metrics["val/pointing_top1_in_image"]) <= 1.0
    assert cli.datamodule._paper["pointing"].eval_set.items[1][2] is True  # (000001, person) is difficult in the list


def test_paper_coco_config_validates_on_tiny_real_format_files(paper_data, weights, monkeypatch):
    """``validate --config paper_coco.yaml``: the COCO instances JSON is read by pycocotools and the TorchRay COCO
    ResNet50 (80 classes) classifies the annotated images."""
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(weights.folder))
    cli = main(_args("paper_coco.yaml", paper_data, pointing="coco"))
    module = cli.model
    assert module.pointing_blackbox.net.fc.out_features == 80 and cli.datamodule._paper["pointing"].num_classes == 80
    assert module.validation["pointing_top1_in_image"]["samples"] == 2  # images 42 and 73 (74 has no annotations)
    assert "val/pointing_top1_in_image" in cli.trainer.callback_metrics


def test_pointing_model_must_fit_the_pointing_dataset(paper_data, weights, monkeypatch):
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(weights.folder))
    with pytest.raises(ValueError, match=r"pointing model has 80 classes but voc07 has 20"):
        main(_args("paper.yaml", paper_data) + ["--model.pointing_model.dataset", "coco"])


def test_missing_weights_name_the_file(paper_data, weights, tmp_path, monkeypatch):
    """No weights: the error names torchvision's file; torchvision's file only: it names TorchRay's file."""
    with pytest.raises(FileNotFoundError, match=r"resnet50-[0-9a-f]{8}\.pth"):
        main(_args("paper.yaml", paper_data))
    only_tv = tmp_path / "only_torchvision"
    only_tv.mkdir()
    tv = next(weights.folder.glob("resnet50-*.pth"))
    (only_tv / tv.name).hardlink_to(tv)
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(only_tv))
    with pytest.raises(FileNotFoundError, match=r"resnet50_voc-[0-9a-f]{8}\.pth\.tar.*torchray"):
        main(_args("paper.yaml", paper_data))


def test_missing_vgg16_weights_name_the_published_file(paper_data):
    with pytest.raises(FileNotFoundError, match=r"vgg16-397923af\.pth"):
        main(_args("paper_vgg16.yaml", paper_data))
