"""Known deviations of the khakzar2019 replication, by exact claim id, each with a diagnostic measured in the same run."""

from __future__ import annotations

from lightning_modules.reporting import register

DEVIATIONS = register()
