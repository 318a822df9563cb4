"""PruneGrad: input-specific network pruning, then the input gradient of the pruned network.

Khakzar et al., "Improving Feature Attribution through Input-specific Network Pruning" (arXiv 1911.11081),
Sec. 3; official code ``CAMP-eXplain-AI/PathwayGrad`` (``src/Pruner.py``, ``prune_neuron_mct``):

1. "Neurons" are the elements of every ReLU output. Each is scored by the first-order Taylor criterion
   ``|a * dy_c/da|`` with ``y_c`` the target *logit* (NeuronMCT).
2. One global threshold per input: the ``percentile``-th percentile of all scores over all layers; neurons
   with a score at or below it are zeroed (the mask multiplies the ReLU output).
3. The saliency is the gradient of the target logit w.r.t. the input through the pruned network, reduced to
   one channel by the signed value of largest magnitude (``max_abs_signed``), as in the official code.

Batched: each image gets its own masks and threshold, so a whole batch is explained with two forward and
two backward passes. ReLU modules that are called several times in one forward (torchvision's Bottleneck
reuses ``self.relu``) get one mask per call, matched by call order.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lightning_modules.explainers.base import Explainer, hooks_guard, reduce_channels, register_explainer


def _relu_modules(model: nn.Module) -> list[nn.Module]:
    mods = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not mods:
        raise ValueError(
            f"{type(model).__name__} has no nn.ReLU modules; PruneGrad prunes ReLU neurons (functional ReLUs "
            "cannot be hooked: use nn.ReLU modules)"
        )
    return mods


@register_explainer("prunegrad")
class PruneGrad(Explainer):
    """``percentile``: share of neurons pruned per input, in percent (official default 85; its sanity-check
    script uses 70). ``reduction``: channel reduction of the input gradient (official: ``max_abs_signed``)."""

    def __init__(self, percentile: float = 85.0, reduction: str = "max_abs_signed"):
        if not 0.0 <= percentile < 100.0:
            raise ValueError(f"percentile must be in [0, 100), got {percentile}")
        self.percentile = float(percentile)
        self.reduction = reduction

    @staticmethod
    def _target_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.gather(1, targets.view(-1, 1)).sum()

    def neuron_masks(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """Per-call keep-masks (one bool tensor per ReLU call, batch first) from the NeuronMCT scores."""
        acts: list[torch.Tensor] = []

        def record(_m, _i, out):
            acts.append(out)

        with hooks_guard() as handles:
            for m in _relu_modules(model):
                handles.append(m.register_forward_hook(record))
            logits = model(images.detach().requires_grad_(True))
        grads = torch.autograd.grad(self._target_logits(logits, targets), acts, allow_unused=True)
        scores = [
            (a.detach() * (g if g is not None else torch.zeros_like(a))).abs().flatten(1)
            for a, g in zip(acts, grads)
        ]
        flat = torch.cat(scores, dim=1)  # (B, all neurons)
        n = flat.shape[1]
        k = int(round(self.percentile / 100.0 * n))
        if k <= 0:
            threshold = torch.full((flat.shape[0], 1), -1.0, device=flat.device, dtype=flat.dtype)
        else:
            # kthvalue, not quantile: works for any number of neurons (quantile is capped at 2^24 elements).
            threshold = flat.kthvalue(k, dim=1, keepdim=True).values
        return [(s > threshold).view_as(a) for s, a in zip(scores, acts)]

    def attribute(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        masks = self.neuron_masks(model, images, targets)
        call = [0]

        def prune(_m, _i, out):
            i = call[0]
            call[0] += 1
            if i >= len(masks) or masks[i].shape != out.shape:
                raise RuntimeError("the model's ReLU calls differ between two forward passes; PruneGrad needs a deterministic graph")
            return out * masks[i]

        x = images.detach().requires_grad_(True)
        with hooks_guard() as handles:
            for m in _relu_modules(model):
                handles.append(m.register_forward_hook(prune))
            logits = model(x)
        (grad,) = torch.autograd.grad(self._target_logits(logits, targets), x)
        return reduce_channels(grad, self.reduction)
