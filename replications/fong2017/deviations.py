"""Known deviations of the fong2017 replication, by exact claim id, each with a diagnostic measured in the same
run (see ``lightning_modules.reporting.claims``). Every number of a reason comes from the run."""

from __future__ import annotations

from lightning_modules.reporting import register


# No deviation is registered: on benchmark v2 the protocols of c., d. and h. are judged in the run (a claim on a
# protocol that is not valid there is reported as not valid), and a claim that does not reproduce on a valid
# protocol is reported as a result, with its numbers.
DEVIATIONS = register()
