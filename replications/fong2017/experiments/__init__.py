"""The experiments of the fong2017 replication, one file each: ``<letter>_<name>.py`` for the paper's experiments
(a. artifacts ... h. pointing game, in the paper's order), ``mask.py`` for the deletion masks every experiment uses,
``benchmark.py`` for their cost. Each file holds its typed config section, its per-batch update, its plain results
(:class:`lightning_modules.experiment.Experiment`), ``ORDER`` (where it sees a batch) and ``build(rep)`` (the
experiment configured from the replication's sections); :mod:`replications.fong2017.replication` finds and runs them,
so adding an experiment is one file here (plus its typed config section, where it has settings).
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
    # ``from replications.fong2017.experiments import FongReplication``: the module that runs them
    if name == "FongReplication":
        from replications.fong2017.replication import FongReplication

        return FongReplication
    raise AttributeError(name)
