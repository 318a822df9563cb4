"""Known deviations of the RISE replication, by exact claim id, each with a diagnostic measured in the same run
(see ``lightning_modules.reporting.claims``)."""

from lightning_modules.reporting import register

DEVIATIONS = register()
