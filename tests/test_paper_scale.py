"""The paper-scale cost estimate: forward passes counted from every paper.yaml, known answers for the counting."""

import math

import pytest

from lightning_modules.benchmarks import paper_scale as ps


@pytest.mark.parametrize("paper", sorted(ps.PAPERS))
def test_every_paper_config_gives_stages(paper):
    stages = ps.paper_stages(paper)
    assert stages and all(s.images > 0 and s.passes_per_image > 0 for s in stages), stages


def test_explainer_costs_are_counted_from_their_settings():
    assert ps.explainer_cost("rise", {"n_masks": 4000}, 224) == 4000
    assert ps.explainer_cost("integrated_gradients", {"steps": 50}, 224) == 100  # forward + backward per step
    assert ps.explainer_cost("occlusion", {"window": 56, "stride": 14}, 224) == 13 ** 2
    assert ps.explainer_cost("sobel", {}, 224) == 0
    with pytest.raises(ValueError, match="no cost model"):
        ps.explainer_cost("made_up", {}, 224)


def test_stage_counts_follow_the_config():
    cfg = ps._load("petsiuk2018")
    rise = next(s for s in ps.paper_stages("petsiuk2018", cfg) if s.name.startswith("heatmaps"))
    cfg["model"]["methods"]["rise"]["n_masks"] = 8000
    doubled = next(s for s in ps.paper_stages("petsiuk2018", cfg) if s.name.startswith("heatmaps"))
    assert doubled.passes_per_image - rise.passes_per_image == 4000
    assert rise.images == cfg["data"]["n_images"]

    k = ps._load("khakzar2019")
    roar = next(s for s in ps.paper_stages("khakzar2019", k) if s.name.startswith("ROAR retraining"))
    cifar = k["model"]["roar"]["cifar10"]
    trainings = 1 + len(cifar["seeds"]) * len(cifar["fractions"]) * len(cifar["methods"])
    assert roar.passes_per_image == 3.0 * cifar["epochs"] * trainings


def test_measured_model_cost_and_gpu_hours(monkeypatch):
    cost = ps.measure_model("scenes_cnn", 64, num_classes=10, batch=2, repeats=1)
    assert 0.01 < cost.gflops < 0.1 and cost.cpu_s > 0
    monkeypatch.setattr(ps, "paper_stages", lambda p: [ps.Stage(p, "x", "scenes_cnn", 64, 1000, 3.0, num_classes=10)])
    monkeypatch.setattr(ps, "measure_model", lambda *a, **k: ps.ModelCost(2.0, 0.01))
    (row,) = ps.estimate(["fong2017"], gpu_tflops=1.0)
    assert row["forward passes"] == 3000 and row["PFLOP"] == pytest.approx(0.006)
    assert row["GPU h (est.)"] == pytest.approx(6e12 / 1e12 / 3600, rel=1e-2)
    assert math.isclose(ps.totals([row])[0]["CPU h (est.)"], 3000 * 0.01 / 3600, rel_tol=1e-2)


def test_unknown_paper_is_refused():
    with pytest.raises(ValueError, match="unknown paper"):
        ps.paper_stages("nope2020")
