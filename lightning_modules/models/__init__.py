"""One home for models (timm's shape).

- ``registry``: the architectures and our trained (embedded) models by name; imports nothing of ours.
- one file per architecture family, registering itself on import: ``small_cnns`` (``scenes_cnn``, ``mnist_cnn``,
  ``mnist_mlp``, ``resnet8``), ``vgg_resnet_v2`` (``scenes_vgg``, ``scenes_resnet``); torchvision's and timm's
  models are built by ``loader``.
- ``loader``: ``load_model`` (architectures, torchvision, timm, and ``load_model(name, weights="embedded")`` for
  our trained models), ``DataConfig``, ``Normalized``, ``safe_load``, layer helpers; ``retrain_and_ship(name)``.
- ``shipped``: the hash-checked weights in ``weights/`` (``MANIFEST.json``).
- one file per kind of trained model, registering its names: ``blackbox`` (``blackbox_<profile>``), ``mnist``
  (``mnist_cnn_<profile>``), ``embedded_v2`` (``scenes_v2_vgg``, ``scenes_v2_resnet``), ``embedded_multilabel``
  (``scenes_multilabel_vgg``): their configs, training and measurements.

``list_models()`` names the architectures, ``list_models(shipped=True)`` the shipped trained models.
"""

from lightning_modules.models import small_cnns, vgg_resnet_v2  # noqa: F401  (register the architectures)
from lightning_modules.models.loader import (DEFAULT_CAM_LAYERS, EMBEDDED_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD,
                                             TORCHVISION_DEFAULT, DataConfig, Normalized, architecture_version,
                                             class_probabilities, find_pretrained_file, list_models,
                                             load_embedded_model, load_model, registering_module, resolve_layer,
                                             retrain_and_ship, safe_load, unwrap, weights_dirs)
from lightning_modules.models.registry import (EmbeddedSpec, ModelSpec, embedded_entry, is_embedded, is_model,
                                               model_entrypoint, register_embedded, register_model)
from lightning_modules.models.shipped import (ShippedWeightsError, config_hash, list_shipped, load_shipped, ship,
                                              shipped_entry, state_dict_equal, verify_shipped)
from lightning_modules.models import blackbox, embedded_multilabel, embedded_v2, mnist  # noqa: E402,F401  (register)
from lightning_modules.models.blackbox import (BLACKBOX_PROFILES, BlackboxConfig, blackbox_config,  # noqa: E402
                                               blackbox_datamodule, blackbox_dir, blackbox_info, trained_blackbox)
from lightning_modules.models.embedded_multilabel import (EMBEDDED_MULTILABEL, SHIPPED_MULTILABEL,  # noqa: E402
                                                          EmbeddedMultiLabelConfig, embedded_multilabel_config)
from lightning_modules.models.embedded_v2 import (EMBEDDED_V2, REDUCED_SCHEDULE, SHIPPED_V2,  # noqa: E402
                                                  EmbeddedV2Config, check_trained_on, embedded_v2_config, forward_cost)
from lightning_modules.models.mnist import (MNIST_MODEL_PROFILES, MnistModelConfig, mnist_datamodule,  # noqa: E402
                                            mnist_model_config, mnist_model_dir, trained_mnist_model)

__all__ = [
    "BLACKBOX_PROFILES", "DEFAULT_CAM_LAYERS", "EMBEDDED_MULTILABEL", "EMBEDDED_V2", "EMBEDDED_WEIGHTS",
    "IMAGENET_MEAN", "IMAGENET_STD", "MNIST_MODEL_PROFILES", "REDUCED_SCHEDULE", "SHIPPED_MULTILABEL", "SHIPPED_V2",
    "TORCHVISION_DEFAULT", "BlackboxConfig", "DataConfig", "EmbeddedMultiLabelConfig", "EmbeddedSpec",
    "EmbeddedV2Config", "MnistModelConfig", "ModelSpec", "Normalized", "ShippedWeightsError",
    "architecture_version", "blackbox_config", "blackbox_datamodule", "blackbox_dir", "blackbox_info",
    "check_trained_on", "class_probabilities", "config_hash", "embedded_entry", "embedded_multilabel_config",
    "embedded_v2_config", "find_pretrained_file", "forward_cost", "is_embedded", "is_model", "list_models",
    "list_shipped", "load_embedded_model", "load_model", "load_shipped", "mnist_datamodule", "mnist_model_config",
    "mnist_model_dir", "model_entrypoint", "register_embedded", "register_model", "registering_module",
    "resolve_layer", "retrain_and_ship", "safe_load", "ship", "shipped_entry", "state_dict_equal",
    "trained_blackbox", "trained_mnist_model", "unwrap", "verify_shipped", "weights_dirs",
]
