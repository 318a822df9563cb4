"""``python -m replications.petsiuk2018 fit|validate|test [--config configs/petsiuk2018/<profile>.yaml]``."""

from replications.cli import run
from replications.petsiuk2018.data import RiseData
from replications.petsiuk2018.replication import RiseReplication


def main(args=None):
    return run(RiseReplication, "petsiuk2018", datamodule_class=RiseData, args=args)


if __name__ == "__main__":
    main()
