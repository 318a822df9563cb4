"""The scorecard's protocols on one benchmark: per-image values of any map provider (a method or a reference map).

Built on the shared protocol code only: ``lightning_modules.metrics`` (deletion / insertion AUC, pointing game,
weak localisation, smallest suppressing box, pixel perturbation, top-k intersection, map similarity),
``lightning_modules.tasks.randomization`` (cascading / independent randomisation),
``lightning_modules.attacks.fragility`` (Ghorbani's top-k and centre attacks) and the reference maps of
``lightning_modules.explainers.baselines`` (``oracle_map`` in two tie orders, ``id_seeded_random_maps``).

A *provider* is called as ``provider(model, images, targets, idx, key)``: ``idx`` are the images' rows in the
evaluation set (reference maps read their ground truth from it; a method ignores it) and ``key`` names the input
(``"clean"``, ``"attack_topk"``, ``"cascading_2"`` ...): the random reference draws fresh noise for every key, as a
method that ignores its input would. Every protocol is batched over images (no per-image Python loop).

The pointing game runs on the multi-label benchmark when the model is a shipped one
(``lightning_modules.benchmarks.pointing``, issue 36): the method explains the shipped ``scenes_multilabel_vgg`` on
the first ``pointing_images`` multi-label test scenes, one trial per (image, present class) (key ``"pointing"``,
``idx`` the trial's row), a hit at TorchRay's native tolerance against the class's object and evidence pixels; the
bootstrap resamples images (``pointing_trials``' ``image_index``). On the single-label v2 scenes the game saturates
(``reports/benchmarks/validity.md``). With a user's own model and data it runs on those images, as before (the
label's mask, 15 px at 224 scaled).

The cost of a map is timed interleaved: each batch of maps between two forward passes of the same batch (no
gradient, same threads), the floor the faster of the two, so a change of load hits both alike.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import asdict, dataclass, field

import torch

#: protocols that need a retrained model: listed, run only when asked (``--with``)
RETRAINING = {
    "data_randomisation": "needs a model trained on permuted labels (Adebayo Sec. 3.2)",
    "roar": "needs one retrained model per method and fraction (Hooker et al.)",
}


@dataclass(frozen=True)
class Setting:
    """Everything that fixes the built-in results (its hash names the cache)."""

    model: str = "scenes_v2_vgg"
    n_images: int = 128
    builtins: tuple = (("gradient", ()), ("guided_backprop", ()),
                       ("integrated_gradients", (("steps", 16), ("reduction", "abs_sum"))), ("gradcam", ()),
                       ("occlusion", (("window", 8), ("stride", 8))), ("rise", (("n_masks", 250),)))
    batch_size: int = 32
    # deletion / insertion (lightning_modules.benchmarks.validity's 64-px parameters)
    pixels_per_step: int = 48
    insertion_blur_kernel: int = 11
    insertion_blur_sigma: float = 5.0
    # weak localisation (energy threshold, alpha per map on the evaluated images) and smallest suppressing box
    suppression_alphas: tuple = tuple(round(0.02 * i, 2) for i in range(50))
    suppression_level: float = 0.01
    suppression_sigma: float = 10.0
    # pixel perturbation (Khakzar: MoRF / LeRF without retraining)
    pp_fractions: tuple = tuple(round(0.1 * i, 1) for i in range(11))
    # randomisation (Adebayo): stages of the top-down order kept (indices; -1 = every layer), on the first images
    randomisation_stages: tuple = (0, 8, -1)
    randomisation_images: int = 16
    # fragility (Ghorbani): attacks on the gradient map, transferred to every method; top-k intersection
    attack_images: int = 48
    attack_steps: int = 10
    attack_epsilon: float = 8 / 255
    attack_k: int = 82  # 2% of 64 x 64 (Ghorbani: 1000 of 227 x 227)
    max_batch: int = 512
    # pointing game on the multi-label benchmark (shipped models only): its model, images, tolerance
    pointing_model: str = "scenes_multilabel_vgg"
    pointing_images: int = 600  # the pointing benchmark's own (reports/benchmarks/pointing.json)
    pointing_tolerance: str = "native"
    seed: int = 0

    def builtin_kwargs(self) -> dict[str, dict]:
        return {name: dict(kw) for name, kw in self.builtins}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["builtins"] = self.builtin_kwargs()
        return d

    def key(self) -> str:
        import json

        return f"{zlib.crc32(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()):08x}"


SMOKE = Setting(n_images=24, builtins=(("gradient", ()), ("gradcam", ())), pixels_per_step=512,
                suppression_alphas=tuple(round(0.2 * i, 1) for i in range(5)), pp_fractions=(0.0, 0.5, 1.0),
                randomisation_stages=(0, -1), randomisation_images=8, attack_images=8, attack_steps=2,
                pointing_images=48)
PROFILES = {"default": Setting(), "smoke": SMOKE}


# --------------------------------------------------------------------------------------------- protocols
@dataclass(frozen=True)
class Protocol:
    name: str
    higher_is_better: bool
    paper: str
    what: str
    needs: tuple = ()  # fields of the evaluation set
    classes: bool = False  # mean over classes (pointing game)
    bound: float | None = None  # saturation bound of the best method
    oracle_gt: str = "evidence"  # ground truth of the oracle map


PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("deletion", False, "RISE", "deletion AUC (mean-colour substrate)"),
    Protocol("insertion", True, "RISE", "insertion AUC (from the blurred image)"),
    Protocol("pointing_object_all", True, "Fong, RISE", "pointing game vs the object (multi-label trials)",
             ("object_mask",), True, 0.98, "object"),
    Protocol("pointing_object_difficult", True, "Fong, RISE", "pointing game vs the object, difficult trials",
             ("object_mask", "difficult"), True, 0.98, "object"),
    Protocol("pointing_evidence_all", True, "Fong, RISE", "pointing game vs the evidence (multi-label trials)",
             ("evidence_mask",), True, 0.98),
    Protocol("pointing_evidence_difficult", True, "Fong, RISE", "pointing game vs the evidence, difficult trials",
             ("evidence_mask", "difficult"), True, 0.98),
    Protocol("localisation_object", False, "Fong", "weak localisation error vs object boxes", ("boxes",), bound=0.02,
             oracle_gt="object"),
    Protocol("localisation_evidence", False, "Fong", "weak localisation error vs evidence boxes", ("evidence_boxes",),
             bound=0.02),
    Protocol("suppression", False, "Fong", "smallest suppressing box (area fraction)"),
    Protocol("morf", False, "Khakzar", "pixel perturbation, most relevant first (AUC)"),
    Protocol("lerf", True, "Khakzar", "pixel perturbation, least relevant first (AUC)"),
    Protocol("cascading_randomisation", False, "Adebayo", "rank correlation with the map after cascading "
             "randomisation (mean over stages)"),
    Protocol("independent_randomisation", False, "Adebayo", "rank correlation with the map after randomising one "
             "layer (mean over layers)"),
    Protocol("fragility_topk", True, "Ghorbani", "top-k intersection under the top-k attack (transferred)"),
    Protocol("fragility_centre", True, "Ghorbani", "top-k intersection under the centre attack (transferred)"),
)
BY_NAME = {p.name: p for p in PROTOCOLS}
REFERENCES = ("oracle", "oracle__border_first", "random")


@dataclass
class Bench:
    """The model, the evaluation set and what every method shares (attacked images, randomised models)."""

    setting: Setting
    model: torch.nn.Module
    data: dict  # image, label, ids, object_mask, evidence_mask, boxes, evidence_boxes, box_labels, difficult
    num_classes: int
    attacked: dict = field(default_factory=dict)  # "topk" / "centre" -> images of the first attack_images
    randomised: dict = field(default_factory=dict)  # "cascading_k" / "independent_k" -> model
    info: dict = field(default_factory=dict)
    #: the pointing game's multi-label trials (image, label, object_mask, evidence_mask, difficult, image_index,
    #: ids) and model; None: the pointing game runs on ``data`` with ``model`` (a user's own model and data)
    pointing: dict | None = None
    pointing_model: torch.nn.Module | None = None

    @property
    def n(self) -> int:
        return self.data["image"].shape[0]

    def available(self, protocol: Protocol) -> bool:
        return all(self.data.get(f) is not None for f in protocol.needs)


def load_bench(setting: Setting, model=None, data: dict | None = None, log=print) -> Bench:
    """The benchmark of ``setting``: the shipped v2 model and its test images unless ``model`` / ``data`` are given
    (``data``: the batch schema, at least ``image`` and ``label``; ground truth fields are optional)."""
    own = model is not None or data is not None
    if model is None:
        from lightning_modules.models import load_model

        model, _ = load_model(setting.model, weights="embedded")
    if data is None:
        from lightning_modules.data.scenes_v2 import ScenesV2

        ds = ScenesV2("test", model.scenes_config)
        b = ds.__getitems__(range(min(setting.n_images, len(ds))))
        data = {"image": b["image"], "label": b["label"], "ids": b["id"], "object_mask": b["mask"],
                "evidence_mask": b["evidence_mask"], "boxes": b["boxes"], "evidence_boxes": b["evidence_boxes"],
                "box_labels": b["box_labels"], "difficult": b["difficult"].bool()}
        num_classes = model.scenes_config.num_classes
    else:
        data = dict(data)
        if "image" not in data or "label" not in data:
            raise ValueError("data must hold at least 'image' (N, 3, H, W) in [0, 1] and 'label' (N,)")
        n = min(setting.n_images, data["image"].shape[0])
        data = {k: (v[:n] if isinstance(v, torch.Tensor) else v) for k, v in data.items()}
        data.setdefault("ids", torch.arange(n))
        if "mask" in data and "object_mask" not in data:
            data["object_mask"] = data.pop("mask")
        with torch.no_grad():
            num_classes = int(model(data["image"][:1]).shape[1])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    bench = Bench(setting, model, data, num_classes)
    if not own:
        load_pointing(bench)
    bench.info["forward_cpu_s_per_image"] = forward_cost(model, data["image"][: setting.batch_size])
    bench.info["image_size"] = int(data["image"].shape[-1])
    if data.get("evidence_mask") is not None:
        bench.info["evidence_area_px"] = float(data["evidence_mask"].flatten(1).float().sum(1).mean())
    return bench


def load_pointing(bench: Bench) -> None:
    """The multi-label pointing trials of ``bench.setting`` and their model (``benchmarks.pointing.trial_eval_set``
    on the shipped ``pointing_model``): one row per (image, present class) of the first ``pointing_images`` test
    scenes."""
    from lightning_modules.benchmarks.pointing import tolerances, trial_eval_set
    from lightning_modules.models import load_model

    s = bench.setting
    if s.pointing_tolerance != "native":
        raise ValueError(f"pointing_tolerance {s.pointing_tolerance!r}: the scorecard runs TorchRay's 'native' one")
    pm, _ = load_model(s.pointing_model, weights="embedded")
    pm.eval()
    for p in pm.parameters():
        p.requires_grad_(False)
    es = trial_eval_set(pm.scenes_config, s.pointing_images)
    bench.pointing_model = pm
    bench.pointing = {"image": es.images, "label": es.labels, "object_mask": es.object_mask.bool(),
                      "evidence_mask": es.evidence_mask.bool(), "difficult": es.difficult.bool(),
                      "image_index": es.image_index, "ids": torch.arange(es.images.shape[0])}
    h, w = es.images.shape[-2:]
    bench.info["pointing"] = {"model": s.pointing_model, "n_images": int(torch.unique(es.image_index).numel()),
                              "n_trials": int(es.images.shape[0]), "n_difficult": int(es.difficult.sum()),
                              "tolerance": s.pointing_tolerance, "tolerance_px": tolerances(h, w)["native"],
                              "test_map": float((getattr(pm, "embedded_info", {}) or {}).get("test_map", math.nan))}


def forward_cost(model, images: torch.Tensor, rounds: int = 3) -> float:
    """CPU seconds of one forward pass per image (the median of ``rounds`` batched passes)."""
    times = []
    with torch.no_grad():
        model(images)
        for _ in range(rounds):
            c0 = time.process_time()
            model(images)
            times.append((time.process_time() - c0) / images.shape[0])
    return sorted(times)[len(times) // 2]


def prepare_attacks(bench: Bench, log=print) -> None:
    """Ghorbani's top-k and centre attacks on the model's gradient map (softplus surrogate), on the first
    ``attack_images`` images; every method is then scored on the same attacked images (a transfer attack: a new
    method's map is not differentiated through)."""
    from lightning_modules.attacks.fragility import FragilityAttack, softplus_surrogate

    s = bench.setting
    x = bench.data["image"][: s.attack_images]
    surrogate = softplus_surrogate(bench.model, 10.0)
    for attack in ("topk", "center"):
        c0 = time.process_time()
        res = FragilityAttack(attack=attack, method="gradient", epsilon=s.attack_epsilon, steps=s.attack_steps,
                              k=s.attack_k, seed=s.seed)(bench.model, x, surrogate=surrogate)
        bench.attacked["topk" if attack == "topk" else "centre"] = res.images.detach()
        bench.info[f"attack_{attack}_label_kept"] = float(res.label_kept.float().mean())
        log(f"  attack {attack}: {time.process_time() - c0:.0f} s CPU")


def prepare_randomised(bench: Bench) -> None:
    """The randomised models (the kept stages of the cascading and the independent order)."""
    from lightning_modules.tasks.randomization import randomization_stages, resolve_order

    s = bench.setting
    order = resolve_order(bench.model, None, bench.data["image"][:1])
    keep = sorted({(k if k >= 0 else len(order) + k) for k in s.randomisation_stages if -len(order) <= k < len(order)})
    bench.info["randomisation_layers"] = [order[k] for k in keep]
    for mode in ("cascading", "independent"):
        for st in randomization_stages(bench.model, mode, seed=s.seed, example_input=bench.data["image"][:1]):
            if st.index in keep:
                m = st.model.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
                bench.randomised[f"{mode}_{st.index}"] = m


# --------------------------------------------------------------------------------------------- reference maps
def reference_provider(bench: Bench, which: str, gt: str = "evidence"):
    """``oracle`` (the ground truth ``gt`` as a map, centre-first ties), ``oracle__border_first`` or ``random``
    (uniform noise seeded by the image id and, for every other input, by the input's key)."""
    from lightning_modules.explainers.baselines import id_seeded_random_maps, oracle_map

    def provider(model, images, targets, idx, key):
        # the pointing trials (multi-label benchmark) carry their own ground truth and ids
        src = bench.pointing if key == "pointing" and bench.pointing is not None else bench.data
        if which == "random":
            seed = bench.setting.seed + (0 if key == "clean" else 1 + zlib.crc32(key.encode()) % 100_000)
            return id_seeded_random_maps(src["ids"][idx], tuple(images.shape[-2:]), seed)
        mask = src[f"{gt}_mask"][idx]
        return oracle_map(mask.float(), "border_first" if which.endswith("border_first") else "centre_first")

    return provider


def explainer_provider(explainer):
    def provider(model, images, targets, idx, key):
        return explainer(model, images, targets)

    return provider


# --------------------------------------------------------------------------------------------- scoring
def provider_maps(provider, bench: Bench, model, images, idx, key, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The maps of ``provider`` for ``images`` (rows ``idx`` of the evaluation set, whose labels are the targets
    unless ``labels``, one per row of ``images``, are given), in batches of the setting's ``batch_size``."""
    bs = bench.setting.batch_size
    targets = bench.data["label"][idx] if labels is None else labels
    out = [provider(model, images[i:i + bs], targets[i:i + bs], idx[i:i + bs], key)
           for i in range(0, images.shape[0], bs)]
    return torch.cat(out).detach().float()


def timed_maps(provider, bench: Bench, model, images, idx, key) -> tuple[torch.Tensor, float, float]:
    """``(maps, map CPU s per image, forward CPU s per image)``: each batch of maps is timed between two forward
    passes of the same batch (no gradient, the same threads), the forward floor of the batch the faster of the two,
    so that a change of load on a shared machine hits the map and its forward floor alike."""
    bs = bench.setting.batch_size
    labels = bench.data["label"]
    out, map_cpu, fwd_cpu = [], 0.0, 0.0

    def forward(xb):
        t = time.process_time()
        with torch.no_grad():
            model(xb)
        return time.process_time() - t

    forward(images[:bs])  # warm-up (allocations, lazy initialisation)
    for i in range(0, images.shape[0], bs):
        xb, ib = images[i:i + bs], idx[i:i + bs]
        f0 = forward(xb)
        t = time.process_time()
        out.append(provider(model, xb, labels[ib], ib, key))
        map_cpu += time.process_time() - t
        fwd_cpu += min(f0, forward(xb))
    n = images.shape[0]
    return torch.cat(out).detach().float(), map_cpu / n, fwd_cpu / n


def score(bench: Bench, provider, protocols: list[str], oracle_gt: str = "evidence", log=print) -> dict:
    """Per-image values ``protocol -> list`` of one provider, plus its mean curves, map cost and seconds."""
    from lightning_modules.metrics import DeletionAUC, InsertionAUC
    from lightning_modules.metrics.progressive import trapezoid_auc
    from lightning_modules.metrics.fragility import topk_intersection
    from lightning_modules.metrics.localisation import WeakLocalisation
    from lightning_modules.metrics.pixel_perturbation import PixelPerturbation
    from lightning_modules.benchmarks.pointing import trial_hits
    from lightning_modules.metrics.pointing import default_tolerance, pointing_hits
    from lightning_modules.metrics.similarity import spearman
    from lightning_modules.metrics.suppression import SmallestSuppressingBox

    s, d, model = bench.setting, bench.data, bench.model
    x, y, n = d["image"], d["label"], bench.n
    idx = torch.arange(n)
    out: dict = {"values": {}, "curves": {}, "seconds": {}}
    c0 = time.process_time()
    maps, map_cpu, fwd_cpu = timed_maps(provider, bench, model, x, idx, "clean")
    out["map_cpu_s_per_image"] = map_cpu
    out["forward_cpu_s_per_image"] = fwd_cpu  # timed interleaved with the maps
    out["cost"] = map_cpu / fwd_cpu if fwd_cpu > 0 else math.nan
    pos = maps.clamp(min=0)

    def timed(name, fn):
        if name not in protocols:
            return
        t = time.process_time()
        out["values"][name] = [float(v) for v in fn()]
        out["seconds"][name] = round(time.process_time() - t, 2)

    def causal(mode):
        kw = dict(pixels_per_step=s.pixels_per_step, max_batch=s.max_batch)
        metric = (DeletionAUC(substrate="mean", **kw) if mode == "deletion" else
                  InsertionAUC(blur_kernel=s.insertion_blur_kernel, blur_sigma=s.insertion_blur_sigma, **kw))
        c = metric.curves(model, x, maps, y)
        out["curves"][mode] = [round(float(v), 5) for v in c.mean(0)]
        return trapezoid_auc(c)

    timed("deletion", lambda: causal("deletion"))
    timed("insertion", lambda: causal("insertion"))
    h, w = x.shape[-2:]
    pointing = [p for p in protocols if p.startswith("pointing_")]
    if bench.pointing is not None and pointing:
        # the multi-label benchmark: one trial per (image, present class), the maps of its own model
        pt = bench.pointing
        t = time.process_time()
        pmaps = provider_maps(provider, bench, bench.pointing_model, pt["image"], pt["ids"], "pointing",
                              labels=pt["label"])
        out["seconds"]["pointing_maps"] = round(time.process_time() - t, 2)
        for gt in ("object", "evidence"):
            hits = lambda gt=gt: trial_hits(pmaps, pt[f"{gt}_mask"])[0].float()  # noqa: E731
            timed(f"pointing_{gt}_all", hits)
            timed(f"pointing_{gt}_difficult", lambda hits=hits: hits()[pt["difficult"]])
    elif pointing:
        tol = default_tolerance(h, w)
        for gt in ("object", "evidence"):
            if d.get(f"{gt}_mask") is None:
                continue
            hits = lambda gt=gt: pointing_hits(maps, d[f"{gt}_mask"].bool(), tol).float()  # noqa: E731
            timed(f"pointing_{gt}_all", hits)
            if d.get("difficult") is not None:
                timed(f"pointing_{gt}_difficult", lambda hits=hits: hits()[d["difficult"].bool()])
    for gt, key in (("object", "boxes"), ("evidence", "evidence_boxes")):
        if d.get(key) is None:
            continue

        def loc(key=key):
            metric = WeakLocalisation(method="energy")
            metric.update(pos, y, d[key], d["box_labels"])
            per = metric.per_sample()["errors"]
            a = int(per.mean(0).argmin())
            out.setdefault("alpha", {})[key] = float(metric.alphas[a])
            return per[:, a]

        timed(f"localisation_{gt}", loc)

    def suppression():
        metric = SmallestSuppressingBox(level=s.suppression_level, alphas=s.suppression_alphas,
                                        blur_sigma=s.suppression_sigma, max_batch=s.max_batch)
        metric.update(model, x, pos, y)
        return metric.per_sample()["best_area"]

    timed("suppression", suppression)

    def pixel_perturbation(order):
        c = PixelPerturbation(order=order, fractions=s.pp_fractions, substrate="mean",
                              max_batch=s.max_batch).curves(model, x, maps, y)
        out["curves"][order] = [round(float(v), 5) for v in c.mean(0)]
        return trapezoid_auc(c)

    timed("morf", lambda: pixel_perturbation("morf"))
    timed("lerf", lambda: pixel_perturbation("lerf"))

    def randomisation(mode):
        m = s.randomisation_images
        sub = torch.arange(min(m, n))
        keys = sorted(k for k in bench.randomised if k.startswith(mode))
        sims = [spearman(maps[sub].abs(), provider_maps(provider, bench, bench.randomised[k], x[sub], sub, k).abs())
                for k in keys]
        stacked = torch.stack(sims, 1)
        out["curves"][mode] = [round(float(v), 5) for v in torch.nanmean(stacked, 0)]
        return torch.nanmean(stacked, 1)

    if bench.randomised:
        timed("cascading_randomisation", lambda: randomisation("cascading"))
        timed("independent_randomisation", lambda: randomisation("independent"))

    def fragility(attack):
        xa = bench.attacked[attack]
        sub = torch.arange(xa.shape[0])
        return topk_intersection(maps[sub], provider_maps(provider, bench, model, xa, sub, f"attack_{attack}"), s.attack_k)

    if bench.attacked:
        timed("fragility_topk", lambda: fragility("topk"))
        timed("fragility_centre", lambda: fragility("centre"))
    out["total_cpu_s"] = round(time.process_time() - c0, 1)
    return out


def nan_to_none(values: list[float]) -> list:
    return [None if (isinstance(v, float) and math.isnan(v)) else v for v in values]
