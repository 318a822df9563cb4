"""Class activation maps at a convolutional layer.

- ``gradcam``: Selvaraju et al. 2017 Eq. 1-2: channel weights = spatially averaged gradients of the target
  logit at the layer; map = ReLU(sum_k w_k A_k), upsampled (bilinear) to the input. Captum ``LayerGradCam``.
- ``guided_gradcam``: Selvaraju et al. 2017 Sec. 3.1: guided backprop times the (upsampled) Grad-CAM map.
  Captum ``GuidedGradCam``; channel reduction explicit (``abs_max`` by default).
- ``score_cam``: Wang et al. 2020 (CVPR-W), Sec. 3: each activation map is upsampled, min-max normalised and
  used as a mask on the input; its weight is the target's softmax score on the masked input; map =
  ReLU(sum_k w_k A_k). Not in Captum: our own code, batched over channels in chunks.

The layer is ``lightning_modules.models.resolve_layer(model, layer)``: the architecture's default (resnet
``layer4``, vgg ``features.29``, googlenet ``inception5b``, inception_v3 ``Mixed_7c``, alexnet
``features.11``, squeezenet ``features.12``, our nets' ``default_cam_layer``) unless ``layer`` names one.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from captum.attr import GuidedGradCam, LayerGradCam

from lightning_modules.explainers.base import Explainer, hooks_guard, reduce_channels, register_explainer
from lightning_modules.explainers.gradients import check_relu_modules, leaf_input
from lightning_modules.models import class_probabilities, resolve_layer


def upsample(maps: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(maps, size=size, mode=mode, align_corners=False)
    return F.interpolate(maps, size=size, mode=mode)


@register_explainer("gradcam")
class GradCAM(Explainer):
    """``layer``: module name (``net.<name>`` or relative to the bare network) or None for the default;
    ``relu``: keep only positive evidence (Eq. 2); ``upsample_mode``: how the layer map reaches input size."""

    def __init__(self, layer: str | None = None, relu: bool = True, upsample_mode: str = "bilinear"):
        self.layer = layer
        self.relu = relu
        self.upsample_mode = upsample_mode

    def attribute(self, model, images, targets):
        layer = resolve_layer(model, self.layer)
        cam = LayerGradCam(model, layer).attribute(leaf_input(images), target=targets, relu_attributions=self.relu)
        return upsample(cam, images.shape[-2:], self.upsample_mode)


@register_explainer("guided_gradcam")
class GuidedGradCAM(Explainer):
    """Guided backprop (B, C, H, W) times the upsampled Grad-CAM map, then channel ``reduction``."""

    def __init__(self, layer: str | None = None, reduction: str = "abs_max", upsample_mode: str = "nearest"):
        self.layer = layer
        self.reduction = reduction
        self.upsample_mode = upsample_mode

    def attribute(self, model, images, targets):
        check_relu_modules(model, "guided_gradcam")
        layer = resolve_layer(model, self.layer)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            attr = GuidedGradCam(model, layer).attribute(leaf_input(images), target=targets, interpolate_mode=self.upsample_mode)
        return reduce_channels(attr, self.reduction)


@register_explainer("score_cam")
class ScoreCAM(Explainer):
    """Score-CAM. ``chunk_size``: masked images per forward pass (the B*K masked inputs are split into
    chunks of this many). ``baseline_score``: subtract the score of the black image (Wang et al.'s "increase
    of confidence", Eq. 5-6); the official code uses the plain softmax score (False)."""

    black_box = True

    def __init__(self, layer: str | None = None, chunk_size: int = 128, baseline_score: bool = False):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.layer = layer
        self.chunk_size = int(chunk_size)
        self.baseline_score = baseline_score

    @staticmethod
    def layer_activations(model, layer, images) -> tuple[torch.Tensor, torch.Tensor]:
        """(activations at ``layer``, logits) from one forward pass."""
        store: list[torch.Tensor] = []
        with hooks_guard() as handles:
            handles.append(layer.register_forward_hook(lambda _m, _i, out: store.append(out)))
            logits = model(images)
        if not store or not isinstance(store[0], torch.Tensor) or store[0].dim() != 4:
            raise ValueError(f"score_cam needs a convolutional layer with (B, K, h, w) output, got {type(store[0]) if store else None}")
        return store[0], logits

    @staticmethod
    def masks(acts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Activation maps ``(N, 1, h, w)`` upsampled to ``size`` and min-max normalised per map: the masks (Sec. 3,
        Eq. 4); a constant map carries no location: its mask is zero."""
        masks = upsample(acts, size, "bilinear")
        lo = masks.flatten(1).amin(dim=1)[:, None, None, None]
        span = masks.flatten(1).amax(dim=1)[:, None, None, None] - lo
        # the per-map scale (0 for a constant map) on the (N, 1, 1, 1) statistics, then two in-place passes over
        # the full-size maps: the normalisation costs as much as the forward's first ReLU otherwise
        scale = torch.where(span > 0, 1.0 / span.clamp_min(1e-12), torch.zeros_like(span))
        return masks.sub_(lo).mul_(scale)

    def attribute(self, model, images, targets):
        layer = resolve_layer(model, self.layer)
        acts, _ = self.layer_activations(model, layer, images)
        b, k = acts.shape[:2]
        h, w = images.shape[-2:]
        # One activation map per (image, channel) pair; each chunk's masks are built just before its forward pass, so
        # the B*K full-size masks never exist at once (at B=32 they are 32 MB: memory traffic, not compute).
        flat = acts.reshape(b * k, 1, *acts.shape[-2:])
        image_idx = torch.arange(b, device=images.device).repeat_interleave(k)
        target_rep = targets[image_idx]
        scores = torch.empty(b * k, device=images.device, dtype=images.dtype)
        for start in range(0, b * k, self.chunk_size):
            sl = slice(start, start + self.chunk_size)
            probs = class_probabilities(model, model(images[image_idx[sl]].mul_(self.masks(flat[sl], (h, w)))))
            scores[sl] = probs.gather(1, target_rep[sl, None]).squeeze(1)
        weights = scores.view(b, k)
        if self.baseline_score:
            base = class_probabilities(model, model(torch.zeros_like(images))).gather(1, targets[:, None])
            weights = weights - base
        cam = F.relu((weights[..., None, None] * acts).sum(dim=1, keepdim=True))
        return upsample(cam, (h, w), "bilinear")
