"""Fong & Vedaldi 2017, "Interpretable Explanations of Black Boxes by Meaningful Perturbation" (ICCV 2017)."""

from replications.fong2017.experiments import experiment_names

PAPER = {
    "title": "Interpretable Explanations of Black Boxes by Meaningful Perturbation",
    "citation": "R. C. Fong and A. Vedaldi. Interpretable Explanations of Black Boxes by Meaningful Perturbation. ICCV 2017.",
    # one file per experiment under experiments/
    "experiments": experiment_names(),
}
