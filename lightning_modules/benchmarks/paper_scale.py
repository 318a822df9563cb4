"""Expected cost of each paper's published setting (``configs/<paper>/paper.yaml``): an estimate, not a run.

No GPU is available where this project is developed, so the paper profiles' wall times cannot be measured.
They are estimated from two measured things and one stated assumption:

1. **Work per image, counted from the config.** Every experiment of a paper is a :class:`Stage`: a model, a number
   of images and the number of *forward-pass equivalents* per image it costs, counted from the paper.yaml values
   the code reads (RISE: ``n_masks`` forwards; an explainer's gradient: one forward + one input backward = 2;
   a training step: forward + backward to inputs and weights = 3; a double backward, as in Ghorbani's attack:
   2 more). Small stages (figures, a handful of images) are left out and the total says so.
2. **Measured per-forward cost of each model.** FLOPs of one forward pass at the paper's image size, counted by
   ``torch.utils.flop_counter.FlopCounterMode``; and the CPU seconds of one forward per image on this machine
   (batch 8, process CPU time divided by the torch thread count, median of repeats).
3. **Assumed sustained GPU throughput** (``--gpu-tflops``, default 30 TFLOP/s: an A100-class GPU in TF32/FP32 on
   these convnets, e.g. ResNet-50 training at about 1,000 images/s = 3 x 8.2 GFLOP x 1,000; an H100 is roughly
   twice that). Tiny models (ResNet-8 on CIFAR-10, the MNIST nets) do not fill a GPU: for them the estimate is
   a lower bound, limited in practice by kernel launches and data loading.

4. **Measured overhead over the floor.** The three items above are floor arithmetic: only the passes a method
   cannot avoid, at the GPU's sustained throughput. Each stage also lists what those passes are spent on
   (``Stage.parts``: an explainer, the mask learning, the deletion / insertion curves); the explainer benchmarks
   (``reports/benchmarks/explainers_v2_vgg.md`` and ``_resnet.md``, batch 32; ``RATIO_REPORTS`` lets a later
   re-run of some methods override a report's rows) and the metric benchmark
   (``metrics_v2_vgg.md``) measured each one's time over its floor, and ``GPU h (measured costs)`` scales every part
   by its measured ratio (the larger of the two v2 models'); passes with no benchmark (training steps, attacks,
   forward-only sweeps, DeepLIFT / PruneGrad) count at ratio 1 and the ``unmeasured`` column says how many. The
   ratios are measured on a CPU with one thread at 64 px: on a GPU the passes themselves are faster and the per-call
   Python work weighs more, so the measured column is the CPU-measured overhead carried over, not a GPU measurement.

``python -m replications bench paper-scale`` prints the table and writes ``reports/benchmarks/paper_scale.md``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from lightning_modules.utils import REPO_ROOT

# Forward-pass equivalents per image of one explanation, for the explainers the paper profiles use
# (F = 1 forward, an input-gradient backward counted as 1 more; see the module docstring).
GRADIENT_COST = 2.0


@dataclass(frozen=True)
class Stage:
    """One experiment of a paper at its published setting."""

    paper: str
    name: str
    model: str
    image_size: int
    images: int
    passes_per_image: float  # forward-pass equivalents per image
    in_chans: int = 3
    num_classes: int = 1000
    note: str = ""
    #: what the passes per image are spent on: ``(key, passes per image)`` with ``key`` an explainer name,
    #: ``meaningful_perturbation`` (mask learning) or ``deletion_insertion`` (the metric curves); the rest of
    #: ``passes_per_image`` (training steps, attacks, forward-only sweeps) has no benchmark
    parts: tuple = ()

    @property
    def passes(self) -> float:
        return self.images * self.passes_per_image

    def measured_passes(self, ratios: dict[str, float]) -> tuple[float, float]:
        """(forward-pass equivalents with every benchmarked part scaled by its measured time / floor, the passes per
        image without a measured ratio), both per image."""
        scaled, unmeasured = 0.0, self.passes_per_image - sum(p for _, p in self.parts)
        for key, p in self.parts:
            if key in ratios:
                scaled += p * ratios[key]
            else:
                unmeasured += p
        return scaled + unmeasured, unmeasured


def explainer_cost(name: str, kwargs: dict | None, image_size: int) -> float:
    """Forward-pass equivalents per image of one explainer call (counted from its settings)."""
    kw = kwargs or {}
    if name in ("gradient", "input_x_gradient", "guided_backprop", "gradcam", "excitation_backprop", "deeplift"):
        return GRADIENT_COST
    if name in ("guided_gradcam", "contrastive_excitation_backprop", "prunegrad"):
        return 2 * GRADIENT_COST
    if name == "integrated_gradients":
        return GRADIENT_COST * kw.get("steps", 50)
    if name in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        return GRADIENT_COST * kw.get("n_samples", 50)
    if name == "occlusion":
        window, stride = kw.get("window", 32), kw.get("stride", 8)
        return float((math.floor((image_size - window) / stride) + 1) ** 2)
    if name == "blurred_circle_occlusion":
        from lightning_modules.explainers.perturbation import BlurredCircleOcclusion

        # one forward per disc centre plus the clean one
        return float(BlurredCircleOcclusion(**kw).centres(image_size, image_size).shape[0] + 1)
    if name == "rise":
        return float(kw.get("n_masks", 4000))
    if name == "lime":
        return float(kw.get("n_samples", 1000))
    if name in ("sobel", "random"):
        return 0.0
    raise ValueError(f"no cost model for explainer {name!r}; add it to explainer_cost")


def method_parts(methods: dict[str, dict], image_size: int, times: float = 1.0) -> tuple:
    """``Stage.parts`` of one map per method (``times`` maps per image)."""
    return tuple((k, times * explainer_cost(k, v, image_size)) for k, v in methods.items()
                 if explainer_cost(k, v, image_size) > 0)


def _methods(spec) -> dict[str, dict]:
    if isinstance(spec, dict):
        return {k: (v or {}) for k, v in spec.items()}
    return {m: {} for m in (spec or [])}


def _load(paper: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "configs" / paper / "paper.yaml").read_text())


# ----------------------------------------------------------------------------------------------- the papers
def fong2017_stages(cfg: dict) -> list[Stage]:
    m = cfg["model"]
    name = m["model"]["name"]
    data = m["data"]
    size = data.get("image_size", data.get("size", 224))
    test = data.get("test_images") or 50_000  # null = the whole ILSVRC'12 validation set
    heldout = data.get("heldout_images") or 0
    mask = m["mask"]
    methods = _methods(m["methods"])
    for k, v in (m.get("explainer_kwargs") or {}).items():
        methods[k] = {**methods.get(k, {}), **v}
    # Adam iterations (forward + input backward each), the circle-initialisation search (one forward per radius
    # tried) and the clean + fully-perturbed reference forwards
    mask_cost = 2.0 * mask["iterations"] + int(mask.get("init_radii", 12)) + 2
    heatmaps = sum(explainer_cost(k, v, size) for k, v in methods.items())
    n_alphas = len((m.get("smallest_box") or {}).get("alphas") or [i / 10 for i in range(10)])
    mask_part = (("meaningful_perturbation", mask_cost),)
    heat_parts = method_parts(methods, size)
    stages = [
        Stage("fong2017", "deletion masks (Table 1, boxes, pointing; + held-out threshold search)", name, size,
              test + heldout, mask_cost, parts=mask_part),
        Stage("fong2017", f"compared heatmaps ({', '.join(methods)})", name, size, test + heldout, heatmaps,
              parts=heat_parts),
        Stage("fong2017", "smallest suppressing box (every method + mask, each alpha)", name, size, test,
              float((len(methods) + 1) * n_alphas)),
    ]
    adv = m.get("adversarial") or {}
    if adv.get("enabled", False):
        stages.append(Stage("fong2017", "adversarial images (I-FGSM) + their heatmaps and masks", name, size, test,
                            GRADIENT_COST * adv.get("max_iter", 10) + heatmaps + mask_cost,
                            parts=heat_parts + mask_part))
        # one AlexNet per method (and the mask) learns clean vs adversarial heatmaps: both heatmaps of each image
        stages.append(Stage("fong2017", f"adversarial detectors: AlexNet x {len(methods) + 1} x {adv.get('epochs', 30)} epochs",
                            "alexnet", size, test, 3.0 * 2 * adv.get("epochs", 30) * (len(methods) + 1),
                            num_classes=2, note="counted as torchvision's 3-channel AlexNet (the detector's first conv takes 1)"))
    # Separate passes of the paper profile, at their datasets' published sizes: COCO val2014 (40,137 images; one
    # explanation per image here: the classifier's top class) and the Oxford animal-parts images Fong used (3,558).
    if m.get("pointing_data"):
        stages.append(Stage("fong2017", "pointing game, COCO val2014: masks + heatmaps", m.get("pointing_model", {}).get("name", name),
                            size, 40_137, mask_cost + heatmaps, num_classes=80, parts=heat_parts + mask_part))
    if m.get("keypoints_data"):
        stages.append(Stage("fong2017", "animal parts (eyes vs feet): masks + heatmaps", name, size, 3_558,
                            mask_cost + heatmaps, parts=heat_parts + mask_part))
    return stages


def petsiuk2018_stages(cfg: dict) -> list[Stage]:
    m, d = cfg["model"], cfg["data"]
    name = m["model"]["name"]
    size = (d.get("imagenet") or {}).get("image_size", 224)
    n = d.get("n_images", 50_000)
    methods = _methods(m["methods"])
    heatmaps = sum(explainer_cost(k, v, size) for k, v in methods.items())
    steps = math.ceil(size * size / (size * 8)) + 1  # the paper's 224*8 px per step, plus the unperturbed step
    stab = m.get("stability") or {}
    curves = 2.0 * steps * len(methods)
    rise_n = float(sum(stab.get("n_values", [])) * len(stab.get("seeds", [])))
    stages = [
        Stage("petsiuk2018", f"heatmaps ({', '.join(methods)})", name, size, n, heatmaps, parts=method_parts(methods, size)),
        Stage("petsiuk2018", "deletion + insertion curves (every method)", name, size, n, curves,
              parts=(("deletion_insertion", curves),)),
        Stage("petsiuk2018", "RISE convergence vs N masks, seeds", name, size, stab.get("n_images", 0), rise_n,
              parts=(("rise", rise_n),)),
    ]
    if d.get("pointing_dataset"):
        n_point = {"voc07": 4_952, "coco": 40_137}.get(d["pointing_dataset"], 0)
        stages.append(Stage("petsiuk2018", f"pointing game ({d['pointing_dataset']} test, every method)", name, size,
                            n_point, heatmaps, num_classes=20 if d["pointing_dataset"] == "voc07" else 80,
                            parts=method_parts(methods, size)))
    return stages


def adebayo2018_stages(cfg: dict) -> list[Stage]:
    m, d = cfg["model"], cfg["data"]
    methods = _methods(m["methods"])
    for k, v in (m.get("explainer_kwargs") or {}).items():
        methods[k] = {**methods.get(k, {}), **v}
    size = (d.get("imagenet") or {}).get("image_size", 299)
    n_stages = 1 + len(m.get("blackbox_order", [])) * len(m.get("modes", ["cascading"]))
    per_stage = sum(explainer_cost(k, v, size) for k, v in methods.items())
    stages = [Stage("adebayo2018", f"model randomisation: {n_stages} stages x {len(methods)} methods",
                    m.get("blackbox_model", "inception_v3"), size, d.get("scenes_test_images", 200),
                    n_stages * per_stage, parts=method_parts(methods, size, n_stages))]
    for run, spec in (m.get("data_randomisation") or {}).items():
        train_images = 60_000
        epochs = spec["true_labels"]["max_epochs"] + spec["random_labels"]["max_epochs"]
        stages.append(Stage("adebayo2018", f"data randomisation {run}: true + permuted labels, {epochs} epochs",
                            spec["true_labels"]["model_name"], 28, train_images, 3.0 * epochs, in_chans=1,
                            num_classes=10, note="tiny model: lower bound"))
    return stages


def khakzar2019_stages(cfg: dict) -> list[Stage]:
    m, d = cfg["model"], cfg["data"]["init_args"]
    name, size = m["classifier"]["name"], d.get("image_size", 224)
    methods = _methods(m["methods"])
    sanity, roar = m.get("sanity") or {}, next(iter(m["roar"].values()))  # the paper's one ROAR benchmark (CIFAR-10)
    n_layers = len(sanity.get("order") or []) + 1
    n_sanity = sanity.get("images", 1000)
    per_map = sum(explainer_cost(k, v, size) for k, v in methods.items())
    pixel = 2.0 * len((m.get("pixel") or {}).get("fractions", [])) * (len(methods) + 1)
    roar_methods = _methods(roar.get("methods"))
    seeds, fractions = len(roar.get("seeds", [0])), len(roar.get("fractions", []))
    trainings = 1 + seeds * fractions * len(roar_methods)
    train_images = 50_000 - (roar["data"]["init_args"].get("val_size") or 0)
    return [
        Stage("khakzar2019", f"sanity checks: {n_layers} stages x {len(methods)} methods", name, size, n_sanity,
              n_layers * per_map, parts=method_parts(methods, size, n_layers)),
        Stage("khakzar2019", "pixel perturbation (MoRF + LeRF, every method + random)", name, size,
              d.get("limit") or 50_000, per_map + pixel,
              parts=method_parts(methods, size) + (("deletion_insertion", pixel),)),
        Stage("khakzar2019", "ROAR attributions (train + test sets, once)", roar["model"], 32, 60_000,
              sum(explainer_cost(k, v, 32) for k, v in roar_methods.items()), num_classes=10,
              note="tiny model: lower bound", parts=method_parts(roar_methods, 32)),
        Stage("khakzar2019", f"ROAR retraining: {trainings} models x {roar['epochs']} epochs", roar["model"], 32,
              train_images, 3.0 * roar["epochs"] * trainings, num_classes=10, note="tiny model: lower bound"),
    ]


def ghorbani2019_stages(cfg: dict) -> list[Stage]:
    m, d = cfg["model"], cfg["data"]
    name = m["model"]["name"]
    size = (d.get("imagenet") or {}).get("image_size", 227)
    n = d.get("n_images", 512)
    steps, eps = m["steps"], len(m["epsilons"])
    ig, attack_ig = m.get("ig_steps", 100), m.get("attack_ig_steps") or m.get("ig_steps", 100)
    # One step: the surrogate map with its graph (F + B) and the objective's double backward (2 more), per IG
    # point; one forward to check the label; with keep_best the evaluated map of the original model.
    eval_map = {"gradient": GRADIENT_COST, "integrated_gradients": GRADIENT_COST * ig, "deeplift": GRADIENT_COST}
    attack_map = {"gradient": 4.0, "integrated_gradients": 4.0 * attack_ig, "deeplift": 4.0 * attack_ig}
    stages = []
    for method in m["methods"]:
        per_step_guided = attack_map[method] + 1 + (eval_map[method] if m.get("keep_best", True) else 0)
        per_step_random = 1 + (eval_map[method] if m.get("keep_best", True) else 0)
        guided = [a for a in m["attacks"] if a != "random"]
        cost = eps * steps * (len(guided) * per_step_guided + ("random" in m["attacks"]) * per_step_random)
        stages.append(Stage("ghorbani2019", f"attacks on {method}: {len(m['attacks'])} attacks x {eps} eps x {steps} steps",
                            name, size, n, cost))
    return stages


PAPERS = {
    "fong2017": fong2017_stages,
    "petsiuk2018": petsiuk2018_stages,
    "adebayo2018": adebayo2018_stages,
    "khakzar2019": khakzar2019_stages,
    "ghorbani2019": ghorbani2019_stages,
}


def paper_stages(paper: str, cfg: dict | None = None) -> list[Stage]:
    if paper not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}; known: {sorted(PAPERS)}")
    return PAPERS[paper](cfg if cfg is not None else _load(paper))


# ----------------------------------------------------------------------------------------------- measurements
@dataclass(frozen=True)
class ModelCost:
    gflops: float  # one forward pass of one image
    cpu_s: float   # CPU seconds of one forward of one image on this machine (per thread-second, see module doc)


def measure_model(name: str, image_size: int, in_chans: int = 3, num_classes: int = 1000, batch: int = 8,
                  repeats: int = 3) -> ModelCost:
    """FLOPs (FlopCounterMode) and CPU time per image of one forward pass, random weights."""
    from torch.utils.flop_counter import FlopCounterMode

    from lightning_modules.models import load_model

    model, _ = load_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, in_chans, image_size, image_size, generator=gen)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            model(x[:1])
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            model(x)
            times.append((time.process_time() - t0) / batch)
    # process time counts every thread's CPU seconds; / threads = wall seconds on an otherwise idle machine
    return ModelCost(counter.get_total_flops() / 1e9, statistics.median(times) / torch.get_num_threads())


#: the benchmark reports whose measured time / floor ratios scale the floor arithmetic (see the module docstring):
#: one group per model, a later report of a group (a re-run of some methods) overriding the earlier one's rows
RATIO_REPORTS = (("reports/benchmarks/explainers_v2_vgg.md",), ("reports/benchmarks/explainers_v2_resnet.md",))
METRIC_REPORTS = ("reports/benchmarks/metrics_v2_vgg.md",)


def _table_rows(text: str) -> list[dict]:
    """The rows of every markdown table in ``text`` as {header: cell}."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            rows.append(dict(zip(header, cells)))
    return rows


def _number(cell: str | None) -> float | None:
    try:
        return float((cell or "").split()[0])
    except (ValueError, IndexError):
        return None


def measured_ratios(explainer_reports=RATIO_REPORTS, metric_reports=METRIC_REPORTS, batch: int = 32) -> dict[str, float]:
    """Per explainer: the largest over ``explainer_reports`` of its median time / floor at batch ``batch`` (an entry
    may be a group of reports of one model: there the last report that has the method counts);
    ``deletion_insertion``: the largest deletion or insertion time / floor of ``metric_reports``. Reports that are
    missing are skipped (relative paths: from the repository root)."""
    out: dict[str, float] = {}
    for group in explainer_reports:
        model: dict[str, float] = {}
        for rel in (group,) if isinstance(group, (str, Path)) else group:
            path = REPO_ROOT / rel
            if not path.exists():
                continue
            for row in _table_rows(path.read_text()):
                key = next((k for k in row if k.startswith("ratio") and k.endswith(f"B={batch}")), None)
                v = _number(row.get(key))
                if key and v is not None:
                    model[row["method"].strip("`")] = v
        for name, v in model.items():
            out[name] = max(out.get(name, 0.0), v)
    for rel in metric_reports:
        path = REPO_ROOT / rel
        if not path.exists():
            continue
        for row in _table_rows(path.read_text()):
            for k in ("deletion / floor", "insertion / floor"):
                v = _number(row.get(k))
                if v is not None:
                    out["deletion_insertion"] = max(out.get("deletion_insertion", 0.0), v)
    return out


def estimate(papers: list[str], gpu_tflops: float = 30.0, measure: bool = True,
             ratios: dict[str, float] | None = None) -> list[dict]:
    """One row per stage: the floor arithmetic (``GPU h (est.)``) and, with ``ratios`` (``measured_ratios()`` when
    None), the same passes scaled by each part's measured time / floor (``GPU h (measured costs)``)."""
    ratios = measured_ratios() if ratios is None else ratios
    stages = [s for p in papers for s in paper_stages(p)]
    costs: dict[tuple, ModelCost] = {}
    rows = []
    for s in stages:
        key = (s.model, s.image_size, s.in_chans, s.num_classes)
        if measure and key not in costs:
            costs[key] = measure_model(s.model, s.image_size, s.in_chans, s.num_classes)
        c = costs.get(key)
        row = {"paper": s.paper, "stage": s.name, "model": f"{s.model} @ {s.image_size}px", "images": s.images,
               "passes/image": round(s.passes_per_image, 1), "forward passes": s.passes}
        per_image, unmeasured = s.measured_passes(ratios)
        if c is not None:
            pflop = s.passes * c.gflops / 1e6
            gpu_h = pflop * 1e15 / (gpu_tflops * 1e12) / 3600
            row.update({"GFLOP/forward": _sig(c.gflops), "PFLOP": _sig(pflop),
                        "GPU h (est.)": _sig(gpu_h),
                        "GPU h (measured costs)": _sig(gpu_h * per_image / s.passes_per_image),
                        "measured / floor": round(per_image / s.passes_per_image, 3),
                        "unmeasured passes": f"{unmeasured / s.passes_per_image:.0%}",
                        "CPU h (est.)": _sig(s.passes * c.cpu_s / 3600)})
        row["note"] = s.note
        rows.append(row)
    return rows


def _sig(v: float, digits: int = 3) -> float:
    return float(f"{v:.{digits}g}")


def totals(rows: list[dict]) -> list[dict]:
    out = {}
    keys = ("PFLOP", "GPU h (est.)", "GPU h (measured costs)", "CPU h (est.)")
    for r in rows:
        t = out.setdefault(r["paper"], {"paper": r["paper"], **{k: 0.0 for k in keys}})
        for k in keys:
            t[k] += r.get(k, r.get("GPU h (est.)", 0.0) if k == "GPU h (measured costs)" else 0.0)
    res = []
    for t in out.values():
        ratio = t["GPU h (measured costs)"] / t["GPU h (est.)"] if t["GPU h (est.)"] else float("nan")
        res.append({**{k: (_sig(v) if isinstance(v, float) else v) for k, v in t.items()}, "measured / floor": round(ratio, 3)})
    return res


def main(argv: list[str] | None = None) -> None:
    from lightning_modules.reporting import markdown_table

    parser = argparse.ArgumentParser(prog="python -m replications bench paper-scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", nargs="*", default=list(PAPERS))
    parser.add_argument("--gpu-tflops", type=float, default=30.0, help="assumed sustained GPU throughput")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(REPO_ROOT / "reports" / "benchmarks" / "paper_scale.md"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = estimate(args.papers, args.gpu_tflops)
    tot = totals(rows)
    text = "\n".join([
        "# Paper-scale cost: an estimate, not a measurement\n",
        f"Generated by `python -m replications bench paper-scale` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) "
        f"from `configs/<paper>/paper.yaml`. Forward passes are counted from the config values; GFLOP per forward "
        f"is counted by `FlopCounterMode` at the paper's image size; **GPU hours assume {args.gpu_tflops:g} TFLOP/s "
        f"sustained on one GPU** (A100-class, TF32/FP32; roughly halve for an H100, divide by the number of GPUs "
        f"for DDP); CPU hours use the forward time per image measured on this machine "
        f"({torch.get_num_threads()} threads). Stages on tiny models are GPU lower bounds (launch/data bound). "
        f"Small stages (figures, a few images) are left out. See `lightning_modules/benchmarks/paper_scale.py`.\n",
        "**Floor arithmetic vs measured costs.** `GPU h (est.)` is the floor arithmetic: only the passes each method "
        "cannot avoid. `GPU h (measured costs)` scales each stage's explainers, mask learning and metric curves by "
        "their measured time / floor (explainers at batch 32, the metrics at their default 256 images per forward; "
        "the larger of the two benchmark-v2 models': "
        f"{', '.join(f'`{Path(r).name}`' for g in RATIO_REPORTS for r in g)}, and "
        f"{', '.join(f'`{Path(r).name}`' for r in METRIC_REPORTS)}; CPU, one thread, 64 px); `measured / floor` is "
        "their ratio; `unmeasured passes` (training steps, attacks, forward-only sweeps, methods without a "
        "benchmark) count at the floor. Ratios used: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(measured_ratios().items())) + ".\n",
        "## Per paper\n", markdown_table(tot), "\n## Per stage\n", markdown_table(rows),
    ])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(out)
    print(text)


if __name__ == "__main__":
    main()
