"""Validity checks of the saliency protocols on an embedded benchmark (issue 19, part 4).

A protocol (deletion / insertion AUC, pointing game, weak localisation, smallest suppressing box) can only tell
methods apart on a benchmark where a perfect map wins, an uninformative map loses, real methods differ and the
score does not saturate. For each protocol and model this module scores

- ``oracle``: the ground-truth evidence map used as a heatmap (the evidence mask plus a small blurred copy of
  it, so its maximum lies inside the evidence and pixels near the evidence rank before the far background);
- ``random``: i.i.d. uniform noise (seeded);
- the real methods of ``lightning_modules.explainers`` (``METHODS``),

on the same images with the label as target, and judges it with paired bootstrap 95% CIs over images
(``judge``; the same resampled images for every map, ``N_BOOT`` replicates, one seed). Rules (a protocol failing
one is "not valid" on that model, with the numbers):

1. ``oracle_best``: the oracle is the best map, or the best map's margin over it has a CI containing 0;
2. ``random_worst``: no real method is CI-separated *worse* than random;
3. ``separated``: the best and the worst real method differ by a CI-separated margin;
4. ``not_saturated``: pointing: best real method < 0.98; localisation error: best real method > 0.02; deletion:
   the mean curve of the best real method keeps >= 10% of its drop after the first step (not at the floor) and
   ``pixels_per_step`` <= a quarter of the mean evidence area; insertion: the blurred start image scores
   <= 3x chance (it carries no class) and the best real method's mean curve has not reached 90% of its rise
   after the first step.

Protocol parameters at 64 px (``ProtocolParams``): deletion substrate = the model's mean colour (RISE), 48 px per
step (86 steps, a quarter of the mean v2 evidence area of ~200 px; RISE's 28 steps would delete ~146 px per step,
most of the evidence in one step); insertion
start = Gaussian blur kernel 11, sigma 5 in pixels (RISE's kernel, kept in pixels rather than scaled to 64 px:
it must remove the 4 and 8 px class textures, as it removes fine texture at 224 px; a sigma scaled by 64/224 =
1.4 px would keep the 8 px gratings at ~50% contrast); pointing tolerance 15 px * 64/224 = 4.3 px (TorchRay,
scaled); weak localisation: energy threshold (Fong), alpha chosen per method as the one with the lowest error
on the evaluated images (stated: optimistic for every method alike); smallest suppressing box: value threshold,
alphas 0..0.98 step 0.02, level 0.01, Fong's blur sigma 10. Maps are clamped at 0 for the thresholded
protocols (Fong's thresholds need non-negative maps).

``python -m replications bench validity [--images 128] [--models ...] [--device cuda]`` writes
``reports/benchmarks/validity.md`` and ``validity.json``; single-model runs (``--out`` each, e.g. in parallel) are
combined with ``--merge DIR ...``. Cost: about 4e5 forward passes per model at 128 images (RISE's 1000 masks
1.3e5, deletion + insertion 2e5, the suppression grid 6e4): ~5 CPU minutes per v2 model on 2 idle cores
(~1 ms CPU per forward), far more on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lightning_modules.reporting.validity import N_BOOT, bootstrap_weights, judge, statistic  # noqa: F401 (re-exported)
from lightning_modules.utils import REPO_ROOT, atomic_write, torch_threads

#: real methods scored (name -> constructor kwargs); RISE with ~1000 masks as issue 19 asks
METHODS: dict[str, dict] = {
    "gradient": {},
    "guided_backprop": {},
    "smoothgrad": {"n_samples": 32},
    "integrated_gradients": {"steps": 32, "reduction": "abs_sum"},
    "gradcam": {},
    "occlusion": {"window": 8, "stride": 4},
    "rise": {"n_masks": 1000},
}
SMOKE_METHODS = {"gradient": {}, "gradcam": {}}


@dataclass(frozen=True)
class ProtocolParams:
    """The protocols' parameters at 64 px (see the module docstring for why)."""

    pixels_per_step: int = 48
    deletion_substrate: str = "mean"
    insertion_blur_kernel: int = 11
    insertion_blur_sigma: float = 5.0
    pointing_tolerance: float | None = None  # None: 15 px at 224, scaled
    localisation_method: str = "energy"
    suppression_alphas: tuple = tuple(round(0.02 * i, 2) for i in range(50))
    suppression_level: float = 0.01
    suppression_sigma: float = 10.0
    max_batch: int = 512


# --------------------------------------------------------------------------------------------- data
@dataclass
class EvalSet:
    """Images and ground truth of one benchmark, in the batch schema plus the evidence GT."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    object_mask: torch.Tensor
    evidence_mask: torch.Tensor
    boxes: torch.Tensor
    evidence_boxes: torch.Tensor
    box_labels: torch.Tensor
    difficult: torch.Tensor
    num_classes: int
    notes: list[str] = field(default_factory=list)

    def to(self, device) -> "EvalSet":
        for k, v in list(vars(self).items()):
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device))
        return self


def v2_eval_set(config, n: int, split: str = "test", root=None) -> EvalSet:
    from lightning_modules.data.scenes_v2 import ScenesV2

    ds = ScenesV2(split, config, root)
    b = ds.__getitems__(range(min(n, len(ds))))
    return EvalSet("scenes_v2", b["image"], b["label"], b["mask"], b["evidence_mask"], b["boxes"],
                   b["evidence_boxes"], b["box_labels"], b["difficult"], config.num_classes)


def v1_eval_set(config, n: int, split: str = "test", root=None) -> EvalSet:
    """v1 scenes: evidence = the heads (``head_mask``); evidence boxes = one box per connected head region
    (scipy.ndimage.label; data preparation, once), labelled with the image's class."""
    from scipy import ndimage

    from lightning_modules.data.synthetic import SyntheticScenes

    ds = SyntheticScenes(split, config, root)
    b = ds.__getitems__(range(min(n, len(ds))))
    heads = b["head_mask"][:, 0].numpy()
    k = config.max_objects
    ev_boxes = torch.zeros(heads.shape[0], k, 4)
    ev_labels = torch.full((heads.shape[0], k), -1, dtype=torch.long)
    for i, m in enumerate(heads):
        lab, _ = ndimage.label(m)
        for j, sl in enumerate(ndimage.find_objects(lab)[:k]):
            ev_boxes[i, j] = torch.tensor([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop], dtype=torch.float32)
            ev_labels[i, j] = b["label"][i]
    # evidence boxes carry their own labels; the object boxes keep theirs (both share the class of the image)
    es = EvalSet("scenes_v1", b["image"], b["label"], b["mask"], b["head_mask"], b["boxes"], ev_boxes,
                 b["box_labels"], b["difficult"], config.num_classes)
    es.evidence_box_labels = ev_labels
    return es


def oracle_maps(evidence_mask: torch.Tensor) -> torch.Tensor:
    """The ground-truth evidence as a heatmap: mask + 0.5 * its Gaussian blur (sigma 3 px, normalised)."""
    from lightning_modules.metrics.progressive import blur

    m = evidence_mask.float()
    soft = blur(m, 19, 3.0)
    soft = soft / soft.flatten(1).amax(1).clamp(min=1e-8).view(-1, 1, 1, 1)
    return m + 0.5 * soft


def random_maps(like: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(like.shape[0], 1, *like.shape[-2:], generator=g).to(like.device)


def compute_maps(model, es: EvalSet, methods: dict[str, dict], batch_size: int = 32, log=print) -> tuple[dict, dict]:
    """Heatmaps ``name -> (N, 1, H, W)`` (oracle, random and every method; target = label) and each method's
    CPU seconds."""
    from lightning_modules.explainers import create_explainer

    maps = {"oracle": oracle_maps(es.evidence_mask), "random": random_maps(es.images)}
    seconds = {}
    for name, kwargs in methods.items():
        explainer = create_explainer(name, **kwargs)
        c0 = time.process_time()
        out = [explainer(model, es.images[i:i + batch_size], es.labels[i:i + batch_size])
               for i in range(0, es.images.shape[0], batch_size)]
        maps[name] = torch.cat(out).detach().float()
        seconds[name] = round(time.process_time() - c0, 1)
        log(f"  {name}: {seconds[name]} s CPU")
    return maps, seconds


# --------------------------------------------------------------------------------------------- protocols
def score_protocols(model, es: EvalSet, maps: dict[str, torch.Tensor], params: ProtocolParams = ProtocolParams(),
                    n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Every protocol's per-image values for every map, judged by ``judge``."""
    from lightning_modules.metrics import DeletionAUC, InsertionAUC
    from lightning_modules.metrics.progressive import blur, eval_mode, target_scores
    from lightning_modules.metrics.localisation import WeakLocalisation
    from lightning_modules.metrics.pointing import boxes_to_mask, default_tolerance, pointing_hits
    from lightning_modules.metrics.suppression import SmallestSuppressingBox

    h, w = es.images.shape[-2:]
    chance = 1.0 / es.num_classes
    evidence_area = float(es.evidence_mask.flatten(1).sum(1).float().mean())
    out: dict = {"evidence_area_px": evidence_area}
    # deletion / insertion
    dele = DeletionAUC(pixels_per_step=params.pixels_per_step, substrate=params.deletion_substrate,
                       max_batch=params.max_batch)
    ins = InsertionAUC(pixels_per_step=params.pixels_per_step, blur_kernel=params.insertion_blur_kernel,
                       blur_sigma=params.insertion_blur_sigma, max_batch=params.max_batch)
    curves = {"deletion": {}, "insertion": {}}
    from lightning_modules.metrics.progressive import trapezoid_auc

    for name, m in maps.items():
        curves["deletion"][name] = dele.curves(model, es.images, m, es.labels)
        curves["insertion"][name] = ins.curves(model, es.images, m, es.labels)
    for mode, better in (("deletion", False), ("insertion", True)):
        values = {k: trapezoid_auc(c) for k, c in curves[mode].items()}
        sign = 1 if better else -1
        best = max((k for k in values if k not in ("oracle", "random")), key=lambda k: sign * float(values[k].mean()))
        mc = curves[mode][best].mean(0)
        span = float(mc[-1] - mc[0])
        first = float((mc[1] - mc[0]) / span) if span != 0 else math.nan
        extra = {}
        if mode == "deletion":
            extra["first_step_not_at_floor"] = (first <= 0.9, f"{best}: {first:.3f} of the drop after the first step "
                                                                 f"({params.pixels_per_step} px)")
            extra["step_well_below_evidence"] = (params.pixels_per_step <= evidence_area / 4,
                                                 f"{params.pixels_per_step} px per step vs mean evidence area "
                                                 f"{evidence_area:.0f} px")
        else:
            s0 = float(curves[mode]["random"][:, 0].mean())
            extra["blurred_start_uninformative"] = (s0 <= 3 * chance, f"blurred start scores {s0:.3f} (chance {chance:.3f})")
            extra["first_step_not_at_top"] = (first <= 0.9, f"{best}: {first:.3f} of the rise after the first step")
        out[mode] = judge(values, better, n_boot=n_boot, seed=seed, extra_checks=extra)
        out[mode]["mean_curves"] = {k: [round(float(x), 4) for x in c.mean(0)] for k, c in curves[mode].items()}
    # pointing game: object GT and evidence GT, all and difficult
    tol = params.pointing_tolerance or default_tolerance(h, w)
    for gt, masks in (("object", es.object_mask), ("evidence", es.evidence_mask)):
        hits = {k: pointing_hits(m, masks, tol).float() for k, m in maps.items()}
        out[f"pointing_{gt}_all"] = judge(hits, True, classes=es.labels, bound=0.98, n_boot=n_boot, seed=seed)
        hard = es.difficult.bool()
        if int(hard.sum()) >= 10:
            out[f"pointing_{gt}_difficult"] = judge({k: v[hard] for k, v in hits.items()}, True, classes=es.labels[hard],
                                                    bound=0.98, n_boot=n_boot, seed=seed)
    out["pointing_tolerance_px"] = tol
    # weak localisation: energy threshold, alpha chosen per map on these images
    ev_labels = getattr(es, "evidence_box_labels", es.box_labels)
    for gt, boxes, labels in (("object", es.boxes, es.box_labels), ("evidence", es.evidence_boxes, ev_labels)):
        errors, alphas = {}, {}
        for k, m in maps.items():
            metric = WeakLocalisation(method=params.localisation_method)
            metric.update(m.clamp(min=0), es.labels, boxes, labels)
            per = metric.per_sample()["errors"]  # (N, A)
            a = int(per.mean(0).argmin())
            errors[k], alphas[k] = per[:, a], float(metric.alphas[a])
        out[f"localisation_{gt}"] = judge(errors, False, bound=0.02, n_boot=n_boot, seed=seed)
        out[f"localisation_{gt}"]["alpha"] = alphas
    # smallest suppressing box
    areas = {}
    for k, m in maps.items():
        metric = SmallestSuppressingBox(level=params.suppression_level, alphas=params.suppression_alphas,
                                        blur_sigma=params.suppression_sigma, max_batch=params.max_batch)
        metric.update(model, es.images, m.clamp(min=0), es.labels)
        areas[k] = metric.per_sample()["best_area"]
    out["suppression"] = judge(areas, False, n_boot=n_boot, seed=seed)
    with eval_mode(model):
        full_blur = target_scores(model(blur(es.images, params.insertion_blur_kernel, params.insertion_blur_sigma)),
                                  es.labels, "prob")
    out["blurred_image_score"] = float(full_blur.mean())
    return out


PROTOCOLS = ("deletion", "insertion", "pointing_object_all", "pointing_object_difficult", "pointing_evidence_all",
             "pointing_evidence_difficult", "localisation_object", "localisation_evidence", "suppression")


# --------------------------------------------------------------------------------------------- report
def _fmt(entry: dict, name: str) -> str:
    m = entry["maps"][name]
    return f"{m['value']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"


def write_report(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / "validity.json") as fh:
        json.dump(results, fh, indent=1, default=float)
        fh.write("\n")
    lines = ["# Validity of the protocols on the embedded benchmarks", "",
             "Written by `python -m replications bench validity` (lightning_modules/benchmarks/validity.py; the rules "
             "and the protocol parameters are in its docstring). Values: mean over images (pointing: mean over classes "
             "of the per-class hit rate) with seeded paired bootstrap 95% CIs "
             f"({results['n_boot']} resamples over images). Target class = the label.", "",
             f"Run: {results['n_images']} test images per model, {results['wall_s']:.0f} s wall, {results['cpu_s']:.0f} s "
             f"CPU in all (per model: " + ", ".join(f"{k} {r['cpu_s']:.0f} s CPU / {r['wall_s']:.0f} s wall"
                                                 for k, r in results["models"].items()) + f"), {results['threads']} threads, on {results['machine']} (shared with other jobs: CPU time is the "
             "work done).", "", "## Protocol parameters (64 px)", ""]
    for k, v in results["params"].items():
        lines.append(f"- `{k}`: {v}")
    lines += ["", "## Models", "", "| model | data | test acc | acc, evidence removed | acc, non-evidence removed | "
              "blurred image score | FLOPs / forward | CPU ms / forward (batch 64) | training CPU s |", "|---|---|---|---|---|---|---|---|---|"]
    for mname, r in results["models"].items():
        i = r.get("model_info", {})
        lines.append(f"| {mname} | {r['data']} | {i.get('accuracy', float('nan')):.3f} | "
                     f"{i.get('accuracy_evidence_removed', float('nan')):.3f} | {i.get('accuracy_non_evidence_removed', float('nan')):.3f} | "
                     f"{r['protocols']['blurred_image_score']:.3f} | {i.get('flops_per_image', float('nan')) / 1e6:.1f} M | "
                     f"{i.get('cpu_ms_per_image', float('nan')):.2f} | {i.get('training_cpu_s', float('nan'))} |")
    lines += ["", "## Verdicts", "", "| protocol | model | verdict | oracle | random | best method | worst method | failed checks |",
              "|---|---|---|---|---|---|---|---|"]
    for proto in PROTOCOLS:
        for mname, r in results["models"].items():
            e = r["protocols"].get(proto)
            if e is None:
                continue
            failed = "; ".join(f"{k}: {c['detail']}" for k, c in e["checks"].items() if not c["passed"]) or "–"
            arrow = "higher" if e["higher_is_better"] else "lower"
            lines.append(f"| {proto} ({arrow} better) | {mname} | {'valid' if e['valid'] else '**not valid**'} | "
                         f"{_fmt(e, 'oracle')} | {_fmt(e, 'random')} | {e['best_real']} {_fmt(e, e['best_real'])} | "
                         f"{e['worst_real']} {_fmt(e, e['worst_real'])} | {failed} |")
    lines += ["", "## Every map", ""]
    for mname, r in results["models"].items():
        names = list(r["protocols"]["deletion"]["maps"])
        lines += [f"### {mname}", "", "| protocol | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for proto in PROTOCOLS:
            e = r["protocols"].get(proto)
            if e is not None:
                lines.append(f"| {proto} | " + " | ".join(f"{e['maps'][n]['value']:.3f}" for n in names) + " |")
        lines += ["", "Method CPU seconds for the maps: " + ", ".join(f"{k} {v}" for k, v in r["method_cpu_s"].items()), ""]
    lines += ["## Notes", "",
              "- The oracle is the label's evidence mask (v2: the grating region; v1: the heads) plus half its blur "
              "(sigma 3 px), so it ranks evidence first and ties are broken towards the evidence centre.",
              "- Weak localisation picks each map's alpha on the evaluated images themselves (Fong tunes it on a "
              "held-out split): optimistic for every map alike, and it lets a box-shaped oracle reach its best box.",
              "- Pointing values are class-mean hit rates (TorchRay); the difficult subset is evaluated only where it "
              "has >= 10 images. v1's difficult images hold extra objects *of the same class*, v2's a distractor "
              "object of another class or a small primary object.",
              "- Model table: v2 numbers are those measured on the test split when the model was trained "
              "(`embedded_info`); v1's evidence-removed / non-evidence (feet) removed accuracies are its black box's "
              "recorded validation-split numbers. Blurred image score: mean softmax of the label on the whole image "
              "blurred with the insertion kernel (chance = 1 / classes).",
              "- The v1 black box is scored with the same 64 px protocol parameters as the v2 models (not the v1 "
              "reports' 147-px deletion steps), so the table compares the settings, not the parameters.",
              "- The pointing rows above are single-label scenes (one answer per image: the label's object is the "
              "largest and its class occurs nowhere else), where class-sensitive maps saturate; the pointing game as "
              "the papers ran it, on multi-label scenes, is the next section when `pointing.json` is present.",
              ""]
    pointing = out_dir / "pointing.json"
    if pointing.is_file():
        from lightning_modules.benchmarks.pointing import markdown

        lines += markdown(json.loads(pointing.read_text()))
    with atomic_write(out_dir / "validity.md") as fh:
        fh.write("\n".join(lines) + "\n")


def _model_info(model) -> dict:
    from lightning_modules.models import forward_cost

    info = dict(getattr(model, "embedded_info", None) or {})
    flat = dict(info.get("test", {}))
    cost = info.get("forward_cost") or forward_cost(model, model.data_config.input_size[-1])
    flat.update({k: cost[k] for k in ("flops_per_image", "cpu_ms_per_image")})
    flat["training_cpu_s"] = info.get("training_cpu_s", getattr(model, "blackbox_info", {}).get("training_cpu_s"))
    bb = getattr(model, "blackbox_info", None)
    if bb:
        v = bb.get("val", {})
        flat.update(accuracy=bb.get("test_accuracy", math.nan),
                    accuracy_evidence_removed=v.get("accuracy_heads_removed", math.nan),
                    accuracy_non_evidence_removed=v.get("accuracy_feet_removed", math.nan))
    return flat


def run(models: list[str], n_images: int = 128, methods: dict | None = None, params: ProtocolParams = ProtocolParams(),
        n_boot: int = N_BOOT, threads: int | None = 2, out_dir: Path | None = None, device: str = "cpu",
        log=print) -> dict:
    """Score every protocol on ``models`` (``scenes_v2_vgg``, ``scenes_v2_resnet``, ``v1`` = the v1 black box)
    on ``device`` (the CPU seconds reported are then the host's)."""
    from lightning_modules.models import load_model

    methods = METHODS if methods is None else methods
    results = {"n_images": n_images, "n_boot": n_boot, "threads": threads, "params": asdict(params),
               "methods": methods, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
               "device": str(device), "models": {}}
    results["params"]["suppression_alphas"] = "0..0.98 step 0.02"
    with torch_threads(threads):
        for mname in models:
            if mname == "v1":
                model, _ = load_model("blackbox_default", weights="embedded")
                es = v1_eval_set(model.scenes_config, n_images)
            else:
                model, _ = load_model(mname, weights="embedded")
                es = v2_eval_set(model.scenes_config, n_images)
            info = _model_info(model)
            model, es = model.to(device), es.to(device)
            log(f"{mname}: {es.images.shape[0]} images on {device}")
            t0, w0 = time.process_time(), time.perf_counter()
            maps, seconds = compute_maps(model, es, methods, log=log)
            protocols = score_protocols(model, es, maps, params, n_boot)
            log(f"{mname}: done ({time.process_time() - t0:.0f} s CPU)")
            results["models"][mname] = {"data": es.name, "protocols": protocols, "method_cpu_s": seconds,
                                        "model_info": info, "cpu_s": round(time.process_time() - t0, 1),
                                        "wall_s": round(time.perf_counter() - w0, 1)}
    results["wall_s"] = sum(r["wall_s"] for r in results["models"].values())
    results["cpu_s"] = sum(r["cpu_s"] for r in results["models"].values())
    if out_dir is not None:
        write_report(results, out_dir)
    return results


def merge(dirs: list[Path], out_dir: Path) -> dict:
    """One report from runs of single models (``--out`` each) with the same settings (models run in parallel)."""
    parts = [json.loads((Path(d) / "validity.json").read_text()) for d in dirs]
    keys = ("n_images", "n_boot", "params", "methods")
    for p, d in zip(parts[1:], dirs[1:]):
        if {k: p[k] for k in keys} != {k: parts[0][k] for k in keys}:
            raise ValueError(f"{d}/validity.json was run with other settings than {dirs[0]}; rerun it with the same ones")
    results = dict(parts[0])
    results["models"] = {k: v for p in parts for k, v in p["models"].items()}
    results["wall_s"] = sum(r["wall_s"] for r in results["models"].values())
    results["cpu_s"] = sum(r["cpu_s"] for r in results["models"].values())
    write_report(results, Path(out_dir))
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m replications bench validity", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--models", nargs="+", default=["scenes_v2_vgg", "scenes_v2_resnet", "v1"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="e.g. cuda (the models and images are moved there)")
    p.add_argument("--out", default=str(REPO_ROOT / "reports" / "benchmarks"))
    p.add_argument("--smoke", action="store_true", help="two methods, for a quick look")
    p.add_argument("--merge", nargs="+", metavar="DIR", help="write one report into --out from earlier single-model "
                   "runs' --out folders (same settings) instead of running")
    a = p.parse_args(argv)
    if a.merge:
        res = merge([Path(d) for d in a.merge], Path(a.out))
    else:
        res = run(a.models, a.images, SMOKE_METHODS if a.smoke else None, threads=a.threads, out_dir=Path(a.out),
                  device=a.device)
    for mname, r in res["models"].items():
        for proto in PROTOCOLS:
            e = r["protocols"].get(proto)
            if e is not None:
                print(f"{mname:18s} {proto:30s} {'valid' if e['valid'] else 'NOT VALID'}")


if __name__ == "__main__":
    main()
