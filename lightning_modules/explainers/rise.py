"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, BMVC 2018, arXiv 1806.07421).

Saliency of class c at pixel u (paper Sec. 3, Eq. 6; official ``explanations.py``)::

    S_c(u) = 1 / (N * p) * sum_i  softmax(f(I * M_i))_c * M_i(u)

with N random masks M_i built as in the paper (Sec. 3.2): an s x s binary grid whose cells are 1 with
probability p, upsampled bilinearly to (s+1)*C_H x (s+1)*C_W (cell size C = ceil(H/s), ceil(W/s)) and cropped
at a random shift in [0, C) to H x W. The official code upsamples with ``skimage.transform.resize(order=1,
mode='reflect')``; we build the same separable bilinear operator (half-pixel centres, mirror boundary) as two
small matrices, so the masks are generated on the model's device in a few batched matmuls (tested against
scikit-image).

Implementation notes
- Masks are generated once per (N, s, p, H, W, seed, device) and cached on the explainer instance.
- One pass over the masks gives the maps of *all* classes: the softmax vectors of every masked image are kept
  and contracted with the masks (``attribute_all_classes``); ``attribute`` contracts only the targets' column.
- "Masking" keeps ``M * I + (1 - M) * baseline``. The paper multiplies the *normalised* tensor by M, i.e. the
  removed pixels take the dataset mean colour; in our [0, 1] pixel space that is ``baseline="model_mean"``
  (the ``Normalized`` wrapper's mean; 0 for a model without one). ``baseline=0.0`` gives black.
- (image, mask) pairs are evaluated in chunks sized by a memory budget: ``max_batch_elements`` masked images
  per forward pass, or, when not given, as many as fit ``memory_budget_mb`` for the masked inputs plus the
  model's activations (an upper bound measured once per model and input shape by a probe forward with hooks).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from lightning_modules.explainers.base import Explainer, register_explainer
from lightning_modules.models import class_probabilities

#: Default working-set budget for one chunk of masked images (inputs + activations + outputs).
DEFAULT_MEMORY_BUDGET_MB = 512.0


def bilinear_matrix(n_in: int, n_out: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(n_out, n_in) linear operator of 1-D bilinear resizing with half-pixel centres and mirror boundary.

    Equals ``skimage.transform.resize(x, n_out, order=1, mode='reflect', anti_aliasing=False)`` along one axis
    (skimage's 'reflect' = scipy.ndimage 'mirror': reflection about the edge sample), which is what the official
    RISE code uses to upsample the grid.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"resize sizes must be positive, got {n_in} -> {n_out}")
    out = torch.arange(n_out, device=device, dtype=torch.float64)
    x = (out + 0.5) * (n_in / n_out) - 0.5
    x0 = torch.floor(x)
    t = x - x0
    x0 = x0.long()

    def mirror(k: torch.Tensor) -> torch.Tensor:
        if n_in == 1:
            return torch.zeros_like(k)
        period = 2 * (n_in - 1)
        k = torch.remainder(k, period)
        return torch.where(k > n_in - 1, period - k, k)

    A = torch.zeros(n_out, n_in, device=device, dtype=torch.float64)
    rows = torch.arange(n_out, device=device)
    A.index_put_((rows, mirror(x0)), 1.0 - t, accumulate=True)
    A.index_put_((rows, mirror(x0 + 1)), t, accumulate=True)
    return A.to(dtype)


def generate_rise_masks(
    n_masks: int,
    grid_size: int,
    p: float,
    size: tuple[int, int],
    seed: int = 0,
    device: torch.device | str = "cpu",
    chunk: int = 1024,
) -> torch.Tensor:
    """The paper's random masks, (N, 1, H, W) float in [0, 1], deterministic given ``seed`` (and device).

    Steps (Sec. 3.2): binary s x s grid ~ Bernoulli(p); bilinear upsampling to (s+1)*C; random crop of H x W at
    a shift in [0, C). Generated in chunks of masks so the upsampled buffer stays small.
    """
    if n_masks < 1:
        raise ValueError(f"n_masks must be >= 1, got {n_masks}")
    if grid_size < 1:
        raise ValueError(f"grid_size must be >= 1, got {grid_size}")
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p (probability that a grid cell is kept) must be in (0, 1], got {p}")
    H, W = int(size[0]), int(size[1])
    if H < 1 or W < 1:
        raise ValueError(f"mask size must be positive, got {size}")
    device = torch.device(device)
    cell_h, cell_w = math.ceil(H / grid_size), math.ceil(W / grid_size)
    up_h, up_w = (grid_size + 1) * cell_h, (grid_size + 1) * cell_w
    A_h = bilinear_matrix(grid_size, up_h, device)
    A_w = bilinear_matrix(grid_size, up_w, device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    # One draw for all grids and all shifts, so the masks do not depend on the generation chunk size.
    grids = (torch.rand(n_masks, grid_size, grid_size, generator=gen, device=device) < p).float()
    shift_h = torch.randint(0, cell_h, (n_masks,), generator=gen, device=device)
    shift_w = torch.randint(0, cell_w, (n_masks,), generator=gen, device=device)
    masks = torch.empty(n_masks, 1, H, W, device=device)
    ar_h = torch.arange(H, device=device)
    ar_w = torch.arange(W, device=device)
    for start in range(0, n_masks, chunk):
        sl = slice(start, min(start + chunk, n_masks))
        # Only the rows/columns of the operator that the crop keeps: (n, H, s) and (n, W, s).
        rows = A_h[shift_h[sl, None] + ar_h]
        cols = A_w[shift_w[sl, None] + ar_w]
        masks[sl, 0] = torch.einsum("nhs,nst,nwt->nhw", rows, grids[sl], cols)
    return masks.clamp_(0.0, 1.0)


def _activation_bytes_per_sample(model: nn.Module, image: torch.Tensor) -> int:
    """Upper bound of one sample's forward working set: its input plus every leaf module's output.

    Measured by a probe forward with hooks (no gradients); conservative because activations of finished
    layers are freed during the real forward.
    """
    total = [image[:1].numel() * image.element_size()]

    def hook(_m, _inp, out):
        if isinstance(out, torch.Tensor):
            total[0] += out[:1].numel() * out.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(image[:1])
    finally:
        for h in handles:
            h.remove()
    return int(total[0])


def unique_images(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(distinct images, inverse)`` of a batch in which an image may repeat (the pointing game's (image, class)
    trials), so that RISE masks and scores each image once; ``(images, None)`` when none repeats."""
    uniq, inverse = torch.unique(images.reshape(images.shape[0], -1), dim=0, return_inverse=True)
    if uniq.shape[0] == images.shape[0]:
        return images, None
    return uniq.reshape(-1, *images.shape[1:]), inverse


@register_explainer("rise")
class RISE(Explainer):
    """RISE (Petsiuk et al. 2018). See the module docstring for the method and the implementation.

    Args:
        n_masks: N. Paper: 4000 (ImageNet, unconfirmed); official notebook 6000; TorchRay 8000.
        grid_size: s (cells per side). Paper/TorchRay: 7.
        p: probability a cell is kept. Paper/TorchRay: 0.5 (official notebook 0.1).
        seed: seed of the mask generator.
        baseline: value of removed pixels: ``"model_mean"`` (paper: 0 in normalised space), or a number in pixel space.
        max_batch_elements: masked images per forward pass; overrides ``memory_budget_mb``.
        memory_budget_mb: working-set budget of one forward chunk (masked inputs + activations) when
            ``max_batch_elements`` is not given.
        output: ``"softmax"`` (paper: class probabilities) or ``"logits"``/``"identity"`` (the model's raw output).
    """

    black_box = True

    def __init__(
        self,
        n_masks: int = 4000,
        grid_size: int = 7,
        p: float = 0.5,
        seed: int = 0,
        baseline: str | float = "model_mean",
        max_batch_elements: int | None = None,
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        output: str = "softmax",
    ):
        if int(n_masks) < 1:
            raise ValueError(f"n_masks must be >= 1, got {n_masks}")
        if int(grid_size) < 1:
            raise ValueError(f"grid_size must be >= 1, got {grid_size}")
        if not 0.0 < float(p) <= 1.0:
            raise ValueError(f"p must be in (0, 1], got {p}")
        if max_batch_elements is not None and int(max_batch_elements) < 1:
            raise ValueError(f"max_batch_elements must be >= 1 (or None to use memory_budget_mb), got {max_batch_elements}")
        if not float(memory_budget_mb) > 0:
            raise ValueError(f"memory_budget_mb must be > 0, got {memory_budget_mb}")
        if output not in ("softmax", "logits", "identity"):
            raise ValueError(f"output must be 'softmax', 'logits' or 'identity', got {output!r}")
        if isinstance(baseline, str) and baseline != "model_mean":
            raise ValueError(f"baseline must be 'model_mean' or a number (pixel value), got {baseline!r}")
        self.n_masks = int(n_masks)
        self.grid_size = int(grid_size)
        self.p = float(p)
        self.seed = int(seed)
        self.baseline = baseline
        self.max_batch_elements = None if max_batch_elements is None else int(max_batch_elements)
        self.memory_budget_mb = float(memory_budget_mb)
        self.output = output
        self._masks: torch.Tensor | None = None
        self._masks_key: tuple | None = None
        self._chunk_cache: dict = {}
        #: Diagnostics of the last call: chunk size and number of forward passes.
        self.last_chunk_size: int | None = None
        self.last_forward_passes: int | None = None

    # -- masks ----------------------------------------------------------------------------------------------
    def masks(self, size: tuple[int, int], device: torch.device | str) -> torch.Tensor:
        """The cached (N, 1, H, W) masks for this spatial size and device (generated on first use)."""
        device = torch.device(device)
        key = (self.n_masks, self.grid_size, self.p, int(size[0]), int(size[1]), self.seed, str(device))
        if self._masks is None or self._masks_key != key:
            self._masks = generate_rise_masks(self.n_masks, self.grid_size, self.p, size, self.seed, device)
            self._masks_key = key
        return self._masks

    # -- chunking -------------------------------------------------------------------------------------------
    def chunk_size(self, model: nn.Module, images: torch.Tensor) -> int:
        """Masked images per forward pass: ``max_batch_elements`` or what fits ``memory_budget_mb``."""
        if self.max_batch_elements is not None:
            return self.max_batch_elements
        key = (id(model), tuple(images.shape[1:]), images.dtype, str(images.device))
        if key not in self._chunk_cache:
            per_sample = _activation_bytes_per_sample(model, images)
            self._chunk_cache[key] = max(1, int(self.memory_budget_mb * 2**20 // per_sample))
        return self._chunk_cache[key]

    def _baseline_tensor(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if self.baseline == "model_mean":
            mean = getattr(model, "mean", None)
            if isinstance(mean, torch.Tensor) and mean.numel() in (1, images.shape[1]):
                return mean.to(images).reshape(1, -1, 1, 1)
            return images.new_zeros(1, 1, 1, 1)
        return images.new_full((1, 1, 1, 1), float(self.baseline))

    # -- the method -----------------------------------------------------------------------------------------
    def _scores(self, model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2:
            raise RuntimeError(f"RISE needs a classifier returning (batch, classes); got output shape {tuple(logits.shape)}")
        # "softmax": the class probabilities (a multi-label model's own sigmoids, models.class_probabilities)
        return class_probabilities(model, logits) if self.output == "softmax" else logits

    def _chunks(self, model: nn.Module, images: torch.Tensor):
        """Yield ``(image slice, mask slice, scores (b, n, K))`` over all (image, mask) pairs, ``chunk`` pairs
        per forward pass (several images per pass when N < chunk)."""
        B, C, H, W = images.shape
        masks = self.masks((H, W), images.device)
        base = self._baseline_tensor(model, images).unsqueeze(1)          # (1, 1, C|1, 1, 1)
        chunk = self.chunk_size(model, images)
        N = masks.shape[0]
        imgs_per_pass = max(1, chunk // N)
        masks_per_pass = min(N, chunk)
        passes = 0
        for b0 in range(0, B, imgs_per_pass):
            b1 = min(B, b0 + imgs_per_pass)
            delta = images[b0:b1, None] - base                            # (b, 1, C, H, W)
            for m0 in range(0, N, masks_per_pass):
                m1 = min(N, m0 + masks_per_pass)
                masked = (base + masks[None, m0:m1] * delta).reshape(-1, C, H, W)
                scores = self._scores(model, model(masked)).reshape(b1 - b0, m1 - m0, -1)
                passes += 1
                yield slice(b0, b1), slice(m0, m1), scores
        self.last_chunk_size = chunk
        self.last_forward_passes = passes

    def _accumulate(self, model: nn.Module, images: torch.Tensor, reduce) -> torch.Tensor:
        """Sum over chunks of ``reduce(scores (b, n, K), masks (n, H*W), image slice)``, divided by N * p (Eq. 6)."""
        B, _, H, W = images.shape
        flat_masks = self.masks((H, W), images.device).reshape(self.n_masks, H * W)
        total = None
        for bs, ms, scores in self._chunks(model, images):
            part = reduce(scores, flat_masks[ms], bs)
            if total is None:
                total = part.new_zeros((B,) + part.shape[1:])
            total[bs] += part
        return total / (self.n_masks * self.p)

    def class_scores(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(B, N, K): the model's scores (softmax by default) on every masked image. With ``maps_from_scores``
        this gives the map of any class and of any prefix of the masks (the first n of N i.i.d. masks are a
        RISE estimator with n masks) from one pass, as the convergence study needs."""
        from lightning_modules.explainers.base import model_state_guard
        from lightning_modules.validation import check_images

        check_images(images, model=model)
        todo, inverse = unique_images(images)
        out = None
        with model_state_guard(model), torch.no_grad():
            for bs, ms, scores in self._chunks(model, todo):
                if out is None:
                    out = scores.new_empty(todo.shape[0], self.n_masks, scores.shape[-1])
                out[bs, ms] = scores
        return out if inverse is None else out[inverse]

    def maps_from_scores(self, scores: torch.Tensor, size: tuple[int, int], n: int | None = None) -> torch.Tensor:
        """(B, 1, H, W) maps from per-mask scores ``(B, N)`` of one class each, using the first ``n`` masks."""
        n = self.n_masks if n is None else int(n)
        if not 1 <= n <= self.n_masks or scores.dim() != 2 or scores.shape[1] < n:
            raise ValueError(f"need scores (B, >= n) and 1 <= n <= n_masks={self.n_masks}; got {tuple(scores.shape)}, n={n}")
        H, W = size
        masks = self.masks((H, W), scores.device)[:n].reshape(n, H * W)
        return (scores[:, :n] @ masks / (n * self.p)).reshape(-1, 1, H, W)

    def attribute_all_classes(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(B, K, H, W): the saliency of every class, from one pass over the masks."""
        B, C, H, W = images.shape
        out = self._accumulate(model, images, lambda s, m, _: torch.einsum("bnk,np->bkp", s, m))
        return out.reshape(B, -1, H, W)

    def attribute(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        B, C, H, W = images.shape
        uniq, inverse = unique_images(images)
        if inverse is not None:
            # one image explained for several classes: every requested class's map read from the same scores
            classes, t_idx = torch.unique(targets, return_inverse=True)
            maps = self._accumulate(model, uniq, lambda s, m, _: torch.einsum("bnk,np->bkp", s[..., classes], m))
            return maps[inverse, t_idx].reshape(B, 1, H, W)

        def reduce(scores, m, idx):
            t = targets[idx]
            picked = scores.gather(2, t.view(-1, 1, 1).expand(-1, scores.shape[1], 1)).squeeze(2)  # (b, n)
            return picked @ m                                                                        # (b, H*W)

        try:
            return self._accumulate(model, images, reduce).reshape(B, 1, H, W)
        except RuntimeError as e:
            if "index" in str(e) and "out of bounds" in str(e):
                raise ValueError(f"a target class is out of range for the model's outputs ({e}); pass class indices 0..K-1") from None
            raise

    def explain_all_classes(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Public all-classes entry point with the same validation and model-state guard as ``__call__``."""
        from lightning_modules.explainers.base import model_state_guard
        from lightning_modules.validation import check_images

        check_images(images, model=model)
        with model_state_guard(model), torch.no_grad():
            return self.attribute_all_classes(model, images).detach()
