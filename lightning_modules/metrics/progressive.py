"""The engine shared by deletion/insertion (RISE) and pixel perturbation (Khakzar): replace pixels in saliency
order and score every step, all steps of all images in batched forward passes.

Step ``s`` of image ``b`` is ``where(rank_b < count_s, finish_b, start_b)``: the ``count_s`` highest-ranked
pixels come from ``finish``, the rest from ``start`` (deletion: start = image, finish = substrate; insertion:
start = blurred image, finish = image). The ``B * S`` step images are built chunk by chunk straight from the
ranks by broadcasting (no per-pair copies), so memory stays at ``max_batch`` images whatever the number of steps.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

Substrate = Union[str, float, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def pixel_ranks(heatmaps: torch.Tensor, descending: bool = True) -> torch.Tensor:
    """Rank of every pixel, ``(B, H*W)`` long: 0 for the first pixel to change. Ties keep raster order (stable)."""
    flat = heatmaps.flatten(1)
    order = torch.sort(flat, dim=1, descending=descending, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def blur(images: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Gaussian blur (torchvision; reflect padding). RISE's insertion start: ``gkern(11, 5)``."""
    from torchvision.transforms.functional import gaussian_blur  # imported here: torchvision's import is slow

    return gaussian_blur(images, [kernel_size, kernel_size], [sigma, sigma])


def make_substrate(substrate: Substrate, images: torch.Tensor, model: nn.Module | None = None,
                   blur_kernel: int = 11, blur_sigma: float = 5.0) -> torch.Tensor:
    """The image pixels are replaced with, ``(B, C, H, W)``.

    ``"mean"``: the model's normalisation mean colour (``Normalized.mean``), i.e. RISE's zeros in normalised space;
    ``"zeros"``: black in pixel space; ``"blur"``: the blurred image; ``"image_mean"``: each image's mean colour;
    a float or a ``(C,)`` tensor: a constant colour; a callable: ``images -> substrate``.
    """
    if callable(substrate) and not isinstance(substrate, torch.Tensor):
        out = substrate(images)
    elif isinstance(substrate, str):
        if substrate == "mean":
            mean = getattr(model, "mean", None)
            if not isinstance(mean, torch.Tensor) or mean.numel() != images.shape[1]:
                raise ValueError(
                    "substrate='mean' needs the model's mean colour (a Normalized model from load_model has it); "
                    "pass the colour itself as a (C,) tensor, or substrate='zeros' / 'image_mean' / 'blur'"
                )
            out = mean.to(images).view(1, -1, 1, 1).expand_as(images)
        elif substrate == "zeros":
            out = torch.zeros_like(images)
        elif substrate == "blur":
            out = blur(images, blur_kernel, blur_sigma)
        elif substrate == "image_mean":
            out = images.mean(dim=(2, 3), keepdim=True).expand_as(images)
        else:
            raise ValueError(f"unknown substrate {substrate!r}; known: 'mean', 'zeros', 'blur', 'image_mean', "
                             "a float, a (C,) colour tensor or a callable")
    else:
        colour = torch.as_tensor(substrate, dtype=images.dtype, device=images.device)
        if colour.numel() not in (1, images.shape[1]):
            raise ValueError(f"substrate colour has {colour.numel()} values, the images have {images.shape[1]} channels")
        out = colour.reshape(1, -1, 1, 1).expand_as(images)
    if out.shape != images.shape:
        raise ValueError(f"substrate has shape {tuple(out.shape)}, expected the images' {tuple(images.shape)}")
    return out


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Score the model deterministically (no dropout, BN running stats) and restore its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def target_scores(logits: torch.Tensor, targets: torch.Tensor, output: str) -> torch.Tensor:
    if output == "prob":
        return F.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    if output == "logit":
        return logits.gather(1, targets[:, None]).squeeze(1)
    raise ValueError(f"output must be 'prob' or 'logit', got {output!r}")


def forward_batch_sizes(n_images: int, steps: int, max_batch: int) -> list[tuple[int, int, int, int]]:
    """The ``(b0, b1, s0, s1)`` blocks scored per forward: whole images' step ranges, at most ``max_batch`` images.

    A block never straddles two images' partial step ranges, so it is built by broadcasting ``(nb, ns)`` without
    gathering per-pair copies of the images.
    """
    imgs_per_pass = max(1, max_batch // steps)
    steps_per_pass = min(steps, max_batch)
    return [(b0, min(n_images, b0 + imgs_per_pass), s0, min(steps, s0 + steps_per_pass))
            for b0 in range(0, n_images, imgs_per_pass) for s0 in range(0, steps, steps_per_pass)]


def progressive_scores(model: nn.Module, start: torch.Tensor, finish: torch.Tensor, ranks: torch.Tensor,
                       counts: torch.Tensor, targets: torch.Tensor, max_batch: int = 256,
                       output: str = "prob") -> torch.Tensor:
    """Target score after replacing the ``counts[s]`` top-ranked pixels of ``start`` by ``finish``: ``(B, S)``."""
    b, c, h, w = start.shape
    finish = finish.to(start.dtype)  # lerp (below) takes one dtype
    steps = counts.numel()
    counts = counts.to(ranks.device)
    scores = torch.empty(b, steps, device=start.device)
    with eval_mode(model):
        for b0, b1, s0, s1 in forward_batch_sizes(b, steps, max_batch):
            nb, ns = b1 - b0, s1 - s0
            take_finish = (ranks[b0:b1, None, :] < counts[None, s0:s1, None]).view(nb, ns, 1, h, w)
            # lerp with weights 0 / 1 is ``where`` bit for bit on finite pixels (``end - (end - start) * 0`` at 1)
            # and a third faster on the CPU: ``where``'s boolean kernel is the engine's largest cost after the model
            x = torch.lerp(start[b0:b1, None], finish[b0:b1, None], take_finish.to(start.dtype)).view(nb * ns, c, h, w)
            block = target_scores(model(x), targets[b0:b1].repeat_interleave(ns), output)
            scores[b0:b1, s0:s1] = block.view(nb, ns)
    return scores


def trapezoid_auc(curves: torch.Tensor) -> torch.Tensor:
    """RISE's ``auc``: trapezoid rule over equally spaced steps on [0, 1]: ``(sum - s0/2 - sN/2) / (S - 1)``."""
    return (curves.sum(1) - curves[:, 0] / 2 - curves[:, -1] / 2) / (curves.shape[1] - 1)
