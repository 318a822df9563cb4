"""Petsiuk, Das & Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models."""

PAPER = {
    "title": "RISE: Randomized Input Sampling for Explanation of Black-box Models",
    "citation": "V. Petsiuk, A. Das, K. Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. BMVC 2018.",
    "experiments": [
        "deletion and insertion AUC (Table 1)",
        "pointing game, all / difficult, with the centre baseline (Table 2)",
        "stability of RISE vs the number of masks and across seeds",
        "runtime and memory of RISE vs its N masked forward passes",
    ],
}
