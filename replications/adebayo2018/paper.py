"""What Adebayo et al. 2018 report (../shared/PAPERS.md §3). The paper publishes curves, not tables: the
values below are its qualitative verdicts, encoded as the relations the claims check."""

from lightning_modules.reporting import PaperValue

INCEPTION = "Inception v3, ImageNet val (200 images), cascading randomisation from Logits to Conv2d_1a_3x3"
MNIST = "CNN (conv5x5-32, pool, conv5x5-64, pool, fc1024, fc10) on MNIST"

GBP_INVARIANT = PaperValue(
    "Guided BackProp stays visually and rank-correlation similar to the original map under cascading "
    "randomisation of the top layers (fails the check); errata: lower-layer randomisation does distort it",
    source="Sec. 3.1, Fig. 2 and Fig. 4; README errata", setting=INCEPTION, confirmed=True)
GUIDED_GRADCAM_INVARIANT = PaperValue(
    "Guided Grad-CAM stays similar under cascading randomisation (fails the check)",
    source="Sec. 3.1, Fig. 2", setting=INCEPTION, confirmed=True)
GRADIENT_SENSITIVE = PaperValue(
    "Gradient changes under cascading randomisation (passes the check)",
    source="Sec. 3.1, Fig. 2 and Fig. 4", setting=INCEPTION, confirmed=True)
GRADCAM_SENSITIVE = PaperValue(
    "Grad-CAM changes under cascading randomisation (passes the check)",
    source="Sec. 3.1, Fig. 2", setting=INCEPTION, confirmed=True)
EDGE_DETECTOR = PaperValue(
    "An edge detector gives maps that resemble those of the failing methods while using neither model nor data",
    source="Fig. 1, Sec. 5", setting=INCEPTION, confirmed=True)
RANDOM_LABEL_FIT = PaperValue(
    "the random-label model fits its training set (train accuracy about 100%) with test accuracy at chance",
    source="Sec. 4", setting=MNIST + ", 100 epochs on permuted labels", confirmed=False)
DATA_RANDOMISATION = PaperValue(
    "Gradient and Grad-CAM maps of the random-label model differ from the true-label model's; "
    "Guided BackProp and Guided Grad-CAM stay similar (fail the data randomisation test)",
    source="Sec. 4, Fig. 5", setting=MNIST, confirmed=False)
