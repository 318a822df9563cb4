"""The replication CLI: default config, fit -> test -> report, profiles writing to their own folders."""

import json
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules.reporting import Claim, Relation
from replications.cli import ReplicationCLI, ReplicationModule, report_dir


class ToyData(pl.LightningDataModule):
    def __init__(self, n: int = 32):
        super().__init__()
        self.n = n

    def _loader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.n, 4, generator=g)
        y = (x[:, 0] > 0).long()
        return DataLoader(TensorDataset(x, y), batch_size=8)

    def train_dataloader(self):
        return self._loader()

    def test_dataloader(self):
        return self._loader()


class ToyReplication(ReplicationModule):
    paper = "toy"
    title = "Toy"

    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 2)
        self.correct = 0
        self.seen = 0

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def test_step(self, batch, _):
        x, y = batch
        self.correct += int((self.net(x).argmax(1) == y).sum())
        self.seen += len(y)

    def build_report(self, report):
        acc = self.correct / self.seen
        report.add_table("accuracy", [{"model": "linear", "accuracy": acc}])
        report.add_claim(Claim("learns", "toy", "a linear model separates x0 > 0", Relation.at_least("accuracy", 0.9), {"accuracy": acc}))


def test_fit_runs_test_and_writes_report(tmp_path, monkeypatch):
    cfg = tmp_path / "smoke.yaml"
    cfg.write_text(
        "seed_everything: 3\nmodel:\n  lr: 0.5\ndata:\n  n: 64\ntrainer:\n  max_epochs: 5\n  accelerator: cpu\n"
        "  logger: false\n  enable_progress_bar: false\n  enable_model_summary: false\n"
    )
    out = tmp_path / "out"
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(out))
    cli = ReplicationCLI(ToyReplication, "toy", datamodule_class=ToyData, args=["fit", "--config", str(cfg)])
    assert cli.model.run_info["profile"] == "smoke"
    assert cli.model.run_info["seed"] == 3
    results = json.loads((out / "results.json").read_text())
    assert results["profile"] == "smoke" and results["seed"] == 3
    assert results["claims"][0]["status"] == "holds"
    assert results["config"]["model"]["lr"] == 0.5
    assert (out / "README.md").is_file()


def test_report_dir_by_profile(monkeypatch):
    monkeypatch.delenv("SALIENCY_REPORT_DIR", raising=False)
    assert report_dir("fong2017", "default") is None  # the committed reports/fong2017/
    assert report_dir("fong2017", "smoke").parts[-3:] == ("reports", "fong2017", "smoke")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", "/tmp/x")
    assert report_dir("fong2017", "default") == Path("/tmp/x")
