"""The experiments of the petsiuk2018 (RISE) replication, one file each: ``<letter>_<name>.py`` for the paper's
experiments (a. deletion / insertion, b. pointing game, c. stability vs N, d. example maps, in the paper's order),
``benchmark.py`` for RISE's cost. Each file holds its typed config section (where it has settings), its per-batch
update, its plain results and claims (:class:`lightning_modules.experiment.Experiment`), ``ORDER`` (where it sees a
batch) and ``build(rep)`` (the experiment configured from the replication's sections);
:mod:`replications.petsiuk2018.replication` finds and runs them, so adding an experiment is one file here.

Every method's maps of a batch are computed once (``ctx.map``) and shared: deletion and insertion read the maps of the
model's top-1 class, the pointing game those of the ground-truth class (``<method>@label``, the same cache: RISE
gives both from one all-classes pass, the other methods re-explain only where the two classes differ).
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
    # ``from replications.petsiuk2018.experiments import RiseReplication``: the module that runs them
    if name == "RiseReplication":
        from replications.petsiuk2018.replication import RiseReplication

        return RiseReplication
    raise AttributeError(name)
