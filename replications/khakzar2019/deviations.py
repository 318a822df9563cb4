"""Known deviations of the khakzar2019 replication, by exact claim id, each with a diagnostic measured in the same run.

Each reason states the mechanism we believe keeps the embedded setting from showing the paper's effect; its
diagnostic is a quantity of the same run (read from ``results``) that tests that mechanism, and names its contrast:
the same quantity for the other claims of the same protocol, so that a diagnostic that also holds where the claim
holds is refused (rules of judgement 5, ``../shared/HEADLINE_CLAIMS.md``). Reasons take every number from the run
(``str.format`` fields: the claim's measured values and the diagnostic's values).
"""

from __future__ import annotations

import math

from lightning_modules.reporting import Deviation, Diagnostic, Relation, register
from replications.khakzar2019.claims import (
    BASES, ENSEMBLES, PG, compared, leakage_control, roar_points,
)

#: a ranking "removes all the evidence" of an image when every evidence pixel is among the removed ones; it does
#: so for the benchmark when that holds on at least this share of the test images
ALL_REMOVED_SHARE = 0.9
#: the registry is written for the default profile's numbers (the smoke profile's claims are noise)
PROFILES = ("default",)


def _mean(v) -> float:
    return math.fsum(v) / len(v)


# ----------------------------------------------------------------------------------- pixel perturbation: evidence first
#: the claims of one pixel-perturbation curve (order, measure) and the method each compares PruneGrad with
#: (None: every compared method)
_PIXEL_CLAIMS = {
    ("lerf", "logit"): {"lerf_prunegrad_beats_gradient": "gradient", "lerf_prunegrad_beats_random": "random",
                        "lerf_prunegrad_best": None},
    ("morf", "logit"): {"morf_prunegrad_beats_random": "random", "morf_prunegrad_best": None},
    ("lerf", "dp"): {"lerf_official_measure_prunegrad_best": None},
    ("morf", "dp"): {"morf_official_measure_prunegrad_best": None},
}


def winner_ranks_evidence_first(model: str, measure_key: str, order: str, higher_is_better: bool) -> Deviation:
    """The compared method that does best on this curve puts the class evidence (MNIST strokes) first more precisely
    than PruneGrad: removing by its ranking removes the evidence first (MoRF) / last (LeRF). Contrast: the other
    claims on the same curve, with the method each compares PruneGrad with in place of the winner (PruneGrad beats
    the methods whose precision is below its own)."""
    claims = _PIXEL_CLAIMS[(order, measure_key)]
    (best_id,) = [cid for cid, m in claims.items() if m is None]
    claim_id = f"pixel.{model}.{best_id}"

    def values(r, method):
        pixel = r["models"][model]["pixel"]
        curves, prec = pixel["per_image"][measure_key][order], pixel["evidence_precision"]
        return {"precision_best_other": _mean(prec[method]), "precision_prunegrad": _mean(prec[PG]),
                "best_other_curve": _mean(curves[method]), "prunegrad_curve": _mean(curves[PG])}

    def measure(r):
        curves = r["models"][model]["pixel"]["per_image"][measure_key][order]
        pick = max if higher_is_better else min
        return values(r, pick(compared(curves), key=lambda m: _mean(curves[m])))

    def contrast(r):
        return {f"pixel.{model}.{cid}": values(r, m) for cid, m in claims.items() if m is not None}

    return Deviation(
        claim_id,
        "The best of the compared methods on this curve ({best_other_curve:.3f} against PruneGrad's {prunegrad_curve:.3f}) "
        "ranks the digit's stroke pixels first more precisely than PruneGrad: {precision_best_other:.2f} of its top-k pixels "
        "(k = the image's stroke pixels) lie on the strokes, PruneGrad's {precision_prunegrad:.2f} (table "
        "`evidence_precision_mnist`). On MNIST's black background the class evidence is exactly the strokes, so a map "
        "that reproduces the input (guided backprop's known image-reconstruction behaviour, Adebayo et al. 2018) removes "
        "the evidence first under MoRF and last under LeRF; PruneGrad's pruned gradient also ranks background pixels "
        "next to the strokes high.",
        Diagnostic("the best compared method's top-k pixels lie on the strokes more often than PruneGrad's",
                   Relation.gt("precision_best_other", "precision_prunegrad"), measure, contrast),
        PROFILES,
    )


# ----------------------------------------------------------------------------------- ROAR
def _roar_methods(cid: str, acc: dict) -> list[str]:
    """The methods (random excepted) a ROAR claim reads, from its id."""
    if cid == "prunegrad_best":
        return [PG, *compared(acc)]
    if cid.startswith("random_not_worse_than_"):
        return [cid.removeprefix("random_not_worse_than_")]
    return [cid.removesuffix("_beats_random")]


def _roar_claims(acc: dict) -> list[str]:
    """The ROAR claims of a benchmark (the ids ``claims._roar`` makes), without the benchmark prefix."""
    out = [f"random_not_worse_than_{b}" for b in BASES if b in acc] + [f"{e}_beats_random" for e in ENSEMBLES if e in acc]
    if PG in acc:
        out += ["prunegrad_beats_random"] + (["prunegrad_best"] if compared(acc) else [])
    return out


def removes_all_evidence(name: str, method: str) -> Deviation:
    """``method``'s ranking removes every evidence pixel (IG with a black baseline is zero on MNIST's background).
    Contrast: the other claims of the benchmark that compare one method with random removal, with their method's
    share in place of ``method``'s."""
    claim_id = f"roar.{name}.random_not_worse_than_{method}"

    def values(r, m):
        roar = r["roar"][name]
        return {"all_removed_share": roar["evidence_all_removed"][m],
                "random_all_removed_share": roar["evidence_all_removed"]["random"],
                "evidence_removed": roar["evidence_removed"][m], "random_evidence_removed": roar["evidence_removed"]["random"]}

    def contrast(r):
        acc = r["roar"][name]["accuracy"]
        return {f"roar.{name}.{cid}": values(r, _roar_methods(cid, acc)[0]) for cid in _roar_claims(acc)
                if cid != "prunegrad_best" and f"roar.{name}.{cid}" != claim_id}

    return Deviation(
        claim_id,
        f"{method} with the black baseline is exactly zero on MNIST's black background (IG = x * mean gradient), so its "
        "ranking removes the stroke pixels first: at the highest fraction it removes every stroke pixel of "
        "{all_removed_share:.0%} of the test digits ({evidence_removed:.1%} of all stroke pixels; random removal "
        "{random_evidence_removed:.1%}). The modified image holds no digit and the retrained model falls towards chance, "
        "below random removal, which keeps part of every digit. Hooker's IG maps on ImageNet photos spread over the whole "
        "image; on MNIST the IG ranking is an exact digit mask.",
        Diagnostic(f"{method}'s removal erases every stroke pixel on >= {ALL_REMOVED_SHARE:.0%} of the test digits",
                   Relation.at_least("all_removed_share", ALL_REMOVED_SHARE), lambda r: values(r, method), contrast),
        PROFILES,
    )


def mask_leaks_class(name: str, cid: str) -> Deviation:
    """The removal mask itself carries the class (ROAR's leakage, Rong et al. 2022): the claim's mask-only control
    fails. The mechanism applies to every claim of the benchmark (rules of judgement 5), so each of them registers
    it; its contrast is every other claim of the benchmark, with its own methods' masks."""
    claim_id = f"roar.{name}.{cid}"

    def values(r, c):
        roar = r["roar"][name]
        control = leakage_control(roar, roar_points(roar))
        masks = {m: _mean(control["values"][m]) for m in _roar_methods(c, roar["accuracy"])}
        worst = max(masks, key=masks.get)
        return {"mask_only_max": masks[worst], "bound": control["bound"],
                "random_mask_only": _mean(control["values"]["random"])}

    def contrast(r):
        return {f"roar.{name}.{c}": values(r, c) for c in _roar_claims(r["roar"][name]["accuracy"]) if c != cid}

    return Deviation(
        claim_id,
        "On MNIST the removal pattern itself carries the class: the removed pixels are filled with the training mean "
        "(grey) on a black background, so the filled region is visible in the image. A model retrained on the removal "
        "mask alone reaches accuracy {mask_only_max:.3f} for the claim's methods (mean over the fractions and seeds; "
        "random removal's mask: {random_mask_only:.3f}, the run's chance level): the retrained model can read the mask "
        "instead of the kept pixels, so ROAR's accuracy on this fill measures the mask, not the attribution. This is "
        "the class-information leakage through ROAR's removal masks described by Rong et al. 2022 (ROAD, ICML); the "
        "leakage-free noisy linear fill of benchmark `mnist_road` tests the same claim.",
        Diagnostic("the mask alone of one of the claim's methods predicts the class above random removal's mask plus "
                   "the seed noise (the mask-only control fails)", Relation.gt("mask_only_max", "bound"),
                   lambda r: values(r, cid), contrast),
        PROFILES,
    )


#: ROAR on MNIST with Hooker's mean fill: every claim of the benchmark (its mask-only control fails)
_MNIST_MEAN_FILL = ("random_not_worse_than_gradient", "random_not_worse_than_integrated_gradients",
                    "random_not_worse_than_guided_backprop", "smoothgrad_sq_beats_random", "vargrad_beats_random",
                    "prunegrad_beats_random", "prunegrad_best")

DEVIATIONS = register(
    # (b) on the MNIST reference model: the winner puts the strokes first
    winner_ranks_evidence_first("mnist", "logit", "lerf", higher_is_better=True),
    winner_ranks_evidence_first("mnist", "logit", "morf", higher_is_better=False),
    winner_ranks_evidence_first("mnist", "dp", "morf", higher_is_better=True),
    # (c) ROAR on MNIST, Hooker's mean fill: the mask leaks the class
    *(mask_leaks_class("mnist", cid) for cid in _MNIST_MEAN_FILL),
    # (c) ROAR on MNIST, ROAD's fill: IG's exact digit mask does not depend on the fill
    removes_all_evidence("mnist_road", "integrated_gradients"),
)
