"""Petsiuk, Das & Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models."""

PAPER = {
    "title": "RISE: Randomized Input Sampling for Explanation of Black-box Models",
    "citation": "V. Petsiuk, A. Das, K. Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. BMVC 2018.",
    "experiments": ["deletion/insertion (Table 1)", "pointing game (Table 2)", "stability vs N", "benchmark"],
}
