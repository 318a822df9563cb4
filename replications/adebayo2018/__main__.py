"""``python -m replications.adebayo2018 fit|validate|test [--config configs/adebayo2018/<profile>.yaml]``."""

from replications.adebayo2018.data import SanityChecksData
from replications.adebayo2018.replication import AdebayoReplication
from replications.cli import run


def main(args=None):
    return run(AdebayoReplication, "adebayo2018", datamodule_class=SanityChecksData, args=args)


if __name__ == "__main__":
    main()
