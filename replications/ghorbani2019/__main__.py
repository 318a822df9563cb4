"""``python -m replications.ghorbani2019 fit|validate|test [--config configs/ghorbani2019/<profile>.yaml]``."""

from replications.cli import run
from replications.ghorbani2019.data import FragilityData
from replications.ghorbani2019.experiments import FragilityReplication

if __name__ == "__main__":
    run(FragilityReplication, "ghorbani2019", datamodule_class=FragilityData)
