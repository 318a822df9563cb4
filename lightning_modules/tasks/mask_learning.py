"""Meaningful-perturbation mask learning (Fong & Vedaldi, ICCV 2017, Sec. 3-4).

Deletion game (Sec. 4, Eq. 3 with the Sec. 4.1 regularisers)::

    min_m  lambda1 * ||1 - m||_1 + lambda2 * TV_beta(m) + E_tau[ f_c(Phi(x0(. - tau); m)) ]

with ``Phi(x0; m)(u) = m(u) x0(u) + (1 - m(u)) P(x0)(u)`` where ``P`` is the perturbation (Sec. 3.2: blur with
``sigma_0``, constant mean colour, or Gaussian noise), ``m = 1`` keeps a pixel and ``m = 0`` perturbs it.
The preservation game is the symmetric objective ``lambda1 ||m||_1 + lambda2 TV(m) + (1 - f_c(Phi))``: the
smallest region whose preservation keeps the score. ``objective="top5"`` minimises the summed softmax of the
clean image's top-5 classes (the masks of Table 1, ``min_top5_prob_blur`` in the official code).

Artifact suppression (Sec. 4.1): the mask is learned at ``1/delta`` resolution, upsampled (nearest, as the
official code) and blurred with ``sigma_m``; the image is randomly jittered by up to ``jitter`` pixels each
iteration. Optimiser: Adam, learning rate 0.1, 300 iterations. Initialisation ``circle``: the smallest centred
blurred circle whose deletion suppresses the score as much as the fully perturbed image (``test_circular_masks``
in the official code).

Sizes (``sigma_0``, ``sigma_m``, ``jitter``, the circle blur) are given for 224 px images (the paper's) and are
scaled by ``H / reference_size`` unless ``scale_to_image=False``. The L1 and TV sums are taken on the
low-resolution mask and rescaled to the paper's 28 x 28 = 784 mask cells, so ``lambda1``/``lambda2`` keep the
paper's meaning at any image size.

Batched: the B masks of a batch are one ``(B, 1, h, w)`` parameter; the total loss is the sum of the per-image
losses, so each mask receives exactly its own gradient, and Adam is element-wise, hence learning B masks jointly
is identical to learning them one at a time (tested).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur

from lightning_modules import progress
from lightning_modules.models import class_probabilities
from lightning_modules.validation import check_images, check_targets

GAMES = ("deletion", "preservation")
PERTURBATIONS = ("blur", "constant", "noise")
OBJECTIVES = ("target", "top5")
INITS = ("circle", "ones", "zeros", "half")
PAPER_MASK_CELLS = 28 * 28  # 224 px / delta 8, the paper's mask (official code: mask_scale=8)


@dataclass
class MaskConfig:
    """Every hyperparameter of the mask optimisation (defaults: the paper's / official code's, at 224 px)."""

    game: Literal["deletion", "preservation"] = "deletion"
    perturbation: Literal["blur", "constant", "noise"] = "blur"
    objective: Literal["target", "top5"] = "target"
    iterations: int = 300
    lr: float = 0.1
    l1_coeff: float = 1e-4  # lambda1
    tv_coeff: float = 1e-2  # lambda2
    tv_beta: float = 3.0  # beta
    mask_scale: int = 8  # delta: the mask has (H / delta) x (W / delta) cells
    mask_blur_sigma: float = 5.0  # sigma_m, in pixels at reference_size
    blur_sigma: float = 10.0  # sigma_0 of the blur perturbation, pixels at reference_size
    noise_std: float = 0.2  # std of the noise perturbation in [0, 1] pixel units
    jitter: int = 4  # random translation, pixels at reference_size
    init: Literal["circle", "ones", "zeros", "half"] = "circle"
    init_circle_sigma: float = 10.0  # blur of the circle init, pixels at reference_size
    init_radii: int = 12  # radii tried by the circle search (from 0 to the half-diagonal)
    init_tolerance: float = 0.05  # circle suppresses to within this fraction of (s_clean - s_null) of s_null
    reference_size: int = 224
    scale_to_image: bool = True
    seed: int = 0  # jitter and noise draws (a torch.Generator: reproducible, independent of global state)

    def validate(self) -> "MaskConfig":
        for name, allowed in (("game", GAMES), ("perturbation", PERTURBATIONS), ("objective", OBJECTIVES), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"MaskConfig.{name}={getattr(self, name)!r} is not one of {list(allowed)}")
        if self.iterations < 0:
            raise ValueError(f"MaskConfig.iterations must be >= 0, got {self.iterations}")
        if self.mask_scale < 1:
            raise ValueError(f"MaskConfig.mask_scale (delta) must be >= 1, got {self.mask_scale}")
        if self.lr <= 0:
            raise ValueError(f"MaskConfig.lr must be > 0, got {self.lr}")
        if min(self.l1_coeff, self.tv_coeff, self.blur_sigma, self.mask_blur_sigma, self.noise_std, self.jitter) < 0:
            raise ValueError("MaskConfig: coefficients, sigmas, noise_std and jitter must be >= 0")
        return self

    def scaled(self, image_size: int) -> dict:
        """Pixel sizes at this image size (the paper's are at ``reference_size``)."""
        s = image_size / self.reference_size if self.scale_to_image else 1.0
        return {
            "blur_sigma": self.blur_sigma * s,
            "mask_blur_sigma": self.mask_blur_sigma * s,
            "jitter": int(round(self.jitter * s)),
            "init_circle_sigma": self.init_circle_sigma * s,
        }

    @classmethod
    def from_dict(cls, d: dict | "MaskConfig" | None) -> "MaskConfig":
        if isinstance(d, MaskConfig):
            return replace(d).validate()
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown mask settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d).validate()


@dataclass
class MaskResult:
    mask: torch.Tensor  # (B, 1, H, W) in [0, 1], upsampled + blurred: 1 keeps, 0 perturbs
    mask_lowres: torch.Tensor  # (B, 1, H/delta, W/delta)
    loss_history: torch.Tensor  # (iterations, B) total loss per image
    score_history: torch.Tensor  # (iterations, B) objective term per image
    clean_score: torch.Tensor  # (B,) f_c(x0)
    null_score: torch.Tensor  # (B,) f_c(P(x0))
    final_score: torch.Tensor  # (B,) f_c(Phi(x0; m)) without jitter
    init_radius: torch.Tensor | None = None  # (B,) circle init radius in pixels
    #: ``classes``, ``substrate``, and the initial mask's ``init_score`` f_c(Phi(x0; m_0)) and ``init_area`` (B,)
    extras: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- pieces
def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (torchvision), kernel 2*ceil(3 sigma)+1 capped to the image; identity for sigma ~ 0."""
    if sigma < 1e-3:
        return x
    k = 2 * math.ceil(3 * sigma) + 1
    k = min(k, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)
    return gaussian_blur(x, [k, k], [sigma, sigma])


def gaussian_kernel1d(k: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """The 1-D Gaussian kernel of size ``k`` that ``torchvision``'s ``gaussian_blur`` uses (its arithmetic step by
    step, so the values are the same bits; tested against ``gaussian_blur`` of an impulse)."""
    lim = (k - 1) / (2.0 * math.sqrt(2.0))
    x = torch.linspace(-lim, lim, steps=k, dtype=dtype, device=device)
    return torch.softmax(x.div(sigma).pow(2).neg(), dim=0)


def _blur_matrix(n: int, k: int, sigma: float, device, dtype) -> torch.Tensor:
    """(n, n): one axis of ``_blur`` (torchvision's 1-D Gaussian kernel of size ``k``, reflect padding) as a matrix."""
    r = k // 2
    kernel = gaussian_kernel1d(k, sigma, dtype, device)
    cols = torch.arange(n, device=device)[:, None] + torch.arange(-r, r + 1, device=device)[None, :]
    cols = torch.where(cols < 0, -cols, cols)
    cols = torch.where(cols > n - 1, 2 * (n - 1) - cols, cols)  # reflect: -1 -> 1, n -> n - 2 (r < n)
    m = torch.zeros(n, n, device=device, dtype=dtype)
    return m.scatter_add_(1, cols, kernel.expand(n, k).contiguous())


@functools.lru_cache(maxsize=16)
def _blur_operator(h: int, w: int, sigma: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    k = 2 * math.ceil(3 * sigma) + 1
    k = min(k, 2 * ((min(h, w) - 1) // 2) + 1)
    return _blur_matrix(h, k, sigma, device, dtype), _blur_matrix(w, k, sigma, device, dtype).T.contiguous()


def blur_images(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``_blur`` as two matrix products, ``B_H @ x @ B_W^T``: the 2-D Gaussian kernel is the outer product of its
    1-D kernel and reflect padding acts on rows and columns independently, so the blur is separable; equal to
    ``_blur`` up to float rounding (tested). Why: a 19 x 19 depthwise convolution of a 64-px batch costs about a
    forward of the black box (at 224 px, sigma 10: 0.86 s against 14 ms for the products, batch 16, one thread)."""
    if sigma < 1e-3:
        return x
    left, right_t = _blur_operator(x.shape[-2], x.shape[-1], float(sigma), x.device, x.dtype)
    return torch.matmul(torch.matmul(left, x), right_t)


def perturbation_substrate(images: torch.Tensor, kind: str, blur_sigma: float, noise_std: float,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """``P(x0)`` of Sec. 3.2: blurred image, per-image mean colour, or Gaussian noise.

    Noise *replaces* the deleted pixels, as Eq. 3 (``Phi(x0; m)(u) = m(u) x0(u) + (1 - m(u)) eta(u)``, eta
    Gaussian) and the official code: ``eta`` is the per-image mean colour (the constant perturbation's value, the
    zero of the paper's mean-subtracted input) plus ``noise_std`` times one standard normal field, clipped to the
    pixel range. (Adding the noise to the image instead would keep the object visible: the fully perturbed image
    would still carry the class.)"""
    if kind == "blur":
        return blur_images(images, blur_sigma)
    if kind == "constant":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).contiguous()
    if kind == "noise":
        # one noise field (C, H, W) for every image: a sample's perturbation does not depend on which images share
        # its batch (so 1 and N processes, and batched vs one at a time, give the same masks)
        noise = torch.randn(images.shape[1:], generator=generator, device="cpu", dtype=images.dtype).to(images.device)
        return (images.mean(dim=(2, 3), keepdim=True) + noise_std * noise).clamp(0, 1)
    raise ValueError(f"unknown perturbation {kind!r}; use one of {list(PERTURBATIONS)}")


def upsample_mask(mask_lowres: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Nearest upsampling to the image size followed by a Gaussian blur ``sigma_m`` (Sec. 4.1)."""
    up = F.interpolate(mask_lowres, size=size, mode="nearest")
    return _blur(up, sigma)


class MaskUpsampler:
    """``upsample_mask`` as one precomputed linear operator: ``up(m) = L @ m @ R^T`` (Sec. 4.1's upsampling + blur).

    Nearest upsampling and a Gaussian blur with reflect padding are both linear and separable (the blur's 2-D
    kernel is the outer product of its 1-D kernel, reflect padding acts on rows and columns independently), so
    the whole pipeline is ``L (H x h) @ m (h x w) @ R^T (w x W)``. ``L`` and ``R`` are read off the pipeline itself
    once per mask size (``upsample_mask`` of row / column indicator masks: the blur preserves constants, so the
    indicator of row ``i`` maps to ``L[:, i] 1^T``); equal to ``upsample_mask`` up to float rounding (tested).
    Why: an 11 x 11 single-channel convolution and its backward cost about as much as the whole 64-px black box
    on a CPU; two small matmuls cost microseconds."""

    def __init__(self, low: tuple[int, int], size: tuple[int, int], sigma: float, device=None, dtype=torch.float32):
        (mh, mw), (h, w) = low, size
        eye_h = torch.eye(mh, device=device, dtype=dtype)[:, None, :, None].expand(mh, 1, mh, mw)
        eye_w = torch.eye(mw, device=device, dtype=dtype)[:, None, None, :].expand(mw, 1, mh, mw)
        self.left = upsample_mask(eye_h.contiguous(), size, sigma)[:, 0, :, 0].T.contiguous()  # (H, h)
        self.right_t = upsample_mask(eye_w.contiguous(), size, sigma)[:, 0, 0, :].contiguous()  # (w, W) = R^T
        self.low, self.size = (mh, mw), (h, w)

    def __call__(self, mask_lowres: torch.Tensor) -> torch.Tensor:
        if tuple(mask_lowres.shape[-2:]) != self.low:
            raise ValueError(f"MaskUpsampler built for {self.low} masks, got {tuple(mask_lowres.shape[-2:])}")
        return torch.matmul(torch.matmul(self.left, mask_lowres), self.right_t)

    def adjoint(self, grad: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to the low-resolution mask of a gradient ``grad`` (B, 1, H, W) with respect to
        the upsampled one: ``L^T @ grad @ R`` (what autograd's matmul backward computes, without its graph)."""
        if not hasattr(self, "_left_t"):
            self._left_t, self._right = self.left.T.contiguous(), self.right_t.T.contiguous()
        return torch.matmul(self._left_t, torch.matmul(grad, self._right))


@functools.lru_cache(maxsize=16)
def _upsampler(low: tuple[int, int], size: tuple[int, int], sigma: float, device, dtype) -> MaskUpsampler:
    """One :class:`MaskUpsampler` per (mask size, image size, sigma, device, dtype): its matrices are read off the
    blur pipeline (a few ms, as much as the rest of an iteration) and never change; every batch of a run reuses them."""
    return MaskUpsampler(low, size, sigma, device, dtype)


def tv_norm(mask: torch.Tensor, beta: float) -> torch.Tensor:
    """TV_beta(m) = sum_u |dm/dx|^beta + |dm/dy|^beta per image (B,)."""
    dy = (mask[..., 1:, :] - mask[..., :-1, :]).abs().pow(beta).sum(dim=(1, 2, 3))
    dx = (mask[..., :, 1:] - mask[..., :, :-1]).abs().pow(beta).sum(dim=(1, 2, 3))
    return dx + dy


def regulariser_grad(mask: torch.Tensor, game: str, l1: float, tv: float, beta: float) -> torch.Tensor:
    """The gradient of ``l1 * ||area||_1 + tv * TV_beta(mask)`` summed over the batch (``area`` = ``1 - mask`` in the
    deletion game, ``mask`` in the preservation game), analytically: the chain rule autograd applies to
    ``area.abs().sum()`` and ``tv_norm`` (``d|a|/da = sgn(a)``, ``d|d|^beta/dd = beta |d|^(beta-1) sgn(d)``, zero
    for ``beta = 0``), without building a graph for a few hundred mask cells each iteration (tested against it)."""
    if game == "deletion":
        grad = torch.sgn(1 - mask).mul_(-l1)
    else:
        grad = torch.sgn(mask).mul_(l1)
    if tv == 0 or beta == 0:
        return grad
    for dim in (-2, -1):
        n = mask.shape[dim]
        if n < 2:
            continue
        d = mask.narrow(dim, 1, n - 1) - mask.narrow(dim, 0, n - 1)
        if beta == 3:  # the paper's beta: |d|^2 sgn(d) = |d| d, the same floats in two fewer operations
            g = d.abs().mul_(d)
        elif beta == 2:
            g = d
        else:
            g = d.abs().pow_(beta - 1).mul_(torch.sgn(d))
        grad.narrow(dim, 1, n - 1).add_(g, alpha=beta * tv)
        grad.narrow(dim, 0, n - 1).sub_(g, alpha=beta * tv)
    return grad


class Adam:
    """``torch.optim.Adam`` (no weight decay, no amsgrad) on one tensor, op for op its single-tensor update (the
    same floats; tested): without the optimiser's per-step bookkeeping, which costs more than the update of a
    few hundred mask cells. ``step(param, grad)`` updates ``param`` in place."""

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.denom = torch.empty_like(param)
        self.steps = 0

    @torch.no_grad()
    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        self.steps += 1
        step = float(self.steps)
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1 ** step
        bias_correction2 = 1 - self.beta2 ** step
        step_size = self.lr / bias_correction1
        torch.sqrt(self.exp_avg_sq, out=self.denom).div_(bias_correction2 ** 0.5).add_(self.eps)
        param.addcdiv_(self.exp_avg, self.denom, value=-step_size)


def compose(images: torch.Tensor, substrate: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Phi(x0; m) = m x0 + (1 - m) P(x0)."""
    return mask * images + (1 - mask) * substrate


def class_scores(model: nn.Module, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Sum of the class probabilities (softmax; a multi-label model's sigmoids) of ``classes`` (B, K) -> (B,) (the
    official code's ``end_layer='prob'``)."""
    probs = class_probabilities(model, model(images))
    return probs.gather(1, classes).sum(dim=1)


def circle_masks(size: tuple[int, int], radii: torch.Tensor, sigma: float) -> torch.Tensor:
    """(R, 1, H, W) masks that are 0 inside a centred circle of each radius, 1 outside, blurred by ``sigma``."""
    h, w = size
    yy = torch.arange(h, dtype=radii.dtype, device=radii.device) - (h - 1) / 2
    xx = torch.arange(w, dtype=radii.dtype, device=radii.device) - (w - 1) / 2
    dist = (yy[:, None] ** 2 + xx[None, :] ** 2).sqrt()
    inside = (dist[None] <= radii[:, None, None]).to(radii.dtype)
    return _blur(1 - inside[:, None], sigma)


@torch.no_grad()
def circle_init(model, images, substrate, classes, radii_count: int, sigma: float, tolerance: float,
                clean: torch.Tensor, null: torch.Tensor, chunk: int = 256):
    """The smallest centred circle whose deletion suppresses the score to the fully perturbed image's level
    (within ``tolerance`` of the clean-to-null drop). Batched over images x radii. Returns (masks, radii)."""
    b, _, h, w = images.shape
    radii = torch.linspace(0, math.hypot(h, w) / 2, radii_count, device=images.device, dtype=images.dtype)
    masks = circle_masks((h, w), radii, sigma)  # (R, 1, H, W)
    r = radii.numel()
    # every (image, radius) pair, in chunks so memory stays bounded
    x = compose(images[:, None], substrate[:, None], masks[None]).flatten(0, 1)
    cls = classes.repeat_interleave(r, dim=0)
    scores = torch.cat([class_scores(model, x[i:i + chunk], cls[i:i + chunk]) for i in range(0, x.shape[0], chunk)])
    scores = scores.view(b, r)
    target = null + tolerance * (clean - null)
    ok = scores <= target[:, None]
    ok[:, -1] = True  # the largest circle covers the image: it is the fully perturbed image
    first = ok.float().argmax(dim=1)
    return masks[first], radii[first]


# --------------------------------------------------------------------------------------------- learning
def learn_masks(model: nn.Module, images: torch.Tensor, targets, config: MaskConfig | dict | None = None,
                record: bool = True) -> MaskResult:
    """Learn one mask per image, all jointly (see the module docstring). ``model`` maps [0, 1] images to logits."""
    cfg = MaskConfig.from_dict(config)
    check_images(images, model=model)
    b, _, h, w = images.shape
    n_classes = getattr(model, "num_classes", None)
    targets = check_targets(targets, b, n_classes if isinstance(n_classes, int) else None).to(images.device)
    if h < cfg.mask_scale or w < cfg.mask_scale:
        raise ValueError(f"images of {h}x{w} px are smaller than the mask cell (mask_scale={cfg.mask_scale}); lower mask_scale")
    px = cfg.scaled(min(h, w))
    gen = torch.Generator().manual_seed(cfg.seed)
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            return _learn(model, images, targets, cfg, px, gen, record)
    finally:
        model.train(was_training)
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def _input_grad(score: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d sum(score) / dx (zeros where the score does not depend on the input, as autograd would leave no gradient)."""
    if score.requires_grad:
        (grad,) = torch.autograd.grad(score.sum(), x, allow_unused=True)
        if grad is not None:
            return grad
    return torch.zeros_like(x)


def _channel_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum(dim=1, keepdim=True)`` as one multiply and C - 1 multiply-adds over (B, 1, H, W) slices: one
    pass over the (B, C, H, W) operands instead of a product and a strided channel reduction (half the time)."""
    out = torch.mul(a[:, :1], b[:, :1])
    for c in range(1, a.shape[1]):
        out.addcmul_(a[:, c:c + 1], b[:, c:c + 1])
    return out


def _learn(model, images, targets, cfg: MaskConfig, px: dict, gen: torch.Generator, record: bool) -> MaskResult:
    b, _, h, w = images.shape
    mh, mw = max(1, h // cfg.mask_scale), max(1, w // cfg.mask_scale)
    substrate = perturbation_substrate(images, cfg.perturbation, px["blur_sigma"], cfg.noise_std, gen)
    with torch.no_grad():
        logits = model(images)
        if cfg.objective == "top5":
            classes = logits.topk(min(5, logits.shape[1]), dim=1).indices
        else:
            classes = targets[:, None]
        clean = class_probabilities(model, logits).gather(1, classes).sum(1)
        null = class_scores(model, substrate, classes)

    init_radius = None
    if cfg.init == "circle":
        full, init_radius = circle_init(model, images, substrate, classes, cfg.init_radii, px["init_circle_sigma"],
                                        cfg.init_tolerance, clean, null)
        init = F.adaptive_avg_pool2d(full, (mh, mw))
        if cfg.game == "preservation":
            init = 1 - init  # keep the circle, perturb the rest
    else:
        value = {"ones": 1.0, "zeros": 0.0, "half": 0.5}[cfg.init]
        init = torch.full((b, 1, mh, mw), value, device=images.device, dtype=images.dtype)

    upsample = _upsampler((mh, mw), (h, w), px["mask_blur_sigma"], images.device, images.dtype)
    init = init.detach().clamp(0, 1)
    mask = init.clone()
    # Adam on the mask with the gradient of the summed per-image losses. Only the black box runs under autograd
    # (the gradient of the score with respect to its input, as a forward + backward of the model costs): the
    # rest of the chain (perturbed input <- upsampled mask <- mask) and the L1 / TV terms are linear or
    # elementwise and applied by hand (MaskUpsampler.adjoint, regulariser_grad), the same gradient as autograd's
    # through the whole loss up to float rounding (tested against a copy of the autograd loop).
    opt = Adam(mask, lr=cfg.lr, betas=(0.9, 0.999))
    cell_scale = PAPER_MASK_CELLS / float(mh * mw)
    l1_weight, tv_weight = cfg.l1_coeff * cell_scale, cfg.tv_coeff * cell_scale
    j = px["jitter"]
    # Phi = m x0 + (1 - m) P = P + m (x0 - P): the difference is computed once, not every iteration
    diff = images - substrate
    if j > 0:
        mode = "reflect" if j < min(h, w) else "replicate"
        sub_pad, diff_pad = F.pad(substrate, (j, j, j, j), mode=mode), F.pad(diff, (j, j, j, j), mode=mode)
        # one translation per iteration (shared by the batch, so batched == one at a time), drawn up front
        shifts = torch.randint(0, 2 * j + 1, (max(cfg.iterations, 1), 2), generator=gen).tolist()
    losses = torch.zeros(cfg.iterations, b, device=images.device)
    scores = torch.zeros(cfg.iterations, b, device=images.device)
    sign = 1.0 if cfg.game == "deletion" else -1.0  # d objective / d score
    # progress only: an inner loop, shown on a terminal beside its stage (touches no generator or tensor)
    with progress.stage(f"mask learning ({cfg.game}, {b} images)", total=cfg.iterations, unit="steps",
                        detail=True) as bar:
        for it in range(cfg.iterations):
            if j > 0:
                dy, dx = shifts[it]
                p0, d0 = sub_pad[..., dy:dy + h, dx:dx + w], diff_pad[..., dy:dy + h, dx:dx + w]
            else:
                p0, d0 = substrate, diff
            with torch.no_grad():
                up = upsample(mask)
                x = torch.addcmul(p0, up, d0)
            x.requires_grad_(True)
            score = class_scores(model, x, classes)
            grad_x = _input_grad(score, x)
            with torch.no_grad():
                grad_up = _channel_dot(grad_x, d0)  # addcmul's backward, summed over channels
                grad = upsample.adjoint(grad_up)
                if sign < 0:
                    grad.neg_()
                grad.add_(regulariser_grad(mask, cfg.game, l1_weight, tv_weight, cfg.tv_beta))
                if record:  # the loss at this iteration's mask (before the step), as the objective defines it
                    area = (1 - mask) if cfg.game == "deletion" else mask
                    l1 = area.abs().sum(dim=(1, 2, 3)) * cell_scale
                    tv = tv_norm(mask, cfg.tv_beta) * cell_scale
                    objective = score if cfg.game == "deletion" else 1 - score
                    losses[it] = cfg.l1_coeff * l1 + cfg.tv_coeff * tv + objective
                    scores[it] = score
                opt.step(mask, grad)
                mask.clamp_(0, 1)
            bar.advance()
    with torch.no_grad():
        up = upsample(mask)
        final = class_scores(model, compose(images, substrate, up), classes)
        # the starting point, measured as the final mask is (no jitter): what the optimisation itself changes
        up0 = upsample(init)
        if cfg.init in ("ones", "zeros"):
            # Phi(x0; 1) = x0 and Phi(x0; 0) = P(x0): the clean and null scores already measured, no forward
            init_score = (clean if cfg.init == "ones" else null).clone()
        else:
            init_score = class_scores(model, compose(images, substrate, up0), classes)
        init_area = ((1 - up0) if cfg.game == "deletion" else up0).mean(dim=(1, 2, 3))
    return MaskResult(up, mask, losses, scores, clean, null, final, init_radius,
                      extras={"classes": classes, "substrate": substrate, "init_score": init_score,
                              "init_area": init_area})


def normalized_score(score: torch.Tensor, clean: torch.Tensor, null: torch.Tensor, min_drop: float = 0.05) -> torch.Tensor:
    """(s - s_null) / (s_clean - s_null): 1 = unchanged, 0 = as suppressed as the fully perturbed image.

    Undefined (NaN) where the perturbation itself hardly changes the score (``s_clean - s_null < min_drop``):
    there the ratio only amplifies noise; averages use ``nanmean`` and report how many images count."""
    drop = clean - null
    return torch.where(drop >= min_drop, (score - null) / drop.clamp_min(min_drop), torch.full_like(drop, float("nan")))
