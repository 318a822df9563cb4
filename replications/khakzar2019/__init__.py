"""Khakzar et al. 2019: PruneGrad, evaluated by sanity checks, pixel perturbation and ROAR (Hooker et al. 2019)."""

PAPER = {
    "title": "Improving Feature Attribution through Input-specific Network Pruning (PruneGrad) + ROAR",
    "citation": "Khakzar et al., arXiv 1911.11081 (2019); Hooker et al., NeurIPS 2019",
    "experiments": ["sanity_checks", "pixel_perturbation", "roar"],
}
