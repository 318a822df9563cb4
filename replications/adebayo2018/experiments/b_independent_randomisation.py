"""b. Independent (one layer at a time) model randomisation (Adebayo et al. 2018, Sec. 3.1): stage k re-initialises
layer k alone, every other layer keeps its trained weights.

The same test as a. (:class:`~replications.adebayo2018.experiments.a_cascading_randomisation.ModelRandomisationExperiment`,
the same :class:`RandomisationConfig`, trained models, original maps and measures) with the independent stage
generator; a layer gets the same random weights in both tests (its seed depends on its name only).
"""

from __future__ import annotations

from replications.adebayo2018.experiments.a_cascading_randomisation import (  # noqa: F401 - its config
    ModelRandomisationExperiment,
    RandomisationConfig,
    TrainedModel,
)


class IndependentRandomisation(ModelRandomisationExperiment):
    """Stage k: only ``order[k]`` re-initialised."""

    mode, name = "independent", "b_independent_randomisation"


#: where it sees a batch among the experiments (``replication.AdebayoReplication`` runs them in this order)
ORDER = 20


#: this experiment, when the config runs independent randomisation
build = IndependentRandomisation.build_for
