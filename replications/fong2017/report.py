"""The fong2017 report: tables side by side with the paper, figures, claims (see ``experiments.py``)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lightning_modules.reporting import Claim, Relation  # noqa: E402
from replications.fong2017 import paper as P  # noqa: E402

#: Written reasons for paper effects our embedded setting does not show. A claim gets its reason only when it
#: does not hold in the run (the measured numbers are always reported; the claim itself is never loosened).
_LOC = ("Structural: on the synthetic scenes the ground-truth box covers the whole creature (head, body, feet) while "
        "the class evidence is the head alone (the black box's validation accuracy falls to chance with the heads "
        "removed and is unchanged with the feet removed, blackbox_info). A map that finds the evidence draws a box "
        "around the head, whose IoU with the creature's box is below 0.5; the IoU-0.5 protocol therefore rewards "
        "maps that spread over the whole creature rather than maps that find the evidence, and Table 1's ordering "
        "(measured on ImageNet objects whose evidence is spread over the object) need not carry over. "
        "{n_test} test / {n_heldout} held-out images.")
_LOC_RESAMPLED = _LOC + (" The orderings between these high errors are not stable under resampling: with the 32 test "
                         "images of the previous committed report the mask beat Grad-CAM and occlusion under value and "
                         "mean thresholding.")
DEVIATIONS: dict[str, str] = {
    "c_value_mask_best": _LOC,
    "c_value_mask_beats_gradcam_occlusion": _LOC_RESAMPLED,
    "c_energy_mask_beats_gradcam_occlusion": _LOC,
    "c_mean_mask_beats_gradcam_occlusion": _LOC_RESAMPLED,
    "c_energy_excitation_beats_mask": _LOC,
    "c_mean_excitation_beats_mask": _LOC,
    "h_mask_beats_center": ("The pointing game scores a hit anywhere on the class's boxes: the scenes' creature box "
                            "(head, body, feet) is large relative to the 64-px image and often contains the centre, "
                            "with a 4.3-px tolerance (15 px at 224, scaled), so the centre baseline is strong; the "
                            "difficult subset has few images ({n_test} test images in all)."),
    "h_gradient_beats_center": ("The centre baseline is strong on 64-px scenes whose creature box often contains the "
                                "centre (see h_mask_beats_center)."),
    "a_artifacts_do_not_transfer": ("On the scenes the class evidence is the head's colour and shape: filling even "
                                    "scattered head pixels with the mean colour destroys it, so the unregularised "
                                    "masks transfer to the constant perturbation as well as the regularised ones do "
                                    "(both normalised scores < 0 under the constant perturbation); the paper's "
                                    "non-transfer reflects ImageNet classifiers' sensitivity to texture-level "
                                    "artifacts, which this small CNN on flat-coloured shapes does not offer."),
    "d_mask_smallest_box": ("The mask's boxes are among the smallest but not the smallest: on 64-px scenes the "
                            "evidence (the head) is a compact blob that excitation backprop and Grad-CAM (at 1/4 "
                            "resolution, upsampled) also peak on, the alpha grid has 10 levels and {n_test} images, and our "
                            "mask has 16x16 cells blurred by sigma_m, so its boxes are quantised at ~4 px; the "
                            "differences (a few % of the image) are within that quantisation."),
    "benchmark_mask_overhead": ("Not met in this run. The black box is a tiny CNN at 64 px (one forward+backward of a "
                                "batch of 8 takes about 12 ms on one core), so the mask pipeline's own per-iteration "
                                "work is not negligible next to it: the composite Phi and its backward, L1 and TV_beta "
                                "with their gradients, the Adam step and the clamp (about 1.5 ms per iteration, "
                                "measured with the network replaced by a linear layer), plus the three forward passes "
                                "of the setup (clean, fully perturbed, final score). The upsampling + mask blur, which "
                                "cost as much as the network before (an 11x11 single-channel convolution and its "
                                "backward), is now one precomputed matrix product. Both timings share the 2-core "
                                "machine with other jobs, so the ratio moves by about +-0.1 between runs."),
    "e_mask_best_detector": ("The detector is trained on {adv_train} clean + {adv_train} adversarial maps per method "
                             "and tested on {adv_test} + {adv_test} (CPU budget of the embedded profile): on the scenes "
                             "the I-FGSM perturbation changes every method's map in a way a small AlexNet can learn, "
                             "and the differences between methods are a few test maps; the paper trained on "
                             "ImageNet-scale heatmap sets with GoogLeNet's maps."),
}


def _label(m: str) -> str:
    from replications.fong2017.experiments import LABELS

    return LABELS.get(m, m)


def _counts(module) -> dict:
    """The sizes the deviation reasons quote, from this run."""
    r = getattr(module, "results", {}) or {}
    adv = r.get("adversarial", {})
    return {"n_test": r.get("mask", {}).get("n", module.data_spec.get("test_images")),
            "n_heldout": module.data_spec.get("heldout_images"),
            "adv_train": adv.get("n_train", 0) // 2, "adv_test": adv.get("n_test", 0) // 2}


def _claim(report, module, cid, experiment, text, relation, measured, paper=None):
    c = Claim(cid, experiment, text, relation, measured, paper or {}, profile=module.profile)
    if not c.holds and cid in DEVIATIONS:
        reason = DEVIATIONS[cid].format(**_counts(module))
        c.known_deviation = reason + " Measured: " + ", ".join(f"{k}={v:.4g}" for k, v in c.measured.items())
    report.add_claim(c)


def build_report(module, report) -> None:
    r = module.results
    cfg = module.mask_config
    h = int(module.examples["images"].shape[-1]) if module.examples else cfg.reference_size
    px = cfg.scaled(h)
    report.add_section("Setting", (
        f"Black box: `{module.model_spec.get('name', 'load_blackbox(' + repr(module.blackbox_profile) + ')')}`; "
        f"data: {module.data_spec['kind']} ({module.data_spec['test_images']} test images, "
        f"{module.data_spec['heldout_images']} held-out images for the threshold search), {h} px.\n\n"
        f"Mask learning (Sec. 3-4): {cfg.game} game, {cfg.perturbation} perturbation, objective `{cfg.objective}`, "
        f"Adam lr {cfg.lr}, {cfg.iterations} iterations, lambda1 {cfg.l1_coeff:g}, lambda2 {cfg.tv_coeff:g}, "
        f"beta {cfg.tv_beta:g}, delta {cfg.mask_scale} (mask {h // cfg.mask_scale}x{h // cfg.mask_scale}), "
        f"sigma_m {px['mask_blur_sigma']:.2f} px, sigma_0 {px['blur_sigma']:.2f} px, jitter {px['jitter']} px, "
        f"init `{cfg.init}`. Pixel sizes are the paper's 224-px values scaled by {h}/{cfg.reference_size}; the L1 and "
        f"TV sums are rescaled to the paper's 28x28 mask cells. Heatmaps of the other methods are clamped at 0 "
        f"(Fong's thresholds need non-negative maps); the mask's heatmap is 1 - m.\n\n"
        f"Methods: {', '.join(_label(m) for m in module.all_methods)}."
    ))
    report.add_section("Reductions and deviations from the paper (setting)", _reductions(module, h))
    _mask_section(module, report, r)
    _artifacts(module, report, r)
    _generalisation(module, report, r)
    _localisation(module, report, r)
    _boxes(module, report, r)
    if "adversarial" in r:
        from replications.fong2017.adversarial import report_adversarial

        report_adversarial(module, report, r["adversarial"], _claim)
    _keypoints(module, report, r)
    _pointing(module, report, r)
    _benchmark(module, report, r)
    _figures(module, report)


def _reductions(module, h: int) -> str:
    cfg = module.mask_config
    d = module.data_spec
    info = getattr(module.blackbox, "blackbox_info", None) or {}
    bb = ""
    if info:
        v = info.get("val", {})
        bb = (f" The black box (`scenes_cnn`, cached) has validation accuracy {v.get('accuracy', float('nan')):.3f}; "
              f"with the heads removed {v.get('accuracy_heads_removed', float('nan')):.3f}, with the feet removed "
              f"{v.get('accuracy_feet_removed', float('nan')):.3f} (chance {v.get('chance', float('nan')):.2f}): the head is "
              f"the evidence. Training it took {info.get('training_s', float('nan')):.0f} s on the shared machine (once; "
              f"cached under data/blackbox, not part of this run's wall time when cached).")
    return "\n".join([
        f"- Data and model: synthetic {h}-px scenes and a small CNN instead of ImageNet (224 px) and GoogLeNet; "
        f"{d['test_images']} test and {d['heldout_images']} held-out images instead of 50,000 / 5,000 (CPU budget of the "
        f"embedded profile, a few minutes on 2 shared cores).{bb}",
        f"- Mask: {cfg.iterations} Adam iterations instead of 300; delta {cfg.mask_scale} ({h // cfg.mask_scale}x"
        f"{h // cfg.mask_scale} mask) instead of 8, because at {h} px delta 8 would give 8-px cells, coarser than the "
        f"heads; pixel sizes (sigma_0, sigma_m, jitter, circle blur) scaled by {h}/224. One mask per image (objective "
        f"`{cfg.objective}`, lambda1 {cfg.l1_coeff:g}, beta {cfg.tv_beta:g}) serves every experiment; the official "
        "Table 1 masks used the top-5 objective with lambda1 1e-3 and beta 2 (the top-5 variant is implemented and "
        "tested: `objective: top5`).",
        "- Baselines: explainers of the shared registry (Captum-based gradient / guided backprop / Grad-CAM; "
        "excitation backprop; occlusion with a 16-px window, stride 8); signed maps clamped at 0. Contrastive "
        "excitation backprop has no Table 1 value in the sources read.",
        "- Adversarial (e, f): I-FGSM settings of the paper not read (8/255, step 1/255, 10 iterations used); "
        f"{module.adv_spec.get('images', 'all')} images; clean maps are the test pass's (ground-truth target).",
        "- Timings: the machine is shared with other engineers' jobs (CPU time and load average are recorded with the "
        "wall time): wall times and the benchmark are inflated and noisy; the benchmark takes the minimum of "
        "alternating repeats.",
    ])


def _mask_section(module, report, r):
    m = r["mask"]
    report.add_table("mask_learning", [{
        "images": m["n"], "clean softmax": m["clean"], "null (fully perturbed) softmax": m["null"],
        "masked softmax": m["final"], "normalised score": m["normalized_score"], "deleted area": m["area"],
        "loss, first 5 it.": m["loss_first"], "loss, last 5 it.": m["loss_last"], "circle init radius (px)": m["init_radius"],
    }], caption="Learned deletion masks (test images): mean over images. Normalised score (s - s_null)/(s_clean - s_null).")
    _claim(report, module, "mask_suppresses", "mask", "The learned deletion masks suppress the target's softmax: the "
           "mean normalised score of Phi(x; m) is below 0.5 and the loss decreases during learning (Eq. 3).",
           Relation.all_of(Relation.at_most("normalised_score", 0.5), Relation.lt("loss_last", "loss_first")),
           {"normalised_score": m["normalized_score"], "loss_last": m["loss_last"], "loss_first": m["loss_first"]})


def _artifacts(module, report, r):
    a = r["artifacts"]
    report.add_table("artifacts", [
        {"mask": "unregularised (delta 1, no TV, no blur, no jitter)", "deleted area": a["area_art"],
         "normalised score, blur (learned)": a["ns_art_blur"], "normalised score, constant (transfer)": a["ns_art_constant"],
         "mean |grad m|": a["tv_art"]},
        {"mask": "paper's (TV, upsampling, blur, jitter)", "deleted area": a["area_reg"],
         "normalised score, blur (learned)": a["ns_reg_blur"], "normalised score, constant (transfer)": a["ns_reg_constant"],
         "mean |grad m|": a["tv_reg"]},
    ], caption=f"a. Artifacts (Sec. 4), {a['n']} images. Paper: {P.ARTIFACTS.value} (no numbers).")
    measured = {k: a[k] for k in ("area_art", "area_reg", "ns_art_blur", "ns_reg_blur", "ns_art_constant", "ns_reg_constant", "tv_art", "tv_reg")}
    _claim(report, module, "a_artifacts_tiny", "a", "Unregularised masks delete a smaller area than the paper's "
           "regularised masks yet still suppress the class under the perturbation they were learned with "
           "(normalised score <= 0.5): an adversarial, unnatural mask (Sec. 4).",
           Relation.all_of(Relation.lt("area_art", "area_reg"), Relation.at_most("ns_art_blur", 0.5)), measured,
           {"paper": P.ARTIFACTS})
    _claim(report, module, "a_artifacts_do_not_transfer", "a", "The unregularised masks transfer worse to another "
           "perturbation (constant) than the regularised ones: higher normalised score under the constant perturbation.",
           Relation.gt("ns_art_constant", "ns_reg_constant"), measured, {"paper": P.ARTIFACTS})
    _claim(report, module, "a_artifacts_unnatural", "a", "Unregularised masks are high-frequency (larger mean "
           "spatial gradient) than the regularised ones.", Relation.gt("tv_art", "tv_reg"), measured, {"paper": P.ARTIFACTS})


def _generalisation(module, report, r):
    g = r["generalisation"]
    rows = []
    for name, desc in (("smooth", "smoothed"), ("binary", f"binarised (m > {module.gen_spec['binarise_at']})"),
                       ("moved", "binarised, moved by half the image (control)")):
        rows.append({"mask": desc, **{f"normalised score, {k}": g[f"{name}_{k}"] for k in ("blur", "constant", "noise")}})
    report.add_table("generalisation", rows, caption="b. Blur-learned masks, simplified, applied with other "
                     f"perturbations (Sec. 4). Paper: {P.GENERALISATION.value} (figure, no numbers).")
    measured = dict(g)
    rel = []
    for k in ("blur", "constant", "noise"):
        rel += [Relation.at_most(f"binary_{k}", 0.5), Relation.lt(f"binary_{k}", f"moved_{k}"),
                Relation.at_most(f"smooth_{k}", 0.5)]
    _claim(report, module, "b_simplified_masks_generalise", "b", "Smoothed and binarised blur-learned masks suppress the "
           "normalised softmax (<= 0.5) under blur, constant and noise perturbations, and the binary mask beats the "
           "same mask moved elsewhere (same area) under every perturbation.", Relation.all_of(*rel), measured,
           {"paper": P.GENERALISATION})


def _localisation(module, report, r):
    loc = r["localisation"]
    rows = []
    for m in module.all_methods:
        row = {"method": _label(m)}
        for t in ("value", "energy", "mean"):
            pe, pa = P.table1(t, m), P.table1_alpha(t, m)
            row[f"{t} alpha*"] = loc[m][t]["alpha"]
            row[f"{t} err %"] = 100 * loc[m][t]["test_error"]
            row[f"paper {t} alpha*"] = None if pa is None else pa.value
            row[f"paper {t} err %"] = None if pe is None else 100 * pe.value
        rows.append(row)
    report.add_table("weak_localisation", rows, caption="c. Weak localisation error (Table 1): alpha tuned on the "
                     "held-out split, error on the test split (IoU < 0.5 with every box of the class). Paper: GoogLeNet, "
                     "ImageNet val (official notebook outputs).")
    err = {f"{m}_{t}": loc[m][t]["test_error"] for m in module.all_methods for t in ("value", "energy", "mean")}
    others = [m for m in module.methods if m in P.TABLE1_ERROR["value"]]
    pv = lambda t, ms: {f"{m}_{t}": P.table1(t, m) for m in ms if P.table1(t, m) is not None}  # noqa: E731
    _claim(report, module, "c_value_mask_best", "c", "Value thresholding: the mask has the lowest localisation error "
           "of all methods in the paper's Table 1 (44.0% vs 46.0-53.0%).",
           Relation.all_of(*[Relation.lt("mask_value", f"{m}_value") for m in others]),
           {k: v for k, v in err.items() if k.endswith("_value")}, pv("value", others + ["mask"]))
    for t in ("value", "energy", "mean"):
        _claim(report, module, f"c_{t}_mask_beats_gradcam_occlusion", "c", f"{t.capitalize()} thresholding: the mask "
               "localises better than Grad-CAM and occlusion (Table 1: true for all three threshold types).",
               Relation.all_of(*[Relation.lt(f"mask_{t}", f"{m}_{t}") for m in ("gradcam", "occlusion") if m in module.methods]),
               {k: v for k, v in err.items() if k.endswith(f"_{t}")}, pv(t, ["mask", "gradcam", "occlusion"]))
    for t in ("energy", "mean"):
        if "excitation_backprop" in module.methods:
            _claim(report, module, f"c_{t}_excitation_beats_mask", "c", f"{t.capitalize()} thresholding: excitation "
                   "backprop localises better than the mask (Table 1: 38.7 vs 43.1 energy, 39.0 vs 43.2 mean).",
                   Relation.lt(f"excitation_backprop_{t}", f"mask_{t}"),
                   {k: v for k, v in err.items() if k.endswith(f"_{t}")}, pv(t, ["mask", "excitation_backprop"]))


def _boxes(module, report, r):
    b = r["boxes"]
    report.add_table("smallest_suppressing_box", [{"method": _label(m), "mean box area (fraction of image)": b[m]}
                                                  for m in module.all_methods],
                     caption=f"d. Smallest box (thresholded heatmap, value threshold) whose blurring brings the "
                     f"normalised softmax to <= {module.box_spec['level']} (Sec. 5 deletion game); "
                     f"no box reaching it: the box with the lowest score (official fallback).")
    others = module.methods
    _claim(report, module, "d_mask_smallest_box", "d", "The mask's heatmaps give the smallest suppressing boxes of all "
           "methods (Sec. 5).", Relation.all_of(*[Relation.lt(MASK_KEY, m) for m in others]),
           {m: b[m] for m in module.all_methods}, {"paper": P.SMALLEST_BOX})


MASK_KEY = "mask"


def _keypoints(module, report, r):
    k = r["keypoints"]
    if MASK_KEY not in k:
        report.add_section("g. Keypoints", "Not run: the data has no part keypoints (give keypoints_data: the Oxford "
                           "animal-parts annotations, as configs/fong2017/paper.yaml does).")
        return
    rows = [{"method": _label(m), "eyes (normalised intensity)": k[m]["eyes"], "feet": k[m]["feet"],
             "eyes - feet": k[m]["eyes"] - k[m]["feet"]} for m in module.all_methods + ["ground_truth"] if m in k]
    rows.append({"method": "paper: mask (hamster), 1 - mask value", "eyes (normalised intensity)": 1 - P.HAMSTER_EYES.value,
                 "feet": 1 - P.HAMSTER_FEET.value, "eyes - feet": P.HAMSTER_FEET.value - P.HAMSTER_EYES.value})
    report.add_table("keypoints", rows, caption="g. Mean min-max-normalised heatmap intensity in a window around "
                     "the eyes and the feet of the main object (high = salient; for the mask 1 - m). On the "
                     "scenes the head (with the eyes) is the only class evidence by construction (ground-truth row: "
                     "the head mask). Paper: per-class mask values, e.g. hamster 0.067 (eyes) vs 0.304 (feet), lower = "
                     "more salient.")
    rows_with = [m for m in module.all_methods + ["ground_truth"] if m in k]
    per_class = r.get("keypoints_per_class")
    if per_class:
        report.add_table("keypoints_per_class", [
            {"class": row["class"], "images": row["images"], "mask: 1 - m at the eyes": row["eyes"],
             "at the feet": row["feet"]} for row in per_class],
            caption="g. Per class (the paper's presentation): mean normalised 1 - m around the eyes and the feet. "
                    "Paper examples (mask value m, lower = more salient): " + ", ".join(
                        f"{name} {e:.3f} / {f:.3f}" for name, (e, f) in P.ANIMAL_PARTS.items()) + ".")
    meas = {f"{m}_{p}": k[m][p] for m in rows_with for p in ("eyes", "feet")}
    rel = [Relation.gt("mask_eyes", "mask_feet")]
    if "ground_truth" in k:  # the scenes: the discriminative part is known by construction
        rel.append(Relation.gt("ground_truth_eyes", "ground_truth_feet"))
    _claim(report, module, "g_mask_eyes_over_feet", "g", "The mask is more salient at the eyes than at the feet "
           "(Sec. 5, animal parts)" + (", as the ground truth requires." if "ground_truth" in k else "."),
           Relation.all_of(*rel),
           {k2: meas[k2] for k2 in ("mask_eyes", "mask_feet", "ground_truth_eyes", "ground_truth_feet") if k2 in meas},
           {"paper": P.EYES_MORE_SALIENT, "hamster_eyes_mask_value": P.HAMSTER_EYES, "hamster_feet_mask_value": P.HAMSTER_FEET})


def _pointing(module, report, r):
    p = r["pointing"]
    rows = [{"method": _label(m), "all %": 100 * p[m]["all"], "difficult %": 100 * p[m]["difficult"]}
            for m in module.all_methods + ["center"]]
    source = module.pointing_spec.get("data", {}).get("kind", module.data_spec["kind"])
    report.add_table("pointing_game", rows, caption=f"h. Pointing game (Table 2) on {source}, mean per-class accuracy, TorchRay "
                     "definition (15 px at 224 scaled). Paper reference: gradient 67.0% on VOC07 (GoogLeNet, official "
                     "notebook); centre baseline 27.8 / 19.5% on COCO (TorchRay). The paper's Table 2 was not read.")
    meas = {f"{m}_{s}": p[m][s] for m in module.all_methods + ["center"] for s in ("all", "difficult")}
    has_diff = not math.isnan(p["center"]["difficult"])
    rels = [Relation.gt("mask_all", "center_all")] + ([Relation.gt("mask_difficult", "center_difficult")] if has_diff else [])
    _claim(report, module, "h_mask_beats_center", "h", "The mask points at the object more often than the centre "
           "baseline, on all images and on the difficult subset.", Relation.all_of(*rels),
           {k: v for k, v in meas.items() if k.startswith(("mask_", "center_")) and not math.isnan(v)},
           {"center_all": P.POINTING_CENTER_COCO[0], "center_difficult": P.POINTING_CENTER_COCO[1]})
    if "gradient" in module.methods:
        _claim(report, module, "h_gradient_beats_center", "h", "Gradient beats the centre baseline on all images "
               "(VOC07: 67.0% per the official notebook; TorchRay: 76.3 vs 69.6).",
               Relation.gt("gradient_all", "center_all"), {"gradient_all": meas["gradient_all"], "center_all": meas["center_all"]},
               {"gradient_all": P.POINTING_GRADIENT_VOC})


def _benchmark(module, report, r):
    b = r.get("benchmark") or {}
    if not b:
        return
    report.add_table("benchmark", [b], caption="Mask learning cost: time of the whole optimisation divided by "
                     "iterations x (one forward + backward of the black box at the same batch); minimum over repeats, "
                     "timed alternately (shared machine: other processes inflate both).")
    t = r.get("timings_s", {})
    if t:
        report.add_table("explainer_time", [{"method": _label(m), "seconds (all test + held-out images)": v} for m, v in t.items()])
    _claim(report, module, "benchmark_mask_overhead", "benchmark", "Mask learning costs at most 1.2 x iterations x "
           "(forward + backward) at the same batch.", Relation.at_most("ratio", 1.2), {"ratio": b["ratio"]})


# --------------------------------------------------------------------------------------------- figures
def _show(ax, img, title=None, cmap=None):
    if img.dim() == 3 and img.shape[0] == 3:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
    else:
        ax.imshow(img.squeeze().numpy(), cmap=cmap or "jet")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _figures(module, report):
    ex = module.examples
    if not ex:
        return
    from lightning_modules.tasks.mask_learning import compose

    n = ex["images"].shape[0]
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    perturbed = compose(ex["images"], ex["substrate"], ex["mask"])
    for i in range(n):
        _show(axes[i, 0], ex["images"][i], f"class {int(ex['labels'][i])}, p={float(ex['clean'][i]):.2f}")
        _show(axes[i, 1], 1 - ex["mask"][i], "learned mask (1 - m)", cmap="jet")
        _show(axes[i, 2], perturbed[i], f"perturbed, p={float(ex['final'][i]):.2f}")
    fig.tight_layout()
    report.add_figure("masks", fig, "Image | learned deletion mask (1 - m, red = deleted) | perturbed image Phi(x; m) "
                      "(blur), with the target's softmax.")
    plt.close(fig)

    methods = list(ex["maps"])
    fig, axes = plt.subplots(n, len(methods) + 2, figsize=(1.6 * (len(methods) + 2), 1.7 * n), squeeze=False)
    for i in range(n):
        _show(axes[i, 0], ex["images"][i], "image" if i == 0 else None)
        _show(axes[i, 1], ex["head"][i].float(), "head (truth)" if i == 0 else None, cmap="gray")
        for j, m in enumerate(methods):
            _show(axes[i, j + 2], ex["maps"][m][i], _label(m) if i == 0 else None)
    fig.tight_layout()
    report.add_figure("heatmap_grid", fig, "Method x image heatmap grid (first test images); second column: the "
                      "discriminative part (head) known by construction.")
    plt.close(fig)

    art = module.examples_extra.get("artifact")
    if art:
        k = art["images"].shape[0]
        fig, axes = plt.subplots(k, 3, figsize=(6, 2 * k), squeeze=False)
        for i in range(k):
            _show(axes[i, 0], art["images"][i], "image" if i == 0 else None)
            _show(axes[i, 1], 1 - art["art"][i], "unregularised (1 - m)" if i == 0 else None)
            _show(axes[i, 2], 1 - art["reg"][i], "regularised (1 - m)" if i == 0 else None)
        fig.tight_layout()
        report.add_figure("artifacts", fig, "a. Artifacts: a mask learned without TV, upsampling, blur or jitter "
                          "(middle) vs the paper's mask (right).")
        plt.close(fig)
