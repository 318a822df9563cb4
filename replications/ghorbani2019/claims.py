"""The claims of the fragility replication (Ghorbani, Abid & Zou, AAAI 2019, Sec. 4 and Fig. 3-4), a pure function
of the run's plain results (``FragilityReplication.plain_results``).

Per part (the primary dataset and real MNIST, suffix ``_mnist``) and saliency method, each decided by the paired
test over the attacked images (``lightning_modules.reporting.relations``) with a minimum effect (rules of
judgement 3):

- **G1**, at the part's claim budget (the official notebook's epsilon, the one budget the sources give a number
  for; the paper's epsilon grid was not read): the top-k and the centre-of-mass attacks lower the top-k
  intersection more than the random-sign attack, by at least the run's ``claim_margin`` ("far more effective than
  random perturbations"; the margin, stated before the run, is the minimum effect of every G1 claim);
- **G2**: the centre-of-mass attack moves the map's centre of mass further than random sign, by at least one pixel
  (a shift below one pixel has not moved the map on its grid);
- **G3**, over the whole stored epsilon curve: for each targeted attack (top-k, centre of mass), the top-k
  intersection falls between every pair of consecutive budgets (``Relation.every``, Bonferroni over the pairs);

and, as a sanity row (it holds by construction: an iterate that changes the label is never returned), every
attacked image keeps its label. The share of top-k pixels on the ground-truth evidence (benchmark v2's
``evidence``) is a diagnostic of what the attacks move, not a finding of the paper: no claim reads it.
"""

from __future__ import annotations

import math

from lightning_modules.reporting import Claim, Relation
from lightning_modules.reporting.claims import MinimumEffect
from lightning_modules.reporting.rules import fixed_min_effect
from replications.ghorbani2019 import paper as P

METHOD_NAMES = {"gradient": "simple gradient", "integrated_gradients": "Integrated Gradients", "deeplift": "DeepLIFT"}
ATTACK_NAMES = {"random": "random sign", "topk": "top-k", "center": "centre of mass", "targeted": "targeted"}
#: the targeted attacks of the paper (Sec. 3), in the order the claims list them
TARGETED = ("topk", "center")

#: the headline findings of ``../shared/HEADLINE_CLAIMS.md`` (ghorbani2019)
FINDINGS = {
    "G1": "Targeted perturbations (top-k, centre of mass) change the map far more than a random-sign perturbation "
          "of the same L-infinity size, while the predicted label is kept (gradient, IG, DeepLIFT).",
    "G2": "The centre-of-mass attack moves the map's centre of mass by a large distance.",
    "G3": "Fragility grows with the perturbation size epsilon, for every method.",
}
#: every finding has claims in the default profile
NOT_TESTED: dict[str, str] = {}


def cell(part: dict, method: str, attack: str, eps: float) -> dict:
    """One method x attack x epsilon cell of a part's plain results."""
    return part["cells"][method][attack][str(float(eps))]


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _samples(**named: list[float]) -> tuple[dict, dict]:
    """(measured, samples): each name's per-image values and their mean."""
    return {k: _mean(v) for k, v in named.items()}, {k: list(v) for k, v in named.items()}


def _margin_min_effect(margin: float) -> MinimumEffect:
    """G1's minimum effect: the run's ``claim_margin``, the threshold for the paper's "far more" stated before the run,
    the same for every G1 claim (top-k and centre attacks, every method, both parts)."""
    return MinimumEffect(margin, f"the run's claim_margin {margin:g} of top-k intersection is the minimum effect: the "
                                 "threshold for the paper's 'far more effective than random', stated before the run, "
                                 "alike for every targeted-vs-random claim")


def _eps_name(eps: float) -> str:
    return f"intersection_at_{eps:g}"


def _curve_claim(part: dict, method: str, attack: str, experiment: str, prefix: str) -> Claim:
    """G3: the attack's top-k intersection falls between every pair of consecutive stored budgets (rules of
    judgement 1: the whole curve, each step judged at the Bonferroni level)."""
    eps = sorted(float(e) for e in part["epsilons"])
    measured, samples = _samples(**{_eps_name(e): cell(part, method, attack, e)["samples"]["topk_intersection"]
                                    for e in eps})
    steps = [Relation.lt(_eps_name(hi), _eps_name(lo)) for lo, hi in zip(eps, eps[1:])]
    return Claim(
        f"{attack}_attack_grows_with_epsilon_{method}{part['suffix']}", experiment,
        f"[G3] {prefix}{METHOD_NAMES[method]}: the {ATTACK_NAMES[attack]} attack's top-k intersection falls at every "
        f"step of the budget ({' -> '.join(f'{e:g}' for e in eps)} /255), each fall at least the minimum effect",
        steps[0] if len(steps) == 1 else Relation.every(*steps), measured,
        {"claim": P.TARGETED_BEATS_RANDOM}, samples=samples, findings=("G3",),
        min_effect=fixed_min_effect("topk_intersection"))


def _part_claims(results: dict, name: str, part: dict) -> list[Claim]:
    sfx, eps, m = part["suffix"], part["claim_epsilon"], results["claim_margin"]
    prefix = "real MNIST, " if part["is_mnist"] else ""
    experiment = "fragility vs epsilon" + (", mnist" if part["is_mnist"] else "")
    attacks = results["attacks"]
    claims = []
    for method in results["methods"]:
        rnd = cell(part, method, "random", eps)["samples"]
        label = f"{prefix}{METHOD_NAMES[method]}: at epsilon {eps:g}/255"
        for attack in (a for a in TARGETED if a in attacks):
            measured, samples = _samples(**{f"{attack}_attack": cell(part, method, attack, eps)["samples"][
                "topk_intersection"], "random_sign": rnd["topk_intersection"]})
            claims.append(Claim(
                f"{attack}_attack_beats_random_{method}{sfx}", experiment,
                f"[G1] {label} the {ATTACK_NAMES[attack]} attack lowers top-k intersection more than random sign, by at "
                f"least the minimum effect {m:g} (paper: targeted attacks are far more effective than random ones)",
                Relation.lt(f"{attack}_attack", "random_sign"), measured,
                {"claim": P.TARGETED_BEATS_RANDOM, "notebook_topk_intersection": P.NOTEBOOK_TOPK_INTERSECTION},
                samples=samples, findings=("G1",), min_effect=_margin_min_effect(m)))
        if "center" in attacks:
            c = cell(part, method, "center", eps)["samples"]
            measured, samples = _samples(center_attack_shift_px=c["center_shift_px"],
                                         random_sign_shift_px=rnd["center_shift_px"])
            claims.append(Claim(
                f"center_attack_moves_center_{method}{sfx}", experiment,
                f"[G2] {label} the centre-of-mass attack moves the map's centre of mass further than random sign, by "
                "at least one pixel",
                Relation.gt("center_attack_shift_px", "random_sign_shift_px"), measured,
                {"claim": P.CENTER_MOVES_MORE, "notebook_center_shift_px": P.NOTEBOOK_CENTER_SHIFT_PX},
                samples=samples, findings=("G2",), min_effect=fixed_min_effect("center_shift_px")))
        if len(part["epsilons"]) > 1:
            claims += [_curve_claim(part, method, a, experiment, prefix) for a in TARGETED if a in attacks]
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


def rule_beta(grids: list[dict]) -> float | None:
    """The beta the stated rule (``experiments.BETA_RULE``) names from the parts' measured ``surrogate_grid``s
    ({beta: {beta, label_agreement}}): the smallest beta at which every part's label agreement reaches its best over
    the grid; None without a grid."""
    grids = [g for g in grids if g]
    if not grids:
        return None
    best = [max(v["label_agreement"] for v in g.values()) for g in grids]
    betas = sorted({float(v["beta"]) for g in grids for v in g.values()})
    ok = [b for b in betas if all(any(float(v["beta"]) == b and v["label_agreement"] == m for v in g.values())
                                  for g, m in zip(grids, best))]
    return ok[0] if ok else None


def _beta_rule_claim(results: dict) -> list[Claim]:
    """Sanity row: the configured softplus beta is the one the stated rule picks from this run's measured grid."""
    parts = results["parts"]
    grids = [p.get("surrogate_grid") or {} for p in parts.values()]
    if not any(grids):
        return []
    chosen = rule_beta(grids)
    agreement = {f"label_agreement_{name}_beta_{b}": v["label_agreement"]
                 for name, p in parts.items() for b, v in (p.get("surrogate_grid") or {}).items()}
    return [Claim(
        "surrogate_beta_by_rule", "surrogate sharpness",
        f"the attacks' softplus beta is the one the stated rule picks from the grid measured in this run "
        f"({results['setting'].get('beta_rule', 'see the setting')})",
        Relation.close("configured_beta", "rule_beta"),
        {"configured_beta": results["setting"]["beta"], "rule_beta": math.nan if chosen is None else chosen,
         **agreement}, kind="sanity")]
def build_claims(results: dict, profile: str) -> list[Claim]:
    """The claims of one run, from its plain results (``profile`` does not change them)."""
    claims = []
    for name, part in results["parts"].items():
        claims += _part_claims(results, name, part)
    return claims + _beta_rule_claim(results)
