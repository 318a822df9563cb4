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


# No deviation is registered for Table 1's claims: where RISE does not win, the claim is reported as not
# reproduced (on a protocol valid in the run) or not valid (on one that is not).
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
)
