"""Heatmap-based adversarial detection (Fong & Vedaldi, ICCV 2017, Sec. 5 "adversarial defence").

- :func:`iterative_fgsm`: adversarial images by iterative FGSM (Kurakin et al.'s basic iterative method, L-inf)
  with ART's ``BasicIterativeMethod`` around a ``PyTorchClassifier`` on [0, 1] pixels (``clip_values=(0, 1)``,
  so ``eps`` is in pixel units: ``8/255`` = 8 grey levels).
- :func:`iterative_least_likely`: the iterative least-likely-class method (ILLC, Kurakin et al. 2017, "Adversarial
  examples in the physical world"; the attack of Fong & Vedaldi's adversarial repository, ``one_step_iter``):
  targeted I-FGSM toward the clean image's least-likely class, ``x <- clip_{x0, eps}(x - step * sign(grad CE(x,
  y_LL)))``, batched, with a per-image ``eps`` and Kurakin's step count ``min(eps + 4, 1.25 eps)`` (eps in grey
  levels) per image (:func:`kurakin_steps`).
- :class:`HeatmapDetector`: torchvision's AlexNet architecture (five conv layers, three fully connected), with a
  one-channel first layer for heatmaps and the pooling/classifier widths sized to the heatmap resolution, trained
  as a LightningModule to tell heatmaps of clean images (label 0) from heatmaps of adversarial ones (label 1).
  :func:`train_detector` trains it deterministically on in-memory tensors (usable inside another Trainer's
  test pass); ``lightning.Trainer().fit(detector, TensorDataModule(..., pixel_range=False))`` works too.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def iterative_fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, eps: float = 8 / 255,
                   eps_step: float = 1 / 255, max_iter: int = 10, batch_size: int = 64, num_classes: int | None = None,
                   targeted: bool = False) -> torch.Tensor:
    """Untargeted (default) I-FGSM / BIM adversarial images with ART, same device and dtype as ``images``.

    ``labels=None`` attacks the model's own predictions (ART's default, avoids label leaking)."""
    from art.attacks.evasion import BasicIterativeMethod
    from art.estimators.classification import PyTorchClassifier

    if eps <= 0 or eps_step <= 0 or max_iter < 1:
        raise ValueError(f"need eps > 0, eps_step > 0, max_iter >= 1; got {eps}, {eps_step}, {max_iter}")
    model.eval()
    with torch.no_grad():
        n_cls = num_classes or int(model(images[:1]).shape[1])
    dev = images.device
    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(images.shape[1:]),
                            nb_classes=n_cls, clip_values=(0.0, 1.0),
                            device_type="gpu" if dev.type == "cuda" else "cpu")
    attack = BasicIterativeMethod(clf, eps=eps, eps_step=eps_step, max_iter=max_iter, targeted=targeted,
                                  batch_size=batch_size, verbose=False)
    y = None
    if labels is not None:
        y = np.eye(n_cls, dtype=np.float32)[labels.detach().cpu().numpy()]
    with torch.enable_grad():  # callers may run under no_grad (Lightning's test loop)
        adv = attack.generate(x=images.detach().cpu().numpy().astype(np.float32), y=y)
    return torch.from_numpy(adv).to(device=dev, dtype=images.dtype)


def kurakin_steps(eps: torch.Tensor) -> torch.Tensor:
    """Kurakin et al.'s iteration count per image, ``floor(min(eps + 4, 1.25 eps))`` with eps in grey levels (eps
    in [0, 1] pixel units times 255), at least 1 (the official adversarial code's ``step = None`` rule)."""
    g = eps * 255
    return torch.minimum(g + 4, 1.25 * g).add(1e-6).floor().clamp_min(1).long()


def iterative_least_likely(model: nn.Module, images: torch.Tensor, eps: float | torch.Tensor,
                           eps_step: float = 1 / 255, steps: int | torch.Tensor | None = None) -> torch.Tensor:
    """ILLC adversarial images (same device and dtype as ``images``, pixels in [0, 1]): targeted iterative FGSM
    toward each clean image's least-likely class. ``eps`` is a float or one L-inf budget per image (pixel units);
    ``steps`` an int, one count per image, or ``None`` for :func:`kurakin_steps`. Batched: every iteration updates
    the images whose count is not reached (one forward/backward over them), so the cost is the sum of the counts."""
    n = images.shape[0]
    eps = torch.as_tensor(eps, dtype=images.dtype, device=images.device).expand(n).clone()
    if (eps <= 0).any() or eps_step <= 0:
        raise ValueError(f"need eps > 0 and eps_step > 0; got {eps.min().item()}, {eps_step}")
    steps = kurakin_steps(eps) if steps is None else torch.as_tensor(steps, device=images.device).long().expand(n)
    model.eval()
    x0 = images.detach()
    with torch.no_grad():
        target = model(x0).argmin(1)
    adv = x0.clone()
    e = eps.view(-1, *([1] * (images.dim() - 1)))
    with torch.enable_grad():  # callers may run under no_grad (Lightning's test loop)
        for i in range(int(steps.max())):
            act = (steps > i).nonzero().squeeze(1)
            x = adv[act].requires_grad_(True)
            loss = F.cross_entropy(model(x), target[act], reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            lo, hi = x0[act] - e[act], x0[act] + e[act]
            adv[act] = torch.minimum(torch.maximum(x.detach() - eps_step * grad.sign(), lo), hi).clamp(0, 1)
    return adv


#: the smallest input for which AlexNet's feature stack keeps a non-empty map
MIN_SIZE = 63


def alexnet_for_heatmaps(size: int, in_chans: int = 1, num_classes: int = 2, hidden: int = 512) -> nn.Module:
    """torchvision's AlexNet with a ``in_chans`` first conv, ``AdaptiveAvgPool2d`` and the classifier sized to the
    heatmaps: at 224 px the original (6 x 6 x 256 -> 4096 -> 4096); smaller maps give a smaller pooled grid and
    ``hidden`` units (the ImageNet widths would be 37M parameters for a few hundred 64-px maps)."""
    if size < MIN_SIZE:
        raise ValueError(f"heatmaps of {size} px are too small for AlexNet's stride-4 11x11 first layer and three "
                         f"stride-2 poolings; use >= {MIN_SIZE} px (HeatmapDetector upsamples smaller maps)")
    net = torchvision.models.alexnet(weights=None, num_classes=num_classes)
    net.features[0] = nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2)
    with torch.no_grad():
        grid = net.features(torch.zeros(1, in_chans, size, size)).shape[-1]
    grid = max(1, min(6, grid))
    width = 4096 if size >= 224 else hidden
    net.avgpool = nn.AdaptiveAvgPool2d((grid, grid))
    net.classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(256 * grid * grid, width), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, num_classes),
    )
    return net


class HeatmapDetector(pl.LightningModule):
    """Clean (0) vs adversarial (1) heatmap classifier: AlexNet sized to the maps (Sec. 5)."""

    def __init__(self, size: int, lr: float = 1e-3, weight_decay: float = 1e-4, hidden: int = 512,
                 input_size: int = 0):
        """``input_size``: the AlexNet input the maps are resized to (bilinear; the paper: 227 px); 0 = the maps'
        size (at least :data:`MIN_SIZE`)."""
        super().__init__()
        self.save_hyperparameters()
        self.input_size = max(input_size or size, MIN_SIZE)
        self.net = alexnet_for_heatmaps(self.input_size, hidden=hidden)

    @staticmethod
    def standardise(maps: torch.Tensor) -> torch.Tensor:
        """Per-map min-max to [0, 1]: methods differ in scale; the detector must use the maps' shape."""
        flat = maps.flatten(1)
        lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
        return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        maps = self.standardise(maps)
        if maps.shape[-1] != self.input_size or maps.shape[-2] != self.input_size:
            maps = F.interpolate(maps, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.net(maps)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["image"]), batch["label"])
        self.log("detector/train_loss", loss, prog_bar=False, batch_size=batch["image"].shape[0])
        return loss

    def test_step(self, batch, batch_idx):
        acc = (self(batch["image"]).argmax(1) == batch["label"]).float().mean()
        self.log("detector/test_acc", acc, batch_size=batch["image"].shape[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def train_detector(maps: torch.Tensor, labels: torch.Tensor, epochs: int = 30, batch_size: int = 32,
                   lr: float = 1e-3, seed: int = 0, hidden: int = 512, input_size: int = 0) -> HeatmapDetector:
    """Train a :class:`HeatmapDetector` with its own ``training_step``/``configure_optimizers`` (seeded, full
    epochs, shuffled by a private generator, so it can run inside another Trainer's loop); ``input_size``: see
    :class:`HeatmapDetector`."""
    if maps.dim() != 4 or maps.shape[1] != 1 or labels.shape[0] != maps.shape[0]:
        raise ValueError(f"maps must be (N, 1, H, W) with N labels; got {tuple(maps.shape)} and {tuple(labels.shape)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        det = HeatmapDetector(maps.shape[-1], lr=lr, hidden=hidden, input_size=input_size).to(maps.device)
    det.log = lambda *a, **k: None  # outside a Trainer: no logging
    opt = det.configure_optimizers()
    g = torch.Generator().manual_seed(seed)
    det.train()
    with torch.enable_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout draws
        for _ in range(epochs):
            order = torch.randperm(maps.shape[0], generator=g).to(maps.device)
            for i in range(0, maps.shape[0], batch_size):
                idx = order[i:i + batch_size]
                opt.zero_grad(set_to_none=True)
                det.training_step({"image": maps[idx], "label": labels[idx]}, i).backward()
                opt.step()
    det.eval()
    return det


@torch.no_grad()
def detector_accuracy(det: HeatmapDetector, maps: torch.Tensor, labels: torch.Tensor) -> float:
    det.eval()
    return float((det(maps).argmax(1) == labels).float().mean())
