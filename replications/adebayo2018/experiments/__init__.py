"""The experiments of the adebayo2018 replication, one file each, ``<letter>_<name>.py`` in the paper's order:
a. cascading and b. independent model randomisation (Sec. 3.1), c. data randomisation with its controls (Sec. 4),
d. the edge-detector comparison (Fig. 1). Each file holds its typed config, its per-batch update, its plain results
and its claims (:class:`lightning_modules.experiment.Experiment`), ``ORDER`` (where it sees a batch) and ``build(rep)``
(the experiment configured from the replication); :mod:`replications.adebayo2018.replication` finds and runs them, so
adding an experiment is one file here. Shared machinery lives beside the package: the batch context and the
similarity (``maps.py``), the models' training (``training.py``), the constants (``constants.py``).
"""

from __future__ import annotations

from lightning_modules import experiment as _experiment


def experiment_names() -> list[str]:
    """The experiment files of this package: the lettered ones in the paper's order, then the others."""
    return _experiment.experiment_names(__name__)


def experiment_modules() -> list:
    """The experiment files' modules, in the order they see a batch (their ``ORDER``)."""
    return _experiment.experiment_modules(__name__)


def __getattr__(name: str):
    # ``from replications.adebayo2018.experiments import AdebayoReplication``: the module that runs them
    if name == "AdebayoReplication":
        from replications.adebayo2018.replication import AdebayoReplication

        return AdebayoReplication
    raise AttributeError(name)
