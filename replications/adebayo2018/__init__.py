"""Adebayo et al. 2018, Sanity Checks for Saliency Maps: model and data randomisation tests."""

PAPER = {
    "title": "Sanity Checks for Saliency Maps",
    "citation": "J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim. Sanity Checks for Saliency Maps. NeurIPS 2018.",
    "experiments": ["cascading model randomisation", "independent model randomisation", "data randomisation"],
}
