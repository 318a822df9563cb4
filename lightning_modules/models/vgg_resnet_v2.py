"""The deep networks of the embedded benchmark v2 (issue 19): a plain VGG-style net and a ResNet-18-layout
ResNet, both sized for 64 px scenes, registered with the model loader as ``scenes_vgg`` and ``scenes_resnet``.

Why deep and standard: Adebayo et al. 2018's Guided BackProp / Guided Grad-CAM invariance, Khakzar et al. 2019's
PruneGrad neuron pruning and Ghorbani et al. 2019's fragility all rest on deep ReLU networks (VGG, ResNet,
Inception). Every ReLU is its own non-in-place ``nn.ReLU`` module (guided backprop, deconvnet, excitation
backprop, PruneGrad and the softplus surrogate all hook ReLU modules).

Both nets are narrow so that one forward pass stays cheap (RISE needs ~1000 forwards per image on 128+ images
inside a paper's 20-minute default profile): the FLOPs and CPU milliseconds per forward are measured by
``lightning_modules.models.embedded_v2.forward_cost`` and stated in ``reports/benchmarks/validity.md``.
"""

from __future__ import annotations

import torch.nn as nn

from lightning_modules.models.registry import register_model


class ReLU(nn.ReLU):
    """``nn.ReLU`` that is never in place (timm builds its ReLUs with ``inplace=True``; backward hooks on
    ReLU modules need their output untouched)."""

    def __init__(self, inplace: bool = False):
        super().__init__(inplace=False)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), ReLU()]


class ScenesVGG(nn.Module):
    """VGG-style plain net (Simonyan & Zisserman 2015 layout: 3x3 conv-BN-ReLU stages separated by max-pools,
    widths doubling per stage), 8 ReLU conv layers, global-average-pool + linear head.

    64 px input: conv stride 2 (32 px), conv, pool (16), 2 convs, pool (8), 4 convs at 8 px; widths
    ``w, w, 2w, 2w, 4w, 4w, 4w, 4w``. The receptive field of the last layer is 94 px (the whole image), that of
    one 8-px cell's input after the second stage ~22 px (a texture patch). ``features.23`` is the last ReLU
    (8x8, the default Grad-CAM layer).
    """

    default_cam_layer = "features.23"
    ARCH_VERSION = 1

    def __init__(self, num_classes: int = 24, in_chans: int = 3, width: int = 16):
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.features = nn.Sequential(
            *_conv_bn_relu(in_chans, w, 2),  # 0-2    1/2
            *_conv_bn_relu(w, w),            # 3-5
            nn.MaxPool2d(2),                 # 6      1/4
            *_conv_bn_relu(w, 2 * w),        # 7-9
            *_conv_bn_relu(2 * w, 2 * w),    # 10-12
            nn.MaxPool2d(2),                 # 13     1/8
            *_conv_bn_relu(2 * w, 4 * w),    # 14-16
            *_conv_bn_relu(4 * w, 4 * w),    # 17-19
            *_conv_bn_relu(4 * w, 4 * w),    # 20-22 ... relu at 22
        )
        # the 8th ReLU conv layer, kept outside the loop above only for a stable index (features.23 = its ReLU)
        self.features.append(nn.Conv2d(4 * w, 4 * w, 3, 1, 1, bias=False))
        self.features.append(nn.BatchNorm2d(4 * w))
        self.features.append(ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


def scenes_resnet(num_classes: int = 24, in_chans: int = 3, width: int = 16) -> nn.Module:
    """ResNet-18 layout (He et al. 2016: BasicBlock, [2, 2, 2, 2] = 8 residual blocks) from timm's constructor,
    with timm's "deep" stem (three 3x3 convs, widths ``w/2, w/2, w``, stride 2, then max-pool: ResNet-C of He et
    al. 2019 / timm's ``resnet18d`` stem; the plain 7x7 stem has a fixed 64 channels, which alone would cost 19 of
    41 MFLOPs), stage widths ``w, 2w, 4w, 4w`` and output stride 16 (timm dilates the last stage): 64 px -> 4x4
    final features (``layer4``, the default Grad-CAM layer, as for torchvision/timm ResNets; at the standard
    output stride 32 it would be 2x2). The last stage keeps ``4w`` channels instead of doubling to keep one
    forward cheap."""
    from timm.models.resnet import BasicBlock, ResNet

    net = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, in_chans=in_chans, stem_width=width // 2,
                 stem_type="deep", channels=(width, 2 * width, 4 * width, 4 * width), output_stride=16, act_layer=ReLU)
    net.default_cam_layer = "layer4"
    return net


scenes_resnet.ARCH_VERSION = 1


register_model("scenes_vgg", ScenesVGG, input_size=(3, 64, 64), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
register_model("scenes_resnet", scenes_resnet, input_size=(3, 64, 64), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
