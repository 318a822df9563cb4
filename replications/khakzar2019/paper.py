"""What Khakzar et al. 2019 and Hooker et al. 2019 (ROAR) publish, with where it comes from.

Khakzar et al., "Improving Feature Attribution through Input-specific Network Pruning", arXiv 1911.11081
(v1: "Explaining Neural Networks via Perturbing Important Learned Features"). The paper's body numbers
(sanity-check curves, pixel-perturbation curves, ROAR accuracies) were not available to us: the claims
below are the paper's qualitative statements (abstract, official code) and are marked unconfirmed where the
exact figure was not read. ../shared/PAPERS.md sections 4 and 5 list the sources.
"""

from lightning_modules.reporting import PaperValue

SOURCE_ABSTRACT = "Khakzar et al. 2019, abstract (arXiv 1911.11081v2)"
SOURCE_CODE = "CAMP-eXplain-AI/PathwayGrad, src/Pruner.py"
SOURCE_HOOKER = "Hooker et al. 2019, abstract (arXiv 1806.10758)"

#: PruneGrad hyperparameters from the official code.
PERCENTILE_TO_PRUNE = PaperValue(85, SOURCE_CODE + " (prune_neuron_mct default)", "ResNet50, ImageNet")
SANITY_SPARSITY = PaperValue(70, "PathwayGrad sanity-check script", "ResNet50, ImageNet")
RANDOMIZATION_STD = PaperValue(0.1, "PathwayGrad sanity-check script: weights re-initialised N(0, 0.1)", "ResNet50, ImageNet")
ROAR_FRACTIONS = PaperValue("10, 30, 50, 70, 90 %", "RoarTorch config / Hooker et al. 2019", "CIFAR-10, ResNet8", confirmed=False)

#: Qualitative claims (the paper's own words; per-method curves not read).
PRUNEGRAD_PASSES_ALL = PaperValue(
    "performs better than other methods across all evaluations (sanity checks, pixel perturbation, ROAR)",
    SOURCE_ABSTRACT, "ResNet50 ImageNet; ResNet8 CIFAR-10",
)
PRUNEGRAD_SANITY = PaperValue(
    "passes the cascading-randomisation sanity check (maps change as layers are randomised)",
    SOURCE_ABSTRACT + "; sanity-check curves in the paper's figures", "ResNet50, ImageNet", confirmed=False,
)
GUIDED_BACKPROP_FAILS_SANITY = PaperValue(
    "guided backprop stays similar to the original map under cascading randomisation (fails)",
    "Adebayo et al. 2018 (re-run in Khakzar's sanity-check figure)", "ResNet50, ImageNet", confirmed=False,
)
HOOKER_RANDOM_BEATS_BASE = PaperValue(
    "gradient, IG and guided backprop are no better than a random designation of importance",
    SOURCE_HOOKER, "ResNet-50; ImageNet, Birdsnap, Food-101",
)
HOOKER_ENSEMBLES_BEAT_RANDOM = PaperValue(
    "only SmoothGrad-squared and VarGrad outperform the random baseline", SOURCE_HOOKER, "ResNet-50; ImageNet, Birdsnap, Food-101",
)
