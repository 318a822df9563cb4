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

# Each module below is one family of methods; importing it registers them.
from lightning_modules.explainers import (  # noqa: E402,F401
    baselines,     # sobel edge detector, random
    cam,           # gradcam, guided_gradcam, score_cam
    excitation,    # excitation_backprop, contrastive_excitation_backprop
    gradients,     # gradient, input_x_gradient, smoothgrad, smoothgrad_sq, vargrad, integrated_gradients, guided_backprop, deconvnet
    mask,          # meaningful_perturbation (fong2017)
    perturbation,  # occlusion, blurred_circle_occlusion, lime
    prunegrad,     # prunegrad (khakzar2019)
    rise,          # rise (petsiuk2018)
)
