"""Claims, relations, atomic report writing, W&B offline logging and ``python -m replications check``."""

import json
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lightning_modules import reporting  # noqa: E402
from lightning_modules.reporting import Claim, PaperValue, Relation, Report, check_results  # noqa: E402
from lightning_modules.utils import atomic_write  # noqa: E402


# ------------------------------------------------------------------------------------------ relations
@pytest.mark.parametrize(
    "relation, measured, expected",
    [
        (Relation.lt("a", "b"), {"a": 1, "b": 2}, True),
        (Relation.lt("a", "b"), {"a": 2, "b": 2}, False),
        (Relation.le("a", "b"), {"a": 2, "b": 2}, True),
        (Relation.lt("a", "b", margin=0.5), {"a": 1.6, "b": 2}, False),
        (Relation.gt("a", "b", margin=0.5), {"a": 2.6, "b": 2}, True),
        (Relation.at_least("acc", 0.95), {"acc": 0.949}, False),
        (Relation.at_most("err", 0.1), {"err": 0.1}, True),
        (Relation.between("x", 0, 1), {"x": 1.01}, False),
        (Relation.close("x", 0.1076, atol=0.01), {"x": 0.117}, True),
        (Relation.close("x", 0.1076, atol=0.01), {"x": 0.118}, False),
        (Relation.close("x", "y", rtol=0.1), {"x": 1.05, "y": 1.0}, True),
        (Relation.order(["m", "g", "r"], "<"), {"m": 1, "g": 2, "r": 3}, True),
        (Relation.order(["m", "g", "r"], "<"), {"m": 1, "g": 3, "r": 2}, False),
        (Relation.all_of(Relation.lt("a", "b"), Relation.gt("a", 0)), {"a": 1, "b": 2}, True),
        (Relation.any_of(Relation.lt("b", "a"), Relation.gt("a", 5)), {"a": 1, "b": 2}, False),
    ],
)
def test_relations_evaluate_and_roundtrip(relation, measured, expected):
    assert relation.evaluate(measured) is expected
    back = Relation.from_dict(json.loads(json.dumps(relation.to_dict())))
    assert back == relation
    assert back.evaluate(measured) is expected
    assert relation.describe()


def test_relation_rejects_unknown_names_and_nan():
    with pytest.raises(KeyError):
        Relation.lt("a", "zzz").evaluate({"a": 1})
    with pytest.raises(ValueError):
        Relation.lt("a", "b").evaluate({"a": float("nan"), "b": 1})
    with pytest.raises(ValueError):
        Relation.compare("a", "!=", "b")


def test_claim_status_and_validation():
    ok = Claim("c1", "exp", "a below b", Relation.lt("a", "b"), {"a": 1, "b": 2})
    assert ok.status == "holds"
    bad = Claim("c2", "exp", "a below b", Relation.lt("a", "b"), {"a": 3, "b": 2})
    assert bad.status == "fails"
    dev = Claim("c3", "exp", "a below b", Relation.lt("a", "b"), {"a": 3, "b": 2}, known_deviation="synthetic data lacks X")
    assert dev.status == "deviation"
    with pytest.raises(ValueError, match="written reason"):
        Claim("c4", "exp", "t", Relation.lt("a", "b"), {"a": 1, "b": 2}, known_deviation="  ")
    with pytest.raises(ValueError, match="not in measured"):
        Claim("c5", "exp", "t", Relation.lt("a", "b"), {"a": 1})


# ------------------------------------------------------------------------------------------ reports
def _fake_repo(tmp_path: Path, paper="toy", profile="default") -> Path:
    (tmp_path / "configs" / paper).mkdir(parents=True)
    (tmp_path / "configs" / paper / f"{profile}.yaml").write_text("seed_everything: 0\n")
    (tmp_path / "replications" / paper).mkdir(parents=True)
    (tmp_path / "replications" / paper / "paper.py").write_text("X = 1\n")
    return tmp_path


def _report(repo: Path, claims, monkeypatch) -> Report:
    monkeypatch.setattr(reporting, "REPO_ROOT", repo)
    r = Report("toy", "Toy paper", profile="default", config_path=repo / "configs/toy/default.yaml", seed=0)
    r.add_section("Setting", "A toy setting.")
    r.add_table("scores", [{"method": "mask", "error": 0.4}, {"method": "gradient", "error": 0.5}], caption="Table 1")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    r.add_figure("curve", fig, caption="a line")
    r.add_claims(claims)
    return r


def test_report_write_and_check_roundtrip(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    claims = [
        Claim("mask_best", "loc", "mask beats gradient", Relation.lt("mask", "gradient"), {"mask": 0.4, "gradient": 0.5},
              paper={"mask": PaperValue(43.1, "Table 1", "GoogLeNet"), "gradient": PaperValue(43.9, "Table 1", "GoogLeNet")}),
        Claim("dev", "loc", "x above y", Relation.gt("x", "y"), {"x": 0.1, "y": 0.2}, known_deviation="our scenes have no Y"),
    ]
    out = _report(repo, claims, monkeypatch).write(repo / "reports" / "toy")
    results = json.loads((out / "results.json").read_text())
    assert results["claim_counts"] == {"holds": 1, "fails": 0, "deviation": 1}
    assert (out / "figures" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    readme = (out / "README.md").read_text()
    assert "mask beats gradient" in readme and "43.1" in readme and "known deviation" in readme
    assert "![curve](figures/curve.png)" in readme
    assert check_results(results, repo_root=repo) == []


def test_check_catches_failing_claim(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    claims = [Claim("broken", "loc", "mask beats gradient", Relation.lt("mask", "gradient"), {"mask": 0.6, "gradient": 0.5})]
    out = _report(repo, claims, monkeypatch).write(repo / "reports" / "toy")
    problems = check_results(json.loads((out / "results.json").read_text()), repo_root=repo)
    assert any("broken fails" in p for p in problems)


def test_check_catches_tampered_number(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    claims = [Claim("ok", "loc", "mask beats gradient", Relation.lt("mask", "gradient"), {"mask": 0.4, "gradient": 0.5})]
    out = _report(repo, claims, monkeypatch).write(repo / "reports" / "toy")
    results = json.loads((out / "results.json").read_text())
    assert check_results(results, repo_root=repo) == []
    results["claims"][0]["measured"]["mask"] = 0.55  # edited by hand: the relation no longer holds
    problems = check_results(results, repo_root=repo)
    assert any("stored as 'holds'" in p for p in problems)
    assert any("ok fails" in p for p in problems)


def test_check_rejects_deviation_without_reason(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    claims = [Claim("dev", "loc", "x above y", Relation.gt("x", "y"), {"x": 0.1, "y": 0.2}, known_deviation="reason")]
    out = _report(repo, claims, monkeypatch).write(repo / "reports" / "toy")
    results = json.loads((out / "results.json").read_text())
    results["claims"][0]["known_deviation"] = ""
    problems = check_results(results, repo_root=repo)
    assert any("malformed" in p and "written reason" in p for p in problems)


def test_check_detects_stale_report(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    claims = [Claim("ok", "loc", "t", Relation.lt("a", "b"), {"a": 0, "b": 1})]
    out = _report(repo, claims, monkeypatch).write(repo / "reports" / "toy")
    results = json.loads((out / "results.json").read_text())
    (repo / "configs/toy/default.yaml").write_text("seed_everything: 1\n")
    assert any("older than configs/toy/default.yaml" in p for p in check_results(results, repo_root=repo))
    (repo / "configs/toy/default.yaml").write_text("seed_everything: 0\n")
    (repo / "replications/toy/paper.py").write_text("X = 2\n")
    assert any("reference numbers changed" in p for p in check_results(results, repo_root=repo))


def test_check_detects_missing_figure(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    claims = [Claim("ok", "loc", "t", Relation.lt("a", "b"), {"a": 0, "b": 1})]
    out = _report(repo, claims, monkeypatch).write(repo / "reports" / "toy")
    (out / "figures" / "curve.png").unlink()
    problems = check_results(json.loads((out / "results.json").read_text()), repo_root=repo)
    assert any("figure curve" in p for p in problems)


def test_atomic_write_survives_crash_mid_write(tmp_path):
    target = tmp_path / "results.json"
    target.write_text('{"old": true}')
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write('{"new": ')  # half a document ...
            raise RuntimeError("simulated crash")
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind


def test_report_write_keeps_old_results_when_rendering_fails(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    claims = [Claim("ok", "loc", "t", Relation.lt("a", "b"), {"a": 0, "b": 1})]
    r = _report(repo, claims, monkeypatch)
    out = r.write(repo / "reports" / "toy")
    before = (out / "results.json").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", boom)
    with pytest.raises(OSError):
        r.write(repo / "reports" / "toy")
    assert (out / "results.json").read_text() == before


def test_wandb_offline_run_contains_tables(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from lightning.pytorch.loggers import WandbLogger

    repo = _fake_repo(tmp_path / "repo")
    claims = [Claim("ok", "loc", "t", Relation.lt("a", "b"), {"a": 0, "b": 1})]
    r = _report(repo, claims, monkeypatch)
    logger = WandbLogger(project="test", save_dir=str(tmp_path), offline=True)
    r.log_wandb(logger)
    run = logger.experiment
    assert run.summary["toy/ok/a"] == 0
    assert run.summary["toy/claims_holds"] == 1
    run_dir = Path(run.dir).parent
    wandb.finish()
    tables = list(run_dir.rglob("*.table.json"))
    by_name = {p.name.split("_")[0]: json.loads(p.read_text()) for p in tables}
    assert set(by_name) >= {"scores", "claims"}, sorted(by_name)
    assert by_name["scores"]["columns"] == ["method", "error"]
    assert ["mask", "0.4"] in by_name["scores"]["data"]
    assert by_name["claims"]["data"][0][0] == "ok"


# ------------------------------------------------------------------------------------------ CLI
def test_check_command_on_committed_reports_lists_problems(tmp_path, monkeypatch, capsys):
    import replications.__main__ as cli

    repo = _fake_repo(tmp_path)
    claims = [Claim("broken", "loc", "t", Relation.lt("a", "b"), {"a": 2, "b": 1})]
    _report(repo, claims, monkeypatch).write(repo / "reports" / "toy")
    monkeypatch.setattr(cli, "REPO_ROOT", repo)
    monkeypatch.setattr(cli, "check_results", lambda res: check_results(res, repo_root=repo))
    assert cli.cmd_check(["toy"]) == 1
    out = capsys.readouterr().out
    assert "broken fails" in out
    assert cli.cmd_check(["nosuchpaper"]) == 1
