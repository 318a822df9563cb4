"""Gradient-family saliency: the input gradient and the methods built on it.

Gradient, input x gradient and IG call Captum; SmoothGrad/-SQ/VarGrad, guided backprop and deconvnet are our
own code, equal to Captum's ``NoiseTunnel(Saliency)``, ``GuidedBackprop`` and ``Deconvolution`` bit for bit
(``tests/test_explainers_captum.py``) and cheaper (see ``_noisy_gradients`` and ``_modified_relus``).

- ``gradient``: Simonyan, Vedaldi, Zisserman 2014, Sec. 3.1: ``|d y_c / d x|``, max over colour channels.
- ``input_x_gradient``: ``x * d y_c / d x`` (Shrikumar et al. 2016).
- ``smoothgrad`` / ``smoothgrad_sq`` / ``vargrad``: Smilkov et al. 2017 Eq. 3 (mean of gradients at noisy
  copies of the input), its squared variant and the variance (Adebayo et al. 2018; Hooker et al. 2019).
- ``integrated_gradients``: Sundararajan et al. 2017 Eq. 1 (path integral from a baseline; completeness).
- ``guided_backprop``: Springenberg et al. 2015; ``deconvnet``: Zeiler & Fergus 2014.

``y_c`` is the target *logit* (pre-softmax class score), as in Simonyan et al. and the papers' code.
Images are in [0, 1] pixel space (the model normalises), so the noise ``stdev`` is a fraction of the pixel
range (Smilkov's "noise level") and the IG baseline ``0`` is a black image.

Batching: SmoothGrad and IG expand every image into ``n_samples`` / ``steps`` copies and run them in
batches of ``samples_batch_size`` images (Captum's ``nt_samples_batch_size`` / ``internal_batch_size``), the
copies of all images of the batch together. The default 128 (also the perturbation methods' and Score-CAM's
chunk) sits near the per-image optimum of a small CNN on a CPU (scenes_cnn, 64x64, one thread: fwd+bwd
2.3-2.5 ms/img at batch 64-128, 4.0 ms/img at 512, where activations stop fitting in cache); raise it on a GPU.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from captum.attr import (
    InputXGradient,
    IntegratedGradients,
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


def leaf_input(images: torch.Tensor) -> torch.Tensor:
    """A fresh leaf that requires grad (Captum would otherwise flip the caller's tensor and warn)."""
    return images.detach().requires_grad_(True)


def check_relu_modules(model: nn.Module, method: str) -> None:
    """Raise when ``model`` has no ``nn.ReLU`` module (``method`` rewrites their backward pass)."""
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
        attr = Saliency(model).attribute(leaf_input(images), target=targets, abs=False)
        return self._reduce(attr)


@register_explainer("input_x_gradient")
class InputTimesGradient(_GradientBase):
    """Input x gradient; ``reduction='sum'`` by default so the map is the per-pixel sum of the signed
    first-order contributions."""

    def __init__(self, reduction: str = "sum"):
        super().__init__(reduction)

    def attribute(self, model, images, targets):
        return self._reduce(InputXGradient(model).attribute(leaf_input(images), target=targets))


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
        # Samples per chunk: the chunk holds B * per_image noisy images.
        b, n = images.shape[0], self.n_samples
        per_image = n if self.samples_batch_size is None else max(1, min(n, self.samples_batch_size // b))
        total = total_sq = None
        with seeded_rng(self.seed, images.device):
            for start in range(0, n, per_image):
                grads = self._noisy_gradients(model, images, targets, min(per_image, n - start))
                part = grads.sum(dim=1)
                total = part if total is None else total + part
                if self.nt_type != "smoothgrad":
                    part_sq = grads.pow(2).sum(dim=1)
                    total_sq = part_sq if total_sq is None else total_sq + part_sq
        if self.nt_type == "smoothgrad":
            return self._reduce(total / n)
        if self.nt_type == "smoothgrad_sq":
            return self._reduce(total_sq / n)
        mean = total / n
        return self._reduce(total_sq / n - mean * mean)

    def _noisy_gradients(self, model, images, targets, k: int) -> torch.Tensor:
        """(B, k, C, H, W) input gradients at ``k`` noisy copies of every image.

        Same draws and arithmetic as Captum's ``NoiseTunnel(Saliency)`` (tested bit for bit): one standard
        normal tensor for the chunk, image-major (copy ``j`` of image ``i`` at row ``i * k + j``), scaled by
        ``stdev`` and added to the image. Captum builds a full-size tensor of the standard deviation, draws from
        ``normal(0, std_tensor)``, copies the images with ``repeat_interleave`` and also accumulates squared
        gradients for the plain mean; broadcasting in place avoids those copies."""
        b = images.shape[0]
        noise = torch.randn((b, k) + tuple(images.shape[1:]), device=images.device, dtype=images.dtype)
        x = noise.mul_(self.stdev).add_(images.detach()[:, None]).flatten(0, 1).requires_grad_(True)
        logits = model(x)
        (grad,) = torch.autograd.grad(logits.gather(1, targets.repeat_interleave(k)[:, None]).sum(), x)
        return grad.view((b, k) + tuple(images.shape[1:]))


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
            leaf_input(images), baselines=baseline, target=targets, n_steps=self.steps, method=self.method,
            internal_batch_size=internal,
        )
        return self._reduce(attr)


class _RectifiedRelu(torch.autograd.Function):
    """Zeiler & Fergus's deconvnet ReLU: the forward output of ``nn.ReLU`` unchanged, the backward signal
    rectified (``relu(g)``) and handed to the ReLU's input regardless of the input's sign."""

    @staticmethod
    def forward(ctx, x, y):
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0), None


def _rectify(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp_min(0)


def _rectify_output_grad(_module, _inputs, out: torch.Tensor) -> None:
    out.register_hook(_rectify)


def _rectified_relu(_module, inputs, out: torch.Tensor) -> torch.Tensor:
    return _RectifiedRelu.apply(inputs[0], out.detach())


@contextlib.contextmanager
def _modified_relus(model: nn.Module, rule: str):
    """Hooks on every ``nn.ReLU`` of ``model`` that change its backward pass, removed on exit.

    ``guided``: a tensor hook rectifies the signal arriving at the ReLU's output, and the ReLU's own backward
    then keeps it where the input was positive: ``relu(g) * 1[x > 0]``, which equals Captum's ``relu`` of the
    ReLU's input gradient element for element. ``deconv``: the output is wrapped so the input receives
    ``relu(g)`` in place of the ReLU's backward (in-place ReLUs run out-of-place meanwhile, since their
    input is their output). Captum's hooks do the same, but clone every ReLU input in the forward pass and
    add two tensor hooks per ReLU; a third of a small CNN's backward time went to them."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    inplace = [m.inplace for m in relus]
    handles = []
    try:
        for m in relus:
            if rule == "guided":
                handles.append(m.register_forward_hook(_rectify_output_grad))
            else:
                m.inplace = False
                handles.append(m.register_forward_hook(_rectified_relu))
        yield
    finally:
        for h in handles:
            h.remove()
        for m, flag in zip(relus, inplace):
            m.inplace = flag


class ModifiedReluGradient(_GradientBase):
    """d y_c / d x with every ReLU's backward replaced by the class's ``rule`` (``guided`` or ``deconv``, see
    ``_modified_relus``), reduced over channels; the shared body of guided backpropagation and DeconvNet."""

    rule: str

    def attribute(self, model, images, targets):
        check_relu_modules(model, self.name)
        x = leaf_input(images)
        with _modified_relus(model, self.rule):
            logits = model(x)
        (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), x)
        return self._reduce(grad)


@register_explainer("guided_backprop")
class GuidedBackpropExplainer(ModifiedReluGradient):
    """Springenberg et al. 2015 Sec. 3.4: at every ReLU only positive gradients of positive inputs pass.
    Equal to Captum's ``GuidedBackprop`` (tested bit for bit), with cheaper hooks (``_modified_relus``)."""

    rule = "guided"


@register_explainer("deconvnet")
class DeconvNet(ModifiedReluGradient):
    """Zeiler & Fergus 2014: at every ReLU the backward signal is rectified (independent of the input sign).
    Equal to Captum's ``Deconvolution`` (tested bit for bit), with cheaper hooks (``_modified_relus``)."""

    rule = "deconv"
