"""Khakzar et al. 2019: PruneGrad, evaluated by sanity checks, pixel perturbation and ROAR (Hooker et al. 2019)."""

from replications.khakzar2019.experiments import experiment_names

PAPER = {
    "title": "Improving Feature Attribution through Input-specific Network Pruning (PruneGrad) + ROAR",
    "citation": "Khakzar et al., arXiv 1911.11081 (2019); Hooker et al., NeurIPS 2019",
    # one file per experiment under experiments/
    "experiments": experiment_names(),
}
