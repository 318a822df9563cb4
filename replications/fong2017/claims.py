"""The claims of the fong2017 replication: a pure function of the run's plain results (``build_claims``).

Every comparison between methods or masks reads per-image values (the same images, sorted by sample id; per test
map for the adversarial detector) and is judged by the paired bootstrap of ``lightning_modules.reporting``.
Known deviations are registered, each with a diagnostic measured in the same run, in ``deviations.py``.
"""

from __future__ import annotations

import math

from lightning_modules.reporting import Claim, Relation
from replications.fong2017 import paper as P

MASK = "mask"
THRESHOLDS = ("value", "energy", "mean")
#: the mask suppresses the class: mean normalised score at most this (Sec. 3, deletion game)
SUPPRESSED = 0.5
#: the mask learning benchmark: time over iterations x (forward + backward)
BENCH_RATIO_BOUND = 1.2


def _mean(v) -> float:
    return math.fsum(v) / len(v)


def _finite_rows(columns: dict[str, list]) -> dict[str, list[float]]:
    """The columns restricted to the images where every column is finite (the same images for every name)."""
    names = list(columns)
    n = len(columns[names[0]])
    if any(len(columns[k]) != n for k in names):
        raise ValueError(f"per-image columns differ in length: {({k: len(v) for k, v in columns.items()})}")
    keep = [i for i in range(n) if all(columns[k][i] is not None and math.isfinite(columns[k][i]) for k in names)]
    return {k: [float(columns[k][i]) for i in keep] for k in names}


def _claim(cid, experiment, text, relation, samples, paper=None, extra=None, kind="claim") -> Claim | None:
    """The claim on per-image ``samples``; None where no image has every value defined (e.g. a normalised score,
    undefined where the perturbation itself hardly changes the score: the smoke profile's weak model)."""
    if any(not v for v in samples.values()):
        return None
    measured = {k: _mean(v) for k, v in samples.items()}
    measured.update(extra or {})
    return Claim(cid, experiment, text, relation, measured, paper or {}, samples=samples, kind=kind)


def _mask(res: dict) -> list[Claim]:
    m = res["mask_per_image"]
    s = _finite_rows({"normalised_score": m["normalised_score"], "loss_last": m["loss_last"], "loss_first": m["loss_first"]})
    out = [_claim(
        "mask_suppresses", "mask",
        f"The learned deletion masks suppress the target's softmax: the mean normalised score of Phi(x; m) is at most "
        f"{SUPPRESSED} and the loss decreases during learning (Eq. 3).",
        Relation.all_of(Relation.at_most("normalised_score", SUPPRESSED), Relation.lt("loss_last", "loss_first")), s,
    )]
    comp = res.get("compactness_per_image")
    if comp:
        s = _finite_rows({"deleted_area": m["area"], "object_box_area": comp["box_area"]})
        out.append(_claim(
            "mask_compact", "mask",
            "The deletion masks are compact: the deleted area (mean of 1 - m) is smaller than the object's box area "
            "(the L1 term asks for the smallest deletion region; ours against the scenes' ground truth).",
            Relation.lt("deleted_area", "object_box_area"), s,
        ))
    return out


def _artifacts(res: dict) -> list[Claim]:
    a = res["artifacts_per_image"]
    pick = lambda *ks: _finite_rows({k: a[k] for k in ks})  # noqa: E731
    return [
        _claim("a_artifacts_tiny", "a", "Unregularised masks delete a smaller area than the paper's regularised masks yet "
               f"still suppress the class under the perturbation they were learned with (normalised score <= {SUPPRESSED}): "
               "an adversarial, unnatural mask (Sec. 4).",
               Relation.all_of(Relation.lt("area_art", "area_reg"), Relation.at_most("ns_art_blur", SUPPRESSED)),
               pick("area_art", "area_reg", "ns_art_blur"), {"paper": P.ARTIFACTS}),
        _claim("a_artifacts_do_not_transfer", "a", "The unregularised masks transfer worse to another perturbation "
               "(constant) than the regularised ones: higher normalised score under the constant perturbation.",
               Relation.gt("ns_art_constant", "ns_reg_constant"), pick("ns_art_constant", "ns_reg_constant"),
               {"paper": P.ARTIFACTS}),
        _claim("a_artifacts_unnatural", "a", "Unregularised masks are high-frequency (larger mean spatial gradient) than "
               "the regularised ones.", Relation.gt("tv_art", "tv_reg"), pick("tv_art", "tv_reg"), {"paper": P.ARTIFACTS}),
    ]


def _generalisation(res: dict) -> list[Claim]:
    gen = res["generalisation_per_image"]
    g, rel = {}, []
    for k in ("blur", "constant", "noise"):  # each perturbation has its own null image: its own defined images
        part = _finite_rows({f"{n}_{k}": gen[f"{n}_{k}"] for n in ("binary", "moved", "smooth")})
        if not part[f"binary_{k}"]:
            continue
        g.update(part)
        rel += [Relation.at_most(f"binary_{k}", SUPPRESSED), Relation.lt(f"binary_{k}", f"moved_{k}"),
                Relation.at_most(f"smooth_{k}", SUPPRESSED)]
    if not rel:
        return []
    return [_claim("b_simplified_masks_generalise", "b", f"Smoothed and binarised blur-learned masks suppress the "
                   f"normalised softmax (<= {SUPPRESSED}) under blur, constant and noise perturbations, and the binary "
                   "mask beats the same mask moved elsewhere (same area) under every perturbation.",
                   Relation.all_of(*rel), g, {"paper": P.GENERALISATION})]


def _localisation(res: dict) -> list[Claim]:
    loc = res["localisation_per_image"]
    key = res["paper_keys"]
    methods = res["methods"]
    in_table = [m for m in methods if key[m] in P.TABLE1_ERROR["value"]]

    def samples(t, ms):
        return {f"{m}_{t}": loc[m][t] for m in ms}

    def paper(t, ms):
        return {f"{m}_{t}": P.table1(t, key[m]) for m in ms if P.table1(t, key[m]) is not None}

    out = [_claim("c_value_mask_best", "c", "Value thresholding: the mask has the lowest localisation error of all "
                  "methods in the paper's Table 1 (44.0% vs 46.0-53.0%).",
                  Relation.best(f"{MASK}_value", [f"{m}_value" for m in in_table]),
                  samples("value", in_table + [MASK]), paper("value", in_table + [MASK]))]
    pair = [m for m in methods if key[m] in ("gradcam", "occlusion")]
    for t in THRESHOLDS:
        out.append(_claim(f"c_{t}_mask_beats_gradcam_occlusion", "c", f"{t.capitalize()} thresholding: the mask "
                          "localises better than Grad-CAM and occlusion (Table 1: true for all three threshold types).",
                          Relation.best(f"{MASK}_{t}", [f"{m}_{t}" for m in pair]), samples(t, pair + [MASK]),
                          paper(t, pair + [MASK])))
    if "excitation_backprop" in methods:
        for t in ("energy", "mean"):
            out.append(_claim(f"c_{t}_excitation_beats_mask", "c", f"{t.capitalize()} thresholding: excitation "
                              "backprop localises better than the mask (Table 1: 38.7 vs 43.1 energy, 39.0 vs 43.2 mean).",
                              Relation.lt(f"excitation_backprop_{t}", f"{MASK}_{t}"),
                              samples(t, ["excitation_backprop", MASK]), paper(t, ["excitation_backprop", MASK])))
    return out


def _boxes(res: dict) -> list[Claim]:
    s = _finite_rows({m: res["boxes_per_image"][m] for m in res["all_methods"]})
    return [_claim("d_mask_smallest_box", "d", "The mask's heatmaps give the smallest suppressing boxes of all methods "
                   f"(Sec. 5; value threshold, {res['n_box_alphas']} levels).",
                   Relation.best(MASK, res["methods"]), s, {"paper": P.SMALLEST_BOX})]


def _adversarial(res: dict) -> list[Claim]:
    a = res.get("adversarial")
    if not a:
        return []
    out = [_claim("e_mask_best_detector", "e", "Heatmaps of the mask separate clean from adversarial images best of all "
                  "methods (Sec. 5; detector accuracy per test map).",
                  Relation.best(MASK, res["methods"], ">"), {m: a["correct"][m] for m in res["all_methods"]},
                  {"paper": P.ADVERSARIAL})]
    if a["recover_orig_per_image"]:
        out.append(_claim("f_label_recovery", "f", "Deleting the region the mask finds on an adversarial image recovers "
                          "the original prediction more often than deleting the same area elsewhere (the mask moved by "
                          "half the image).", Relation.gt("recover_orig", "recover_orig_moved"),
                          {"recover_orig": a["recover_orig_per_image"], "recover_orig_moved": a["recover_orig_moved_per_image"]},
                          {"paper": P.LABEL_RECOVERY}))
    return out


def _keypoints(res: dict) -> list[Claim]:
    k = res.get("keypoints_per_image") or {}
    if MASK not in k:
        return []
    out = [_claim("g_mask_eyes_over_feet", "g", "The mask is more salient at the eyes than at the feet (Sec. 5, animal "
                  "parts).", Relation.gt("mask_eyes", "mask_feet"),
                  _finite_rows({"mask_eyes": k[MASK]["eyes"], "mask_feet": k[MASK]["feet"]}),
                  {"paper": P.EYES_MORE_SALIENT, "hamster_eyes_mask_value": P.HAMSTER_EYES,
                   "hamster_feet_mask_value": P.HAMSTER_FEET})]
    if "ground_truth" in k:  # the scenes: the head (with the eyes) is the evidence by construction
        out.append(_claim("g_ground_truth_eyes_over_feet", "g", "The ground-truth evidence map (the head mask) is more "
                          "salient at the eyes than at the feet (true by construction of the scenes; checks the "
                          "keypoint windows).", Relation.gt("ground_truth_eyes", "ground_truth_feet"),
                          _finite_rows({"ground_truth_eyes": k["ground_truth"]["eyes"],
                                        "ground_truth_feet": k["ground_truth"]["feet"]}), kind="sanity"))
    return out


def _pointing(res: dict) -> list[Claim]:
    p = res["pointing_per_image"]
    flags = p["center"]["difficult"]

    def hits(m, subset):
        return [h for h, d in zip(p[m]["hits"], flags) if subset == "all" or d]

    samples = {"mask_all": hits(MASK, "all"), "center_all": hits("center", "all")}
    rels = [Relation.gt("mask_all", "center_all")]
    if any(flags):
        samples.update(mask_difficult=hits(MASK, "difficult"), center_difficult=hits("center", "difficult"))
        rels.append(Relation.gt("mask_difficult", "center_difficult"))
    out = [_claim("h_mask_beats_center", "h", "The mask points at the object more often than the centre baseline, on "
                  "all images and on the difficult subset (per-image hits).", Relation.all_of(*rels), samples,
                  {"center_all": P.POINTING_CENTER_COCO[0], "center_difficult": P.POINTING_CENTER_COCO[1]})]
    if "gradient" in res["methods"]:
        out.append(_claim("h_gradient_beats_center", "h", "Gradient beats the centre baseline on all images (VOC07: "
                          "67.0% per the official notebook; TorchRay: 76.3 vs 69.6; per-image hits).",
                          Relation.gt("gradient_all", "center_all"),
                          {"gradient_all": hits("gradient", "all"), "center_all": hits("center", "all")},
                          {"gradient_all": P.POINTING_GRADIENT_VOC}))
    return out


def _benchmark(res: dict, profile: str) -> list[Claim]:
    b = res.get("benchmark") or {}
    if not b or profile == "smoke":  # the smoke profile's timings (3 iterations, a 32-px toy) measure nothing
        return []
    return [Claim("benchmark_mask_overhead", "benchmark", f"Mask learning costs at most {BENCH_RATIO_BOUND} x iterations "
                  "x (forward + backward) at the same batch.", Relation.at_most("ratio", BENCH_RATIO_BOUND),
                  {"ratio": b["ratio"]}, kind="benchmark")]


def build_claims(results: dict, profile: str) -> list[Claim]:
    """The claims of one run, from its plain results alone."""
    claims = (_mask(results) + _artifacts(results) + _generalisation(results) + _localisation(results)
              + _boxes(results) + _adversarial(results) + _keypoints(results) + _pointing(results) + _benchmark(results, profile))
    return [c for c in claims if c is not None]
