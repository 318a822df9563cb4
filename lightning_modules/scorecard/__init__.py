"""The scorecard (issue #41): any saliency method under every protocol of the suite that is valid on the embedded
benchmark, beside the built-in methods (``python -m replications scorecard --explainer module:Name``).

- :mod:`.contract`: loading a user's method (an ``Explainer`` subclass or a plain function) and the checks of the
  explainer contract;
- :mod:`.protocols`: the benchmark, the reference maps and the protocols' per-image values;
- :mod:`.roar`, :mod:`.datarand`: the protocols that need retrained models, run when asked (``--with roar``,
  ``--with data_randomisation``: Adebayo's data randomisation test on the shipped random-label model and controls);
- :mod:`.own`: a user's own model and data by name (``--model torchvision/resnet50 --data imagenet --data-root
  DIR``): the published weights, the ILSVRC val images with their class boxes as the object ground truth;
- :mod:`.card`: the built-in cache, verdicts and ranks, the Markdown table, the figure, the JSON and the
  verification ``check`` runs on ``reports/scorecard/``.
"""

from lightning_modules.scorecard.contract import (  # noqa: F401
    CONTRACT,
    CheckedExplainer,
    ExplainerContractError,
    check_output,
    load_explainer,
)
from lightning_modules.scorecard.protocols import PROFILES, PROTOCOLS, RETRAINING, Setting  # noqa: F401
from lightning_modules.scorecard.card import derive, run_scorecard, verify_scorecard, write_scorecard  # noqa: F401,E402
