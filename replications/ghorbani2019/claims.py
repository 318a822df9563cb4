"""The claims of the fragility replication (Ghorbani, Abid & Zou, AAAI 2019, Sec. 4 and Fig. 3-4), a pure function
of the run's plain results (``FragilityReplication.plain_results``).

Per part (the primary dataset and real MNIST, suffix ``_mnist``) and saliency method, at the part's claim budget:

- the top-k and the centre-of-mass attacks lower the top-k intersection at least ``claim_margin`` more than the
  random-sign attack ("far more effective than random perturbations"), decided by a paired bootstrap over the
  attacked images;
- the centre-of-mass attack moves the map's centre of mass further than random sign (paired bootstrap);
- the top-k attack's intersection falls from the smallest to the largest budget (paired bootstrap, same images);

and, as a sanity row (it holds by construction: an iterate that changes the label is never returned), every
attacked image keeps its label.
"""

from __future__ import annotations

import math

from lightning_modules.reporting import Claim, Relation
from replications.ghorbani2019 import paper as P

METHOD_NAMES = {"gradient": "simple gradient", "integrated_gradients": "Integrated Gradients", "deeplift": "DeepLIFT"}
ATTACK_NAMES = {"random": "random sign", "topk": "top-k", "center": "centre of mass", "targeted": "targeted"}


def cell(part: dict, method: str, attack: str, eps: float) -> dict:
    """One method x attack x epsilon cell of a part's plain results."""
    return part["cells"][method][attack][str(float(eps))]


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _samples(**named: list[float]) -> tuple[dict, dict]:
    """(measured, samples): each name's per-image values and their mean."""
    return {k: _mean(v) for k, v in named.items()}, {k: list(v) for k, v in named.items()}


def _part_claims(results: dict, name: str, part: dict) -> list[Claim]:
    sfx, eps, m = part["suffix"], part["claim_epsilon"], results["claim_margin"]
    prefix = "real MNIST, " if part["is_mnist"] else ""
    experiment = "fragility vs epsilon" + (", mnist" if part["is_mnist"] else "")
    attacks = results["attacks"]
    claims = []
    for method in results["methods"]:
        rnd = cell(part, method, "random", eps)["samples"]
        label = f"{prefix}{METHOD_NAMES[method]}: at epsilon {eps:g}/255"
        if "topk" in attacks:
            measured, samples = _samples(topk_attack=cell(part, method, "topk", eps)["samples"]["topk_intersection"],
                                         random_sign=rnd["topk_intersection"])
            claims.append(Claim(
                f"topk_attack_beats_random_{method}{sfx}", experiment,
                f"{label} the top-k attack lowers top-k intersection at least {m:g} more than random sign (paper: "
                "targeted attacks are far more effective than random ones)",
                Relation.lt("topk_attack", "random_sign", margin=m), measured,
                {"claim": P.TARGETED_BEATS_RANDOM, "notebook_topk_intersection": P.NOTEBOOK_TOPK_INTERSECTION},
                samples=samples))
        if "center" in attacks:
            c = cell(part, method, "center", eps)["samples"]
            measured, samples = _samples(center_attack=c["topk_intersection"], random_sign=rnd["topk_intersection"])
            claims.append(Claim(
                f"center_attack_beats_random_{method}{sfx}", experiment,
                f"{label} the centre-of-mass attack lowers top-k intersection at least {m:g} more than random sign",
                Relation.lt("center_attack", "random_sign", margin=m), measured,
                {"claim": P.TARGETED_BEATS_RANDOM, "notebook_topk_intersection": P.NOTEBOOK_TOPK_INTERSECTION},
                samples=samples))
            measured, samples = _samples(center_attack_shift_px=c["center_shift_px"],
                                         random_sign_shift_px=rnd["center_shift_px"])
            claims.append(Claim(
                f"center_attack_moves_center_{method}{sfx}", experiment,
                f"{label} the centre-of-mass attack moves the map's centre of mass further than random sign (in pixels)",
                Relation.gt("center_attack_shift_px", "random_sign_shift_px"), measured,
                {"claim": P.CENTER_MOVES_MORE, "notebook_center_shift_px": P.NOTEBOOK_CENTER_SHIFT_PX},
                samples=samples))
        if "topk" in attacks and len(part["epsilons"]) > 1:
            lo, hi = min(part["epsilons"]), max(part["epsilons"])
            measured, samples = _samples(
                intersection_at_max_eps=cell(part, method, "topk", hi)["samples"]["topk_intersection"],
                intersection_at_min_eps=cell(part, method, "topk", lo)["samples"]["topk_intersection"])
            claims.append(Claim(
                f"topk_attack_grows_with_epsilon_{method}{sfx}", experiment,
                f"{prefix}{METHOD_NAMES[method]}: the top-k attack's top-k intersection falls as the budget grows "
                f"({lo:g}/255 -> {hi:g}/255)",
                Relation.lt("intersection_at_max_eps", "intersection_at_min_eps"), measured,
                {"claim": P.TARGETED_BEATS_RANDOM}, samples=samples))
    runs = [c for method in part["cells"].values() for attack in method.values() for c in attack.values()]
    runs += [c for method in part.get("variant", {}).values() for c in method.values()]
    claims.append(Claim(
        f"label_preserved{sfx}", "label preservation" + (", mnist" if part["is_mnist"] else ""),
        f"{prefix}every attacked image keeps the original model's label, for every method, attack and epsilon (by "
        "construction: an iterate that changes the label is never returned)",
        Relation.at_least("min_label_kept_rate", 1.0),
        {"min_label_kept_rate": min(c["label_kept_rate"] for c in runs),
         "mean_label_keeping_iterate_rate": _mean([c["accepted_step_rate"] for c in runs])},
        {"claim": P.LABEL_KEPT}, kind="sanity"))
    return claims


def build_claims(results: dict, profile: str) -> list[Claim]:
    """The claims of one run, from its plain results (``profile`` does not change them)."""
    claims = []
    for name, part in results["parts"].items():
        claims += _part_claims(results, name, part)
    return claims
