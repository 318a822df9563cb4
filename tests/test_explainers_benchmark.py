"""The explainer benchmark: floors count the passes each method must make; the report is written."""

from __future__ import annotations

import math

import pytest

from lightning_modules.benchmarks.explainers import METHODS, floor_passes, run
from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.excitation import default_excitation_layer
from lightning_modules.models import load_model, resolve_layer


@pytest.fixture(scope="module")
def model():
    return load_model("scenes_cnn")[0]


def _images(passes):
    return sum(p[1] for p in passes)


def test_floor_counts_the_required_passes(model):
    b, h = 3, 32
    sg = create_explainer("smoothgrad", n_samples=5, samples_batch_size=6)  # 2 samples per image per chunk
    desc, passes = floor_passes("smoothgrad", sg, model, b, h, h)
    assert [p[1] for p in passes] == [6, 6, 3] and {p[0] for p in passes} == {"fwd_bwd"}
    ig = create_explainer("integrated_gradients", steps=7, samples_batch_size=6)
    assert _images(floor_passes("integrated_gradients", ig, model, b, h, h)[1]) == b * 7
    occ = create_explainer("occlusion", window=8, stride=4)
    desc, passes = floor_passes("occlusion", occ, model, b, h, h)
    assert _images(passes) == b * (7 * 7 + 1) and desc == "49+1 fwd"
    lime = create_explainer("lime", n_samples=100, samples_batch_size=64)
    assert _images(floor_passes("lime", lime, model, b, h, h)[1]) == b * 100
    sc = create_explainer("score_cam")
    desc, passes = floor_passes("score_cam", sc, model, b, h, h)
    assert _images(passes) == b * (1 + 64) and desc == "1+64 fwd"  # scenes_cnn's last block has 64 channels
    cebp = create_explainer("contrastive_excitation_backprop")
    (kind, size, layer, above), = floor_passes("contrastive_excitation_backprop", cebp, model, b, h, h)[1]
    assert (kind, size, layer) == ("fwd_2bwd_layer_pos", b, resolve_layer(model, default_excitation_layer(model)))
    # the positive-weight pass of the rule: the modules above features.9 (conv 10, global pool, classifier)
    assert [type(m).__name__ for m, _ in above] == ["Conv2d", "AdaptiveAvgPool2d", "Linear"]
    assert [tuple(x.shape) for _, x in above] == [(b, 48, 8, 8), (b, 64, 8, 8), (b, 64)]
    rise = create_explainer("rise", n_masks=100, max_batch_elements=64)
    desc, passes = floor_passes("rise", rise, model, b, h, h)
    assert desc == "100 fwd" and _images(passes) == b * 100 and max(p[1] for p in passes) <= 64
    mp = create_explainer("meaningful_perturbation", iterations=5)
    desc, passes = floor_passes("meaningful_perturbation", mp, model, b, h, h)
    assert desc == "5 fwd+bwd + 15 fwd"  # clean, null, 12 circle radii, final
    assert [p for p in passes if p[0] == "fwd_bwd"] == [("fwd_bwd", b)] * 5 and _images(passes) == b * (5 + 15)
    assert floor_passes("gradcam", create_explainer("gradcam"), model, b, h, h)[1] == [
        ("fwd_bwd_layer", b, resolve_layer(model, None))]


def test_every_benchmarked_method_has_a_floor(model):
    for name, kwargs in METHODS.items():
        floor_passes(name, create_explainer(name, **kwargs), model, 2, 32, 32)
    with pytest.raises(KeyError, match="no floor"):
        floor_passes("prunegrad", None, model, 2, 32, 32)


def test_run_writes_the_table(tmp_path):
    methods = {"gradient": {}, "gradcam": {}, "occlusion": dict(window=8, stride=8), "sobel": {}}
    out = tmp_path / "bench.md"
    rows = run(out, batch_sizes=(1, 2), image_size=16, methods=methods)
    text = out.read_text()
    assert "| `gradient` |" in text and "| `occlusion` |" in text and "ratio B=2" in text
    by_name = {r["method"]: r for r in rows}
    for name in ("gradient", "gradcam", "occlusion"):
        for b in (1, 2):
            p = by_name[name]["per_batch"][b]
            assert p["ms"] > 0 and p["floor_ms"] > 0 and math.isclose(p["ratio"], p["ms"] / p["floor_ms"])
    assert math.isnan(by_name["sobel"]["per_batch"][2]["ratio"])
    assert "n/a (no model pass)" in text


def test_rounds_report_the_median_and_the_minimum_ratio(tmp_path):
    out = tmp_path / "bench.md"
    rows = run(out, batch_sizes=(2,), image_size=16, methods={"gradient": {}}, rounds=3)
    p = rows[0]["per_batch"][2]
    assert len(p["ratios"]) == 3 and p["ratio_min"] == min(p["ratios"]) and p["ratio_min"] <= p["ratio"] <= max(p["ratios"])
    assert "ratio median [min] B=2" in out.read_text()


@pytest.mark.slow
def test_metrics_benchmark_runs_at_a_small_size_with_the_cpu_clock(tmp_path):
    from lightning_modules.benchmarks.metrics import run as run_metrics

    out = tmp_path / "metrics.md"
    (r,) = run_metrics(out, sizes=(32,), repeats=(1,), model_name="scenes_cnn", clock="process")
    assert r["forwards"] == 32 * 24 and r["quantus_forwards_per_image"] == 24
    assert r["deletion_over_floor"] > 0 and r["insertion_over_floor"] > 0
    text = out.read_text()
    assert "`scenes_cnn` (random weights)" in text and "CPU time of the process" in text
