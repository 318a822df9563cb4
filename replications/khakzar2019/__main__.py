"""``python -m replications.khakzar2019 fit|validate|test [--config configs/khakzar2019/<profile>.yaml]``."""

from lightning_modules.data.synthetic import SyntheticScenesDataModule
from replications.cli import run
from replications.khakzar2019.experiments import Khakzar2019Replication


def main(args=None):
    return run(Khakzar2019Replication, "khakzar2019", datamodule_class=SyntheticScenesDataModule, args=args)


if __name__ == "__main__":
    main()
