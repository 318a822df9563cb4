"""The constants of the sanity-check replication: the methods, how maps are compared, the models of the data
randomisation test, and the display names that the report and the figures print. Plain values only: the
experiments, the module and the report all read them, and this file imports none of them."""

from __future__ import annotations

#: The paper's methods (official notebook) plus the edge detector it compares with (Fig. 1).
DEFAULT_METHODS = [
    "gradient", "input_x_gradient", "smoothgrad", "vargrad", "integrated_gradients",
    "guided_backprop", "guided_gradcam", "gradcam", "sobel",
]
#: Methods whose per-channel attributions are summed with their sign (the official code's diverging maps sum the
#: channels, ``VisualizeImageDiverging``), so that Spearman of signed maps ("no abs") is computed on signed maps.
#: Input x gradient and Integrated Gradients sum their channels already; Grad-CAM and Sobel are non-negative.
SIGNED_METHODS = ("gradient", "smoothgrad", "vargrad", "guided_backprop", "guided_gradcam")
#: the edge detector (Fig. 1): a map of the input alone
EDGE_DETECTOR = "sobel"
#: Similarity measure that the claims read (the paper's main curves: Spearman rank correlation of |maps|).
CLAIM_MEASURE = "spearman_abs"
#: Measures stored per image in the plain results (what the claims read; the tables give every measure's summary).
PER_IMAGE_MEASURES = ("spearman_abs",)
#: The class convention the claims read: the official notebooks' (each model's own predicted class).
CLAIM_CONVENTION = "retaken"
#: the value of ``true_labels`` that makes the cached black box the true-label model (scenes only)
BLACKBOX = "blackbox"
#: the models of one data randomisation experiment: the paper's pair and the two controls
MODEL_KINDS = ("true", "random", "control", "control_seed")
#: the compared pairs (maps of the first model vs maps of the second): the paper's comparison, then the controls
PAIRS = {
    "random_vs_true": ("random", "true"),
    "control_vs_true": ("control", "true"),
    "random_vs_control": ("random", "control"),
    "control_seed_vs_control": ("control_seed", "control"),
}
#: the seed offset of the noise-floor control (same data and schedule as the control, another init and order)
NOISE_FLOOR_SEED_OFFSET = 1
TRAINED_MODELS = ("shipped", "retrain", "ship_missing", "train")
#: the default data randomisation test: the paper's CNN on real MNIST (random labels memorised on a subset)
DEFAULT_DATA_RANDOMISATION = {
    "mnist": {"dataset": "mnist", "true_labels": {},
              "random_labels": {"max_epochs": 25, "lr": 3e-4, "batch_size": 32, "subset": 1000, "scheduler": "none"}},
}

# display names ------------------------------------------------------------------------------------------------
LABELS = {
    "gradient": "Gradient", "input_x_gradient": "Gradient⊙Input", "smoothgrad": "SmoothGrad",
    "vargrad": "VarGrad", "integrated_gradients": "Integrated Gradients", "guided_backprop": "Guided BackProp",
    "guided_gradcam": "Guided Grad-CAM", "gradcam": "Grad-CAM", "sobel": "Sobel edge detector",
}
DATA_LABELS = {"mnist": "real MNIST", "fashion_mnist": "Fashion-MNIST", "digits": "scikit-learn digits",
               "scenes": "synthetic scenes (v1)", "scenes_v2": "benchmark v2 scenes", "imagenet": "ImageNet val"}
ARCH_LABELS = {
    "mnist_cnn": "CNN (conv5x5-32, pool, conv5x5-64, pool, fc1024, fc10)",
    "mnist_mlp": "MLP (784-2500-1500-500-10)",
    "scenes_cnn": "scenes CNN (the v1 black box's architecture)",
    "scenes_vgg": "v2 VGG (8 ReLU conv layers; the black box's architecture)",
    "scenes_resnet": "v2 ResNet-18 layout (8 residual blocks; the black box's architecture)",
}
PAIR_LABELS = {
    "random_vs_true": "random labels vs true labels (the paper's test)",
    "control_vs_true": "control (true labels, the random-label subset and schedule) vs true labels",
    "random_vs_control": "random labels vs control (same subset and schedule: only the labels differ)",
    "control_seed_vs_control": "control, another training seed vs control (seed noise floor)",
}
