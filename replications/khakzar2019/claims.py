"""Claims of the khakzar2019 replication: a pure function of the run's plain results (``plain_results``).

Every claim reads the official PruneGrad rule (method ``prunegrad``: one global percentile over all ReLU neurons,
PathwayGrad ``src/Pruner.py``); the ``scope: active`` variant (``prunegrad_active``) is a side row of the tables.
Orderings are judged by the calibrated paired test of ``lightning_modules.reporting.relations`` over the evaluated
images (sanity checks, pixel perturbation) or over the ROAR seeds (a ROAR benchmark with one seed is compared on its
single numbers), each with the minimum effect of its protocol (rules of judgement 3, ``../shared/HEADLINE_CLAIMS.md``).

- (a) sanity checks (Khakzar Sec. 4 / Adebayo et al. 2018) [K1]: PruneGrad's maps change under full cascading
  randomisation (final-stage Spearman |.| below ``pass_threshold``; a constant map has no correlation and is
  undefined, not a pass), and it is more sensitive than guided backprop over the whole cascade (every stage,
  Bonferroni; rules of judgement 1).
- (b) pixel perturbation (Khakzar Sec. 4, RoarTorch ``lerf``) [K2]: per image, the mean over the removed fractions > 0
  of the target logit and of the official |p0 - p| / p0 (the normalised area under the curve); PruneGrad against the
  gradient, random, and every other compared method ("performs better than other methods across all evaluations",
  abstract). Minimum effect: a tenth of the span between the oracle (the evidence as a map) and the random map.
- (c) ROAR (Hooker et al. 2019) [K3, H1, H2]: per seed, the mean accuracy over the fractions that are not saturated
  (:func:`roar_points`), so that no single fraction decides; the base estimators are no better than random, the
  ensembles and PruneGrad are, and PruneGrad beats every other compared method. Where the fill shows the removal
  mask (Hooker's mean fill), the mask-only control is part of every claim (rules of judgement 4,
  :func:`leakage_control`); a benchmark whose control shows leakage tests no finding (its claims keep their verdict).
"""

from __future__ import annotations

import math

import numpy as np

from lightning_modules.reporting import Claim, Relation, judge
from lightning_modules.reporting.claims import MinimumEffect
from lightning_modules.reporting.relations import FAILS
from lightning_modules.reporting.rules import (
    MIN_EFFECT_FRACTION, curve_summary, fixed_min_effect, span_min_effect, unsaturated_points,
)
from replications.khakzar2019 import paper as P

#: the headline findings of ../shared/HEADLINE_CLAIMS.md, in order
FINDINGS = {
    "K1": "PruneGrad passes the cascading randomisation check, and is more sensitive to it than guided backprop.",
    "K2": "PruneGrad ranks best among the compared methods under pixel perturbation (MoRF and LeRF).",
    "K3": "PruneGrad ranks best among the compared methods under ROAR.",
    "H1": "(Hooker) Under ROAR, gradient, IG and guided backprop are no better than a random ranking.",
    "H2": "(Hooker) SmoothGrad-squared and VarGrad beat a random ranking under ROAR.",
}
#: every finding has a claim in the default profile
NOT_TESTED: dict[str, str] = {}

PG = "prunegrad"
#: a final-stage sanity claim needs a defined (non-constant) map on at least this share of the images
MIN_DEFINED_SHARE = 0.5
BASES = ("gradient", "integrated_gradients", "guided_backprop")
ENSEMBLES = ("smoothgrad_sq", "vargrad")


def _mean(values) -> float:
    return math.fsum(values) / len(values)


ORACLE = "oracle"
#: pixel perturbation: which direction is better, per (order, measure)
HIGHER_IS_BETTER = {("morf", "logit"): False, ("lerf", "logit"): True, ("morf", "dp"): True, ("lerf", "dp"): False}


def compared(methods) -> list[str]:
    """The methods PruneGrad is compared with: every one except its own side variants, the random baseline and the
    oracle (the ground-truth evidence as a map)."""
    return [m for m in methods if m != PG and not m.startswith(PG + "_") and m not in ("random", ORACLE)]


def pixel_protocol(model: str, order: str, measure: str) -> str:
    """Name of a pixel-perturbation protocol (one curve of one model) in ``results["protocol_validity"]``."""
    return f"pixel{'' if model == 'explained' else '_' + model}_{order}_{measure}"


def pixel_validity_specs(models: dict) -> dict:
    """Validity inputs (``lightning_modules.reporting.validity.protocol_spec``) of every pixel-perturbation curve of a
    model whose run has the oracle and random maps: per-image values of the oracle, random and every real method."""
    from lightning_modules.reporting.validity import protocol_spec

    specs = {}
    for name, block in models.items():
        per_image = (block.get("pixel") or {}).get("per_image")
        if not per_image or ORACLE not in per_image["logit"]["morf"] or "random" not in per_image["logit"]["morf"]:
            continue
        for (order, measure), higher in HIGHER_IS_BETTER.items():
            specs[pixel_protocol(name, order, measure)] = protocol_spec(per_image[measure][order], higher)
    return specs


def _on(results: dict, protocol: str) -> tuple[str, ...]:
    return (protocol,) if protocol in (results.get("protocol_validity") or {}) else ()




def build_claims(results: dict, profile: str) -> list[Claim]:
    claims: list[Claim] = []
    for name, block in results["models"].items():
        tag, where = ("", "") if name == "explained" else (f"{name}.", f"{name}: ")
        if "sanity" in block:
            claims += sanity_claims(block["sanity"], tag, where, results["pass_threshold"])
        if "pixel" in block:
            claims += _pixel(block["pixel"], tag, where, results["pixel_output"], name,
                             lambda order, measure, model=name: _on(results, pixel_protocol(model, order, measure)))
    for name, roar in results["roar"].items():
        claims += _roar(name, roar)
    return claims


# ----------------------------------------------------------------------------------- (a) sanity checks
def sanity_claims(sanity: dict, tag: str, where: str, threshold: float) -> list[Claim]:
    final = sanity["final_spearman_abs"]
    if PG not in final:
        return []
    pg = final[PG]
    defined = [v for v in pg if v is not None]
    measured = {PG: _mean(defined) if defined else float("nan"), "defined_share": len(defined) / len(pg)}
    # a threshold on the fully randomised model: Adebayo et al.'s pass criterion reads the end of the cascade (the
    # map of a network with no trained weight left), so the final stage is the claim's point, not a curve summary
    out = [Claim(
        f"sanity.{tag}prunegrad_passes", "sanity_checks",
        f"{where}PruneGrad's maps change under full cascading randomisation: final-stage Spearman |.| < {threshold:g} "
        f"(mean over the images with a defined map; a constant map is undefined, not a pass, and at least "
        f"{MIN_DEFINED_SHARE:.0%} of the maps must be defined)",
        Relation.all_of(Relation.lt(PG, threshold), Relation.at_least("defined_share", MIN_DEFINED_SHARE)), measured,
        samples={PG: defined} if defined else {}, paper={PG: P.PRUNEGRAD_SANITY}, findings=("K1",),
    )]
    if "guided_backprop" in final:
        cascade = _cascade_comparison(sanity, tag, where)
        if cascade is not None:
            out.append(cascade)
    return out


def _cascade_comparison(sanity: dict, tag: str, where: str, other: str = "guided_backprop") -> Claim | None:
    """PruneGrad below ``other`` at every stage of the cascade (Khakzar's sanity-check figure shows the whole curve;
    rules of judgement 1: every point, Bonferroni over the stages). The final stage is compared per image (paired,
    on the images where both maps are defined); the run stores the earlier stages only as means over the images with
    a defined map, so those are compared as numbers (no interval), each against the minimum effect."""
    order = list(sanity.get("order") or [])
    means = sanity.get("means") or {}
    final = sanity["final_spearman_abs"]
    measured, samples, parts = {}, {}, []
    for i, stage in enumerate(order):
        a, b = f"{PG}@{stage}", f"{other}@{stage}"
        if i == len(order) - 1:
            pairs = [(x, y) for x, y in zip(final[PG], final[other]) if x is not None and y is not None]
            if not pairs:
                continue
            samples[a], samples[b] = [p[0] for p in pairs], [p[1] for p in pairs]
            measured[a], measured[b] = _mean(samples[a]), _mean(samples[b])
        else:
            row = means.get(stage) or {}
            va, vb = ((row.get(m) or {}).get("spearman_abs") for m in (PG, other))
            if va is None or vb is None:  # every map constant at this stage: no correlation to compare
                continue
            measured[a], measured[b] = va, vb
        parts.append(Relation.lt(a, b))
    if not parts:
        return None
    return Claim(
        f"sanity.{tag}prunegrad_more_sensitive_than_guided_backprop", "sanity_checks",
        f"{where}PruneGrad is more sensitive to model randomisation than guided backprop over the whole cascade: lower "
        f"Spearman |.| to the original map at every randomisation stage ({len(parts)} stages with defined maps, "
        "Bonferroni); the final stage per image (paired, the images where both maps are defined), the earlier stages "
        "on their stored means over the images (no per-image values stored: compared as numbers)",
        Relation.every(*parts), measured, samples=samples,
        paper={"guided_backprop": P.GUIDED_BACKPROP_FAILS_SANITY}, findings=("K1",),
        min_effect=fixed_min_effect("rank_correlation"),
    )


# ----------------------------------------------------------------------------------- (b) pixel perturbation
def pixel_min_effect(pixel: dict, measure: str, order: str, model: str) -> MinimumEffect:
    """A tenth of |oracle - random| of this curve's per-image means (rules of judgement 3). The oracle (the evidence
    as a binary map) has ties; its stored score is for one tie order (rules of judgement 6: not checked here). A run
    without the oracle (no ground-truth evidence) takes the span between the unperturbed score (the curve at 0%) and
    the random map instead."""
    per = pixel["per_image"][measure][order]
    what = f"pixel perturbation {order.upper()} {'target ' if measure == 'logit' else ''}{measure} ({model})"
    if ORACLE in per and "random" in per:
        return span_min_effect(_mean(per[ORACLE]), _mean(per["random"]), what)
    start, rnd = pixel["curves"][measure][order]["random"][0], _mean(per["random"])
    return MinimumEffect(MIN_EFFECT_FRACTION * abs(start - rnd),
                         f"{MIN_EFFECT_FRACTION:g} x |unperturbed - random| of {what} (no oracle in this run) = "
                         f"{MIN_EFFECT_FRACTION:g} x |{start:.4g} - {rnd:.4g}| = {MIN_EFFECT_FRACTION * abs(start - rnd):.4g}")


def _pixel(pixel: dict, tag: str, where: str, output: str, model: str, protocols) -> list[Claim]:
    main, official = pixel["per_image"]["logit"], pixel["per_image"]["dp"]
    methods = list(main["morf"])
    if PG not in methods:
        return []
    others = compared(methods)

    def claim(cid, text, relation, curve, names):
        measure, order = curve
        source = (main if measure == "logit" else official)[order]
        return Claim(f"pixel.{tag}{cid}", "pixel_perturbation", where + text, relation,
                     {n: _mean(source[n]) for n in names}, samples={n: source[n] for n in names},
                     paper={PG: P.PRUNEGRAD_PASSES_ALL}, protocols=protocols(order, measure), findings=("K2",),
                     min_effect=pixel_min_effect(pixel, measure, order, model))

    out = []
    if "gradient" in methods:
        out.append(claim("lerf_prunegrad_beats_gradient",
                         f"Removing the least relevant pixels by PruneGrad keeps the target {output} higher than by the plain "
                         "gradient (per-image mean over the fractions)", Relation.gt(PG, "gradient"), ("logit", "lerf"), [PG, "gradient"]))
    if "random" in methods:
        out.append(claim("morf_prunegrad_beats_random",
                         f"Removing the most relevant pixels by PruneGrad lowers the target {output} more than removing random "
                         "pixels", Relation.lt(PG, "random"), ("logit", "morf"), [PG, "random"]))
        out.append(claim("lerf_prunegrad_beats_random",
                         f"Removing the least relevant pixels by PruneGrad keeps the target {output} higher than removing "
                         "random pixels", Relation.gt(PG, "random"), ("logit", "lerf"), [PG, "random"]))
    if others:
        out += [
            claim("lerf_prunegrad_best", f"LeRF: PruneGrad keeps the target {output} higher than every other compared method "
                  f"({', '.join(others)})", Relation.best(PG, others, ">"), ("logit", "lerf"), [PG, *others]),
            claim("morf_prunegrad_best", f"MoRF: PruneGrad lowers the target {output} more than every other compared method",
                  Relation.best(PG, others, "<"), ("logit", "morf"), [PG, *others]),
            claim("lerf_official_measure_prunegrad_best", "LeRF, official measure |p0 - p| / p0: PruneGrad changes the "
                  "predicted class's probability less than every other compared method", Relation.best(PG, others, "<"),
                  ("dp", "lerf"), [PG, *others]),
            claim("morf_official_measure_prunegrad_best", "MoRF, official measure |p0 - p| / p0: PruneGrad changes the "
                  "predicted class's probability more than every other compared method", Relation.best(PG, others, ">"),
                  ("dp", "morf"), [PG, *others]),
        ]
    return out


# ----------------------------------------------------------------------------------- (c) ROAR
def seed_noise(roar: dict) -> float:
    """The seed-to-seed noise of a ROAR benchmark (rules of judgement 1): the pooled standard deviation over the
    seeds of the retrained accuracy, sqrt of the mean over every (method, fraction) of the sample variance over the
    seeds (0 with one seed: there is no spread to measure)."""
    if len(roar["seeds"]) < 2:
        return 0.0
    var = [np.var(v, ddof=1) for per_fraction in roar["accuracy"].values() for v in per_fraction.values()]
    return float(np.sqrt(np.mean(var)))


def _fraction_keys(roar: dict) -> list[str]:
    return sorted(roar["accuracy"]["random"], key=float)


def _seed_curves(per_fraction: dict, keys: list[str], n_seeds: int) -> list[list[float]]:
    """(seeds, fractions) values of one method."""
    return [[float(per_fraction[k][s]) for k in keys] for s in range(n_seeds)]


def roar_points(roar: dict) -> list[int]:
    """Indices of the fractions that can decide (rules of judgement 1): those where at least one method (the oracle
    excepted: a reference) is further than the seed noise (:func:`seed_noise`) from chance accuracy (1 / classes)."""
    keys, n = _fraction_keys(roar), len(roar["seeds"])
    curves = {m: _seed_curves(v, keys, n) for m, v in roar["accuracy"].items() if m != ORACLE}
    return unsaturated_points(curves, 1.0 / roar["num_classes"], seed_noise(roar))


def roar_summary(roar: dict, block: dict, points: list[int]) -> dict[str, list[float]]:
    """Per method, per seed: the mean of its accuracy curve (``block``: method -> fraction -> seeds) over ``points``."""
    keys, n = _fraction_keys(roar), len(roar["seeds"])
    return {m: curve_summary(_seed_curves(v, keys, n), points) for m, v in block.items()}


def leakage_control(roar: dict, points: list[int]) -> dict | None:
    """The mask-only control of a benchmark whose fill shows the removal mask (Hooker's per-channel mean), or None.

    A model that predicts the class from the removal mask alone shows that the retrained model can read the mask
    instead of the kept pixels (Rong et al. 2022): ROAR's accuracy then measures the mask, not the attribution. The
    control is the model retrained on the mask alone (per seed, mean over the same fractions) where the run stores
    it, else the linear (ridge) classifier on the masks at the highest fraction (a lower bound of what a retrained
    model reads). A method's mask passes when it predicts the class no better than random removal's mask (which
    carries no class: the run's own chance level) plus the seed noise; ``leaks``: the methods whose mask fails.
    ROAD's noisy linear fill (Rong et al.) does not show the mask: no control applies there."""
    if roar.get("fill") != "mean":
        return None
    if roar.get("mask_only_retrained"):
        values = roar_summary(roar, roar["mask_only_retrained"], points)
        per_seed = len(roar["seeds"]) > 1
        what = "the model retrained on the removal mask alone, per seed, mean over the same fractions"
    elif roar.get("mask_only_accuracy"):
        values = {m: [float(v)] for m, v in roar["mask_only_accuracy"].items()}
        per_seed = False
        what = (f"a ridge classifier on the removal masks at {100 * max(float(k) for k in _fraction_keys(roar)):g}% "
                "removed, a lower bound of what a retrained model reads")
    else:
        return None
    if "random" not in values:
        return None
    bound = _mean(values["random"]) + seed_noise(roar)
    leaks = [m for m, v in values.items() if m not in ("random", ORACLE) and
             judge(Relation.at_most("mask", bound), {"mask": _mean(v)}, {"mask": v} if per_seed else {}).status == FAILS]
    return {"values": values, "per_seed": per_seed, "bound": bound, "what": what, "leaks": leaks}


def roar_min_effect(name: str, summary: dict) -> MinimumEffect:
    """A tenth of |oracle - random| of the benchmark's curve summary where the run has the oracle (the evidence mask
    as a ranking; its ties broken by one rule, not checked against others), else one percentage point."""
    if ORACLE in summary and "random" in summary:
        return span_min_effect(_mean(summary[ORACLE]), _mean(summary["random"]),
                               f"ROAR {name} accuracy (per-seed mean over the unsaturated fractions)")
    return fixed_min_effect("accuracy")


def _roar(name: str, roar: dict) -> list[Claim]:
    acc = roar["accuracy"]
    if "random" not in acc:
        return []
    keys = _fraction_keys(roar)
    points = roar_points(roar)
    if not points:  # every fraction within noise of chance: the benchmark decides nothing
        return []
    summary = roar_summary(roar, acc, points)
    per_seed = len(roar["seeds"]) > 1  # one seed: the single numbers are compared
    min_effect = roar_min_effect(name, summary)
    control = leakage_control(roar, points)
    over = (f"over the ROAR curve (per seed, the mean accuracy over the fractions "
            f"{', '.join(f'{100 * float(keys[p]):g}%' for p in points)}; a fraction where every method is within the "
            f"seed noise {seed_noise(roar):.3g} of chance {1 / roar['num_classes']:.3g} would be saturated and left out)")
    suffix = ""
    if control is not None:
        suffix = (f"; the fill shows the removal mask, so each method's mask alone ({control['what']}) must predict the "
                  f"class no better than random removal's mask plus the seed noise ({control['bound']:.3g}): the "
                  "mask-only control")
        if control["leaks"]:
            # a leaky protocol cannot test a finding (rules of judgement 4, 5): the verdict is shown, never counted
            suffix += (f". It fails here ({', '.join(control['leaks'])}: the mask leaks the class), so this benchmark "
                       "tests no finding")

    def claim(cid, text, relation, names, paper_value, findings):
        measured = {n: _mean(summary[n]) for n in names}
        samples = {n: summary[n] for n in names} if per_seed else {}
        if control is not None:
            parts = []
            for n in names:
                if n in ("random", ORACLE):
                    continue
                key = f"mask_only.{n}"
                measured[key] = _mean(control["values"][n])
                if control["per_seed"]:
                    samples[key] = control["values"][n]
                parts.append(Relation.at_most(key, control["bound"]))
            relation = Relation.all_of(relation, *parts)
            if control["leaks"]:
                findings = ()
        return Claim(f"roar.{name}.{cid}", "roar", f"{name}: {over}, {text}{suffix}", relation, measured,
                     samples=samples, paper={"claim": paper_value}, findings=findings, min_effect=min_effect)

    out = []
    for base in BASES:
        if base in acc:
            out.append(claim(f"random_not_worse_than_{base}", f"{base} is no better than a random ranking (accuracy >= random's)",
                             Relation.ge(base, "random"), [base, "random"], P.HOOKER_RANDOM_BEATS_BASE, ("H1",)))
    for ens in ENSEMBLES:
        if ens in acc:
            out.append(claim(f"{ens}_beats_random", f"{ens} degrades accuracy more than a random ranking",
                             Relation.lt(ens, "random"), [ens, "random"], P.HOOKER_ENSEMBLES_BEAT_RANDOM, ("H2",)))
    if PG in acc:
        out.append(claim("prunegrad_beats_random", "PruneGrad degrades accuracy more than a random ranking",
                         Relation.lt(PG, "random"), [PG, "random"], P.PRUNEGRAD_PASSES_ALL, ("K3",)))
        others = compared(acc)
        if others:
            out.append(claim("prunegrad_best", f"PruneGrad degrades accuracy more than every other compared method "
                             f"({', '.join(others)})", Relation.best(PG, others, "<"), [PG, *others], P.PRUNEGRAD_PASSES_ALL,
                             ("K3",)))
    return out
