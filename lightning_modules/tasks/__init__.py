"""Reusable LightningModules: classifier training, mask learning, explanation and evaluation passes."""

from lightning_modules.tasks.classifier import ClassifierTask

__all__ = ["ClassifierTask"]
