"""Model-independent baselines the sanity checks compare against (Adebayo et al. 2018 Sec. 3, Fig. 1;
Hooker et al. 2019 Sec. 4).

- ``sobel``: an edge detector: the magnitude of the Sobel gradients of the grayscale image
  (sqrt(Gx^2 + Gy^2), 3x3 kernels, edge-replicated border). It ignores the model and the target: a saliency
  method whose maps look like this one may be showing image structure rather than the model's reasons.
- ``random``: i.i.d. uniform noise in [0, 1), seeded, independent of the model, image content and target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_modules.explainers.base import Explainer, register_explainer

# ITU-R BT.601 luma weights: the usual RGB -> grayscale conversion (skimage.color.rgb2gray uses BT.709;
# the choice only rescales edges between colour channels).
_LUMA = (0.299, 0.587, 0.114)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W): luma for 3 channels, the mean for any other channel count."""
    if images.shape[1] == 3:
        w = torch.tensor(_LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        return (images * w).sum(dim=1, keepdim=True)
    return images.mean(dim=1, keepdim=True)


def sobel_magnitude(gray: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of (B, 1, H, W) with the 3x3 Sobel kernels, border replicated (scipy 'nearest')."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=gray.device, dtype=gray.dtype)
    kernels = torch.stack([gx, gx.t()]).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    g = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
    return g.pow(2).sum(dim=1, keepdim=True).sqrt()


@register_explainer("sobel")
class SobelEdges(Explainer):
    """Sobel edge magnitude of the grayscale image (model and target are ignored)."""

    black_box = True

    def attribute(self, model, images, targets):
        return sobel_magnitude(grayscale(images))


@register_explainer("random")
class RandomBaseline(Explainer):
    """Uniform noise in [0, 1) from a generator seeded with ``seed`` (the same maps for the same batch shape)."""

    black_box = True

    def __init__(self, seed: int = 0):
        self.seed = seed

    def attribute(self, model, images, targets):
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        b, _, h, w = images.shape
        return torch.rand(b, 1, h, w, generator=gen).to(images.device, images.dtype)


def id_seeded_random_maps(ids: torch.Tensor, shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """The random reference map as a function of the sample id: ``(B, 1, H, W)`` uniform values in [0, 1) from an
    integer hash of (seed, id, pixel index). The ``random`` explainer draws the same noise for every batch of a
    given shape, so a sample's map depends on its batch and process; here it depends on the sample only, so one
    and N processes score the same maps (batched, no per-image loop)."""
    h, w = shape
    pix = torch.arange(h * w, device=ids.device, dtype=torch.int64)
    x = (ids.reshape(-1, 1).long() * (h * w) + pix + seed * 1_000_003) & 0xFFFFFFFF
    for _ in range(2):  # the "hash32" integer mixer (x ^= x >> 16; x *= 0x45d9f3b), kept below 2**63
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    return (x.double() / 2**32).float().view(-1, 1, h, w)


#: tie orders of :func:`oracle_map` (rules of judgement 6): the evidence's interior first, or its border first
TIE_ORDERS = ("centre_first", "border_first")


def oracle_map(evidence: torch.Tensor, tie_order: str = "centre_first", sigma_fraction: float = 1 / 32) -> torch.Tensor:
    """The ground-truth evidence as a reference map with a stated order inside its ties: ``(B, 1, H, W)`` binary
    evidence (1 on the evidence) plus ``1e-3`` times a faint blur of it, so that every evidence pixel still ranks
    above every background pixel and, within each, ``centre_first`` ranks pixels deeper inside the evidence (and
    background pixels near it) first, ``border_first`` the opposite (the blur subtracted). A sort of the bare mask
    orders its ties by memory layout, which is no rule; scoring both orders shows how much the order matters."""
    if tie_order not in TIE_ORDERS:
        raise ValueError(f"tie_order must be one of {TIE_ORDERS}, got {tie_order!r}")
    if evidence.dim() != 4 or evidence.shape[1] != 1:
        raise ValueError(f"evidence must be (B, 1, H, W), got {tuple(evidence.shape)}")
    from torchvision.transforms.functional import gaussian_blur

    e = (evidence > 0.5).to(torch.float32)
    sigma = max(evidence.shape[-1] * sigma_fraction, 0.5)
    k = 2 * int(round(3 * sigma)) + 1
    blur = gaussian_blur(e, [k, k], [sigma, sigma])
    return e + (1e-3 if tie_order == "centre_first" else -1e-3) * blur
