"""Published values of Ghorbani, Abid & Zou 2019 (from /work/shared/PAPERS.md §6).

The paper's averaged numbers (its figures over ImageNet / CIFAR-10 images and epsilons) were not read, so the
only quantitative values here are the official notebook's single-image example output, marked as such.
"""

from lightning_modules.reporting import PaperValue

NOTEBOOK_SETTING = "SqueezeNet, ImageNet, one image, simple gradient, centre-of-mass attack, eps 8/255, 300 steps"

#: official notebook output (``SimpleGradient_Notebook``), one image, illustrative
NOTEBOOK_TOPK_INTERSECTION = PaperValue(0.010, source="official notebook output (top-1000 intersection 1.0%)",
                                        setting=NOTEBOOK_SETTING, confirmed=True)
NOTEBOOK_SPEARMAN = PaperValue(0.25, source="official notebook output", setting=NOTEBOOK_SETTING, confirmed=True)
NOTEBOOK_CENTER_SHIFT_PX = PaperValue(86.3, source="official notebook output (227 px images)",
                                      setting=NOTEBOOK_SETTING, confirmed=True)
#: the same shift as a fraction of the image side (86.3 / 227), for comparison across image sizes
NOTEBOOK_CENTER_SHIFT_FRACTION = PaperValue(round(86.3 / 227, 3), source="official notebook output, 86.3 px / 227 px",
                                            setting=NOTEBOOK_SETTING, confirmed=True)

#: the official code's settings
NOTEBOOK_EPSILON = PaperValue(8, source="official notebooks (0-255 units)", setting="SqueezeNet ImageNet")
NOTEBOOK_ALPHA = PaperValue(0.5, source="official notebooks (0-255 units)", setting="SqueezeNet ImageNet")
NOTEBOOK_STEPS = PaperValue(300, source="official notebooks", setting="SqueezeNet ImageNet")
TOP_K = PaperValue(1000, source="official code k_top (of 227 x 227 pixels)", setting="SqueezeNet ImageNet")
IG_STEPS = PaperValue(100, source="official code num_steps", setting="SqueezeNet ImageNet")
SOFTPLUS_BETA = PaperValue(1.0, source="official code (Keras softplus surrogate)", setting="SqueezeNet ImageNet")
#: the official ``iterative_attack``: the returned iterate minimises ``measure`` (default "intersection") over the
#: label-keeping iterates, for every attack method
BEST_ITERATE_MEASURE = PaperValue("intersection", source="official code utils.py iterative_attack(measure=...)",
                                  setting="every attack")

#: the qualitative claims (paper body not read: unconfirmed)
TARGETED_BEATS_RANDOM = PaperValue(
    "top-k and centre-of-mass attacks lower top-k intersection far more than random sign at equal epsilon",
    source="Sec. 4 / Fig. 3-4 (body not read)", setting="ImageNet (SqueezeNet), CIFAR-10", confirmed=False)
LABEL_KEPT = PaperValue("the perturbed images keep the predicted label",
                        source="abstract; official code: an iterate that changes the label is never returned (the "
                               "attack keeps iterating from it)", setting="ImageNet, CIFAR-10", confirmed=True)
CENTER_MOVES_MORE = PaperValue("the centre-of-mass attack moves the centre far more than random sign",
                               source="Sec. 4 (body not read)", setting="ImageNet, CIFAR-10", confirmed=False)
