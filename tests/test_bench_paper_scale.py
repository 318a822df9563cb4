"""paper_scale's measured-cost column (issue 43): the floor arithmetic scaled part by part by the benchmarks' ratios."""

import pytest

from lightning_modules.benchmarks import paper_scale as ps

EXPLAINERS = """# Explainer benchmark

| method | settings | floor (passes) | ms/img B=1 | floor ms/img B=1 | ratio median [min] B=1 | ms/img B=32 | floor ms/img B=32 | ratio median [min] B=32 | speed-up vs loop (B=32) | ratio <= target at B=32 |
|---|---|---|---|---|---|---|---|---|---|---|
| `gradient` | defaults | 1 fwd+bwd | 2.4 | 1.9 | 1.28 [1.25] | 0.98 | 0.91 | 1.08 [1.06] | 2.5x | yes (<= 1.2) |
| `rise` | n_masks=1000 | 1000 fwd | 668 | 643 | 1.04 [1.04] | 661 | 654 | 1.01 [1.00] | 1.0x | yes (<= 1.1) |
| `sobel` | defaults | none | 0.3 | – | – | 0.05 | – | – | 5.6x | n/a (no model pass) |
"""
OTHER = EXPLAINERS.replace("1.08 [1.06]", "1.12 [1.10]").replace("1.01 [1.00]", "0.99 [0.98]")
METRICS = """| size | forwards (32 x steps) | floor s | deletion s | insertion s | deletion / floor | insertion / floor |
|---|---|---|---|---|---|---|
| 64 | 768 (32 x 24) | 6.0 | 6.1 | 6.1 | 1.019 | 1.031 |
| 224 | 768 (32 x 24) | 76 | 83 | 79 | 1.095 | 1.033 |
"""


def test_measured_ratios_take_the_larger_model_and_skip_missing_reports(tmp_path):
    (tmp_path / "a.md").write_text(EXPLAINERS)
    (tmp_path / "b.md").write_text(OTHER)
    (tmp_path / "m.md").write_text(METRICS)
    r = ps.measured_ratios([tmp_path / "a.md", tmp_path / "b.md", tmp_path / "none.md"], [tmp_path / "m.md"])
    assert r == {"gradient": 1.12, "rise": 1.01, "deletion_insertion": 1.095}
    # a group of one model's reports: the later re-run overrides, even downwards
    (tmp_path / "rerun.md").write_text(EXPLAINERS.replace("| `rise`", "| `x`").replace("1.08 [1.06]", "1.02 [1.01]"))
    r = ps.measured_ratios([(tmp_path / "b.md", tmp_path / "rerun.md")], [])
    assert r["gradient"] == 1.02 and r["rise"] == 0.99


def test_measured_passes_scale_each_part_and_count_the_rest_at_the_floor():
    s = ps.Stage("p", "x", "scenes_cnn", 64, 10, 10.0, parts=(("gradient", 2.0), ("rise", 4.0), ("deeplift", 2.0)))
    per_image, unmeasured = s.measured_passes({"gradient": 1.5, "rise": 1.25})
    assert per_image == pytest.approx(2 * 1.5 + 4 * 1.25 + 2 + 2)  # deeplift unmeasured, 2 passes of no part
    assert unmeasured == pytest.approx(4.0)


def test_estimate_gives_both_columns_and_their_ratio(monkeypatch):
    stage = ps.Stage("fong2017", "x", "scenes_cnn", 64, 1000, 4.0, num_classes=10, parts=(("gradient", 2.0),))
    monkeypatch.setattr(ps, "paper_stages", lambda p: [stage])
    monkeypatch.setattr(ps, "measure_model", lambda *a, **k: ps.ModelCost(2.0, 0.01))
    (row,) = ps.estimate(["fong2017"], gpu_tflops=1.0, ratios={"gradient": 1.5})
    assert row["measured / floor"] == pytest.approx((2 * 1.5 + 2) / 4)
    assert row["GPU h (measured costs)"] == pytest.approx(row["GPU h (est.)"] * 1.25, rel=1e-2)
    (tot,) = ps.totals([row])
    assert tot["measured / floor"] == pytest.approx(1.25, rel=1e-2)


def test_every_paper_stage_parts_fit_inside_its_passes():
    for paper in ps.PAPERS:
        for s in ps.paper_stages(paper):
            assert sum(p for _, p in s.parts) <= s.passes_per_image + 1e-9, (paper, s.name)
