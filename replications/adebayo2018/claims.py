"""The claims of the sanity-checks replication: a pure function of the run's plain results (``plain_results``).

Every ordering or threshold on similarities reads per-image values and is judged by the paired test of
``lightning_modules.reporting``; the class convention is the official notebooks' (``results["claim_convention"]``:
each randomised or random-label model explains its own predicted class). A similarity that is undefined (a
constant map has no ranks) leaves its image out of the claim; the claim records how many images that was
(``images_undefined``). That the Sobel edge detector gives the same map for every model holds by construction: it
is a sanity row, not a finding.

The rules of judgement of ``../shared/HEADLINE_CLAIMS.md`` as they apply here:

- randomisation is a curve over stages (Sec. 3.1, Fig. 4): every model-randomisation claim reads, per image, the
  mean similarity over all stages of the cascade (or of the one-layer-at-a-time randomisation), never one stage;
- data randomisation (Sec. 4) is judged against the controls the run trains where it has them: the random-label
  model against the true-label model trained on the same subset with the same schedule (only the labels differ),
  measured above the seed noise floor (that control against itself trained with another seed). A map "changes"
  when it moves further than retraining with another seed moves it; a method is "more invariant" when its excess
  change over its own noise floor is smaller;
- orderings between two methods' similarities need an effect of at least :data:`MIN_EFFECT` (a rank correlation
  has no oracle/random pair in this protocol); a constant threshold (``change_threshold``) is its own effect size.
"""

from __future__ import annotations

import math

from lightning_modules.reporting import Claim, Relation
from lightning_modules.reporting.rules import fixed_min_effect
from replications.adebayo2018 import paper as P

#: the paper's headline findings (../shared/HEADLINE_CLAIMS.md, adebayo2018)
FINDINGS = {
    "A1": "Cascading randomisation: gradient and Grad-CAM maps change as layers are re-initialised from the top; "
          "guided backprop and Guided Grad-CAM stay similar to the original maps.",
    "A2": "Independent (one layer at a time) randomisation: the same split.",
    "A3": "Data randomisation: maps of a model trained on permuted labels differ from the true-label model's for "
          "gradient and Grad-CAM, and stay similar for guided backprop and Guided Grad-CAM.",
    "A4": "The methods that fail resemble an edge detector of the input (Fig. 1).",
}
#: every finding has claims in the default profile
NOT_TESTED: dict[str, str] = {}

#: every similarity here is a Spearman rank correlation of |maps| (``claim_measure``)
MIN_EFFECT = fixed_min_effect("rank_correlation")

#: the pairs of the paper's split: (the method the paper finds invariant, the one it finds sensitive)
_PAIRS = (("guided_backprop", "gradient"), ("guided_gradcam", "gradcam"))
_NAMES = {"guided_backprop": "Guided BackProp", "gradient": "the gradient", "guided_gradcam": "Guided Grad-CAM",
          "gradcam": "Grad-CAM"}
_PAPER_MODEL = {"guided_backprop": P.GBP_INVARIANT, "gradient": P.GRADIENT_SENSITIVE,
                "guided_gradcam": P.GUIDED_GRADCAM_INVARIANT, "gradcam": P.GRADCAM_SENSITIVE}
_MODES = {"cascading": ("cascading randomisation", ("A1",), ""),
          "independent": ("independent (one layer at a time) randomisation", ("A2",), "independent_")}


def _paired(values: dict[str, list]) -> tuple[dict[str, list[float]], int]:
    """The images where every name's value is defined (same images, same order), and how many were left out."""
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1:
        raise ValueError(f"per-image values of different lengths: { {k: len(v) for k, v in values.items()} }")
    keep = [i for i in range(lengths.pop()) if all(v[i] is not None for v in values.values())]
    return {k: [float(v[i]) for i in keep] for k, v in values.items()}, len(next(iter(values.values()))) - len(keep)


def _mean(v: list[float]) -> float:
    return math.fsum(v) / len(v) if v else float("nan")


def _claim(cid, experiment, text, relation, per_image: dict[str, list], paper, extra: dict | None = None,
           findings: tuple[str, ...] = (), min_effect=None) -> Claim:
    samples, undefined = _paired(per_image)
    measured = {k: _mean(v) for k, v in samples.items()}
    measured["images_undefined"] = float(undefined)
    measured.update(extra or {})
    return Claim(cid, experiment, text, relation, measured, paper=paper,
                 samples={k: v for k, v in samples.items() if v}, findings=findings, min_effect=min_effect)


def _stage_mean(per_stage: list[list]) -> list:
    """Per image, the mean over stages (None where any stage is undefined)."""
    return [None if any(x is None for x in xs) else math.fsum(xs) / len(xs) for xs in zip(*per_stage)]


def model_claims(results: dict, model: str) -> list[Claim]:
    """Sec. 3.1 (Fig. 2, Fig. 4): cascading and independent randomisation, each judged over all its stages."""
    mr = results["model_randomisation"][model]
    conv, meas, thr = results["claim_convention"], results["claim_measure"], results["change_threshold"]
    res, order, have = mr["by_convention"][conv], mr["order"], set(mr["methods"])
    claims = []
    for mode, (mode_text, findings, prefix) in _MODES.items():
        if mode not in res:
            continue
        stages = res[mode]
        exp = f"{mode_text} ({model})"

        def over_stages(m, stages=stages):
            return _stage_mean([stages[s][m]["per_image"][meas] for s in order])

        for invariant, sensitive in _PAIRS:
            if {invariant, sensitive} <= have:
                stem = "gbp_more_invariant_than_gradient" if invariant == "guided_backprop" else \
                    "guided_gradcam_more_invariant_than_gradcam"
                claims.append(_claim(
                    f"{model}_{prefix}{stem}", exp,
                    f"{_NAMES[invariant]} stays more similar to its original map than {_NAMES[sensitive]} does under "
                    f"{mode_text} (per image: mean Spearman(|map|) over all {len(order)} stages, the whole curve)",
                    Relation.gt(invariant, sensitive),
                    {invariant: over_stages(invariant), sensitive: over_stages(sensitive)},
                    {invariant: _PAPER_MODEL[invariant], sensitive: _PAPER_MODEL[sensitive]},
                    findings=findings, min_effect=MIN_EFFECT))
        changing = [m for m in ("gradient", "gradcam") if m in have]
        if changing:
            # the whole curve decides (rules of judgement 1); the fully randomised stage is shown for reference
            last = {f"{m}_last_stage": _mean([x for x in stages[order[-1]][m]["per_image"][meas] if x is not None])
                    for m in changing}
            claims.append(_claim(
                f"{model}_{prefix}gradient_gradcam_change", exp,
                f"Gradient and Grad-CAM maps differ from the original maps under {mode_text} (per image: mean "
                f"Spearman(|map|) over all {len(order)} stages < {thr:g}): they pass the check",
                Relation.all_of(*(Relation.lt(m, thr) for m in changing)), {m: over_stages(m) for m in changing},
                {m: _PAPER_MODEL[m] for m in changing}, extra=last, findings=findings))
    if "sobel" in have:
        sims = [v["mean"] for by_mode in mr["by_convention"].values() for by_stage in by_mode.values()
                for by_m in by_stage.values() for v in by_m["sobel"]["summary"].values()]
        claims.append(Claim(
            f"{model}_edge_detector_model_independent", f"model randomisation ({model})",
            "The Sobel edge detector's map is the same at every stage (similarity 1 on every measure): it uses "
            "neither model nor data, so this holds by construction (a check of the machinery)",
            Relation.close("sobel_min_similarity", 1.0, atol=1e-6), {"sobel_min_similarity": min(sims)},
            paper={"sobel": P.EDGE_DETECTOR}, kind="sanity"))
    return claims


def edge_claims(results: dict) -> list[Claim]:
    """Fig. 1, Sec. 5: the methods that fail the checks look like an edge detector of the input."""
    meas = results["claim_measure"]
    claims = []
    for model, by_method in results["similarity_to_edge_detector"].items():
        for invariant, sensitive in _PAIRS:
            if {invariant, sensitive} <= set(by_method):
                stem = "gbp" if invariant == "guided_backprop" else "guided_gradcam"
                claims.append(_claim(
                    f"{model}_{stem}_resembles_edge_detector", f"edge detector comparison ({model})",
                    f"{_NAMES[invariant]}'s map of the trained model resembles the edge detector's map more than "
                    f"{_NAMES[sensitive]}'s does (per image: Spearman(|map|) with the Sobel map)",
                    Relation.gt(invariant, sensitive),
                    {m: by_method[m]["per_image"][meas] for m in (invariant, sensitive)},
                    {"sobel": P.EDGE_DETECTOR}, findings=("A4",), min_effect=MIN_EFFECT))
    return claims


def _control_terms(pairs: dict, conv: str, meas: str, methods: list[str]) -> tuple[dict[str, list[float]], int]:
    """Per image and method, Spearman(random labels, control) (``<m>_random_vs_control``) and the seed noise floor
    Spearman(control with another seed, control) (``<m>_seed_floor``), on the images where every value is defined,
    and how many images were left out."""
    per_image = {}
    for m in methods:
        per_image[f"{m}_random_vs_control"] = pairs["random_vs_control"][conv][m]["per_image"][meas]
        per_image[f"{m}_seed_floor"] = pairs["control_seed_vs_control"][conv][m]["per_image"][meas]
    return _paired(per_image)


def _excess(terms: dict[str, list[float]], m: str) -> list[float]:
    """Per image, the change the labels cause beyond the seed noise floor (floor - random vs control)."""
    return [f - r for f, r in zip(terms[f"{m}_seed_floor"], terms[f"{m}_random_vs_control"])]


def data_claims(results: dict, name: str) -> list[Claim]:
    """Sec. 4 (Fig. 5): data randomisation, against the same-schedule control and its seed noise floor where the
    run trained them."""
    d = results["data_randomisation"][name]
    conv, meas, thr = results["claim_convention"], results["claim_measure"], results["change_threshold"]
    t, chance = d["training"], d["chance"]
    experiment = f"data randomisation ({name})"
    claims = [Claim(
        f"{name}_random_label_model_memorises", experiment,
        f"The random-label model fits its (permuted) training labels (train accuracy >= 0.95) while its test accuracy "
        f"stays near chance (<= {2 * chance:g}, twice chance); the true-label model generalises (test >= 0.9): the "
        f"precondition of the data randomisation test",
        Relation.all_of(Relation.at_least("random_train_accuracy", 0.95),
                        Relation.at_most("random_test_accuracy", 2 * chance),
                        Relation.at_least("true_test_accuracy", 0.9)),
        {"random_train_accuracy": t["random"]["train_accuracy"], "random_test_accuracy": t["random"]["test_accuracy"],
         "true_test_accuracy": t["true"]["test_accuracy"], "true_train_accuracy": t["true"]["train_accuracy"],
         "chance": chance},
        paper={"random_label_model": P.RANDOM_LABEL_FIT}, findings=("A3",))]
    pairs, have = d["pairs"], set(d["methods"])
    sims = pairs["random_vs_true"][conv]
    controls = all(conv in pairs.get(p, {}) for p in ("random_vs_control", "control_seed_vs_control"))
    paper = {"maps": P.DATA_RANDOMISATION}

    def paper_test(methods):
        """The paper's own comparison (random vs true labels), shown beside the controlled one."""
        return {f"{m}_random_vs_true": _mean([x for x in sims[m]["per_image"][meas] if x is not None])
                for m in methods}

    for invariant, sensitive in _PAIRS:
        if not {invariant, sensitive} <= have:
            continue
        stem = "gbp_more_invariant_than_gradient" if invariant == "guided_backprop" else \
            "guided_gradcam_more_invariant_than_gradcam"
        if controls:
            terms, undefined = _control_terms(pairs, conv, meas, [invariant, sensitive])
            claims.append(_claim(
                f"{name}_data_{stem}", experiment,
                f"{_NAMES[invariant]} changes less than {_NAMES[sensitive]} when only the labels are permuted: per "
                f"image, its excess change over the seed noise floor (Spearman(|map|) of the control against the "
                f"control with another seed, minus Spearman(|map|) of the random-label model against the control) "
                f"is smaller",
                Relation.lt(f"{invariant}_excess", f"{sensitive}_excess"),
                {f"{m}_excess": _excess(terms, m) for m in (invariant, sensitive)}, paper,
                extra={**{k: _mean(v) for k, v in terms.items()}, **paper_test([invariant, sensitive]),
                       "images_undefined": float(undefined)},
                findings=("A3",), min_effect=MIN_EFFECT))
        else:
            claims.append(_claim(
                f"{name}_data_{stem}", experiment,
                f"{_NAMES[invariant]} maps of the two models are more similar than {_NAMES[sensitive]} maps (per "
                f"image: Spearman(|map|); this run trained no control, so the paper's comparison is read uncontrolled)",
                Relation.gt(invariant, sensitive), {m: sims[m]["per_image"][meas] for m in (invariant, sensitive)},
                paper, findings=("A3",), min_effect=MIN_EFFECT))
    changing = [m for m in ("gradient", "gradcam") if m in have]
    if changing and controls:
        terms, undefined = _control_terms(pairs, conv, meas, changing)
        claims.append(_claim(
            f"{name}_data_gradient_gradcam_change", experiment,
            "Gradient and Grad-CAM maps of the random-label model differ from the same-schedule true-label control's "
            "by more than retraining the control with another seed moves them (per image: Spearman(|map|) of random "
            "labels vs control below that of the control vs the control with another seed): they pass the data "
            "randomisation test",
            Relation.all_of(*(Relation.lt(f"{m}_random_vs_control", f"{m}_seed_floor") for m in changing)),
            terms, paper, extra={**paper_test(changing), "images_undefined": float(undefined)},
            findings=("A3",), min_effect=MIN_EFFECT))
    elif changing:
        claims.append(_claim(
            f"{name}_data_gradient_gradcam_change", experiment,
            f"Gradient and Grad-CAM maps of the random-label model differ from the true-label model's (mean "
            f"Spearman(|map|) < {thr:g}; this run trained no control): they pass the data randomisation test",
            Relation.all_of(*(Relation.lt(m, thr) for m in changing)),
            {m: sims[m]["per_image"][meas] for m in changing}, paper, findings=("A3",)))
    if "sobel" in have:
        claims.append(Claim(
            f"{name}_data_edge_detector_model_independent", experiment,
            "The Sobel edge detector gives identical maps for both models (similarity 1 on every measure): it uses "
            "neither model nor data, so this holds by construction (a check of the machinery)",
            Relation.close("sobel_min_similarity", 1.0, atol=1e-6),
            {"sobel_min_similarity": min(v["mean"] for v in sims["sobel"]["summary"].values())},
            paper={"sobel": P.EDGE_DETECTOR}, kind="sanity"))
    return claims


def build_claims(results: dict, profile: str) -> list[Claim]:
    """The claims of a run, from its plain results alone (``profile`` is not needed: the relations are the same in
    every profile; the registered deviations say where they apply)."""
    claims = []
    for model in results["model_randomisation"]:
        claims += model_claims(results, model)
    claims += edge_claims(results)
    for name in results["data_randomisation"]:
        claims += data_claims(results, name)
    return claims
