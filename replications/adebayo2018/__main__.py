"""``python -m replications.adebayo2018 fit|validate|test [--config configs/adebayo2018/<profile>.yaml]``."""

from replications.adebayo2018.data import SanityChecksData
from replications.adebayo2018.experiments import AdebayoReplication
from replications.cli import run

if __name__ == "__main__":
    run(AdebayoReplication, "adebayo2018", datamodule_class=SanityChecksData)
