"""The small MNIST CNN that ROAR retrains on real MNIST (registered with the model loader as ``roar_mnist_cnn``).

ROAR retrains one model per (method, fraction, seed): 80+ trainings in the default profile, so the network is
sized for seconds per training on one CPU thread: conv5x5/2-16, ReLU, conv3x3/2-32, ReLU, fc64, ReLU, fc10
(strided convolutions instead of pooling). On the shipped 8,000 / 2,000 MNIST split it reaches ~96% test
accuracy in 3 epochs (the report states the measured value); Khakzar's RoarTorch retrains a ResNet8 on CIFAR-10,
Adebayo's MNIST CNN (``mnist_cnn``, fc1024) costs ~6x more per epoch.
Every ReLU is its own ``nn.ReLU`` module (PruneGrad and guided backprop hook them).
"""

from __future__ import annotations

import torch.nn as nn

from lightning_modules.models import register_model


class RoarMnistCNN(nn.Module):
    default_cam_layer = "features.3"  # the last ReLU (7x7), Grad-CAM's layer

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 16):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 5, stride=2, padding=2), nn.ReLU(),  # 14x14
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),  # 7x7
        )
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(2 * width * 7 * 7, 64)
        self.relu_fc = nn.ReLU()
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.classifier(self.relu_fc(self.fc1(self.flatten(self.features(x)))))


register_model("roar_mnist_cnn", RoarMnistCNN, input_size=(1, 28, 28), mean=(0.1307,), std=(0.3081,))
