"""Synthetic scenes with exact ground truth: the embedded data of every replication (ARCHITECTURE.md,
"The embedded data").

Each scene is an RGB image on a textured, cluttered background (smooth colour field, oriented stripes,
noise, non-class distractor shapes: rings, bars, hollow squares) with one or more *creatures*:

- a **body** (ellipse, random muted colour: carries no class information),
- a **head** above it carrying two **eyes**: the head's *shape* (circle, square, triangle, diamond, plus)
  and *colour family* (red, blue, green, yellow) decide the class, ``class = colour * 5 + shape``,
- two **feet** below it, drawn from the same distribution for every class (non-discriminative).

So "the evidence the model must use" is known by construction: the head. Every object has a box, a
segmentation mask, and keypoints (``eyes``, ``feet``). Options: image size, objects per image (several
objects or small objects make the pointing game's "difficult" subset), distractors, and a spurious
artifact (a colour-coded corner patch) that agrees with the label at a chosen rate in the training split
only (elsewhere its colour is random).

Rendering is vectorised over images (torch, chunks of ``CHUNK`` images); parameters are drawn per chunk
from ``numpy.random.default_rng([seed, split, chunk])``, so a split is deterministic given its config and
a re-render with parts omitted (``omit=("head",)``) is the exact counterfactual image (what lies behind
the head). Splits are cached under ``<data root>/scenes/<config hash>.pt``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lightning_modules.data.rendered import (SPLITS, RenderedScenes, RenderedScenesDataModule, SplitSizes, load_rendered,
                                             render_in_chunks)

#: bump when rendering changes: cached files of older versions are then regenerated
GENERATOR_VERSION = 1
SHAPES = ("circle", "square", "triangle", "diamond", "plus")
#: hue of each head colour family (red, blue, green, yellow)
HEAD_HUES = (0.0, 0.62, 0.33, 0.15)
MAX_CLASSES = len(SHAPES) * len(HEAD_HUES)
PARTS = ("head", "body", "feet", "eyes")
#: bits of the stored per-pixel mask byte
_BIT_MASK, _BIT_HEAD, _BIT_FEET, _BIT_ALL = 1, 2, 4, 8


def class_name(c: int) -> str:
    return f"{('red', 'blue', 'green', 'yellow')[c // len(SHAPES)]}_{SHAPES[c % len(SHAPES)]}"


@dataclass(frozen=True)
class ScenesConfig(SplitSizes):
    """Everything that decides the content of the scenes (hashed into the cache file name: ``content_hash``)."""

    generator_version = GENERATOR_VERSION

    image_size: int = 64
    num_classes: int = 10
    #: objects per image: uniform in [min_objects, max_objects]; several objects are placed in distinct
    #: cells of a 2x2 grid, at a smaller scale
    min_objects: int = 1
    max_objects: int = 2
    #: probability that an image has more than ``min_objects`` objects (when max_objects > min_objects)
    multi_object_prob: float = 0.15
    #: extra objects: "same" = the class of the main object (no label ambiguity), "any" = random classes
    extra_object_classes: str = "same"
    #: probability that a single main object is drawn small (scale 0.5..0.65 instead of 0.85..1.15)
    small_object_prob: float = 0.15
    #: at most this many non-class distractor shapes per image (uniform 0..max)
    max_distractors: int = 4
    #: spurious artifact: the corner patch's colour equals the label's colour code with this probability in
    #: the training split (random otherwise, and always random in the other splits); None = no artifact
    spurious_rate: float | None = None
    train_size: int = 8000
    val_size: int = 1000
    test_size: int = 1000
    heldout_size: int = 1000
    seed: int = 0

    def __post_init__(self):
        if not 16 <= self.image_size <= 256:
            raise ValueError(f"image_size must be in [16, 256] (64 default, up to 128 tested), got {self.image_size}")
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"num_classes must be in [2, {MAX_CLASSES}] ({len(SHAPES)} head shapes x {len(HEAD_HUES)} colours), got {self.num_classes}")
        if not 1 <= self.min_objects <= self.max_objects <= 4:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 4, got {self.min_objects}, {self.max_objects}")
        if self.extra_object_classes not in ("same", "any"):
            raise ValueError(f"extra_object_classes must be 'same' or 'any', got {self.extra_object_classes!r}")
        if self.spurious_rate is not None and not 0.0 <= self.spurious_rate <= 1.0:
            raise ValueError(f"spurious_rate must be in [0, 1] or None, got {self.spurious_rate}")
        for name in ("multi_object_prob", "small_object_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if min(self.train_size, self.val_size, self.test_size, self.heldout_size) < 0 or self.max_distractors < 0:
            raise ValueError("split sizes and max_distractors must be >= 0")


#: named configurations: ``smoke`` renders in well under a second, ``default`` is the embedded replication's
PROFILES: dict[str, ScenesConfig] = {
    "default": ScenesConfig(),
    "smoke": ScenesConfig(image_size=32, train_size=600, val_size=200, test_size=200, heldout_size=100, max_distractors=2),
}


# --------------------------------------------------------------------------------------------- sampling
def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, arrays of any shape -> (..., 3)."""
    h = np.mod(h, 1.0) * 6.0
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], -1).astype(np.float32)


def _sample_chunk(cfg: ScenesConfig, split: str, chunk: int, n: int) -> dict:
    """All random parameters of ``n`` scenes (one chunk); deterministic given (seed, split, chunk)."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), chunk, GENERATOR_VERSION])
    H = cfg.image_size
    M = cfg.max_objects
    p: dict = {}
    # background: smooth colour field, oriented stripes, mid-frequency blotches, pixel noise
    p["bg_field"] = rng.uniform(0.2, 0.8, (n, 3, 4, 4)).astype(np.float32)
    p["bg_blotch"] = rng.normal(0, 0.07, (n, 1, 8, 8)).astype(np.float32)
    p["stripe_freq"] = rng.uniform(0.15, 0.6, n).astype(np.float32) * 64 / H
    p["stripe_angle"] = rng.uniform(0, math.pi, n).astype(np.float32)
    p["stripe_phase"] = rng.uniform(0, 2 * math.pi, n).astype(np.float32)
    p["stripe_amp"] = rng.uniform(0.02, 0.08, n).astype(np.float32)
    p["noise"] = rng.normal(0, 0.025, (n, 1, H, H)).astype(np.float32)
    # distractors: type 0 ring, 1 bar, 2 hollow square
    D = cfg.max_distractors
    p["n_distractors"] = rng.integers(0, D + 1, n) if D else np.zeros(n, np.int64)
    p["d_type"] = rng.integers(0, 3, (n, D))
    p["d_xy"] = rng.uniform(0, H, (n, D, 2)).astype(np.float32)
    p["d_size"] = rng.uniform(3, 8, (n, D)).astype(np.float32) * H / 64
    p["d_angle"] = rng.uniform(0, math.pi, (n, D)).astype(np.float32)
    p["d_color"] = hsv_to_rgb(rng.uniform(0, 1, (n, D)), rng.uniform(0.2, 1, (n, D)), rng.uniform(0.3, 1, (n, D)))
    # objects
    label = rng.integers(0, cfg.num_classes, n)
    if M > cfg.min_objects:
        multi = rng.uniform(size=n) < cfg.multi_object_prob
        n_obj = np.where(multi, rng.integers(cfg.min_objects + 1, M + 1, n) if M > cfg.min_objects + 1 else M, cfg.min_objects)
        n_obj = np.maximum(n_obj, cfg.min_objects)
    else:
        n_obj = np.full(n, cfg.min_objects)
    cls = np.where(np.arange(M)[None] == 0, label[:, None], label[:, None] if cfg.extra_object_classes == "same"
                   else rng.integers(0, cfg.num_classes, (n, M)))
    small = (rng.uniform(size=n) < cfg.small_object_prob) & (n_obj == 1)
    scale = np.where(n_obj[:, None] > 1, rng.uniform(0.55, 0.75, (n, M)),
                     np.where(small[:, None], rng.uniform(0.5, 0.65, (n, M)), rng.uniform(0.85, 1.15, (n, M))))
    # cells: one object -> the whole image; several -> distinct cells of a 2x2 grid
    cells = np.argsort(rng.uniform(size=(n, 4)), axis=1)[:, :M]
    whole = n_obj[:, None] == 1
    half = H / 2
    cx0 = np.where(whole, 0.0, (cells % 2) * half)
    cy0 = np.where(whole, 0.0, (cells // 2) * half)
    extent = np.where(whole, float(H), half)
    u = scale * H / 64
    # object extent around (cx, cy): x +-9u, y from -17.5u (head top) to +10.5u (feet bottom)
    lo_x, hi_x = cx0 + 9 * u + 1, cx0 + extent - 9 * u - 1
    lo_y, hi_y = cy0 + 17.5 * u + 1, cy0 + extent - 10.5 * u - 1
    p["cx"] = (lo_x + rng.uniform(size=(n, M)) * np.maximum(hi_x - lo_x, 0)).astype(np.float32)
    p["cy"] = (lo_y + rng.uniform(size=(n, M)) * np.maximum(hi_y - lo_y, 0)).astype(np.float32)
    p["u"] = u.astype(np.float32)
    p["head_dx"] = rng.uniform(-2, 2, (n, M)).astype(np.float32)
    p["active"] = np.arange(M)[None] < n_obj[:, None]
    p["cls"] = cls
    hue = np.asarray(HEAD_HUES)[cls // len(SHAPES)] + rng.uniform(-0.03, 0.03, (n, M))
    p["head_color"] = hsv_to_rgb(hue, rng.uniform(0.75, 1, (n, M)), rng.uniform(0.75, 1, (n, M)))
    p["body_color"] = hsv_to_rgb(rng.uniform(0, 1, (n, M)), rng.uniform(0.15, 0.45, (n, M)), rng.uniform(0.35, 0.75, (n, M)))
    p["feet_color"] = hsv_to_rgb(rng.uniform(0, 1, (n, M)), rng.uniform(0, 0.3, (n, M)), rng.uniform(0.1, 0.3, (n, M)))
    p["label"] = label
    p["n_obj"] = n_obj
    p["small"] = small
    # spurious artifact: colour code of a class in the bottom-right corner
    if cfg.spurious_rate is None:
        p["artifact"] = np.full(n, -1)
    else:
        random_code = rng.integers(0, cfg.num_classes, n)
        agree = rng.uniform(size=n) < (cfg.spurious_rate if split == "train" else 0.0)
        p["artifact"] = np.where(agree, label, random_code)
    return p


# --------------------------------------------------------------------------------------------- rendering
def ellipse_mask(X, Y, cx, cy, rx, ry):
    return ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0


def _head_mask(X, Y, hx, hy, r, shape):
    dx, dy = (X - hx).abs(), Y - hy
    adx, ady = dx, dy.abs()
    masks = (
        dx**2 + dy**2 <= r**2,
        torch.maximum(adx, ady) <= 0.82 * r,
        (dy >= -r) & (dy <= 0.75 * r) & (adx <= 0.62 * (dy + r)),
        adx + ady <= 1.15 * r,
        ((adx <= 0.38 * r) & (ady <= r)) | ((ady <= 0.38 * r) & (adx <= r)),
    )
    out = torch.zeros_like(masks[0])
    for k, m in enumerate(masks):
        out |= m & (shape == k)
    return out


def paint(img, mask, color):
    """img (n,3,H,W), mask (n,H,W) bool, color (n,3) -> painted in place."""
    torch.where(mask[:, None], color[:, :, None, None], img, out=img)


def render_chunk(p: dict, cfg: ScenesConfig, omit: tuple[str, ...] = ()) -> dict:
    """Render one chunk of sampled parameters into tensors (uint8 images, bit-packed masks, boxes, keypoints).

    ``omit``: parts not drawn (``"head"`` also removes the eyes, ``"feet"``, ``"body"``, ``"eyes"``,
    ``"distractors"``, ``"artifact"``): the counterfactual scene without them.
    """
    bad = set(omit) - {*PARTS, "distractors", "artifact"}
    if bad:
        raise ValueError(f"unknown parts to omit {sorted(bad)}; known: {PARTS + ('distractors', 'artifact')}")
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in p.items()}
    n, H, M = t["label"].shape[0], cfg.image_size, cfg.max_objects
    ar = torch.arange(H, dtype=torch.float32) + 0.5  # pixel centres
    Y, X = ar.view(1, H, 1), ar.view(1, 1, H)
    # background
    img = F.interpolate(t["bg_field"], size=(H, H), mode="bilinear", align_corners=False)
    img = img + F.interpolate(t["bg_blotch"], size=(H, H), mode="bilinear", align_corners=False)
    ang, fr = t["stripe_angle"].view(n, 1, 1), t["stripe_freq"].view(n, 1, 1)
    stripes = torch.sin(fr * (X * torch.cos(ang) + Y * torch.sin(ang)) + t["stripe_phase"].view(n, 1, 1))
    img = img + (t["stripe_amp"].view(n, 1, 1) * stripes)[:, None] + t["noise"]
    img = img.clamp(0, 1).contiguous()
    # distractors (non-class clutter, under the objects)
    if "distractors" not in omit:
        for d in range(cfg.max_distractors):
            on = (t["n_distractors"] > d).view(n, 1, 1)
            x, y = t["d_xy"][:, d, 0].view(n, 1, 1), t["d_xy"][:, d, 1].view(n, 1, 1)
            s, a, ty = t["d_size"][:, d].view(n, 1, 1), t["d_angle"][:, d].view(n, 1, 1), t["d_type"][:, d].view(n, 1, 1)
            w = 0.9 * H / 64
            dist = ((X - x) ** 2 + (Y - y) ** 2).sqrt()
            ring = (dist - s).abs() <= w
            along = (X - x) * torch.cos(a) + (Y - y) * torch.sin(a)
            across = -(X - x) * torch.sin(a) + (Y - y) * torch.cos(a)
            bar = (along.abs() <= 1.6 * s) & (across.abs() <= w)
            cheb = torch.maximum((X - x).abs(), (Y - y).abs())
            hollow = (cheb - s).abs() <= w
            m = on & (((ty == 0) & ring) | ((ty == 1) & bar) | ((ty == 2) & hollow))
            paint(img, m, t["d_color"][:, d])
    packed = torch.zeros(n, H, H, dtype=torch.uint8)
    boxes = torch.zeros(n, M, 4)
    box_labels = torch.full((n, M), -1, dtype=torch.long)
    eyes = torch.full((n, 2 * M, 2), math.nan)
    feet = torch.full((n, 2 * M, 2), math.nan)
    obj_masks = []
    for j in range(M):
        on = t["active"][:, j].view(n, 1, 1)
        u = t["u"][:, j].view(n, 1, 1)
        cx, cy = t["cx"][:, j].view(n, 1, 1), t["cy"][:, j].view(n, 1, 1)
        hx, hy = cx + t["head_dx"][:, j].view(n, 1, 1) * u, cy - 11.5 * u
        fy = cy + 8.5 * u
        body = on & ellipse_mask(X, Y, cx, cy, 9 * u, 7 * u)
        head = on & _head_mask(X, Y, hx, hy, 6 * u, (t["cls"][:, j] % len(SHAPES)).view(n, 1, 1))
        foot = on & (ellipse_mask(X, Y, cx - 4.5 * u, fy, 3 * u, 2 * u) | ellipse_mask(X, Y, cx + 4.5 * u, fy, 3 * u, 2 * u))
        er = torch.clamp(1.1 * u, min=0.7)
        eye = on & (ellipse_mask(X, Y, hx - 2 * u, hy + 0.5 * u, er, er) | ellipse_mask(X, Y, hx + 2 * u, hy + 0.5 * u, er, er))
        eye = eye & head
        if "feet" not in omit:
            paint(img, foot, t["feet_color"][:, j])
        if "body" not in omit:
            paint(img, body, t["body_color"][:, j])
        if "head" not in omit:
            paint(img, head, t["head_color"][:, j])
            if "eyes" not in omit:
                paint(img, eye, torch.full((n, 3), 0.05))
        obj = body | head | foot
        obj_masks.append((obj, head, foot))
        rows, cols = obj.any(2), obj.any(1)
        has = rows.any(1)
        y0 = rows.float().argmax(1)
        y1 = H - rows.flip(1).float().argmax(1)
        x0 = cols.float().argmax(1)
        x1 = H - cols.flip(1).float().argmax(1)
        boxes[:, j] = torch.where(has[:, None], torch.stack([x0, y0, x1, y1], 1).float(), torch.zeros(n, 4))
        box_labels[:, j] = torch.where(has, t["cls"][:, j], torch.full_like(t["cls"][:, j], -1))
        uj, hxj, hyj = u.view(n), hx.view(n), hy.view(n)
        act = t["active"][:, j]
        e = torch.stack([torch.stack([hxj - 2 * uj, hyj + 0.5 * uj], 1), torch.stack([hxj + 2 * uj, hyj + 0.5 * uj], 1)], 1)
        fo = torch.stack([torch.stack([cx.view(n) - 4.5 * uj, fy.view(n)], 1), torch.stack([cx.view(n) + 4.5 * uj, fy.view(n)], 1)], 1)
        eyes[:, 2 * j:2 * j + 2] = torch.where(act.view(n, 1, 1), e, torch.full_like(e, math.nan))
        feet[:, 2 * j:2 * j + 2] = torch.where(act.view(n, 1, 1), fo, torch.full_like(fo, math.nan))
    # artifact: the colour-coded corner patch, on top of everything
    art = t["artifact"]
    art_mask = torch.zeros(n, H, H, dtype=torch.bool)
    if cfg.spurious_rate is not None:
        k = max(3, round(0.08 * H))
        art_mask[:, H - k - 1:H - 1, H - k - 1:H - 1] = True
        art_mask &= (art >= 0).view(n, 1, 1)
        code = torch.from_numpy(hsv_to_rgb(art.numpy() / cfg.num_classes, np.ones(n), np.ones(n)))
        if "artifact" not in omit:
            paint(img, art_mask, code)
    label = t["label"]
    for j, (obj, head, foot) in enumerate(obj_masks):
        visible = ~art_mask
        same = (t["cls"][:, j] == label).view(n, 1, 1)
        packed |= ((obj & visible).to(torch.uint8) * _BIT_ALL)
        packed |= ((obj & same & visible).to(torch.uint8) * _BIT_MASK)
        packed |= ((head & same & visible).to(torch.uint8) * _BIT_HEAD)
        packed |= ((foot & same & visible).to(torch.uint8) * _BIT_FEET)
    difficult = (t["n_obj"] > 1) | t["small"]
    return {
        "image": (img * 255).round().to(torch.uint8),
        "label": label.long(),
        "packed_masks": packed,
        "boxes": boxes,
        "box_labels": box_labels,
        "eyes": eyes,
        "feet": feet,
        "difficult": difficult,
        "n_objects": t["n_obj"].long(),
        "artifact_class": art.long(),
    }


def render_split(cfg: ScenesConfig, split: str, omit: tuple[str, ...] = (), size: int | None = None) -> dict:
    """Render the whole split (chunk by chunk, each chunk vectorised) into one dict of tensors."""
    n = cfg.split_size(split) if size is None else size
    return render_in_chunks(n, split, lambda c, m: render_chunk(_sample_chunk(cfg, split, c, m), cfg, omit))


def load_split(cfg: ScenesConfig, split: str, root: str | Path | None = None, cache: bool = True) -> dict:
    """The rendered split, from ``<root>/scenes/<hash>.pt`` when cached (else rendered and cached)."""
    return load_rendered(cfg, split, "scenes", lambda: render_split(cfg, split), f"{split} scenes", root, cache)


# --------------------------------------------------------------------------------------------- dataset
class SyntheticScenes(RenderedScenes):
    """One split of the synthetic scenes as a map-style dataset following the batch schema.

    Samples are fetched a whole batch at a time (``__getitems__``): indexing the stored tensors with the
    batch's indices, no per-sample Python work. Keypoints are ordered by object (object ``j`` owns rows
    ``2j, 2j + 1`` of ``eyes`` and of ``feet``; its class is ``box_labels[:, j]``); object 0 is the main
    object (whose class is the label). Extra keys: ``head_mask``/``feet_mask`` (the parts of the objects of
    class ``label``), ``object_mask`` (all objects), ``n_objects``, ``artifact_class`` (-1: none).
    """

    config_class = ScenesConfig
    mask_bits = {"mask": _BIT_MASK, "head_mask": _BIT_HEAD, "feet_mask": _BIT_FEET, "object_mask": _BIT_ALL}
    batch_keys = ("boxes", "box_labels", "keypoints", "difficult", "n_objects", "artifact_class")
    keypoint_keys = ("eyes", "feet")
    load_split = staticmethod(load_split)
    render_split = staticmethod(render_split)


class SyntheticScenesDataModule(RenderedScenesDataModule):
    """The embedded default data: train/val/test (+ ``heldout``, for tuning thresholds) synthetic scenes.

    ``predict_dataloader`` serves the held-out split. ``label_permutation_seed`` (optional) replaces the
    *training* labels by a fixed permutation of them (Adebayo et al. 2018's data randomisation test).
    """

    def __init__(self, image_size: int = 64, num_classes: int = 10, min_objects: int = 1, max_objects: int = 2,
                 multi_object_prob: float = 0.15, extra_object_classes: str = "same", small_object_prob: float = 0.15,
                 max_distractors: int = 4, spurious_rate: float | None = None, train_size: int = 8000,
                 val_size: int = 1000, test_size: int = 1000, heldout_size: int = 1000, seed: int = 0,
                 batch_size: int = 128, eval_batch_size: int | None = None, num_workers: int = 0,
                 root: str | None = None, cache: bool = True, label_permutation_seed: int | None = None):
        super().__init__(ScenesConfig(image_size, num_classes, min_objects, max_objects, multi_object_prob,
                                      extra_object_classes, small_object_prob, max_distractors, spurious_rate,
                                      train_size, val_size, test_size, heldout_size, seed),
                         batch_size, eval_batch_size, num_workers, root, cache)
        self.save_hyperparameters()
        self.label_permutation_seed = label_permutation_seed

    @classmethod
    def from_profile(cls, profile: str = "default", **overrides) -> "SyntheticScenesDataModule":
        if profile not in PROFILES:
            raise ValueError(f"unknown scenes profile {profile!r}; known: {sorted(PROFILES)}")
        kwargs = {k: v for k, v in asdict(PROFILES[profile]).items()}
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_config(cls, config: ScenesConfig, **kwargs) -> "SyntheticScenesDataModule":
        return cls(**asdict(config), **kwargs)

    def load_split(self, split: str) -> dict:
        return load_split(self.config, split, self.root, self.cache)

    def make_dataset(self, split: str) -> SyntheticScenes:
        ds = SyntheticScenes(split, self.config, self.root, self.cache)
        if split == "train" and self.label_permutation_seed is not None:
            g = torch.Generator().manual_seed(int(self.label_permutation_seed))
            data = dict(ds.data)
            data["label"] = data["label"][torch.randperm(len(ds), generator=g)]
            ds = SyntheticScenes(split, self.config, data=data)
        return ds
