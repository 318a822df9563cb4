"""Saliency methods behind one interface; importing this package registers all built-in methods."""

from lightning_modules.explainers.base import (  # noqa: F401
    Explainer,
    create_explainer,
    get_explainer_class,
    hooks_guard,
    list_explainers,
    model_state_guard,
    reduce_channels,
    register_explainer,
)

# Method modules register themselves on import. Each module below is one family of methods.
import importlib as _importlib

for _mod in (
    "gradients",      # gradient, input_x_gradient, smoothgrad, smoothgrad_sq, vargrad, integrated_gradients, guided_backprop, deconvnet
    "cam",            # gradcam, guided_gradcam, score_cam
    "perturbation",   # occlusion, blurred-circle occlusion, lime
    "excitation",     # excitation_backprop, contrastive_excitation_backprop
    "baselines",      # sobel edge detector, random
    "rise",           # petsiuk2018
    "mask",           # fong2017 meaningful_perturbation
    "prunegrad",      # khakzar2019
):
    try:
        _importlib.import_module(f"lightning_modules.explainers.{_mod}")
    except ModuleNotFoundError as _e:  # a family not written yet must not break the others
        if _e.name != f"lightning_modules.explainers.{_mod}":
            raise
