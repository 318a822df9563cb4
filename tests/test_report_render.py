"""The results boundary: a report's tables and figures are drawn from its stored results, settings and figure
tensors (``replications/<paper>/report.py``), so ``python -m replications.<paper> report`` re-renders a whole report
without a run, and ``check`` catches stored tables that the current report.py would not draw.

The fixture is fong2017's smoke report (results.json and examples.pt as a run writes them, without README.md and
figures): ``python -m replications reproduce fong2017 --profile smoke --keep DIR`` writes a new one."""

import json
import shutil
from pathlib import Path

import pytest

from lightning_modules.reporting import EXAMPLES_FILE, check_results, load_results
from replications.cli import rerender_report
from replications.contract import contract, findings_for, rebuild
from replications.fong2017.experiments import experiment_modules, experiment_names

FIXTURE = Path(__file__).parent / "fixtures" / "fong2017_report"


@pytest.fixture
def report_dir(tmp_path):
    out = tmp_path / "fong2017"
    shutil.copytree(FIXTURE, out)
    return out


def _check(out: Path) -> list[str]:
    return check_results(load_results(out / "results.json"), report_dir=out, rebuild=rebuild, check_freshness=False,
                         rebuild_findings=lambda r, c: findings_for(r["paper"], c, r["profile"]),
                         render=contract("fong2017").render)


def test_report_draws_readme_tables_and_figures_from_the_stored_results(report_dir, capsys):
    rerender_report("fong2017", report_dir)
    results = load_results(report_dir / "results.json")
    readme = (report_dir / "README.md").read_text()
    assert results["figures"], "the fixture's report has figures"
    for name, fig in results["figures"].items():
        png = report_dir / fig["path"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert fig["path"] in readme
    for table in results["tables"].values():
        assert table["caption"].split(".")[0] in readme
    assert EXAMPLES_FILE in results["files_sha256"]
    # the whole folder is what the code draws: check (claims, findings, tables, sections, file hashes) passes
    assert _check(report_dir) == []
    # drawing it again changes nothing, byte for byte
    before = {p.name: p.read_bytes() for p in report_dir.rglob("*") if p.is_file() and p.name != "results.json"}
    rerender_report("fong2017", report_dir)
    after = {p.name: p.read_bytes() for p in report_dir.rglob("*") if p.is_file() and p.name != "results.json"}
    assert before == after
    assert "already up to date" in capsys.readouterr().out.splitlines()[-1]


def test_check_catches_a_table_the_current_report_py_would_not_draw(report_dir):
    rerender_report("fong2017", report_dir)
    results = load_results(report_dir / "results.json")
    name = next(iter(results["tables"]))
    results["tables"][name]["caption"] += " (edited)"
    (report_dir / "results.json").write_text(json.dumps(results))
    problems = _check(report_dir)
    assert any("stored tables are not what replications/fong2017/report.py draws" in p for p in problems), problems


def test_every_experiment_file_is_run_in_its_order():
    modules = experiment_modules()
    assert sorted(m.__name__.rsplit(".", 1)[1] for m in modules) == sorted(experiment_names())
    orders = [m.ORDER for m in modules]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    for m in modules:
        assert len(Path(m.__file__).read_text().splitlines()) <= 250, m.__name__
