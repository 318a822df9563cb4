"""The claims of the fong2017 replication: a pure function of the run's plain results (``build_claims``).

Every comparison between methods or masks reads per-image values (the same images, sorted by sample id; per test
map for the adversarial detector) and is judged by the paired bootstrap of ``lightning_modules.reporting``.
Known deviations are registered, each with a diagnostic measured in the same run, in ``deviations.py``. Where the
run judged a protocol's validity (the scenes, with the oracle and random reference maps), every claim on it names
the protocol and is reported as not valid when the protocol fails its checks in the run. Table 1 and the pointing
game are claimed on both ground truths where the data has the evidence: the object boxes (the paper's) and the
class evidence (``_evidence`` claims). On benchmark v2 Table 1 is also claimed on the coat classes against the object
boxes (``_coat`` claims): the classes whose evidence is the whole creature, where the paper's protocol rewards the
evidence.

Each claim names the headline finding it tests (``FINDINGS``, ``../shared/HEADLINE_CLAIMS.md``) and every comparison
between methods, or of a method with a reference, carries a minimum effect (rules of judgement 3): a tenth of the span
between the oracle and the random map of its protocol where the run judged the protocol, else a fixed minimum of its
measure.
"""

from __future__ import annotations

import math

import torch

from lightning_modules.reporting import Claim, Relation
from lightning_modules.reporting.claims import MinimumEffect, sample_mean
from lightning_modules.reporting.rules import fixed_min_effect, span_min_effect, unit_means
from lightning_modules.reporting.validity import statistic
from replications.fong2017 import paper as P

#: the headline findings of ``../shared/HEADLINE_CLAIMS.md`` (fong2017), in order
FINDINGS = {
    "F1": "Learned deletion masks are small and suppress the class: blurring the deleted region drops the normalised "
          "score, the loss decreases (Sec. 3, Eq. 3).",
    "F2": "Without the regularisers (TV, upsampled low-resolution mask, jitter) masks become artifacts: smaller, "
          "high-frequency, and they transfer worse to another perturbation (Sec. 4, Fig. 3).",
    "F3": "Blur-learned masks, smoothed or binarised, still suppress the class under other perturbations (constant, "
          "noise), and beat the same mask moved elsewhere (Sec. 4).",
    "F4": "Weak localisation (Table 1): the mask localises the object about as well as or better than gradient, guided "
          "backprop, Grad-CAM and occlusion under the value, energy and mean thresholds; excitation backprop is better "
          "under energy and mean.",
    "F5": "Pointing game (VOC07/COCO, EBP protocol): the mask and the gradient point at the object better than the "
          "centre baseline, on all images and on the difficult subset.",
    "F6": "The mask gives the smallest suppressing boxes of all methods (Sec. 5).",
    "F7": "Heatmaps of the mask separate clean from adversarial (I-FGSM) images best of all methods, with an "
          "AlexNet-style classifier trained on the heatmaps (Sec. 5).",
    "F8": "Deleting what the mask finds on an adversarial image recovers the original label (Sec. 5).",
    "F9": "Animal parts: the eyes are more salient than the feet (Sec. 5).",
}
#: every finding has a claim in every profile (the scenes carry head and feet keypoints for F9, the adversarial
#: experiment runs in each config)
NOT_TESTED: dict[str, str] = {}

#: the minimum effect of a measure that lies on [0, 1] between two references of its own definition, where the run
#: has no oracle/random pair for it (rules of judgement 3, MIN_EFFECT_FRACTION of that span): the normalised score
#: (0: the fully perturbed image's score, 1: the clean image's), a min-max-normalised heatmap intensity (0: the map's
#: minimum, 1: its maximum), a deleted fraction of the image (0: nothing deleted, 1: everything)
#: measures normalised to [0, 1] by their own references (rules.MIN_EFFECTS["unit_span"])
UNIT_SPAN_MIN_EFFECT = fixed_min_effect("unit_span")

MASK = "mask"
THRESHOLDS = ("value", "energy", "mean")
#: the mask suppresses the class: mean normalised score at most this (Sec. 3, deletion game)
SUPPRESSED = 0.5
#: the mask learning benchmark: time over iterations x (forward + backward)
BENCH_RATIO_BOUND = 1.2


def _finite_rows(columns: dict[str, list]) -> dict[str, list[float]]:
    """The columns restricted to the images where every column is finite (the same images for every name)."""
    names = list(columns)
    n = len(columns[names[0]])
    if any(len(columns[k]) != n for k in names):
        raise ValueError(f"per-image columns differ in length: {({k: len(v) for k, v in columns.items()})}")
    keep = [i for i in range(n) if all(columns[k][i] is not None and math.isfinite(columns[k][i]) for k in names)]
    return {k: [float(columns[k][i]) for i in keep] for k in names}


def _on(res: dict, *protocols: str) -> tuple[str, ...]:
    """The protocols (of those given) that this run judged: the ones a claim rests on."""
    judged = res.get("protocol_validity") or {}
    return tuple(p for p in protocols if p in judged)


def _references(res: dict, protocol: str) -> tuple[float, float]:
    """(oracle, random) of a judged protocol: the protocol's own statistic (the mean over images; the pointing game's
    mean over classes), the numbers of the report's protocol_validity table."""
    spec = res["protocol_validity"][protocol]
    classes = None if spec.get("classes") is None else torch.tensor(spec["classes"])
    return tuple(float(statistic(torch.tensor(spec["values"][k], dtype=torch.float64), classes=classes))
                 for k in ("oracle", "random"))


def _protocol_min_effect(res: dict, protocols: tuple[str, ...], what: str, fallback: MinimumEffect) -> MinimumEffect:
    """A tenth of |oracle - random| of the protocols a claim rests on (the largest where it rests on several: the
    effect must matter on each); ``fallback`` where the run judged none of them (no reference maps)."""
    spans = [span_min_effect(*_references(res, p), what=f"{what} ({p})") for p in protocols]
    return max(spans, key=lambda m: m.value) if spans else fallback


def _area_min_effect(res: dict) -> MinimumEffect:
    """Deleted fractions of the image (the masks' deleted area, the smallest suppressing box) share one minimum: a tenth
    of the span between the oracle's and the random map's smallest suppressing box (the same unit, the fraction of
    the image that must be blurred to suppress the class; the suppression protocol's references)."""
    return _protocol_min_effect(res, _on(res, "suppression"), "smallest suppressing box area", UNIT_SPAN_MIN_EFFECT)


def _claim(cid, experiment, text, relation, samples, paper=None, extra=None, kind="claim", protocols=(),
           findings=(), min_effect=None) -> Claim | None:
    """The claim on per-image ``samples``; None where no image has every value defined (e.g. a normalised score,
    undefined where the perturbation itself hardly changes the score: the smoke profile's weak model)."""
    if any(not v for v in samples.values()):
        return None
    measured = {k: sample_mean(v) for k, v in samples.items()}
    measured.update(extra or {})
    return Claim(cid, experiment, text, relation, measured, paper or {}, samples=samples, kind=kind,
                 protocols=protocols, findings=findings, min_effect=min_effect)


def mask_claims(res: dict) -> list[Claim]:
    """F1 (Sec. 3, Eq. 3), judged on what the optimisation does. The circle initialisation is chosen to suppress the
    class (the smallest centred blurred circle whose deletion suppresses the score as much as the fully perturbed
    image), so a final score bound alone is hollow: F1 is the optimisation shrinking the deleted area from the
    initialisation's while the class stays suppressed (:func:`_area_min_effect` on the area), and the initial state is
    a sanity row. ``mask_suppresses`` (score bound and loss decrease) is kept as a check of the learning, testing no
    finding. Runs that stored no initial state keep only it."""
    m = res["mask_per_image"]
    s = _finite_rows({"normalised_score": m["normalised_score"], "loss_last": m["loss_last"], "loss_first": m["loss_first"]})
    out = [_claim(
        "mask_suppresses", "mask",
        f"The learned deletion masks suppress the target's softmax: the mean normalised score of Phi(x; m) is at most "
        f"{SUPPRESSED} and the loss decreases during learning (Eq. 3; the circle initialisation already suppresses "
        "the class, so this checks the learning and tests no finding).",
        Relation.all_of(Relation.at_most("normalised_score", SUPPRESSED), Relation.lt("loss_last", "loss_first")), s,
    )]
    if "init_area" in m:
        s = _finite_rows({"init_area": m["init_area"], "final_area": m["area"],
                          "final_normalised_score": m["normalised_score"]})
        out.append(_claim(
            "mask_optimisation_shrinks_deletion", "mask",
            "The optimisation finds a smaller deletion that still suppresses the class: from the circle "
            "initialisation to the learned mask the deleted area (mean of 1 - m) shrinks, and the learned mask's "
            f"normalised score stays at most {SUPPRESSED} (Sec. 3: the L1 term shrinks the region, the score term "
            "keeps it deleting the evidence).",
            Relation.all_of(Relation.lt("final_area", "init_area"),
                            Relation.at_most("final_normalised_score", SUPPRESSED)),
            s, findings=("F1",), min_effect=_area_min_effect(res),
        ))
        s = _finite_rows({"init_normalised_score": m["init_normalised_score"]})
        out.append(_claim(
            "mask_initialisation_suppresses", "mask",
            f"The circle initialisation already suppresses the class (normalised score at most {SUPPRESSED} before "
            "any step: it is chosen that way; the starting point of F1's comparison).",
            Relation.at_most("init_normalised_score", SUPPRESSED), s, kind="sanity",
        ))
    comp = res.get("compactness_per_image")
    if comp:
        s = _finite_rows({"deleted_area": m["area"], "object_box_area": comp["box_area"]})
        out.append(_claim(
            "mask_compact", "mask",
            "The deletion masks are compact: the deleted area (mean of 1 - m) is smaller than the object's box area "
            "(the L1 term asks for the smallest deletion region; ours against the scenes' ground truth).",
            Relation.lt("deleted_area", "object_box_area"), s, findings=("F1",), min_effect=_area_min_effect(res),
        ))
    return out


def artifacts_claims(res: dict) -> list[Claim]:
    """F2 (Sec. 4, Fig. 3). Areas take the deleted-fraction minimum (:func:`_area_min_effect`), normalised scores
    :data:`UNIT_SPAN_MIN_EFFECT`. "High-frequency" holds by construction: the regularised mask is learned on a
    1/delta grid, upsampled and blurred with sigma_m, the unregularised one per pixel with neither, so its larger mean
    spatial gradient is a sanity row of the set-up, not a test of F2."""
    a = res["artifacts_per_image"]
    pick = lambda *ks: _finite_rows({k: a[k] for k in ks})  # noqa: E731
    return [
        _claim("a_artifacts_tiny", "a", "Unregularised masks delete a smaller area than the paper's regularised masks yet "
               f"still suppress the class under the perturbation they were learned with (normalised score <= {SUPPRESSED}): "
               "an adversarial, unnatural mask (Sec. 4).",
               Relation.all_of(Relation.lt("area_art", "area_reg"), Relation.at_most("ns_art_blur", SUPPRESSED)),
               pick("area_art", "area_reg", "ns_art_blur"), {"paper": P.ARTIFACTS}, findings=("F2",),
               min_effect=_area_min_effect(res)),
        _claim("a_artifacts_do_not_transfer", "a", "The unregularised masks transfer worse to another perturbation "
               "(constant) than the regularised ones: higher normalised score under the constant perturbation.",
               Relation.gt("ns_art_constant", "ns_reg_constant"), pick("ns_art_constant", "ns_reg_constant"),
               {"paper": P.ARTIFACTS}, findings=("F2",), min_effect=UNIT_SPAN_MIN_EFFECT),
        _claim("a_artifacts_unnatural", "a", "Unregularised masks are high-frequency (larger mean spatial gradient) than "
               "the regularised ones (true by construction: the regularised mask is upsampled from a coarse grid and "
               "blurred, the unregularised one is learned per pixel; checks the set-up of a., tests no finding).",
               Relation.gt("tv_art", "tv_reg"), pick("tv_art", "tv_reg"), {"paper": P.ARTIFACTS}, kind="sanity"),
    ]


def generalisation_claims(res: dict) -> list[Claim]:
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
                   Relation.all_of(*rel), g, {"paper": P.GENERALISATION}, findings=("F3",),
                   min_effect=UNIT_SPAN_MIN_EFFECT)]


#: Table 1's ground truths besides the object boxes of every class: ``(ground truth, claim-id suffix, text)``; the
#: ground truth names the protocols (``localisation_<gt>_<threshold>``), the suffix the results
#: (``localisation<suffix>_per_image``) and the claims
LOCALISATION_SUBSETS = (("evidence", "_evidence", " (against the class evidence's boxes)"),
                        ("object_coat", "_coat", " (the coat classes 16-23, whose evidence is head + body, against the "
                                                 "object boxes)"))


def _per_ground_truth(res: dict, base: str, more=(("evidence", "_evidence"),)):
    """``(ground truth, claim-id suffix, per-image results)`` for each ground truth the run scored: the object boxes
    (``<base>_per_image``) and each of ``more`` (``<base><suffix>_per_image``; by default the class evidence)."""
    for gt, suffix in (("object", ""), *more):
        per = res.get(f"{base}{suffix}_per_image") or {}
        if MASK in per:
            yield gt, suffix, per


def localisation_claims(res: dict) -> list[Claim]:
    """F4 (Table 1). Each claim rests on one protocol (ground truth x threshold) and takes its minimum effect from that
    protocol's oracle and random maps; without them (no reference maps), one percentage point (an error rate is one
    minus a localisation accuracy). The same claims are made against the object boxes of every class, against the
    class evidence's boxes, and (benchmark v2) against the object boxes on the coat classes alone
    (:data:`LOCALISATION_SUBSETS`)."""
    key = res["paper_keys"]
    methods = res["methods"]
    in_table = [m for m in methods if key[m] in P.TABLE1_ERROR["value"]]
    texts = {gt: text for gt, _, text in LOCALISATION_SUBSETS}
    out = []
    for gt, suffix, loc in _per_ground_truth(res, "localisation", [(gt, sfx) for gt, sfx, _ in LOCALISATION_SUBSETS]):
        gt_text = texts.get(gt, "")

        def samples(t, ms, loc=loc):
            return {f"{m}_{t}": loc[m][t] for m in ms}

        def paper(t, ms):
            return {f"{m}_{t}": P.table1(t, key[m]) for m in ms if P.table1(t, key[m]) is not None}

        def effect(protocols):
            return _protocol_min_effect(res, protocols, "localisation error", fixed_min_effect("accuracy"))

        out.append(_claim(f"c_value_mask_best{suffix}", "c", f"Value thresholding{gt_text}: the mask has the lowest "
                          "localisation error of all methods in the paper's Table 1 (44.0% vs 46.0-53.0%).",
                          Relation.best(f"{MASK}_value", [f"{m}_value" for m in in_table]),
                          samples("value", in_table + [MASK]), paper("value", in_table + [MASK]),
                          protocols=_on(res, f"localisation_{gt}_value"), findings=("F4",),
                          min_effect=effect(_on(res, f"localisation_{gt}_value"))))
        pair = [m for m in methods if key[m] in ("gradcam", "occlusion")]
        for t in THRESHOLDS:
            out.append(_claim(f"c_{t}_mask_beats_gradcam_occlusion{suffix}", "c", f"{t.capitalize()} thresholding"
                              f"{gt_text}: the mask localises better than Grad-CAM and occlusion (Table 1: true for all "
                              "three threshold types).",
                              Relation.best(f"{MASK}_{t}", [f"{m}_{t}" for m in pair]), samples(t, pair + [MASK]),
                              paper(t, pair + [MASK]), protocols=_on(res, f"localisation_{gt}_{t}"),
                              findings=("F4",), min_effect=effect(_on(res, f"localisation_{gt}_{t}"))))
        if "excitation_backprop" in methods:
            for t in ("energy", "mean"):
                out.append(_claim(f"c_{t}_excitation_beats_mask{suffix}", "c", f"{t.capitalize()} thresholding"
                                  f"{gt_text}: excitation backprop localises better than the mask (Table 1: 38.7 vs "
                                  "43.1 energy, 39.0 vs 43.2 mean).",
                                  Relation.lt(f"excitation_backprop_{t}", f"{MASK}_{t}"),
                                  samples(t, ["excitation_backprop", MASK]), paper(t, ["excitation_backprop", MASK]),
                                  protocols=_on(res, f"localisation_{gt}_{t}"), findings=("F4",),
                                  min_effect=effect(_on(res, f"localisation_{gt}_{t}"))))
    return out


def boxes_claims(res: dict) -> list[Claim]:
    s = _finite_rows({m: res["boxes_per_image"][m] for m in res["all_methods"]})
    return [_claim("d_mask_smallest_box", "d", "The mask's heatmaps give the smallest suppressing boxes of all methods "
                   f"(Sec. 5; value threshold, {res['n_box_alphas']} levels).",
                   Relation.best(MASK, res["methods"]), s, {"paper": P.SMALLEST_BOX},
                   protocols=_on(res, "suppression"), findings=("F6",), min_effect=_area_min_effect(res))]


def detection_claims(res: dict) -> list[Claim]:
    """F7 (Sec. 5). Detector accuracy is a proportion of test maps: one percentage point (no oracle or random map
    exists for it). The samples are the per-test-map correctness (clean and adversarial maps of the odd ids, the
    paper's attack: ILLC over its epsilon sweep), paired across methods by map; with several detectors per method
    (one per training seed, the same seeds for every method) a table of seeds x test maps, so that the judgement
    counts the detectors' training randomness (a seed moves one detector's accuracy by several points) besides
    the maps'."""
    a = res.get("adversarial")
    if not a:
        return []
    by_seed = a.get("correct_by_seed") or {}
    seeds = len(a.get("seeds") or [0])
    samples = {m: by_seed[m] if seeds > 1 else a["correct"][m] for m in res["all_methods"]}
    per_method = f", {seeds} detectors per method, one per training seed" if seeds > 1 else ""
    return [_claim("e_mask_best_detector", "e", "Heatmaps of the mask separate clean from adversarial images best of all "
                   f"methods (Sec. 5; detector accuracy per test map{per_method}).",
                   Relation.best(MASK, res["methods"], ">"), samples,
                   {"paper": P.ADVERSARIAL}, findings=("F7",), min_effect=fixed_min_effect("accuracy"))]


def recovery_claims(res: dict) -> list[Claim]:
    """F8 (Sec. 5). The recovery rate is a proportion of fooled images: one percentage point (no oracle or random map
    exists for it)."""
    a = res.get("adversarial")
    if not a or not a["recover_orig_per_image"]:
        return []
    return [_claim("f_label_recovery", "f", "Deleting the region the mask finds on an adversarial image recovers "
                   "the original prediction more often than deleting the same area elsewhere (the mask moved by "
                   "half the image).", Relation.gt("recover_orig", "recover_orig_moved"),
                   {"recover_orig": a["recover_orig_per_image"], "recover_orig_moved": a["recover_orig_moved_per_image"]},
                   {"paper": P.LABEL_RECOVERY}, findings=("F8",), min_effect=fixed_min_effect("accuracy"))]


def keypoints_claims(res: dict) -> list[Claim]:
    """The mask at the evidence part (the paper's eyes; benchmark v2's head centre) against the feet; the
    ground-truth evidence map's own contrast is a sanity row (true by construction), never part of the claim. F9;
    intensities are min-max normalised per map (:data:`UNIT_SPAN_MIN_EFFECT`: no random map is scored at the
    keypoints)."""
    k = res.get("keypoints_per_image") or {}
    if MASK not in k:
        return []
    part, other = res.get("keypoint_parts", ["eyes", "feet"])
    where = "the eyes" if part == "eyes" else f"the {part} (where the scenes' class evidence is)"
    out = [_claim(f"g_mask_{part}_over_{other}", "g", f"The mask is more salient at {where} than at the {other} "
                  "(Sec. 5, animal parts: eyes over feet).", Relation.gt(f"mask_{part}", f"mask_{other}"),
                  _finite_rows({f"mask_{part}": k[MASK][part], f"mask_{other}": k[MASK][other]}),
                  {"paper": P.EYES_MORE_SALIENT, "hamster_eyes_mask_value": P.HAMSTER_EYES,
                   "hamster_feet_mask_value": P.HAMSTER_FEET}, findings=("F9",), min_effect=UNIT_SPAN_MIN_EFFECT)]
    if "ground_truth" in k:  # the scenes: the evidence part is known by construction
        out.append(_claim(f"g_ground_truth_{part}_over_{other}", "g", f"The ground-truth evidence map is more salient "
                          f"at {where} than at the {other} (true by construction of the scenes; checks the keypoint "
                          "windows).", Relation.gt(f"ground_truth_{part}", f"ground_truth_{other}"),
                          _finite_rows({f"ground_truth_{part}": k["ground_truth"][part],
                                        f"ground_truth_{other}": k["ground_truth"][other]}), kind="sanity"))
    return out


def pointing_claims(res: dict) -> list[Claim]:
    """F5 (pointing game): the mask and the gradient point at the object better than the centre baseline, on all
    images and on the difficult subset. The minimum effect is a tenth of |oracle - random| of the claim's protocols
    (the largest of all and difficult); without reference maps, one percentage point (a hit rate is an accuracy). On
    the multi-label pass (one trial per (image, class)) the paired unit is the image: its hit rate over its trials
    of the subset (``rules.unit_means``)."""
    flags = res["pointing_per_image"]["center"]["difficult"]
    units = res.get("pointing_image_index")
    unit = "per-image hit rates" if units else "per-image hits"
    out = []
    for gt, suffix, p in _per_ground_truth(res, "pointing"):
        gt_text = "at the class evidence" if gt == "evidence" else "at the object"

        def hits(m, subset, p=p):
            return unit_means(p[m]["hits"], [subset == "all" or d for d in flags], units)

        for m, name, paper_values in ((MASK, "The mask", {"center_all": P.POINTING_CENTER_COCO[0],
                                                          "center_difficult": P.POINTING_CENTER_COCO[1]}),
                                      ("gradient", "Gradient", {"gradient_all": P.POINTING_GRADIENT_VOC})):
            if m not in p:
                continue
            samples = {f"{m}_all": hits(m, "all"), "center_all": hits("center", "all")}
            rels = [Relation.gt(f"{m}_all", "center_all")]
            protocols = [f"pointing_{gt}_all"]
            if any(flags):
                samples.update({f"{m}_difficult": hits(m, "difficult"), "center_difficult": hits("center", "difficult")})
                rels.append(Relation.gt(f"{m}_difficult", "center_difficult"))
                protocols.append(f"pointing_{gt}_difficult")
            note = (" (VOC07: 67.0% per the official notebook; TorchRay: 76.3 vs 69.6 all, 56.9 vs 42.4 difficult)"
                    if m == "gradient" else "")
            cid = "h_mask_beats_center" if m == MASK else "h_gradient_beats_center"
            out.append(_claim(f"{cid}{suffix}", "h", f"{name} points {gt_text} more often than the centre baseline, on "
                              f"all images and on the difficult subset{note}; {unit}.",
                              Relation.all_of(*rels), samples, paper_values,
                              protocols=_on(res, *protocols), findings=("F5",),
                              min_effect=_protocol_min_effect(res, _on(res, *protocols), "pointing accuracy",
                                                              fixed_min_effect("accuracy"))))
    return out


def benchmark_claims(res: dict, profile: str) -> list[Claim]:
    b = res.get("benchmark") or {}
    if not b or profile == "smoke":  # the smoke profile's timings (3 iterations, a 32-px toy) measure nothing
        return []
    return [Claim("benchmark_mask_overhead", "benchmark", f"Mask learning costs at most {BENCH_RATIO_BOUND} x iterations "
                  "x (forward + backward) at the same batch.", Relation.at_most("ratio", BENCH_RATIO_BOUND),
                  {"ratio": b["ratio"]}, kind="benchmark")]


def build_claims(results: dict, profile: str) -> list[Claim]:
    """The claims of one run, from its plain results alone."""
    claims = (mask_claims(results) + artifacts_claims(results) + generalisation_claims(results)
              + localisation_claims(results) + boxes_claims(results) + detection_claims(results)
              + recovery_claims(results) + keypoints_claims(results) + pointing_claims(results)
              + benchmark_claims(results, profile))
    return [c for c in claims if c is not None]
