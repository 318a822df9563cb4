"""A small saliency method, written against the scorecard's contract (docs/scorecard.md).

Grad-CAM's class map, sharpened by the image's edges: the coarse, class-discriminative Grad-CAM blob says *where*,
the Sobel magnitude of the image says *which pixels there*. Score it with

    python -m replications scorecard --explainer examples.my_method:EdgeWeightedGradCAM --out reports/scorecard
"""

import torch

from lightning_modules.explainers import Explainer, create_explainer
from lightning_modules.explainers.baselines import grayscale, sobel_magnitude


class EdgeWeightedGradCAM(Explainer):
    def __init__(self, edge_weight: float = 0.5):
        self.edge_weight = edge_weight
        self.gradcam = create_explainer("gradcam")

    def attribute(self, model, images, targets):
        cam = self.gradcam.attribute(model, images, targets)  # (B, 1, h, w), >= 0
        cam = torch.nn.functional.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
        cam = cam / cam.flatten(1).amax(1).clamp(min=1e-8).view(-1, 1, 1, 1)
        edges = sobel_magnitude(grayscale(images))
        edges = edges / edges.flatten(1).amax(1).clamp(min=1e-8).view(-1, 1, 1, 1)
        return cam * (1 - self.edge_weight + self.edge_weight * edges)
