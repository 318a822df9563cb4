"""Claims of the khakzar2019 replication: a pure function of the run's plain results (``plain_results``).

Every claim reads the official PruneGrad rule (method ``prunegrad``: one global percentile over all ReLU neurons,
PathwayGrad ``src/Pruner.py``); the ``scope: active`` variant (``prunegrad_active``) is a side row of the tables.
Orderings are judged by the paired bootstrap over the evaluated images (sanity checks, pixel perturbation) or over
the ROAR seeds (a ROAR benchmark with one seed is compared on its single numbers).

- (a) sanity checks (Khakzar Sec. 4 / Adebayo et al. 2018): PruneGrad's maps change under full cascading
  randomisation (final-stage Spearman |.| below ``pass_threshold``; a constant map has no correlation and is
  undefined, not a pass), and more than guided backprop's.
- (b) pixel perturbation (Khakzar Sec. 4, RoarTorch ``lerf``): per image, the mean over the removed fractions > 0
  of the target logit and of the official |p0 - p| / p0; PruneGrad against the gradient, random, and every other
  compared method ("performs better than other methods across all evaluations", abstract).
- (c) ROAR (Hooker et al. 2019): at the highest fraction, the base estimators are no better than random, the
  ensembles and PruneGrad are, and PruneGrad beats every other method.
"""

from __future__ import annotations

import math

from lightning_modules.reporting import Claim, Relation
from replications.khakzar2019 import paper as P

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
            claims += _sanity(block["sanity"], tag, where, results["pass_threshold"])
        if "pixel" in block:
            claims += _pixel(block["pixel"], tag, where, results["pixel_output"],
                             lambda order, measure, model=name: _on(results, pixel_protocol(model, order, measure)))
    for name, roar in results["roar"].items():
        claims += _roar(name, roar)
    return claims


def _sanity(sanity: dict, tag: str, where: str, threshold: float) -> list[Claim]:
    final = sanity["final_spearman_abs"]
    if PG not in final:
        return []
    pg = final[PG]
    defined = [v for v in pg if v is not None]
    measured = {PG: _mean(defined) if defined else float("nan"), "defined_share": len(defined) / len(pg)}
    out = [Claim(
        f"sanity.{tag}prunegrad_passes", "sanity_checks",
        f"{where}PruneGrad's maps change under full cascading randomisation: final-stage Spearman |.| < {threshold:g} "
        f"(mean over the images with a defined map; a constant map is undefined, not a pass, and at least "
        f"{MIN_DEFINED_SHARE:.0%} of the maps must be defined)",
        Relation.all_of(Relation.lt(PG, threshold), Relation.at_least("defined_share", MIN_DEFINED_SHARE)), measured,
        samples={PG: defined} if defined else {}, paper={PG: P.PRUNEGRAD_SANITY},
    )]
    if "guided_backprop" in final:
        pairs = [(a, b) for a, b in zip(pg, final["guided_backprop"]) if a is not None and b is not None]
        if pairs:
            a, b = [p[0] for p in pairs], [p[1] for p in pairs]
            out.append(Claim(
                f"sanity.{tag}prunegrad_more_sensitive_than_guided_backprop", "sanity_checks",
                f"{where}PruneGrad is more sensitive to model randomisation than guided backprop (lower final-stage "
                "Spearman |.|, on the images where both maps are defined)",
                Relation.lt(PG, "guided_backprop"), {PG: _mean(a), "guided_backprop": _mean(b)},
                samples={PG: a, "guided_backprop": b}, paper={"guided_backprop": P.GUIDED_BACKPROP_FAILS_SANITY},
            ))
    return out


def _pixel(pixel: dict, tag: str, where: str, output: str, protocols) -> list[Claim]:
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
                     paper={PG: P.PRUNEGRAD_PASSES_ALL}, protocols=protocols(order, measure))

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


def _roar(name: str, roar: dict) -> list[Claim]:
    hi = max(roar["fractions"])
    acc = {m: roar["accuracy"][m][str(hi)] for m in roar["accuracy"]}
    per_seed = len(roar["seeds"]) > 1  # one seed: the single numbers are compared

    def claim(cid, text, relation, names, paper_value):
        return Claim(f"roar.{name}.{cid}", "roar", f"{name}: at {100 * hi:g}% removed, {text}", relation,
                     {n: _mean(acc[n]) for n in names}, samples={n: acc[n] for n in names} if per_seed else {},
                     paper={"claim": paper_value})

    out = []
    if "random" not in acc:
        return out
    for base in BASES:
        if base in acc:
            out.append(claim(f"random_not_worse_than_{base}", f"{base} is no better than a random ranking (accuracy >= random's)",
                             Relation.ge(base, "random"), [base, "random"], P.HOOKER_RANDOM_BEATS_BASE))
    for ens in ENSEMBLES:
        if ens in acc:
            out.append(claim(f"{ens}_beats_random", f"{ens} degrades accuracy more than a random ranking",
                             Relation.lt(ens, "random"), [ens, "random"], P.HOOKER_ENSEMBLES_BEAT_RANDOM))
    if PG in acc:
        out.append(claim("prunegrad_beats_random", "PruneGrad degrades accuracy more than a random ranking",
                         Relation.lt(PG, "random"), [PG, "random"], P.PRUNEGRAD_PASSES_ALL))
        others = compared(acc)
        if others:
            out.append(claim("prunegrad_best", f"PruneGrad degrades accuracy more than every other compared method "
                             f"({', '.join(others)})", Relation.best(PG, others, "<"), [PG, *others], P.PRUNEGRAD_PASSES_ALL))
    return out
