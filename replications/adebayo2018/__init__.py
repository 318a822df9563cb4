"""Adebayo et al. 2018, Sanity Checks for Saliency Maps: model and data randomisation tests."""

from replications.adebayo2018.experiments import experiment_names

PAPER = {
    "title": "Sanity Checks for Saliency Maps",
    "citation": "J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim. Sanity Checks for Saliency Maps. NeurIPS 2018.",
    # one file per experiment under experiments/
    "experiments": experiment_names(),
}
