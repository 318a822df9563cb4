"""``python -m replications.khakzar2019 fit|validate|test [--config configs/khakzar2019/<profile>.yaml]``.

The data is any LightningDataModule given by ``data: {class_path: ..., init_args: ...}`` (LightningCLI subclass
mode): the synthetic scenes in the embedded profiles, the ImageNet validation set in the published one.
"""

from lightning.pytorch import LightningDataModule

from replications.cli import run
from replications.khakzar2019.replication import Khakzar2019Replication


def main(args=None):
    return run(Khakzar2019Replication, "khakzar2019", datamodule_class=LightningDataModule, args=args, subclass_mode_data=True)


if __name__ == "__main__":
    main()
