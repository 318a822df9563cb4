"""Synthetic scenes v2: the embedded benchmark in which the papers' protocols can tell methods apart (issue 19).

The v1 scenes (``lightning_modules.data.synthetic``, the named "v1" setting) stay as they are. v2 keeps their
approach -- vectorised torch rendering per chunk, parameters drawn per chunk from
``numpy.random.default_rng([seed, split, chunk, version])``, cached splits, exact counterfactual re-renders with
parts omitted -- and changes what carries the class:

**Classes (24).** ``class = (colour pair p, spatial frequency f, orientation o)``, ``c = (2 p + f) * 4 + o``:
a sinusoidal grating (slightly sharpened) of orientation 0/45/90/135 degrees (+-4 degrees jitter), period 4 or
8 px (+-6%, fixed in pixels whatever the object's size, like a natural texture), alternating between two
*complementary* colours around a grey ``m`` (red/cyan, green/magenta, blue/yellow). Every class's evidence
therefore has the same mean colour: blurring it (Fong's null, RISE's insertion start) or filling it with a mean
colour leaves a grey patch that says "an object is here" but not which (measured in ``embedded_v2``: the
normalised class score after blurring only the evidence region, reported in validity.md). 24 classes: the
softmax floor of an uninformative image is ~1/24 = 0.042 (v1: 10 classes, measured blurred floor 0.196), and
top-5 is about a fifth of the classes (v1: half). 4 x 2 x 3 is the largest grid whose factors stay easy to
render at 64 px (periods below 4 px alias; finer orientation steps need larger patches).

**Objects.** A creature as in v1: body (ellipse, random muted colour, saturation 0-0.45 so grey bodies occur for
every class), head (disc) above it, two dark feet below. Evidence = the textured region:

- colour pairs red/cyan and green/magenta (classes 0-15): the **head** only (a part; head box ~ 14 px, the object
  box ~ 20 x 30 px);
- colour pair blue/yellow (classes 16-23): head **and body** (a coat; evidence box ~ object box, only the feet
  lie outside it).

Feet are drawn from one distribution for all classes (non-evidence).

**Distractors and the difficult subset.** The label is the class of the one large *primary* object. With
probability ``distractor_prob`` an image also holds 1-2 *distractor objects of other classes*, drawn at
0.42-0.55 of the standard scale (so at most ~0.65x the primary's linear size, ~0.4x its area) and placed so
their boxes do not overlap the primary's. Why this rule rather than soft labels on two-object images: the task
stays single-label (accuracy, top-1 targets and every paper's protocol keep their meaning), a global-average-
pool classifier resolves it by evidence area, and the difficult pointing subset then asks the real question --
does the map *of the target class* point at the target and not at the other class's object, which carries
the same kind of evidence. ``difficult`` = a distractor object is present, or the primary is small (scale
0.55-0.7; small primaries get no distractors, which must stay clearly smaller than the labelled object).
Distractor objects are never of the label's class, so ``mask`` (the label's objects) is the primary's mask.

**Background**: no constant colour anywhere: multi-scale coloured value noise (octaves at 32, 16, 8 and 4 px)
plus pixel noise, and up to ``max_clutter`` thin non-class shapes (rings, bars, hollow squares) as in v1.
A ROAR-style mean fill of the object therefore does not trace the object's shape on a flat field.

**Ground truth per image** (besides the batch schema of docs/CONVENTIONS.md): ``evidence_mask`` (B, 1, H, W)
(the evidence pixels of the label's object), ``evidence_boxes`` (B, N, 4) (each object's evidence box, rows
aligned with ``boxes`` / ``box_labels``), ``object_mask`` (all objects), ``all_evidence_mask`` (every object's
evidence), ``head_mask``/``feet_mask`` (the primary's parts), keypoints ``head`` (one per object) and ``feet``
(two per object).

**Counterfactual parts** (``omit``): ``evidence`` (every grating replaced by its own mean colour: the object
shapes stay, the class is gone), ``non_evidence`` (the feet, and the bodies of head-evidence classes, not
drawn), ``feet``, ``distractors`` (the other-class objects), ``clutter``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lightning_modules.data.rendered import (SPLITS, RenderedScenes, RenderedScenesDataModule, SplitSizes, load_rendered,
                                             render_in_chunks)
from lightning_modules.data.synthetic import ellipse_mask, hsv_to_rgb, paint

GENERATOR_VERSION = 1
ORIENTATIONS_DEG = (0.0, 45.0, 90.0, 135.0)
PERIODS_PX = (4.0, 8.0)
#: unit colour directions of the complementary pairs (first colour = grey + a * d, second = grey - a * d)
PAIR_DIRECTIONS = ((1.0, -1.0, -1.0), (-1.0, 1.0, -1.0), (-1.0, -1.0, 1.0))
PAIR_NAMES = (("red", "cyan"), ("green", "magenta"), ("yellow", "blue"))
MAX_CLASSES = len(PAIR_DIRECTIONS) * len(PERIODS_PX) * len(ORIENTATIONS_DEG)
#: colour pairs whose evidence is the whole creature (head + body): classes 16-23
COAT_PAIRS = (2,)
OMITTABLE = ("evidence", "non_evidence", "feet", "distractors", "clutter")
_BIT_MASK, _BIT_EVID, _BIT_FEET, _BIT_ALL, _BIT_ALL_EVID, _BIT_HEAD = 1, 2, 4, 8, 16, 32


def class_factors(c: int | np.ndarray):
    """``(pair, frequency index, orientation index)`` of class ``c``."""
    return c // 8, (c // 4) % 2, c % 4


def class_name(c: int) -> str:
    p, f, o = class_factors(int(c))
    return f"{'/'.join(PAIR_NAMES[p])}_{int(ORIENTATIONS_DEG[o])}deg_{int(PERIODS_PX[f])}px"


def is_coat_class(c) -> np.ndarray | bool:
    """True for the classes whose evidence covers the whole creature (head + body)."""
    return np.isin(np.asarray(c) // 8, COAT_PAIRS)


@dataclass(frozen=True)
class SyntheticScenesV2Config(SplitSizes):
    """Everything that decides the content of the v2 scenes (hashed into the cache file name: ``content_hash``)."""

    generator_version = GENERATOR_VERSION
    hash_kind = "scenes_v2"

    image_size: int = 64
    num_classes: int = 24
    #: probability that a normal-size primary object is accompanied by distractor objects of other classes
    distractor_prob: float = 0.3
    max_distractor_objects: int = 2
    #: probability that the primary object is drawn small (scale 0.55-0.7 instead of 0.85-1.15)
    small_object_prob: float = 0.15
    #: at most this many non-class clutter shapes per image (uniform 0..max)
    max_clutter: int = 3
    train_size: int = 10000
    val_size: int = 1000
    test_size: int = 1000
    heldout_size: int = 1000
    seed: int = 0

    def __post_init__(self):
        if not 48 <= self.image_size <= 128:
            raise ValueError(f"image_size must be in [48, 128] (the gratings' 4 px period needs objects of >= 10 px), "
                             f"got {self.image_size}")
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"num_classes must be in [2, {MAX_CLASSES}] (3 colour pairs x 2 periods x 4 orientations), "
                             f"got {self.num_classes}")
        for name in ("distractor_prob", "small_object_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.max_distractor_objects <= 3 or self.max_clutter < 0:
            raise ValueError("need 0 <= max_distractor_objects <= 3 and max_clutter >= 0")
        if self.max_distractor_objects and self.num_classes < 2:
            raise ValueError("distractor objects need at least 2 classes")
        if min(self.train_size, self.val_size, self.test_size, self.heldout_size) < 0:
            raise ValueError("split sizes must be >= 0")

    @property
    def max_objects(self) -> int:
        return 1 + self.max_distractor_objects


PROFILES: dict[str, SyntheticScenesV2Config] = {
    "default": SyntheticScenesV2Config(),
    # renders in well under a second; for tests
    "smoke": SyntheticScenesV2Config(train_size=600, val_size=200, test_size=200, heldout_size=100),
}


# --------------------------------------------------------------------------------------------- sampling
def creature_extent(u):
    """Creature extent around its centre (cx, cy) at unit ``u``: half-width, top, bottom."""
    return 10.0 * u, 19.0 * u, 10.5 * u


def sample_background(rng: np.random.Generator, n: int, size: int, max_clutter: int) -> dict:
    """The background's parameters: coloured value noise at 4 scales, pixel noise, and up to ``max_clutter``
    non-class shapes (type 0 ring, 1 bar, 2 hollow square), in the draw order every scene generator shares."""
    s = size / 64.0
    p: dict = {}
    for k, g in enumerate((2, 4, 8, 16)):
        amp = (0.22, 0.12, 0.08, 0.06)[k]
        p[f"bg_oct{k}"] = rng.normal(0, amp, (n, 3, g, g)).astype(np.float32)
    p["bg_mean"] = rng.uniform(0.3, 0.7, (n, 3, 1, 1)).astype(np.float32)
    p["noise"] = rng.normal(0, 0.03, (n, 3, size, size)).astype(np.float32)
    D = max_clutter
    p["n_clutter"] = rng.integers(0, D + 1, n) if D else np.zeros(n, np.int64)
    p["c_type"] = rng.integers(0, 3, (n, D))
    p["c_xy"] = rng.uniform(0, size, (n, D, 2)).astype(np.float32)
    p["c_size"] = (rng.uniform(3, 8, (n, D)) * s).astype(np.float32)
    p["c_angle"] = rng.uniform(0, math.pi, (n, D)).astype(np.float32)
    p["c_color"] = hsv_to_rgb(rng.uniform(0, 1, (n, D)), rng.uniform(0.2, 1, (n, D)), rng.uniform(0.3, 1, (n, D)))
    return p


def sample_looks(rng: np.random.Generator, cls: np.ndarray) -> dict:
    """The looks of objects of classes ``cls`` (n, M): head offset, the class's grating (orientation, period,
    phase, grey, amplitude, colour direction), coat flag, body and feet colours."""
    n, M = cls.shape
    p: dict = {"head_dx": rng.uniform(-2, 2, (n, M)).astype(np.float32)}
    pair, freq, orient = class_factors(cls)
    p["angle"] = np.deg2rad(np.asarray(ORIENTATIONS_DEG)[orient] + rng.uniform(-4, 4, (n, M))).astype(np.float32)
    p["period"] = (np.asarray(PERIODS_PX)[freq] * rng.uniform(0.94, 1.06, (n, M))).astype(np.float32)
    p["phase"] = rng.uniform(0, 2 * math.pi, (n, M)).astype(np.float32)
    p["grey"] = rng.uniform(0.4, 0.6, (n, M)).astype(np.float32)
    p["amp"] = rng.uniform(0.25, 0.35, (n, M)).astype(np.float32)
    p["direction"] = np.asarray(PAIR_DIRECTIONS, np.float32)[pair]  # (n, M, 3)
    p["coat"] = is_coat_class(cls)
    p["body_color"] = hsv_to_rgb(rng.uniform(0, 1, (n, M)), rng.uniform(0.0, 0.45, (n, M)), rng.uniform(0.35, 0.75, (n, M)))
    p["feet_color"] = hsv_to_rgb(rng.uniform(0, 1, (n, M)), rng.uniform(0, 0.3, (n, M)), rng.uniform(0.1, 0.3, (n, M)))
    return p


def sample_chunk(cfg: SyntheticScenesV2Config, split: str, chunk: int, n: int) -> dict:
    """All random parameters of ``n`` scenes; deterministic given (seed, split, chunk)."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), chunk, GENERATOR_VERSION, 2])
    H = cfg.image_size
    M = cfg.max_objects
    s = H / 64.0
    p = sample_background(rng, n, H, cfg.max_clutter)
    # primary object (slot 0) and distractor objects (slots 1..)
    label = rng.integers(0, cfg.num_classes, n)
    small = rng.uniform(size=n) < cfg.small_object_prob
    scale0 = np.where(small, rng.uniform(0.55, 0.7, n), rng.uniform(0.85, 1.15, n))
    u = np.empty((n, M))
    u[:, 0] = scale0 * s
    u[:, 1:] = rng.uniform(0.42, 0.55, (n, M - 1)) * s
    hw, top, bot = creature_extent(u)
    cx = np.empty((n, M))
    cy = np.empty((n, M))
    cx[:, 0] = hw[:, 0] + 1 + rng.uniform(size=n) * np.maximum(H - 2 * hw[:, 0] - 2, 0)
    cy[:, 0] = top[:, 0] + 1 + rng.uniform(size=n) * np.maximum(H - top[:, 0] - bot[:, 0] - 2, 0)
    active = np.zeros((n, M), bool)
    active[:, 0] = True
    if M > 1:
        has_d = (~small) & (rng.uniform(size=n) < cfg.distractor_prob)
        n_d = np.where(has_d, rng.integers(1, M, n), 0)
        # distractor classes: uniform over the other classes
        other = (label[:, None] + rng.integers(1, cfg.num_classes, (n, M - 1))) % cfg.num_classes
        K = 16  # candidate positions per distractor; the first that overlaps nothing placed so far is taken
        placed = [np.stack([cx[:, 0] - hw[:, 0], cy[:, 0] - top[:, 0], cx[:, 0] + hw[:, 0], cy[:, 0] + bot[:, 0]], 1)]
        for j in range(1, M):
            ccx = hw[:, j, None] + 1 + rng.uniform(size=(n, K)) * np.maximum(H - 2 * hw[:, j, None] - 2, 0)
            ccy = top[:, j, None] + 1 + rng.uniform(size=(n, K)) * np.maximum(H - top[:, j, None] - bot[:, j, None] - 2, 0)
            cand = np.stack([ccx - hw[:, j, None], ccy - top[:, j, None], ccx + hw[:, j, None], ccy + bot[:, j, None]], -1)
            ok = np.ones((n, K), bool)
            for k, b in enumerate(placed):
                was = active[:, k] if k else np.ones(n, bool)
                overlap = ((cand[..., 0] < b[:, None, 2] + 2) & (cand[..., 2] > b[:, None, 0] - 2)
                           & (cand[..., 1] < b[:, None, 3] + 2) & (cand[..., 3] > b[:, None, 1] - 2))
                ok &= ~(overlap & was[:, None])
            first = ok.argmax(1)
            found = ok.any(1)
            rows = np.arange(n)
            cx[:, j], cy[:, j] = ccx[rows, first], ccy[rows, first]
            active[:, j] = found & (n_d >= j)
            placed.append(cand[rows, first])
        cls = np.concatenate([label[:, None], other], 1)
    else:
        cls = label[:, None]
    p["cx"], p["cy"], p["u"] = cx.astype(np.float32), cy.astype(np.float32), u.astype(np.float32)
    p["active"] = active
    p["cls"] = cls
    p.update(sample_looks(rng, cls))
    p["label"] = label
    p["small"] = small
    return p


# --------------------------------------------------------------------------------------------- rendering
def _box_of(mask: torch.Tensor) -> torch.Tensor:
    """Tight exclusive box (n, 4) of (n, H, W) masks; zeros for empty masks."""
    H, W = mask.shape[-2:]
    rows, cols = mask.any(2), mask.any(1)
    has = rows.any(1)
    y0 = rows.float().argmax(1)
    y1 = H - rows.flip(1).float().argmax(1)
    x0 = cols.float().argmax(1)
    x1 = W - cols.flip(1).float().argmax(1)
    return torch.where(has[:, None], torch.stack([x0, y0, x1, y1], 1).float(), torch.zeros(mask.shape[0], 4))


def render_chunk(p: dict, cfg, omit: tuple[str, ...] = (), object_index: bool = False) -> dict:
    """Render one chunk of sampled parameters (uint8 images, bit-packed masks, boxes, keypoints).

    ``omit``: see the module docstring; the ground truth (masks, boxes) is that of the full scene.
    ``object_index``: also return ``object_index`` / ``evidence_index`` (uint8 (n, H, W): ``j + 1`` where object
    slot ``j`` (its evidence) is drawn, 0 elsewhere; objects never overlap), the per-object ground truth of
    multi-label scenes. ``cfg``: any config with ``image_size``, ``max_objects`` and ``max_clutter``.
    """
    bad = set(omit) - set(OMITTABLE)
    if bad:
        raise ValueError(f"unknown parts to omit {sorted(bad)}; known: {OMITTABLE}")
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in p.items()}
    n, H, M = t["label"].shape[0], cfg.image_size, cfg.max_objects
    ar = torch.arange(H, dtype=torch.float32) + 0.5
    Y, X = ar.view(1, H, 1), ar.view(1, 1, H)
    img = t["bg_mean"].expand(n, 3, H, H).clone()
    for k in range(4):
        img = img + F.interpolate(t[f"bg_oct{k}"], size=(H, H), mode="bicubic", align_corners=False)
    img = (img + t["noise"]).clamp(0, 1).contiguous()
    if "clutter" not in omit:
        w = 0.9 * H / 64
        for d in range(cfg.max_clutter):
            on = (t["n_clutter"] > d).view(n, 1, 1)
            x, y = t["c_xy"][:, d, 0].view(n, 1, 1), t["c_xy"][:, d, 1].view(n, 1, 1)
            s, a, ty = t["c_size"][:, d].view(n, 1, 1), t["c_angle"][:, d].view(n, 1, 1), t["c_type"][:, d].view(n, 1, 1)
            ring = ((((X - x) ** 2 + (Y - y) ** 2).sqrt() - s).abs() <= w)
            along = (X - x) * torch.cos(a) + (Y - y) * torch.sin(a)
            across = -(X - x) * torch.sin(a) + (Y - y) * torch.cos(a)
            bar = (along.abs() <= 1.6 * s) & (across.abs() <= w)
            hollow = (torch.maximum((X - x).abs(), (Y - y).abs()) - s).abs() <= w
            paint(img, on & (((ty == 0) & ring) | ((ty == 1) & bar) | ((ty == 2) & hollow)), t["c_color"][:, d])
    packed = torch.zeros(n, H, H, dtype=torch.uint8)
    boxes = torch.zeros(n, M, 4)
    ev_boxes = torch.zeros(n, M, 4)
    box_labels = torch.full((n, M), -1, dtype=torch.long)
    heads = torch.full((n, M, 2), math.nan)
    feet_kp = torch.full((n, 2 * M, 2), math.nan)
    obj_index = torch.zeros(n, H, H, dtype=torch.uint8) if object_index else None
    ev_index = torch.zeros(n, H, H, dtype=torch.uint8) if object_index else None
    for j in range(M):
        on = t["active"][:, j].view(n, 1, 1)
        if j > 0 and "distractors" in omit:
            draw = torch.zeros_like(on)
        else:
            draw = on
        u = t["u"][:, j].view(n, 1, 1)
        cx, cy = t["cx"][:, j].view(n, 1, 1), t["cy"][:, j].view(n, 1, 1)
        hx, hy = cx + t["head_dx"][:, j].view(n, 1, 1) * u, cy - 12 * u
        fy = cy + 8.5 * u
        body = on & ellipse_mask(X, Y, cx, cy, 10 * u, 7.5 * u)
        head = on & ellipse_mask(X, Y, hx, hy, 7 * u, 7 * u)
        foot = on & (ellipse_mask(X, Y, cx - 4.5 * u, fy, 3 * u, 2 * u) | ellipse_mask(X, Y, cx + 4.5 * u, fy, 3 * u, 2 * u))
        coat = t["coat"][:, j].view(n, 1, 1)
        evidence = head | (body & coat)
        # the grating: grey +- amp * direction * sharpened sinusoid (mean = grey for every class)
        ang, per = t["angle"][:, j].view(n, 1, 1), t["period"][:, j].view(n, 1, 1)
        wave = torch.sin(2 * math.pi / per * (X * torch.cos(ang) + Y * torch.sin(ang)) + t["phase"][:, j].view(n, 1, 1))
        wave = torch.tanh(2.0 * wave) / math.tanh(2.0)
        if "evidence" in omit:
            wave = torch.zeros_like(wave)
        grating = (t["grey"][:, j].view(n, 1, 1, 1) + t["amp"][:, j].view(n, 1, 1, 1)
                   * t["direction"][:, j].view(n, 3, 1, 1) * wave[:, None]).clamp(0, 1)
        if "feet" not in omit and "non_evidence" not in omit:
            paint(img, draw & foot, t["feet_color"][:, j])
        if "non_evidence" not in omit:
            paint(img, draw & body & ~coat, t["body_color"][:, j])
        torch.where((draw & evidence)[:, None], grating, img, out=img)
        obj = body | head | foot
        is_label = (t["cls"][:, j] == t["label"]).view(n, 1, 1)
        packed |= obj.to(torch.uint8) * _BIT_ALL
        packed |= evidence.to(torch.uint8) * _BIT_ALL_EVID
        packed |= (obj & is_label).to(torch.uint8) * _BIT_MASK
        packed |= (evidence & is_label).to(torch.uint8) * _BIT_EVID
        packed |= (foot & is_label).to(torch.uint8) * _BIT_FEET
        packed |= (head & is_label).to(torch.uint8) * _BIT_HEAD
        if object_index:
            obj_index.masked_fill_(obj, j + 1)
            ev_index.masked_fill_(evidence, j + 1)
        act = t["active"][:, j]
        boxes[:, j] = _box_of(obj)
        ev_boxes[:, j] = _box_of(evidence)
        box_labels[:, j] = torch.where(act, t["cls"][:, j], torch.full_like(t["cls"][:, j], -1))
        uj = u.view(n)
        heads[:, j] = torch.where(act[:, None], torch.stack([hx.view(n), hy.view(n)], 1), torch.full((n, 2), math.nan))
        fo = torch.stack([torch.stack([cx.view(n) - 4.5 * uj, fy.view(n)], 1),
                          torch.stack([cx.view(n) + 4.5 * uj, fy.view(n)], 1)], 1)
        feet_kp[:, 2 * j:2 * j + 2] = torch.where(act.view(n, 1, 1), fo, torch.full_like(fo, math.nan))
    n_obj = t["active"].sum(1)
    extra = {"object_index": obj_index, "evidence_index": ev_index} if object_index else {}
    return {
        **extra,
        "image": (img * 255).round().to(torch.uint8),
        "label": t["label"].long(),
        "packed_masks": packed,
        "boxes": boxes,
        "evidence_boxes": ev_boxes,
        "box_labels": box_labels,
        "head": heads,
        "feet": feet_kp,
        "difficult": (n_obj > 1) | t["small"],
        "n_objects": n_obj.long(),
        "small": t["small"],
    }


def render_split(cfg: SyntheticScenesV2Config, split: str, omit: tuple[str, ...] = (), size: int | None = None) -> dict:
    """The whole split, chunk by chunk (each chunk vectorised), as one dict of tensors."""
    n = cfg.split_size(split) if size is None else size
    return render_in_chunks(n, split, lambda c, m: render_chunk(sample_chunk(cfg, split, c, m), cfg, omit))


def load_split(cfg: SyntheticScenesV2Config, split: str, root: str | Path | None = None, cache: bool = True) -> dict:
    """The rendered split, from ``<root>/scenes_v2/<split>-<hash>.pt`` when cached (else rendered and cached)."""
    return load_rendered(cfg, split, "scenes_v2", lambda: render_split(cfg, split), f"{split} v2 scenes", root, cache)


# --------------------------------------------------------------------------------------------- dataset
class ScenesV2(RenderedScenes):
    """One split of the v2 scenes as a map-style dataset following the batch schema (whole batches fetched at
    once by ``__getitems__``). Object 0 is the primary (labelled) object; ``boxes``/``evidence_boxes`` rows are
    aligned with ``box_labels``; keypoints ``head`` (row j = object j) and ``feet`` (rows 2j, 2j+1)."""

    config_class = SyntheticScenesV2Config
    mask_bits = {"mask": _BIT_MASK, "evidence_mask": _BIT_EVID, "head_mask": _BIT_HEAD, "feet_mask": _BIT_FEET,
                 "object_mask": _BIT_ALL, "all_evidence_mask": _BIT_ALL_EVID}
    batch_keys = ("boxes", "evidence_boxes", "box_labels", "keypoints", "difficult", "n_objects")
    keypoint_keys = ("head", "feet")
    load_split = staticmethod(load_split)
    render_split = staticmethod(render_split)


class ScenesV2DataModule(RenderedScenesDataModule):
    """train / val / test (+ ``heldout``, served by ``predict_dataloader``) v2 scenes in the batch schema."""

    @staticmethod
    def default_config():
        return SyntheticScenesV2Config()

    def __init__(self, config: SyntheticScenesV2Config | None = None, batch_size: int = 128,
                 eval_batch_size: int | None = None, num_workers: int = 0, root: str | None = None, cache: bool = True):
        super().__init__(config or self.default_config(), batch_size, eval_batch_size, num_workers, root, cache)

    #: the named configs of ``from_profile`` (a subclass for another generator names its own)
    profiles: dict = PROFILES
    kind = "scenes v2"

    @classmethod
    def from_profile(cls, profile: str = "default", **kwargs) -> "ScenesV2DataModule":
        if profile not in cls.profiles:
            raise ValueError(f"unknown {cls.kind} profile {profile!r}; known: {sorted(cls.profiles)}")
        return cls(cls.profiles[profile], **kwargs)

    def load_split(self, split: str) -> dict:
        """Render (or read from the cache) one split of this generator."""
        return load_split(self.config, split, self.root, self.cache)

    def make_dataset(self, split: str) -> Dataset:
        return ScenesV2(split, self.config, self.root, self.cache)
