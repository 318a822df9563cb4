"""``python -m replications reproduce``: an unchanged checkout reproduces the committed numbers; a one-line change
to an explainer does not, and the command names the numbers that moved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lightning_modules.reporting import diff_reports
from lightning_modules.utils import data_root
from replications import reproduce as rep

REPO = Path(__file__).resolve().parents[1]
PAPER = "petsiuk2018"  # the fastest smoke profile that runs several explainers


def test_diff_reports_compares_numbers_statuses_and_skips_timings():
    expected = {"claims": [{"id": "a", "status": "holds", "measured": {"x": 1.0}}], "tables": {"t": {"rows": [{"v": 2.0, "time_s": 1}]}},
                "wall_time_s": 10}
    same = {"claims": [{"id": "a", "status": "holds", "measured": {"x": 1.00001}}], "tables": {"t": {"rows": [{"v": 2.0, "time_s": 9}]}},
            "wall_time_s": 99}
    assert diff_reports(expected, same, rtol=1e-4, atol=0) == []
    moved = {"claims": [{"id": "a", "status": "fails", "measured": {"x": 1.1}}], "tables": {"t": {"rows": [{"v": 2.0, "time_s": 1}]}}}
    diffs = diff_reports(expected, moved, rtol=1e-4, atol=0)
    assert any("/claims[a]/status: expected 'holds', got 'fails'" in d for d in diffs)
    assert any("/claims[a]/measured/x: expected 1, got 1.1" in d for d in diffs)
    # a paper's cost measurements (times, their ratios and shares) move with the machine's load: not compared
    timed = {"results": {"benchmark": {"pipeline_share": 0.2055, "batch": 16}, "auc": 0.5}}
    loaded = {"results": {"benchmark": {"pipeline_share": 0.31, "batch": 16}, "auc": 0.5}}
    assert diff_reports(timed, loaded, rtol=1e-9, atol=0) == []
    # an unbounded interval (one unit decides nothing) equals itself, and differs from every finite number
    inf = {"intervals": [{"low": float("-inf"), "high": float("inf")}]}
    assert diff_reports(inf, inf, rtol=1e-4, atol=1e-6) == []
    assert diff_reports(inf, {"intervals": [{"low": -1.0, "high": float("inf")}]}, rtol=1e-4, atol=1e-6) == [
        "/intervals[0]/low: expected -inf, got -1"]


def test_path_tolerances_bound_the_numbers_they_match_and_nothing_else():
    expected = {"results": {"adversarial": {"accuracy": {"gradient": 0.60}, "correct": {"gradient": [1.0, 0.0]}},
                            "auc": 0.5},
                "claims": [{"id": "e", "status": "fails", "measured": {"gradient": 0.60}}]}
    moved = {"results": {"adversarial": {"accuracy": {"gradient": 0.66}, "correct": {"gradient": [0.0, 1.0]}},
                         "auc": 0.5},
             "claims": [{"id": "e", "status": "fails", "measured": {"gradient": 0.66}}]}
    rules = [(r"^/results/adversarial/correct/", 0.0, float("inf")),
             (r"^/results/adversarial/accuracy/|^/claims\[e\]/measured/", 0.0, 0.1)]
    assert diff_reports(expected, moved, rtol=1e-4, atol=0, path_tolerances=rules) == []
    # beyond its bound, a matched number is reported; an unmatched one keeps the paper's tolerance
    assert diff_reports(expected, moved, rtol=1e-4, atol=0, path_tolerances=[(rules[0][0], 0.0, float("inf")),
                        (rules[1][0], 0.0, 0.05)]) == ["/results/adversarial/accuracy/gradient: expected 0.6, got 0.66",
                                                       "/claims[e]/measured/gradient: expected 0.6, got 0.66"]
    shifted = {**moved, "results": {**moved["results"], "auc": 0.51}}
    assert diff_reports(expected, shifted, rtol=1e-4, atol=0, path_tolerances=rules) == [
        "/results/auc: expected 0.5, got 0.51"]
    # an unchecked value still needs its entries and its statuses exactly
    short = {**moved, "results": {**moved["results"], "adversarial": {**moved["results"]["adversarial"],
                                                                       "correct": {"gradient": [1.0]}}}}
    assert diff_reports(expected, short, rtol=1e-4, atol=0, path_tolerances=rules) == [
        "/results/adversarial/correct/gradient: expected 2 entries, got 1"]
    flipped = {**moved, "claims": [{"id": "e", "status": "holds", "measured": {"gradient": 0.66}}]}
    assert diff_reports(expected, flipped, rtol=1e-4, atol=0, path_tolerances=rules) == [
        "/claims[e]/status: expected 'fails', got 'holds'"]


def test_a_measured_default_bound_applies_to_the_default_profile_only():
    assert rep.tolerance("khakzar2019", "default").rtol == 6e-2
    assert rep.tolerance("khakzar2019", "smoke").rtol == rep.TOLERANCES["khakzar2019"].rtol == 2e-2
    assert rep.tolerance("petsiuk2018", "default") == rep.TOLERANCES["petsiuk2018"]


def test_fong2017_detector_bounds_rest_on_a_measurement():
    tol = rep.tolerance("fong2017")
    assert tol.paths and all(p.measured for p in tol.paths)
    # the per-map outcomes of trained detectors are the only numbers left unchecked
    unchecked = [p.pattern for p in tol.paths if p.atol == float("inf")]
    assert unchecked and all("correct" in p or "samples" in p or "n_to_decide" in p for p in unchecked)


def test_unchanged_checkout_reproduces_the_committed_smoke_snapshot(monkeypatch):
    monkeypatch.setenv("SALIENCY_DATA", str(data_root()))
    diffs, summary = rep.reproduce(PAPER, "smoke")
    assert diffs == [], diffs[:20]
    assert summary["claims"] > 0


def _copy_checkout(dest: Path) -> Path:
    for part in ("lightning_modules", "replications", "configs", "tests/snapshots", "weights"):
        shutil.copytree(REPO / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_a_one_line_change_to_an_explainer_fails_and_names_the_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SALIENCY_DATA", str(data_root()))
    copy = _copy_checkout(tmp_path / "checkout")
    cam = copy / "lightning_modules" / "explainers" / "cam.py"
    src = cam.read_text()
    line = "relu_attributions=self.relu)"
    assert line in src
    cam.write_text(src.replace(line, "relu_attributions=not self.relu)"))  # Grad-CAM without its ReLU (Eq. 2)
    diffs, _ = rep.reproduce(PAPER, "smoke", repo_root=copy)
    assert diffs, "a changed Grad-CAM must change the reproduced numbers"
    assert any("gradcam" in d for d in diffs), diffs[:20]


def test_a_reproduction_recomputes_what_a_paper_caches(monkeypatch, tmp_path):
    """khakzar2019's ROAR retrainings and ghorbani2019's attacks are cached between runs: a reproduction points the
    cache at an empty folder of its own, so its numbers are recomputed, not read back from the committed run; the
    other papers get no extra argument."""
    import json

    seen = {}

    def fake_run(paper, profile, out_dir, repo_root, extra=None, show_progress=False):
        seen[paper] = list(extra or [])
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps({"claims": []}))
        return out_dir / "results.json"

    monkeypatch.setattr(rep, "run_profile", fake_run)
    monkeypatch.setattr(rep, "load_results", lambda path: json.loads(Path(path).read_text()))
    for paper in ("khakzar2019", "ghorbani2019", "petsiuk2018"):
        rep.reproduce(paper, "smoke")
    assert seen["khakzar2019"][0] == "--model.work_dir" and seen["ghorbani2019"][0] == "--model.cache_dir"
    assert all(Path(v[1]).name == "cache" and not Path(v[1]).exists() for v in (seen["khakzar2019"], seen["ghorbani2019"]))
    assert seen["petsiuk2018"] == []


def test_cache_facts_are_not_compared():
    """How much of a run a result cache served is a fact of the machine's cache, not a result."""
    a = {"metrics": {"roar": {"m": {"runs_reused_from_cache": 0, "reused_attributions": 0, "runs": 9}}}}
    b = {"metrics": {"roar": {"m": {"runs_reused_from_cache": 9, "reused_attributions": 4, "runs": 9}}}}
    assert diff_reports(a, b, rtol=0, atol=0) == []
    assert diff_reports(a, {"metrics": {"roar": {"m": {"runs_reused_from_cache": 0, "reused_attributions": 0, "runs": 8}}}},
                        rtol=0, atol=0)
