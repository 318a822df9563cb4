"""Known deviations of the RISE replication, by exact claim id, each with a diagnostic measured in the same run
(see ``lightning_modules.reporting.claims``). Every number of a reason comes from the run."""

from __future__ import annotations

import math

from lightning_modules.reporting import Deviation, Diagnostic, Relation, register

from replications.petsiuk2018.claims import CONVERGED_SEED_CORR


def _mean(v) -> float:
    return math.fsum(v) / len(v)


# ---------------------------------------------------------------------------------------- c. stability
def _noise_model(res: dict) -> dict:
    """RISE is a Monte-Carlo average: if the maps of two mask seeds differ by estimation noise alone, their
    correlation is c(N) = 1 / (1 + k / N) with k the noise-to-signal ratio of one mask. k from the two largest N;
    the prediction at the paper's N follows."""
    s = res["stability"]
    ns = [int(n) for n in s["n_values"]]
    n1, n0 = ns[-1], ns[-2]
    c1, c0 = s["seed_corr"][str(n1)], s["seed_corr"][str(n0)]
    k1, k0 = n1 * (1 / c1 - 1), n0 * (1 / c0 - 1)
    n_paper = res["rise"]["paper_n_masks"]
    return {"corr_at_n": c1, "k_at_n": k1, "k_at_previous_n": k0, "k_ratio": k1 / k0, "predicted_corr_paper_n": 1 / (1 + k1 / n_paper),
            "paper_n": float(n_paper), "n": float(n1), "previous_n": float(n0)}


# ---------------------------------------------------------------------------------------- a. deletion / insertion
def _precision(res: dict) -> dict:
    """Evidence precision (share of a map's top-A pixels on the head) of RISE and of the methods whose mean
    deletion AUC is below RISE's, and the rank correlation of precision with the AUCs over every map."""
    from scipy.stats import spearmanr

    pm = res["per_method"]
    maps = res["methods"] + res["references"]
    prec = {m: pm[m]["evidence_precision"] for m in maps}
    better = [m for m in res["methods"] if m != "rise" and pm[m]["deletion"] < pm["rise"]["deletion"]]
    out = {"precision_rise": prec["rise"], "precision_oracle": prec["oracle"],
           "min_precision_of_methods_below_rise": min((prec[m] for m in better), default=float("nan")),
           "n_methods_below_rise": float(len(better))}
    for metric in ("deletion", "insertion"):
        rho = spearmanr([prec[m] for m in maps], [pm[m][metric] for m in maps]).statistic
        out[f"spearman_precision_{metric}"] = float(rho)
    out["step_px"] = float(res["causal"]["pixels_per_step"])
    out["head_px"] = float(res["evidence_area_px"]["median"])
    return out


_PRECISION_REASON = (
    "Deletion and insertion in {step_px:.0f}-px steps reward maps whose first pixels are the evidence (the head, "
    "{head_px:.0f} px in the median image): over all maps, the share of a map's top-A pixels on the head ranks the "
    "AUCs (Spearman {spearman_precision_deletion:+.2f} with deletion, {spearman_precision_insertion:+.2f} with "
    "insertion; the oracle's precision is {precision_oracle:.2f}). "
)

# No deviation is registered for Table 1's full deletion / insertion orderings: the evidence-precision
# hypothesis was measured on the default run and did not rank the AUCs, so they are reported as not reproduced.
DEVIATIONS = register(
    Deviation(
        "rise_maps_converged",
        "RISE runs N = {n:.0f} masks here (CPU budget) against the paper's {paper_n:.0f}. The seed-to-seed "
        "correlation behaves as Monte-Carlo noise that falls as 1/N: its noise-to-signal ratio k = N (1/c - 1) is "
        "{k_at_n:.0f} at N = {n:.0f} and {k_at_previous_n:.0f} at N = {previous_n:.0f}, which predicts a "
        "correlation of {predicted_corr_paper_n:.3f} at the paper's N (measured here: {corr_at_n:.3f} at N = {n:.0f}).",
        Diagnostic(
            "The 1/N noise model fits (k at the two largest N within a factor 1.5) and predicts a seed-to-seed "
            f"correlation >= {CONVERGED_SEED_CORR} at the paper's N",
            Relation.all_of(Relation.between("k_ratio", 1 / 1.5, 1.5),
                            Relation.at_least("predicted_corr_paper_n", CONVERGED_SEED_CORR)),
            _noise_model,
        ),
    ),
    Deviation(
        "rise_best_deletion",
        _PRECISION_REASON + "RISE's map is an average of coarse random masks and ranks fewer head pixels first "
        "(precision {precision_rise:.3f}) than each of the {n_methods_below_rise:.0f} methods with a lower deletion "
        "AUC (their lowest precision {min_precision_of_methods_below_rise:.3f}); RISE's deletion AUC {rise:.4f}.",
        Diagnostic(
            "Every method with a lower mean deletion AUC than RISE has a higher evidence precision, and precision "
            "ranks the deletion AUCs of all maps (Spearman <= -0.8)",
            Relation.all_of(Relation.gt("min_precision_of_methods_below_rise", "precision_rise"),
                            Relation.at_most("spearman_precision_deletion", -0.8)),
            _precision,
        ),
    ),
)
