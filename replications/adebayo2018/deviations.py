"""Registered deviations of the sanity-checks replication (exact claim ids; see ``lightning_modules.reporting``).

Each names the mechanism we believe keeps the embedded setting from showing the paper's effect and a diagnostic
measured in the same run that tests it. Filled in from the default run's measurements; none is attached to a claim
that holds.
"""

from lightning_modules.reporting import register

DEVIATIONS = register()
