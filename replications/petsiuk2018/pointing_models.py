"""The pointing-game networks of RISE's Table 2 (Sec. 4.2): VGG16 and ResNet50 fine-tuned on VOC07 / COCO.

Petsiuk et al. evaluate the pointing game with the models of Zhang et al.'s Excitation Backprop benchmark (Caffe
networks fine-tuned for multi-label classification of PASCAL VOC 2007 and MS COCO 2014). TorchRay (Fong, Patrick &
Vedaldi 2019) published them converted to PyTorch state dicts under the file names in ``TORCHRAY_FILES``; its
re-run of the benchmark is the reference of our pointing claims (``paper.POINTING_TORCHRAY``).

The files hold the *Caffe* networks' parameters, so loading them into torchvision's architectures needs the Caffe
differences restored (facts from TorchRay's ``torchray/benchmark/models.py``; the code here is our own):

- ResNet50: ``conv1`` has a bias; the stem max-pool has no padding; every max-pool rounds up (Caffe's
  ``ceil_mode``); in the first block of ``layer2..4`` the stride sits on the 1x1 ``conv1``, not on the 3x3
  ``conv2``; Caffe's BatchNorm + Scale pair is stored as ``bnK.0.*`` (statistics) and ``bnK.1.*`` (affine), also
  inside ``downsample.1``.
- VGG16: the classifier's three linear layers are stored as ``classifier.0/2/4`` (no dropout in between) and may
  be 4-d (Caffe's fc weights); every max-pool rounds up.
- Both: the first convolution takes BGR input (its input channels are flipped here to RGB), and the networks
  take Caffe's preprocessing, ``255 * x - mean`` with the BGR mean (103.939, 116.779, 123.68) in pixel units and
  no division by a std; the returned model takes [0, 1] RGB images like every model of the project
  (``Normalized`` with ``mean / 255`` and ``std = 1 / 255``).

``load_torchray_model(arch, dataset)`` finds the file by its published name in the weights folders (``$SALIENCY_WEIGHTS``,
``data/weights``, the torch hub cache; never downloads), checks the SHA-256 prefix the name carries, and fails with
a message naming the file and where to put it.
"""

from __future__ import annotations

import os
import re

import torch
import torch.nn as nn

from lightning_modules.models import DataConfig, Normalized, find_pretrained_file, safe_load

#: (architecture, dataset) -> TorchRay's published file (https://dl.fbaipublicfiles.com/torchray/<file>).
TORCHRAY_FILES = {
    ("vgg16", "voc07"): "vgg16_voc-b050e8c3.pth.tar",
    ("vgg16", "coco"): "vgg16_coco-d82c8150.pth.tar",
    ("resnet50", "voc07"): "resnet50_voc-9ca920d6.pth.tar",
    ("resnet50", "coco"): "resnet50_coco-e99468c5.pth.tar",
}
TORCHRAY_URL = "https://dl.fbaipublicfiles.com/torchray/"
NUM_CLASSES = {"voc07": 20, "coco": 80}
#: Caffe's mean pixel in RGB order, in [0, 255] units (the networks subtract it and do not divide by a std).
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


def caffe_resnet50(num_classes: int) -> nn.Module:
    """torchvision's ResNet50 with the Caffe ResNet50's differences (module docstring), random weights."""
    import torchvision

    net = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=True)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    for layer in (net.layer2, net.layer3, net.layer4):
        layer[0].conv1.stride = (2, 2)
        layer[0].conv2.stride = (1, 1)
    return net


def caffe_vgg16(num_classes: int) -> nn.Module:
    """torchvision's VGG16 with Caffe's rounding-up max-pools, random weights."""
    import torchvision

    net = torchvision.models.vgg16(weights=None, num_classes=num_classes)
    for m in net.modules():
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True
    return net


_BN_PAIR = re.compile(r"(bn\d|downsample\.\d)\.[01]\.")


def convert_caffe_resnet50(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TorchRay's Caffe ResNet50 state dict -> ``caffe_resnet50``'s keys, first convolution flipped BGR -> RGB."""
    out = {_BN_PAIR.sub(r"\1.", k): v for k, v in state.items()}
    out["conv1.weight"] = out["conv1.weight"].flip(1)
    return out


_VGG_FC = {"classifier.0": "classifier.0", "classifier.2": "classifier.3", "classifier.4": "classifier.6"}


def convert_caffe_vgg16(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TorchRay's Caffe VGG16 state dict -> torchvision VGG16 keys (dropout-free fc indices 0/2/4 -> 0/3/6), fc
    weights flattened to 2-d, first convolution flipped BGR -> RGB."""
    out = {}
    for k, v in state.items():
        layer, _, param = k.rpartition(".")
        if layer in _VGG_FC:
            k = f"{_VGG_FC[layer]}.{param}"
            if param == "weight":
                v = v.reshape(v.shape[0], -1)
        out[k] = v
    out["features.0.weight"] = out["features.0.weight"].flip(1)
    return out


_BUILDERS = {"resnet50": (caffe_resnet50, convert_caffe_resnet50), "vgg16": (caffe_vgg16, convert_caffe_vgg16)}


def load_torchray_model(arch: str, dataset: str = "voc07", weights_dir: str | os.PathLike | None = None,
                        freeze: bool = True) -> nn.Module:
    """The pointing-game network ``arch`` fine-tuned on ``dataset`` (TorchRay's published file), taking [0, 1] RGB.

    The model carries ``data_config`` (Caffe preprocessing, name = ``arch`` so Grad-CAM finds its default layer)
    and ``num_classes`` (20 for VOC07, 80 for COCO)."""
    if (arch, dataset) not in TORCHRAY_FILES:
        raise ValueError(f"no TorchRay pointing model for ({arch!r}, {dataset!r}); known: {sorted(TORCHRAY_FILES)}")
    file_name = TORCHRAY_FILES[(arch, dataset)]
    try:
        path = find_pretrained_file([file_name], weights_dir)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} (TorchRay's {arch} fine-tuned on {dataset}: {TORCHRAY_URL}{file_name})") from None
    build, convert = _BUILDERS[arch]
    n = NUM_CLASSES[dataset]
    net = build(n)
    state = convert(safe_load(path))
    try:
        # strict: every Caffe parameter must find its place (BatchNorm's step counter is not in Caffe's files;
        # torch's BatchNorm fills it in for state dicts without version metadata)
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} is not TorchRay's Caffe {arch} ({dataset}) state dict: {str(e).splitlines()[0]} "
                         f"{str(e).splitlines()[1] if len(str(e).splitlines()) > 1 else ''}".strip()) from None
    net.num_classes = n
    config = DataConfig((3, 224, 224), tuple(m / 255 for m in CAFFE_MEAN_RGB), (1 / 255,) * 3, False, "torchray", arch)
    model = Normalized(net, config.mean, config.std)
    model.data_config = config
    if freeze:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    return model
