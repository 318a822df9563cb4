from replications.cli import run
from replications.fong2017.replication import FongReplication

if __name__ == "__main__":
    run(FongReplication, "fong2017", datamodule_class=None)
