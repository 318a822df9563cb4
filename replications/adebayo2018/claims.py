"""The claims of the sanity-checks replication: a pure function of the run's plain results (``plain_results``).

Every ordering or threshold on similarities reads per-image values and is judged by the paired bootstrap of
``lightning_modules.reporting``; the class convention is the official notebooks' (``results["claim_convention"]``:
each randomised or random-label model explains its own predicted class). A similarity that is undefined (a
constant map has no ranks) leaves its image out of the claim; the claim records how many images that was
(``images_undefined``). That the Sobel edge detector gives the same map for every model holds by construction: it
is a sanity row, not a finding.
"""

from __future__ import annotations

import math

from lightning_modules.reporting import Claim, Relation
from replications.adebayo2018 import paper as P


def _paired(values: dict[str, list]) -> tuple[dict[str, list[float]], int]:
    """The images where every name's value is defined (same images, same order), and how many were left out."""
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1:
        raise ValueError(f"per-image values of different lengths: { {k: len(v) for k, v in values.items()} }")
    keep = [i for i in range(lengths.pop()) if all(v[i] is not None for v in values.values())]
    return {k: [float(v[i]) for i in keep] for k, v in values.items()}, len(next(iter(values.values()))) - len(keep)


def _mean(v: list[float]) -> float:
    return math.fsum(v) / len(v) if v else float("nan")


def _claim(cid, experiment, text, relation, per_image: dict[str, list], paper, extra: dict | None = None) -> Claim:
    samples, undefined = _paired(per_image)
    measured = {k: _mean(v) for k, v in samples.items()}
    measured["images_undefined"] = float(undefined)
    measured.update(extra or {})
    return Claim(cid, experiment, text, relation, measured, paper=paper,
                 samples={k: v for k, v in samples.items() if v})


def _stage_mean(per_stage: list[list]) -> list:
    """Per image, the mean over stages (None where any stage is undefined)."""
    return [None if any(x is None for x in xs) else math.fsum(xs) / len(xs) for xs in zip(*per_stage)]


def _model_claims(results: dict, model: str) -> list[Claim]:
    mr = results["model_randomisation"][model]
    conv, meas, thr = results["claim_convention"], results["claim_measure"], results["change_threshold"]
    res, order, have = mr["by_convention"][conv], mr["order"], set(mr["methods"])
    exp = f"cascading model randomisation ({model})"
    claims = []
    if "cascading" in res:
        casc = res["cascading"]

        def over_stages(m):
            return _stage_mean([casc[s][m]["per_image"][meas] for s in order])

        if {"guided_backprop", "gradient"} <= have:
            claims.append(_claim(
                f"{model}_gbp_more_invariant_than_gradient", exp,
                "Guided BackProp stays more similar to its original map than the gradient does under cascading "
                "randomisation (per image: mean Spearman(|map|) over all stages)",
                Relation.gt("guided_backprop", "gradient"),
                {"guided_backprop": over_stages("guided_backprop"), "gradient": over_stages("gradient")},
                {"guided_backprop": P.GBP_INVARIANT, "gradient": P.GRADIENT_SENSITIVE}))
        if {"guided_gradcam", "gradcam"} <= have:
            claims.append(_claim(
                f"{model}_guided_gradcam_more_invariant_than_gradcam", exp,
                "Guided Grad-CAM stays more similar to its original map than Grad-CAM does under cascading "
                "randomisation (per image: mean Spearman(|map|) over all stages)",
                Relation.gt("guided_gradcam", "gradcam"),
                {"guided_gradcam": over_stages("guided_gradcam"), "gradcam": over_stages("gradcam")},
                {"guided_gradcam": P.GUIDED_GRADCAM_INVARIANT, "gradcam": P.GRADCAM_SENSITIVE}))
        changing = [m for m in ("gradient", "gradcam") if m in have]
        if changing:
            names = {f"{m}_fully_randomised": casc[order[-1]][m]["per_image"][meas] for m in changing}
            claims.append(_claim(
                f"{model}_gradient_gradcam_change", exp,
                f"Gradient and Grad-CAM maps of the fully re-initialised network differ from the original maps "
                f"(mean Spearman(|map|) < {thr:g}): they pass the check",
                Relation.all_of(*(Relation.lt(k, thr) for k in names)), names,
                {"gradient": P.GRADIENT_SENSITIVE, "gradcam": P.GRADCAM_SENSITIVE}))
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


def _edge_claims(results: dict) -> list[Claim]:
    meas = results["claim_measure"]
    claims = []
    for model, by_method in results["similarity_to_edge_detector"].items():
        if {"guided_backprop", "gradient"} <= set(by_method):
            claims.append(_claim(
                f"{model}_gbp_resembles_edge_detector", f"edge detector comparison ({model})",
                "Guided BackProp's map of the trained model resembles the edge detector's map more than the gradient's "
                "does (per image: Spearman(|map|) with the Sobel map)",
                Relation.gt("guided_backprop", "gradient"),
                {m: by_method[m]["per_image"][meas] for m in ("guided_backprop", "gradient")},
                {"sobel": P.EDGE_DETECTOR}))
    return claims


def _data_claims(results: dict, name: str) -> list[Claim]:
    d = results["data_randomisation"][name]
    conv, meas, thr = results["claim_convention"], results["claim_measure"], results["change_threshold"]
    t, chance = d["training"], d["chance"]
    experiment = f"data randomisation ({name})"
    claims = [Claim(
        f"{name}_random_label_model_memorises", experiment,
        f"The random-label model fits its (permuted) training labels (train accuracy >= 0.95) while its test accuracy "
        f"stays near chance (<= {2 * chance:g}, twice chance); the true-label model generalises (test >= 0.9)",
        Relation.all_of(Relation.at_least("random_train_accuracy", 0.95),
                        Relation.at_most("random_test_accuracy", 2 * chance),
                        Relation.at_least("true_test_accuracy", 0.9)),
        {"random_train_accuracy": t["random"]["train_accuracy"], "random_test_accuracy": t["random"]["test_accuracy"],
         "true_test_accuracy": t["true"]["test_accuracy"], "true_train_accuracy": t["true"]["train_accuracy"],
         "chance": chance},
        paper={"random_label_model": P.RANDOM_LABEL_FIT})]
    sims = d["pairs"]["random_vs_true"][conv]
    have = set(d["methods"])
    if {"guided_backprop", "gradient"} <= have:
        claims.append(_claim(
            f"{name}_data_gbp_more_invariant_than_gradient", experiment,
            "Guided BackProp maps of the two models are more similar than their gradient maps (per image: "
            "Spearman(|map|))",
            Relation.gt("guided_backprop", "gradient"),
            {m: sims[m]["per_image"][meas] for m in ("guided_backprop", "gradient")},
            {"maps": P.DATA_RANDOMISATION}))
    changing = [m for m in ("gradient", "gradcam") if m in have]
    if changing:
        claims.append(_claim(
            f"{name}_data_gradient_gradcam_change", experiment,
            f"Gradient and Grad-CAM maps of the random-label model differ from the true-label model's (mean "
            f"Spearman(|map|) < {thr:g}): they pass the data randomisation test",
            Relation.all_of(*(Relation.lt(m, thr) for m in changing)),
            {m: sims[m]["per_image"][meas] for m in changing}, {"maps": P.DATA_RANDOMISATION}))
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
        claims += _model_claims(results, model)
    claims += _edge_claims(results)
    for name in results["data_randomisation"]:
        claims += _data_claims(results, name)
    return claims
