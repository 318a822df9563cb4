"""ReLU modules for torchvision's Inception v3 (the paper's model, Sec. 3).

torchvision's ``BasicConv2d`` (every convolution of Inception v3 and GoogLeNet) applies its ReLU functionally
(``F.relu(x, inplace=True)``). Guided BackProp and Guided Grad-CAM (Springenberg et al. 2015; the paper's failing
methods) change the backward pass of ReLU *modules*, so on the unmodified network they cannot run. This gives
every ``BasicConv2d`` its own ``nn.ReLU`` module; the forward pass is numerically the same, and the parameters
(and so the randomisation stages) are unchanged.
"""

from __future__ import annotations

import torch.nn as nn


def _forward_with_relu_module(self, x):
    return self.relu(self.bn(self.conv(x)))


def add_relu_modules_(model: nn.Module) -> int:
    """In place: give every torchvision ``BasicConv2d`` in ``model`` an ``nn.ReLU`` module and use it in the
    forward pass. Returns how many were converted (0 for networks that already use ReLU modules)."""
    from torchvision.models.inception import BasicConv2d as InceptionConv
    from torchvision.models.googlenet import BasicConv2d as GoogLeNetConv

    converted = 0
    for module in model.modules():
        if isinstance(module, (InceptionConv, GoogLeNetConv)) and not hasattr(module, "relu"):
            module.relu = nn.ReLU()
            # An instance-level forward: the class (shared with other users of torchvision) stays untouched.
            module.forward = _forward_with_relu_module.__get__(module)
            converted += 1
    return converted
