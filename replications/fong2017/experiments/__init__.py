"""The experiments of the fong2017 replication, one file each: ``<letter>_<name>.py`` for the paper's experiments
(a. artifacts ... h. pointing game, in the paper's order), ``mask.py`` for the deletion masks every experiment uses,
``benchmark.py`` for their cost. Each file holds its typed config section, its per-batch update, its plain results
(:class:`lightning_modules.experiment.Experiment`), ``ORDER`` (where it sees a batch) and ``build(rep)`` (the
experiment configured from the replication's sections); :mod:`replications.fong2017.replication` finds and runs them,
so adding an experiment is one file here (plus its typed config section, where it has settings).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

_LETTERED = re.compile(r"^[a-z]_[a-z_]+$")


def experiment_names() -> list[str]:
    """The experiment files of this package: the lettered ones in the paper's order, then the others."""
    names = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (not _LETTERED.match(n), n))


def experiment_modules() -> list:
    """The experiment files' modules, in the order they see a batch (their ``ORDER``)."""
    modules = [importlib.import_module(f"{__name__}.{n}") for n in experiment_names()]
    return sorted(modules, key=lambda m: m.ORDER)


def __getattr__(name: str):
    # ``from replications.fong2017.experiments import FongReplication``: the module that runs them
    if name == "FongReplication":
        from replications.fong2017.replication import FongReplication

        return FongReplication
    raise AttributeError(name)
