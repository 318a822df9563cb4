"""Ghorbani, Abid & Zou 2019, Interpretation of Neural Networks is Fragile (AAAI 2019)."""

PAPER = {
    "title": "Interpretation of Neural Networks is Fragile",
    "citation": "A. Ghorbani, A. Abid, J. Zou. Interpretation of Neural Networks is Fragile. AAAI 2019.",
    "experiments": [
        "top-k intersection, Spearman rank correlation and centre-of-mass shift vs epsilon, per saliency method "
        "(simple gradient, Integrated Gradients, DeepLIFT) and attack (random sign, top-k, centre of mass), on the "
        "synthetic scenes (black box) and on real MNIST (the cached MNIST CNN)",
        "label preservation of every accepted attack step",
        "original vs attacked saliency maps",
    ],
}
