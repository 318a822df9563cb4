"""Petsiuk, Das & Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models."""

from replications.petsiuk2018.experiments import experiment_names

PAPER = {
    "title": "RISE: Randomized Input Sampling for Explanation of Black-box Models",
    "citation": "V. Petsiuk, A. Das, K. Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. BMVC 2018.",
    # one file per experiment under experiments/
    "experiments": experiment_names(),
}
