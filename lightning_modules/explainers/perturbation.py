"""Perturbation (black-box) saliency: change part of the input, watch the target score.

- ``occlusion``: Zeiler & Fergus 2014 Sec. 4.2: a ``window`` x ``window`` patch of ``fill`` slides over the
  image with ``stride``; each pixel's value is the mean drop of the target score over the windows covering
  it. Captum ``Occlusion``'s windows, batches (many windows per forward: ``perturbations_per_eval``) and map, in our
  own batched code (the same maps to float rounding; tests/test_perturbation_occlusion.py).
- ``blurred_circle_occlusion``: Fong & Vedaldi 2017 (PAPERS.md Sec. 1): the occluder is a soft disc
  (a hard disc of ``radius`` blurred with ``mask_sigma``) that blends the image with its blurred copy (the
  paper's "blur" null image, Gaussian ``blur_sigma``), the perturbation Fong's code uses to initialise its
  masks (``create_blurred_circular_mask``, ``test_circular_masks``). Here the disc slides over a grid of
  centres; each pixel's value is the mask-weighted mean drop of the target softmax probability.
- ``lime``: Ribeiro et al. 2016 Sec. 3.3-3.4, image setting of the official ``lime`` package: superpixels
  (SLIC with 50 segments by default; lime's quickshift 4/200/0.2 as an option, it is tuned for 224 px),
  ``n_samples`` random on/off superpixel patterns (off = the superpixel's
  mean colour), weights ``sqrt(exp(-d^2 / 0.25^2))`` on the cosine distance to the all-on pattern, weighted
  ridge regression (alpha 1, intercept) on the target probability; the map is each superpixel's
  coefficient. Our own batched implementation (all images and samples share the forward batches; the ridge
  problems are solved batched with ``torch.linalg.solve``); Captum's Lime runs the images one by one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import Occlusion

from lightning_modules.explainers.base import Explainer, register_explainer
from lightning_modules.models import class_probabilities


def gaussian_kernel1d(sigma: float, device=None, dtype=torch.float32, truncate: float = 4.0) -> torch.Tensor:
    radius = max(1, int(truncate * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with edge replication (scipy ``mode='nearest'``)."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, x.device, x.dtype)
    r = k.numel() // 2
    c = x.shape[1]
    # 'replicate' padding accepts a kernel radius larger than the image ('reflect' would not).
    y = F.pad(x, (r, r, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode="replicate")
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _score_fn(model, output: str):
    if output == "logit":
        return model
    if output == "prob":
        return lambda x: class_probabilities(model, model(x))
    raise ValueError(f"output must be 'logit' or 'prob', got {output!r}")


@register_explainer("occlusion")
class OcclusionExplainer(Explainer):
    """Sliding-window occlusion. ``window``/``stride`` in pixels; ``fill``: the occluder's pixel value (0.5 =
    the grey square of Zeiler & Fergus); ``output``: score whose drop is measured (``logit`` or ``prob``);
    ``samples_batch_size``: occluded images per forward pass (all images of the batch together)."""

    black_box = True

    def __init__(self, window: int = 8, stride: int = 4, fill: float = 0.5, output: str = "logit",
                 samples_batch_size: int = 128):
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
        _score_fn(None, output)
        self.window = int(window)
        self.stride = int(stride)
        self.fill = float(fill)
        self.output = output
        self.samples_batch_size = int(samples_batch_size)

    def n_windows(self, height: int, width: int) -> int:
        """Number of windows ``attribute`` scores (one forward pass of the image each): the positions of
        :meth:`window_starts` on both axes, the border-cut ones included."""
        return len(self.window_starts(height)) * len(self.window_starts(width))

    def window_starts(self, size: int) -> list[int]:
        """Start offsets of the windows along one axis, as Captum's ``Occlusion`` places them:
        ``ceil((size - window) / stride) + 1`` positions ``0, stride, 2 stride, ...``, the last one cut at the
        image border where the stride does not divide ``size - window``."""
        return [i * self.stride for i in range(-(-(size - self.window) // self.stride) + 1)]

    def attribute(self, model, images, targets):
        """Captum's ``Occlusion`` (its windows, its batches of ``perturbations_per_eval`` windows x all images, its
        map ``sum_j drop_j 1[pixel in window j] / #windows over the pixel``) without its per-window full-size
        mask arithmetic: each chunk of occluded images is one copy of the batch with the windows filled in, and
        the map is two small matmuls over the (rows x columns) grid of drops (a window's indicator is the outer
        product of a row and a column indicator). Equal to Captum to float rounding (tested)."""
        b, c, h, w = images.shape
        if self.window > min(h, w):
            raise ValueError(f"occlusion window {self.window} is larger than the image ({h}x{w}); pass a smaller window")
        score = _score_fn(model, self.output)
        ys, xs = self.window_starts(h), self.window_starts(w)
        # Captum's feature order (the row index varies fastest); it only decides which windows share a forward
        windows = [(y, x) for x in xs for y in ys]
        n = len(windows)
        per = max(1, self.samples_batch_size // b)
        base = score(images).gather(1, targets[:, None]).squeeze(1)  # (B,)
        drops = torch.empty(n, b, device=images.device, dtype=base.dtype)
        tgt = targets[:, None]
        for start in range(0, n, per):
            chunk = windows[start:start + per]
            k = len(chunk)
            x = images.unsqueeze(0).repeat(k, 1, 1, 1, 1)  # (k, B, C, H, W): window-major, as Captum's expansion
            for i, (y0, x0) in enumerate(chunk):
                x[i, :, :, y0:y0 + self.window, x0:x0 + self.window] = self.fill
            s = score(x.view(k * b, c, h, w)).view(k, b, -1).gather(2, tgt[None].expand(k, b, 1)).squeeze(2)
            drops[start:start + k] = base[None] - s
        # row / column indicators of the windows (cut at the border), the drop grid (B, rows, cols)
        rows = torch.zeros(len(ys), h, device=images.device, dtype=drops.dtype)
        cols = torch.zeros(len(xs), w, device=images.device, dtype=drops.dtype)
        for i, y0 in enumerate(ys):
            rows[i, y0:y0 + self.window] = 1
        for i, x0 in enumerate(xs):
            cols[i, x0:x0 + self.window] = 1
        grid = drops.view(len(xs), len(ys), b).permute(2, 1, 0)  # (B, rows, cols)
        total = rows.T @ grid @ cols  # (B, H, W)
        count = rows.sum(0)[:, None] * cols.sum(0)[None, :]
        return (total / count).unsqueeze(1)


def disc_masks(height: int, width: int, centres: torch.Tensor, radius: float, sigma: float) -> torch.Tensor:
    """(N, 1, H, W) soft discs: hard discs of ``radius`` at ``centres`` (N, 2) as (y, x), blurred by ``sigma``."""
    ys = torch.arange(height, device=centres.device, dtype=torch.float32).view(1, -1, 1)
    xs = torch.arange(width, device=centres.device, dtype=torch.float32).view(1, 1, -1)
    cy = centres[:, 0].view(-1, 1, 1)
    cx = centres[:, 1].view(-1, 1, 1)
    hard = ((ys - cy) ** 2 + (xs - cx) ** 2 <= radius ** 2).float().unsqueeze(1)
    return gaussian_blur(hard, sigma) if sigma > 0 else hard


@register_explainer("blurred_circle_occlusion")
class BlurredCircleOcclusion(Explainer):
    """Fong & Vedaldi's blurred circular occluder slid over the image. Defaults scaled from the 224-px
    setting (disc radius search, mask blur sigma 10, null-image blur sigma 10) to a fraction of the image:
    ``radius``, ``stride``, ``mask_sigma``, ``blur_sigma`` are fractions of min(H, W) when < 1, pixels
    otherwise. ``output``: ``prob`` (Fong: softmax probability) or ``logit``."""

    black_box = True

    def __init__(self, radius: float = 0.125, stride: float = 0.0625, mask_sigma: float = 10 / 224,
                 blur_sigma: float = 10 / 224, output: str = "prob", samples_batch_size: int = 128):
        _score_fn(None, output)
        for n, v in (("radius", radius), ("stride", stride)):
            if v <= 0:
                raise ValueError(f"{n} must be > 0, got {v}")
        self.radius = radius
        self.stride = stride
        self.mask_sigma = mask_sigma
        self.blur_sigma = blur_sigma
        self.output = output
        self.samples_batch_size = int(samples_batch_size)

    @staticmethod
    def _px(v: float, size: int) -> float:
        return v * size if v < 1 else float(v)

    def centres(self, height: int, width: int, device=None) -> torch.Tensor:
        step = max(1, int(round(self._px(self.stride, min(height, width)))))
        ys = torch.arange(step // 2, height, step, device=device, dtype=torch.float32)
        xs = torch.arange(step // 2, width, step, device=device, dtype=torch.float32)
        return torch.cartesian_prod(ys, xs)

    def masks(self, height: int, width: int, device=None) -> torch.Tensor:
        size = min(height, width)
        return disc_masks(height, width, self.centres(height, width, device), self._px(self.radius, size),
                          self._px(self.mask_sigma, size))

    def attribute(self, model, images, targets):
        b, _, h, w = images.shape
        score = _score_fn(model, self.output)
        masks = self.masks(h, w, images.device)  # (N, 1, H, W), 1 = perturbed
        n = masks.shape[0]
        null = gaussian_blur(images, self._px(self.blur_sigma, min(h, w)))
        base = score(images).gather(1, targets[:, None]).squeeze(1)  # (B,)
        drops = torch.empty(b, n, device=images.device, dtype=images.dtype)
        total = b * n
        img_idx = torch.arange(b, device=images.device).repeat_interleave(n)
        mask_idx = torch.arange(n, device=images.device).repeat(b)
        for start in range(0, total, self.samples_batch_size):
            sl = slice(start, start + self.samples_batch_size)
            m = masks[mask_idx[sl]]
            x = images[img_idx[sl]] * (1 - m) + null[img_idx[sl]] * m
            s = score(x).gather(1, targets[img_idx[sl], None]).squeeze(1)
            drops.view(-1)[sl] = base[img_idx[sl]] - s
        # Each pixel: the drops of the discs covering it, weighted by how much each disc perturbs it.
        weighted = torch.einsum("bn,nhw->bhw", drops, masks[:, 0])
        coverage = masks[:, 0].sum(dim=0).clamp_min(1e-8)
        return (weighted / coverage).unsqueeze(1)


def segment_images(images: torch.Tensor, method: str = "quickshift", **kwargs) -> torch.Tensor:
    """(B, H, W) long superpixel labels 0..K_b-1 per image (scikit-image; CPU, once per image)."""
    from skimage.segmentation import quickshift, slic

    arr = images.detach().permute(0, 2, 3, 1).cpu().double().numpy()
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    out = []
    for img in arr:  # scikit-image segments one image at a time
        if method == "quickshift":
            opts = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2, "rng": 0, **kwargs}
            seg = quickshift(img, **opts)
        elif method == "slic":
            opts = {"n_segments": 50, "compactness": 10.0, "start_label": 0, **kwargs}
            seg = slic(img, **opts)
        else:
            raise ValueError(f"segmentation must be 'quickshift' or 'slic', got {method!r}")
        _, seg = np.unique(seg, return_inverse=True)  # labels 0..K-1
        out.append(seg.reshape(img.shape[:2]))
    return torch.from_numpy(np.stack(out)).long().to(images.device)


@register_explainer("lime")
class LimeExplainer(Explainer):
    """LIME for images (official ``lime`` defaults except the segmentation). ``n_samples``: perturbed images
    per input (1000); ``segmentation``: ``slic`` (50 segments, compactness 10; the default here) or
    ``quickshift`` (lime's default 4/200/0.2, tuned for 224-px images: on 64-px scenes it gives ~4 segments); ``fill``: ``mean`` (each hidden superpixel
    takes its mean colour, lime's ``hide_color=None``) or a pixel value; ``kernel_width`` 0.25; ``alpha`` the
    ridge penalty; ``seed`` fixes the on/off patterns (the same patterns for every image, so a batch gives the
    per-image result); ``samples_batch_size``: perturbed images per forward pass."""

    black_box = True

    def __init__(self, n_samples: int = 1000, segmentation: str = "slic", segmentation_kwargs: dict | None = None,
                 fill: str | float = "mean", kernel_width: float = 0.25, alpha: float = 1.0, seed: int = 0,
                 samples_batch_size: int = 128):
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        if segmentation not in ("quickshift", "slic"):
            raise ValueError(f"segmentation must be 'quickshift' or 'slic', got {segmentation!r}")
        self.n_samples = int(n_samples)
        self.segmentation = segmentation
        self.segmentation_kwargs = dict(segmentation_kwargs or {})
        self.fill = fill
        self.kernel_width = float(kernel_width)
        self.alpha = float(alpha)
        self.seed = seed
        self.samples_batch_size = int(samples_batch_size)

    def patterns(self, n_segments: int, device) -> torch.Tensor:
        """(n_samples, n_segments) on/off patterns; row 0 is the unperturbed image (all on), as in lime.
        Drawn segment-major, so the first K columns do not depend on how many segments the batch has."""
        gen = torch.Generator().manual_seed(self.seed)
        z = (torch.rand(n_segments, self.n_samples - 1, generator=gen) < 0.5).float().t()
        return torch.cat([torch.ones(1, n_segments), z]).to(device)

    def attribute(self, model, images, targets):
        b, c, h, w = images.shape
        seg = segment_images(images, self.segmentation, **self.segmentation_kwargs)  # (B, H, W)
        k = int(seg.max()) + 1
        seg_flat = seg.view(b, -1)
        if self.fill == "mean":
            sums = torch.zeros(b, c, k, device=images.device, dtype=images.dtype)
            sums.scatter_add_(2, seg_flat[:, None].expand(b, c, -1), images.reshape(b, c, -1))
            counts = torch.bincount((seg_flat + k * torch.arange(b, device=images.device)[:, None]).view(-1),
                                    minlength=b * k).view(b, 1, k).clamp_min(1)
            fill = (sums / counts).gather(2, seg_flat[:, None].expand(b, c, -1)).view(b, c, h, w)
        else:
            fill = torch.full_like(images, float(self.fill))
        z = self.patterns(k, images.device)  # (N, K)
        n = z.shape[0]
        img_idx = torch.arange(b, device=images.device).repeat_interleave(n)
        smp_idx = torch.arange(n, device=images.device).repeat(b)
        probs = torch.empty(b * n, device=images.device, dtype=images.dtype)
        for start in range(0, b * n, self.samples_batch_size):
            sl = slice(start, start + self.samples_batch_size)
            keep = z[smp_idx[sl]].gather(1, seg_flat[img_idx[sl]]).view(-1, 1, h, w)
            x = images[img_idx[sl]] * keep + fill[img_idx[sl]] * (1 - keep)
            probs[sl] = class_probabilities(model, model(x)).gather(1, targets[img_idx[sl], None]).squeeze(1)
        y = probs.view(b, n)
        # Only each image's own K_b segments are features; the padding columns are zero (coefficient 0).
        n_seg = seg_flat.amax(dim=1) + 1  # (B,)
        valid = (torch.arange(k, device=images.device)[None] < n_seg[:, None]).float()  # (B, K)
        x_feat = z[None] * valid[:, None]  # (B, N, K)
        # Kernel on the cosine distance to the all-on pattern (lime_image: pairwise cosine distance to row 0).
        cos = (x_feat * valid[:, None]).sum(-1) / (x_feat.norm(dim=-1) * valid.norm(dim=-1)[:, None]).clamp_min(1e-12)
        d = 1 - cos
        wts = torch.sqrt(torch.exp(-(d ** 2) / self.kernel_width ** 2))  # (B, N)
        # Weighted ridge with an unpenalised intercept (sklearn Ridge: centre with the sample weights).
        wsum = wts.sum(1, keepdim=True)
        x_mean = (wts[..., None] * x_feat).sum(1, keepdim=True) / wsum[..., None]
        y_mean = (wts * y).sum(1, keepdim=True) / wsum
        xc = x_feat - x_mean
        yc = y - y_mean
        gram = torch.einsum("bnk,bn,bnl->bkl", xc, wts, xc) + self.alpha * torch.eye(k, device=images.device, dtype=images.dtype)
        rhs = torch.einsum("bnk,bn,bn->bk", xc, wts, yc)
        coef = torch.linalg.solve(gram, rhs.unsqueeze(-1)).squeeze(-1)  # (B, K)
        return coef.gather(1, seg_flat).view(b, 1, h, w)
