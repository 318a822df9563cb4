"""PruneGrad: input-specific network pruning, then the input gradient of the pruned network.

Khakzar et al., "Improving Feature Attribution through Input-specific Network Pruning" (arXiv 1911.11081),
Sec. 3; official code ``CAMP-eXplain-AI/PathwayGrad`` (``src/Pruner.py``, ``prune_neuron_mct``):

1. "Neurons" are the elements of every ReLU output. Each is scored by the first-order Taylor criterion
   ``|a * dy_c/da|`` with ``y_c`` the target *logit* (NeuronMCT).
2. One global threshold per input: the ``percentile``-th percentile of the scores over all layers; neurons
   with a score at or below it are zeroed (the mask multiplies the ReLU output).
3. The saliency is the gradient of the target logit w.r.t. the input through the pruned network, reduced to
   one channel by the signed value of largest magnitude (``max_abs_signed``), as in the official code.

``scope`` says over which neurons the percentile of step 2 is taken:

- ``"all"`` (the official rule): over every ReLU neuron. In a small, sparse network most scores are exactly
  zero (dead ReLUs: ``a = 0``; or no path to the output: ``dy/da = 0``); when that share exceeds
  ``percentile`` the threshold is 0, only neurons that already carry no gradient are pruned, and PruneGrad
  *equals the plain gradient*. ``score_sparsity`` measures that share.
- ``"active"`` (our documented option, not in the paper): over the neurons with a nonzero score only; the
  zero-score neurons are pruned as well (it changes nothing for them). ``percentile`` then is the share of
  the *contributing* neurons that goes, so the pruning acts on sparse small networks as it does on the dense
  ResNet50 of the paper, where (nearly) every neuron contributes.

Batched: each image gets its own masks and threshold, so a whole batch is explained with two forward and
two backward passes. ReLU modules that are called several times in one forward (torchvision's Bottleneck
reuses ``self.relu``) get one mask per call, matched by call order.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lightning_modules.explainers.base import (
    Explainer, check_images, check_targets, hooks_guard, model_state_guard, num_classes_of, reduce_channels, register_explainer,
)

SCOPES = ("all", "active")


def relu_modules(model: nn.Module) -> list[nn.Module]:
    """The ``nn.ReLU`` modules of ``model`` (PruneGrad's neurons are their outputs); an error if it has none."""
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
    script uses 70). ``scope``: ``"all"`` (official: percentile over all ReLU neurons) or ``"active"`` (over
    the neurons with a nonzero score; see the module docstring). ``reduction``: channel reduction of the
    input gradient (official: ``max_abs_signed``)."""

    def __init__(self, percentile: float = 85.0, scope: str = "all", reduction: str = "max_abs_signed"):
        if not 0.0 <= percentile < 100.0:
            raise ValueError(f"percentile must be in [0, 100), got {percentile}")
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; use 'all' (the official rule) or 'active' (percentile over nonzero scores)")
        self.percentile = float(percentile)
        self.scope = scope
        self.reduction = reduction

    @staticmethod
    def _target_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.gather(1, targets.view(-1, 1)).sum()

    def neuron_scores(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """NeuronMCT scores ``|a * dy_c/da|``, one (B, ...) tensor per ReLU call (Khakzar Sec. 3, first-order Taylor)."""
        acts: list[torch.Tensor] = []

        def record(_m, _i, out):
            acts.append(out)

        with hooks_guard() as handles:
            for m in relu_modules(model):
                handles.append(m.register_forward_hook(record))
            logits = model(images.detach().requires_grad_(True))
        grads = torch.autograd.grad(self._target_logits(logits, targets), acts, allow_unused=True)
        return [(a.detach() * (g if g is not None else torch.zeros_like(a))).abs() for a, g in zip(acts, grads)]

    def score_sparsity(self, model: nn.Module, images: torch.Tensor, targets) -> torch.Tensor:
        """(B,) share of ReLU neurons whose score is exactly zero (they carry no gradient to the target logit).
        Above ``percentile``/100, the official rule (``scope="all"``) prunes nothing that matters. Checks its
        input and keeps the model's state like an explainer call (usable under ``no_grad``)."""
        check_images(images, model=model)
        targets = check_targets(targets, images.shape[0], num_classes_of(model, images)).to(images.device)
        with model_state_guard(model), torch.enable_grad():
            flat = torch.cat([s.flatten(1) for s in self.neuron_scores(model, images, targets)], dim=1)
        return (flat == 0).float().mean(1)

    def thresholds(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, N) scores -> (B, 1) per-image threshold; neurons with a score > threshold are kept."""
        b, n = flat.shape
        if self.scope == "all":
            k = int(round(self.percentile / 100.0 * n))
            if k <= 0:
                return torch.full((b, 1), -1.0, device=flat.device, dtype=flat.dtype)
            # kthvalue, not quantile: works for any number of neurons (quantile is capped at 2^24 elements).
            return flat.kthvalue(k, dim=1, keepdim=True).values
        # "active": the k-th smallest *nonzero* score, k = round(p * n_nonzero), per image. Scores are >= 0, so
        # after sorting the z zero scores come first and the k-th nonzero one sits at index z + k - 1.
        ordered = flat.sort(dim=1).values
        zeros = (flat == 0).sum(1, keepdim=True)
        k = torch.round(self.percentile / 100.0 * (n - zeros).to(flat.dtype)).long()
        idx = (zeros + k - 1).clamp(min=0, max=n - 1)
        # k == 0 (nothing or too little active): prune the zero scores only (threshold 0)
        return torch.where(k > 0, ordered.gather(1, idx), torch.zeros_like(idx, dtype=flat.dtype))

    def neuron_masks(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """Per-call keep-masks (one bool tensor per ReLU call, batch first) from the NeuronMCT scores."""
        scores = self.neuron_scores(model, images, targets)
        threshold = self.thresholds(torch.cat([s.flatten(1) for s in scores], dim=1))
        return [s > threshold.view(-1, *([1] * (s.dim() - 1))) for s in scores]

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
            for m in relu_modules(model):
                handles.append(m.register_forward_hook(prune))
            logits = model(x)
        (grad,) = torch.autograd.grad(self._target_logits(logits, targets), x)
        return reduce_channels(grad, self.reduction)
