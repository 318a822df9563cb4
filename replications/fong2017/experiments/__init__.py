"""The experiments of the fong2017 replication, one file each: ``<letter>_<name>.py`` for the paper's experiments
(a. artifacts ... h. pointing game, in the paper's order), ``mask.py`` for the deletion masks every experiment uses,
``benchmark.py`` for their cost. Each file holds its typed config section, its per-batch update, its plain results
and its claims (:class:`lightning_modules.experiment.Experiment`); :mod:`replications.fong2017.replication` runs
them.
"""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

_LETTERED = re.compile(r"^[a-z]_[a-z_]+$")


def experiment_names() -> list[str]:
    """The experiment files of this package: the lettered ones in the paper's order, then the others."""
    names = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (not _LETTERED.match(n), n))


def __getattr__(name: str):
    # ``from replications.fong2017.experiments import FongReplication``: the module that runs them
    if name == "FongReplication":
        from replications.fong2017.replication import FongReplication

        return FongReplication
    raise AttributeError(name)
