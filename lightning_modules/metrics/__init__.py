"""Evaluation metrics as torchmetrics ``Metric``s (DDP-synced, per-sample values de-duplicated by sample id)."""

from lightning_modules.metrics.causal import DeletionAUC, DeletionInsertion, InsertionAUC
from lightning_modules.metrics.fragility import CenterOfMassShift, RankCorrelation, TopKIntersection, TopKMaskShare
from lightning_modules.metrics.keypoints import KeypointIntensity
from lightning_modules.metrics.localisation import WeakLocalisation, best_alpha, tune_and_evaluate
from lightning_modules.metrics.samples import PerSampleMetric, SampleValues
from lightning_modules.metrics.pixel_perturbation import PixelPerturbation
from lightning_modules.metrics.pointing import PointingGame, center_heatmaps
from lightning_modules.metrics.similarity import MapSimilarity, UndefinedSimilarityWarning, spearman
from lightning_modules.metrics.suppression import SmallestSuppressingBox

__all__ = [
    "CenterOfMassShift", "DeletionAUC", "DeletionInsertion", "InsertionAUC", "KeypointIntensity", "MapSimilarity",
    "PerSampleMetric", "PixelPerturbation", "PointingGame", "RankCorrelation", "SampleValues", "SmallestSuppressingBox",
    "TopKIntersection", "TopKMaskShare", "UndefinedSimilarityWarning", "WeakLocalisation", "best_alpha",
    "center_heatmaps", "spearman", "tune_and_evaluate",
]
