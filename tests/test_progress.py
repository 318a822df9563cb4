"""What a user sees while a replication runs (#44): progress stages, ``--quiet``, the closing summary, W&B noise."""

import io
import json
import logging
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules import progress
from lightning_modules.reporting import Claim, Relation
from replications.cli import ReplicationCLI, ReplicationModule, _DropInfo, quiet_wandb
from replications.summary import CLAIM_WORDS, summary_lines

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[")


@pytest.fixture(autouse=True)
def _progress_state(monkeypatch):
    """Every test starts with progress on, in its automatic mode, and leaves no stage open."""
    monkeypatch.delenv("SALIENCY_PROGRESS", raising=False)
    monkeypatch.delenv("SALIENCY_PROGRESS_EVERY", raising=False)
    monkeypatch.delenv("SALIENCY_SUMMARY", raising=False)
    progress.set_quiet(False)
    yield
    progress.close_all()
    progress.set_quiet(False)
    progress._stream = None
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.INFO)


# --------------------------------------------------------------------------------------------- the module
def _stages(out: io.StringIO) -> None:
    progress._stream = out
    with progress.stage("outer", total=3, unit="runs") as p:
        for i in range(3):
            p.note(f"run {i}")
            with progress.stage("inner loop", total=50, unit="steps", detail=True) as q:
                for _ in range(50):
                    q.advance()
            p.advance()
    with progress.stage("second"):
        pass


def test_a_non_terminal_prints_one_line_per_stage_not_a_redrawn_bar():
    out = io.StringIO()  # not a terminal
    _stages(out)
    text = out.getvalue()
    assert "\r" not in text and not ANSI.search(text)
    lines = text.splitlines()
    assert len(lines) == 2, lines  # the detail stages (inner loops) print nothing of their own
    assert lines[0].startswith("✓ outer: 3/3 runs in ")
    assert lines[1].startswith("✓ second: ")


def test_a_long_stage_in_a_log_says_where_it_is(monkeypatch):
    monkeypatch.setenv("SALIENCY_PROGRESS_EVERY", "0")  # a line at every step instead of every 5 minutes
    out = io.StringIO()
    progress._stream = out
    with progress.stage("ROAR retraining", total=4, unit="runs") as p:
        for i in range(4):
            p.note(f"gradient 0.{i}0 seed 0")
            p.advance()
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[1].startswith("… ROAR retraining: 2/4 runs, gradient 0.10 seed 0; ") and "left" in lines[1]
    assert lines[-1].startswith("✓ ROAR retraining: 4/4 runs in ")


def test_quiet_and_off_print_nothing(monkeypatch):
    out = io.StringIO()
    progress.set_quiet(True)
    _stages(out)
    assert out.getvalue() == ""
    progress.set_quiet(False)
    monkeypatch.setenv("SALIENCY_PROGRESS", "off")
    _stages(out)
    assert out.getvalue() == ""


def test_a_failed_stage_says_so_and_closes_its_children():
    out = io.StringIO()
    progress._stream = out
    with pytest.raises(KeyboardInterrupt):
        with progress.stage("outer", total=2):
            progress.stage("left open", detail=True)
            raise KeyboardInterrupt
    progress.close_all()
    assert progress.current() is None
    assert out.getvalue().splitlines()[-1].startswith("✗ outer: stopped at 0/2 after ")


def test_progress_does_not_change_the_numbers():
    """Mask learning and the fragility attack give bit-identical results with progress shown or not."""
    from lightning_modules.attacks import FragilityAttack
    from lightning_modules.tasks.mask_learning import learn_masks

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))

    def run():
        masks = learn_masks(model, images, torch.tensor([0, 1]), {"iterations": 5, "mask_scale": 4, "init_radii": 4})
        attack = FragilityAttack("topk", "gradient", epsilon=8 / 255, steps=3, k=10)(model, images)
        return masks.mask, masks.loss_history, attack.images, torch.rand(3)

    progress._stream = io.StringIO()
    with progress.stage("outer"):
        torch.manual_seed(5)
        shown = run()
    progress.set_quiet(True)
    torch.manual_seed(5)
    silent = run()
    for a, b in zip(shown, silent):
        assert torch.equal(a, b)


def test_roar_counts_its_runs(tmp_path):
    from lightning_modules.tasks.roar import RoarConfig, RoarPipeline

    cfg = RoarConfig(fractions=(0.5,), seeds=(0,), mask_only_control=True)
    pipeline = RoarPipeline(cfg, tmp_path / "roar-work", num_classes=2)
    pipeline.retrain = lambda train, test, seed, run_dir: {"test_accuracy": 0.5}  # no training here
    images = torch.rand(6, 1, 4, 4)
    data = (images, torch.tensor([0, 1] * 3))
    attributions = {"gradient": (torch.rand(6, 1, 4, 4), torch.rand(6, 1, 4, 4))}
    out = io.StringIO()
    progress._stream = out
    rows = pipeline.run(data, data, attributions)
    assert len(rows) == pipeline.run_count(1) == 3  # reference, the method, its mask-only control
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("✓ ROAR retraining (roar-work): 3/3 runs in "), lines


# --------------------------------------------------------------------------------------------- the CLI
class ToyData(pl.LightningDataModule):
    def _loader(self):
        x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
        return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)

    def train_dataloader(self):
        return self._loader()

    def test_dataloader(self):
        return self._loader()


class ToyReplication(ReplicationModule):
    paper = "toy"
    title = "Toy"

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 2)
        self.correct = self.seen = 0

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def test_step(self, batch, _):
        x, y = batch
        self.correct += int((self.net(x).argmax(1) == y).sum())
        self.seen += len(y)

    def build_report(self, report):
        acc = self.correct / self.seen
        report.add_table("accuracy", [{"model": "linear", "accuracy": acc}])
        report.add_claim(Claim("learns", "toy", "a linear model separates x0 > 0", Relation.at_least("accuracy", 0.9),
                               {"accuracy": acc}))
        report.add_claim(Claim("perfect", "toy", "it is perfect", Relation.at_least("accuracy", 1.01),
                               {"accuracy": acc}))


def _fit(tmp_path, *extra):
    cfg = tmp_path / "smoke.yaml"
    cfg.write_text("seed_everything: 3\ntrainer:\n  max_epochs: 2\n  accelerator: cpu\n  logger: false\n"
                   "  enable_progress_bar: false\n  enable_model_summary: false\n")
    return ReplicationCLI(ToyReplication, "toy", datamodule_class=ToyData, args=["fit", "--config", str(cfg), *extra])


def _summary(tmp_path) -> list[str]:
    out = tmp_path / "report"  # conftest's SALIENCY_REPORT_DIR
    return summary_lines(json.loads((out / "results.json").read_text()), out)


def test_a_non_terminal_fit_prints_one_line_per_stage_then_the_summary(tmp_path, capfd):
    _fit(tmp_path)
    out, err = capfd.readouterr()
    assert "\r" not in out and not ANSI.search(out)
    stages = [l for l in out.splitlines() if l.startswith(("✓", "✗", "…"))]
    assert [s.split(":")[0] for s in stages] == ["✓ toy training", "✓ toy test pass", "✓ toy results", "✓ toy report"]
    assert stages[0].startswith("✓ toy training: 8/8 batches in ")  # 2 epochs of 4 batches
    assert stages[1].startswith("✓ toy test pass: 4/4 batches in ")
    assert out.splitlines()[-len(_summary(tmp_path)):] == _summary(tmp_path)
    assert "GPU available: False" not in out + err and "TPU available" not in out + err


def test_quiet_prints_only_errors_and_the_summary(tmp_path, capfd):
    cli = _fit(tmp_path, "--quiet")
    out, err = capfd.readouterr()
    assert out.splitlines() == _summary(tmp_path)
    assert err == ""
    assert "quiet" not in cli.model.run_info["config"]  # not a setting of the run: not in its report


def test_the_summary_counts_are_the_reports(tmp_path, capfd):
    _fit(tmp_path, "--quiet")
    out = capfd.readouterr().out
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    claims_line = next(l for l in out.splitlines() if l.strip().startswith("claims"))
    for key, word in CLAIM_WORDS:
        assert f"{results['claim_counts'][key]} {word}" in claims_line
    assert results["claim_counts"]["holds"] == 1 and results["claim_counts"]["fails"] == 1
    assert f"report written to {tmp_path / 'report' / 'README.md'}" in out
    assert f"python -m replications.toy report {tmp_path / 'report'}" in out


@pytest.mark.parametrize("paper", ["fong2017", "khakzar2019"])
def test_the_summary_of_a_committed_report_matches_its_results(paper):
    results = json.loads((REPO / "reports" / paper / "results.json").read_text())
    lines = summary_lines(results, REPO / "reports" / paper)
    counts = {w: n for n, w in re.findall(r"(\d+) (hold|fail|inconclusive|deviations|not valid)\b", lines[1])}
    assert {word: int(counts[word]) for _, word in CLAIM_WORDS} == {
        word: results["claim_counts"][key] for key, word in CLAIM_WORDS}
    findings = dict(re.findall(r"([A-Z]+\d+) ([a-z ]+?)(?:,|$)", lines[2].split("findings", 1)[1]))
    assert findings == {f["id"]: f["status"] for f in results["findings"]}
    assert f"python -m replications.{paper} report" in lines[-1]


# --------------------------------------------------------------------------------------------- noise
def test_accelerator_lines_only_when_they_matter():
    drop = _DropInfo()

    def record(msg):
        return logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, "", 0, msg, None, None)

    assert not drop.filter(record("GPU available: False, used: False"))
    assert not drop.filter(record("TPU available: False, using: 0 TPU cores"))
    assert drop.filter(record("GPU available: True (cuda), used: False"))


def test_wandb_deprecation_warning_is_silenced(monkeypatch):
    term = pytest.importorskip("wandb.errors.term")
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    monkeypatch.setattr(term, "_printed_messages", set())
    quiet_wandb()
    import os

    assert os.environ["WANDB_SILENT"] == "true"
    assert any("anonymous setting has no effect" in m for m in term._printed_messages)
