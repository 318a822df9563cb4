"""The experiments of the khakzar2019 replication, one file each: ``<letter>_<name>.py`` for the paper's benchmarks
(a. sanity checks, b. pixel perturbation, c. ROAR), ``prunegrad_rules.py`` for the explained classifier's accuracy
and PruneGrad's threshold-rule measurements. Each file holds its typed config section, its per-batch update, its
plain results (:class:`lightning_modules.experiment.Experiment`), ``ORDER`` (where it sees a batch) and
``build(rep)`` (the experiment configured from the replication's sections);
:mod:`replications.khakzar2019.replication` finds and runs them.
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
    # ``from replications.khakzar2019.experiments import Khakzar2019Replication``: the module that runs them
    if name == "Khakzar2019Replication":
        from replications.khakzar2019.replication import Khakzar2019Replication

        return Khakzar2019Replication
    raise AttributeError(name)
