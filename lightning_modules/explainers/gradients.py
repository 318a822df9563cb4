"""Gradient-family saliency: the input gradient and the methods built on it, all through Captum.

- ``gradient``: Simonyan, Vedaldi, Zisserman 2014, Sec. 3.1: ``|d y_c / d x|``, max over colour channels.
- ``input_x_gradient``: ``x * d y_c / d x`` (Shrikumar et al. 2016).
- ``smoothgrad`` / ``smoothgrad_sq`` / ``vargrad``: Smilkov et al. 2017 Eq. 3 (mean of gradients at noisy
  copies of the input), its squared variant and the variance (Adebayo et al. 2018; Hooker et al. 2019).
- ``integrated_gradients``: Sundararajan et al. 2017 Eq. 1 (path integral from a baseline; completeness).
- ``guided_backprop``: Springenberg et al. 2015; ``deconvnet``: Zeiler & Fergus 2014.

``y_c`` is the target *logit* (pre-softmax class score), as in Simonyan et al. and the papers' code.
Images are in [0, 1] pixel space (the model normalises), so the noise ``stdev`` is a fraction of the pixel
range (Smilkov's "noise level") and the IG baseline ``0`` is a black image.

Batching: NoiseTunnel and IG expand every image into ``n_samples`` / ``steps`` copies and run them in
batches of ``samples_batch_size`` images (Captum's ``nt_samples_batch_size`` / ``internal_batch_size``), the
copies of all images of the batch together. The default 128 (also the perturbation methods' and Score-CAM's
chunk) sits near the per-image optimum of a small CNN on a CPU (scenes_cnn, 64x64, one thread: fwd+bwd
2.3-2.5 ms/img at batch 64-128, 4.0 ms/img at 512, where activations stop fitting in cache); raise it on a GPU.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn as nn
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)

from lightning_modules.explainers.base import Explainer, reduce_channels, register_explainer


@contextlib.contextmanager
def seeded_rng(seed: int | None, device: torch.device):
    """Run a block with torch's global RNG seeded (restored afterwards), so noise-based methods are
    deterministic without disturbing the caller's random stream. ``seed=None`` leaves the RNG alone."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # Seed only the generator the noise is drawn from: ``torch.manual_seed`` would also queue lazy
        # seeding of every accelerator backend, which costs milliseconds per call.
        if device.type == "cuda":
            torch.cuda.manual_seed(seed)
        else:
            torch.default_generator.manual_seed(seed)
        yield


def _leaf(images: torch.Tensor) -> torch.Tensor:
    """A fresh leaf that requires grad (Captum would otherwise flip the caller's tensor and warn)."""
    return images.detach().requires_grad_(True)


def _check_relu_modules(model: nn.Module, method: str) -> None:
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ValueError(
            f"{method} modifies the backward pass of nn.ReLU modules, and {type(model).__name__} has none "
            "(functional relu cannot be hooked); build the network with nn.ReLU modules"
        )


class _GradientBase(Explainer):
    """Shared configuration: channel reduction of the (B, C, H, W) attribution."""

    def __init__(self, reduction: str = "abs_max"):
        self.reduction = reduction

    def _reduce(self, attr: torch.Tensor) -> torch.Tensor:
        return reduce_channels(attr, self.reduction)


@register_explainer("gradient")
class Gradient(_GradientBase):
    """Simonyan et al. 2014 Sec. 3.1: the gradient of the target logit w.r.t. the input pixels, reduced over
    channels by ``reduction`` (paper: ``abs_max``, the maximum magnitude over colour channels)."""

    def attribute(self, model, images, targets):
        attr = Saliency(model).attribute(_leaf(images), target=targets, abs=False)
        return self._reduce(attr)


@register_explainer("input_x_gradient")
class InputTimesGradient(_GradientBase):
    """Input x gradient; ``reduction='sum'`` by default so the map is the per-pixel sum of the signed
    first-order contributions."""

    def __init__(self, reduction: str = "sum"):
        super().__init__(reduction)

    def attribute(self, model, images, targets):
        return self._reduce(InputXGradient(model).attribute(_leaf(images), target=targets))


class _NoiseTunnelGradient(_GradientBase):
    """Gradients averaged (or their squares / variance) over ``n_samples`` copies of the input with Gaussian
    noise of ``stdev`` (in [0, 1] pixel units: 0.15 = Smilkov's 15 % noise level), all in one batch of up to
    ``samples_batch_size`` noisy images. ``seed`` makes the noise reproducible (None: global RNG)."""

    nt_type = "smoothgrad"

    def __init__(self, n_samples: int = 50, stdev: float = 0.15, reduction: str = "abs_max",
                 samples_batch_size: int | None = 128, seed: int | None = 0):
        super().__init__(reduction)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if stdev < 0:
            raise ValueError(f"stdev must be >= 0, got {stdev}")
        self.n_samples = int(n_samples)
        self.stdev = float(stdev)
        self.samples_batch_size = samples_batch_size
        self.seed = seed

    def attribute(self, model, images, targets):
        # Samples per Captum chunk: the chunk holds B * nt_samples_batch_size noisy images.
        per_image = self.n_samples
        if self.samples_batch_size is not None:
            per_image = max(1, min(self.n_samples, self.samples_batch_size // images.shape[0]))
        with seeded_rng(self.seed, images.device):
            attr = NoiseTunnel(Saliency(model)).attribute(
                _leaf(images), nt_type=self.nt_type, nt_samples=self.n_samples, nt_samples_batch_size=per_image,
                stdevs=self.stdev, target=targets, abs=False,
            )
        return self._reduce(attr)


@register_explainer("smoothgrad")
class SmoothGrad(_NoiseTunnelGradient):
    """Smilkov et al. 2017 Eq. 3: mean gradient over noisy copies of the input."""

    nt_type = "smoothgrad"


@register_explainer("smoothgrad_sq")
class SmoothGradSquared(_NoiseTunnelGradient):
    """SmoothGrad-squared (Hooker et al. 2019 Sec. 4): mean of the squared gradients."""

    nt_type = "smoothgrad_sq"


@register_explainer("vargrad")
class VarGrad(_NoiseTunnelGradient):
    """VarGrad (Adebayo et al. 2018; Hooker et al. 2019): variance of the gradients over noisy copies."""

    nt_type = "vargrad"


@register_explainer("integrated_gradients")
class IntegratedGradientsExplainer(_GradientBase):
    """Sundararajan et al. 2017 Eq. 1 with Captum's quadrature (``method``, default Gauss-Legendre) over
    ``steps`` points from ``baseline`` (a float pixel value, 0 = black image, or a tensor broadcastable to the
    images). ``reduction='sum'`` by default, so the map sums to f(x) - f(baseline) (completeness, Prop. 1).
    ``samples_batch_size``: the scaled images are run in batches of this many (Captum's internal batching)."""

    def __init__(self, steps: int = 50, baseline: float | torch.Tensor = 0.0, method: str = "gausslegendre",
                 reduction: str = "sum", samples_batch_size: int | None = 128):
        super().__init__(reduction)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps = int(steps)
        self.baseline = baseline
        self.method = method
        self.samples_batch_size = samples_batch_size

    def attribute(self, model, images, targets):
        baseline = self.baseline
        if isinstance(baseline, torch.Tensor):
            baseline = baseline.to(images.device, images.dtype).expand_as(images)
        internal = None
        if self.samples_batch_size is not None:
            # Captum splits the steps into chunks of ``internal_batch_size`` scaled images (at least one
            # image's worth of steps per chunk).
            internal = max(images.shape[0], self.samples_batch_size)
        attr = IntegratedGradients(model).attribute(
            _leaf(images), baselines=baseline, target=targets, n_steps=self.steps, method=self.method,
            internal_batch_size=internal,
        )
        return self._reduce(attr)


@register_explainer("guided_backprop")
class GuidedBackpropExplainer(_GradientBase):
    """Springenberg et al. 2015 Sec. 3.4: at every ReLU only positive gradients of positive inputs pass."""

    def attribute(self, model, images, targets):
        _check_relu_modules(model, "guided_backprop")
        with warnings.catch_warnings():  # Captum announces its (removed-afterwards) ReLU hooks on every call
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            attr = GuidedBackprop(model).attribute(_leaf(images), target=targets)
        return self._reduce(attr)


@register_explainer("deconvnet")
class DeconvNet(_GradientBase):
    """Zeiler & Fergus 2014: at every ReLU the backward signal is rectified (independent of the input sign)."""

    def attribute(self, model, images, targets):
        _check_relu_modules(model, "deconvnet")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            attr = Deconvolution(model).attribute(_leaf(images), target=targets)
        return self._reduce(attr)
