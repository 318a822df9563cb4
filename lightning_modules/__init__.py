"""Shared building blocks of the saliency replications: models, data, explainers, metrics, tasks, reporting."""

__version__ = "0.1.0"
