"""Small networks of our own, registered with the model loader (timm-style: one name -> one constructor).

Every ReLU is its own ``nn.ReLU`` module (not in-place, not functional, never reused): guided backprop,
excitation backprop, PruneGrad's neuron hooks and Ghorbani's softplus surrogate all act on ReLU modules.
"""

from __future__ import annotations

import torch.nn as nn

from lightning_modules.models.registry import register_model


def _conv_block(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    """conv -> batch norm -> its own ReLU module."""
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class ScenesCNN(nn.Module):
    """The embedded black box for the synthetic scenes: a small VGG-like CNN (conv-BN-ReLU) with a
    global-average-pool head, sized to train to >= 95% in minutes on 2 CPU cores.

    64x64 input: a 5x5 stride-2 stem (32x32), a conv, max-pool (16x16), two convs at 16x16 (the last
    without BN); receptive field of the last layer 27 px, enough for a whole head (12 px) and its edges.
    Layer indices kept stable for the explainers: ``features.11`` is the last ReLU (1/4 resolution, the
    default Grad-CAM layer), ``features.9`` the ReLU feeding the last conv (excitation backprop's layer).
    """

    default_cam_layer = "features.11"
    ARCH_VERSION = 2  # bump when the layout changes (the cached black box is keyed by it)

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 16):
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.features = nn.Sequential(
            *_conv_block(in_chans, w, 5, 2),                  # 0-2   1/2
            *_conv_block(w, 2 * w),                           # 3-5   1/2
            nn.MaxPool2d(2),                                  # 6     1/4
            *_conv_block(2 * w, 3 * w),                       # 7-9   1/4
            nn.Conv2d(3 * w, 4 * w, 3, padding=1), nn.ReLU(),  # 10-11 1/4
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


class MnistCNN(nn.Module):
    """Adebayo et al. 2018's MNIST CNN: conv5x5-32, pool, conv5x5-64, pool, fc1024, fc10 (ReLU)."""

    default_cam_layer = "features.4"

    def __init__(self, num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 7 * 7, 1024)
        self.relu_fc = nn.ReLU()
        self.classifier = nn.Linear(1024, num_classes)

    def forward(self, x):
        return self.classifier(self.relu_fc(self.fc1(self.flatten(self.features(x)))))


class MnistMLP(nn.Module):
    """Adebayo et al. 2018's MLP: 784 -> 2500 -> 1500 -> 500 -> 10, ReLU."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, image_size: int = 28):
        super().__init__()
        self.num_classes = num_classes
        d = in_chans * image_size * image_size
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(d, 2500), nn.ReLU(), nn.Linear(2500, 1500), nn.ReLU(),
            nn.Linear(1500, 500), nn.ReLU(), nn.Linear(500, num_classes),
        )

    def forward(self, x):
        return self.net(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet8(nn.Module):
    """The small ResNet of the ROAR replication (Khakzar's RoarTorch uses a ResNet8 on CIFAR-10)."""

    default_cam_layer = "layer3"

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 16):
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = _BasicBlock(width, width, 1)
        self.layer2 = _BasicBlock(width, 2 * width, 2)
        self.layer3 = _BasicBlock(2 * width, 4 * width, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.classifier(self.flatten(self.pool(x)))


register_model("scenes_cnn", ScenesCNN, input_size=(3, 64, 64), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
register_model("mnist_cnn", MnistCNN, input_size=(1, 28, 28), mean=(0.1307,), std=(0.3081,))
register_model("mnist_mlp", MnistMLP, input_size=(1, 28, 28), mean=(0.1307,), std=(0.3081,))
register_model("resnet8", ResNet8, input_size=(3, 32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
