"""Validity checks of the protocols (issue 19, part 4): known-answer inputs for ``judge`` and the oracle beating
random under every protocol on a small setting of the shipped v2 VGG."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.models.shipped import shipped_entry
from lightning_modules.benchmarks.validity import (
    PROTOCOLS, ProtocolParams, bootstrap_weights, judge, oracle_maps, random_maps, score_protocols, statistic,
    v2_eval_set,
)

N = 200


def _hits(rate: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(N, generator=g) < rate).float()


def test_statistic_known_answers():
    v = torch.tensor([1.0, 0.0, 1.0, 1.0, math.nan])
    assert float(statistic(v)) == pytest.approx(0.75)
    classes = torch.tensor([0, 0, 1, 1, 1])
    # class 0: 0.5, class 1: 1.0 (the NaN is left out) -> 0.75; per image it would be 0.75 as well, so change it
    classes = torch.tensor([0, 0, 0, 1, 1])
    assert float(statistic(v, classes=classes)) == pytest.approx((2 / 3 + 1.0) / 2)
    w = bootstrap_weights(5, 50, seed=1)
    assert torch.equal(w.sum(1), torch.full((50,), 5.0))
    assert torch.equal(w, bootstrap_weights(5, 50, seed=1)), "seeded"


def test_a_discriminating_protocol_is_valid():
    values = {"oracle": torch.ones(N), "random": _hits(0.1, 0), "good": _hits(0.8, 1), "bad": _hits(0.3, 2)}
    r = judge(values, higher_is_better=True, bound=0.98, n_boot=500)
    assert r["valid"], r["checks"]
    assert r["best_real"] == "good" and r["worst_real"] == "bad"
    lo, hi = r["maps"]["good"]["ci95"]
    assert lo < r["maps"]["good"]["value"] < hi


def test_a_saturated_protocol_is_not_valid():
    # every real method hits everything (the v1 pointing game: RISE and Grad-CAM at 100%)
    values = {"oracle": torch.ones(N), "random": _hits(0.5, 0), "a": torch.ones(N), "b": torch.ones(N)}
    r = judge(values, higher_is_better=True, bound=0.98, n_boot=500)
    assert not r["valid"]
    assert not r["checks"]["not_saturated"]["passed"] and not r["checks"]["separated"]["passed"]


def test_oracle_losing_or_a_method_below_random_is_not_valid():
    # lower is better: the oracle scores worse than a method by a clear margin (v1 deletion: oracle 0.135 vs 0.109)
    values = {"oracle": torch.full((N,), 0.135) + 0.01 * torch.randn(N, generator=torch.Generator().manual_seed(0)),
              "random": torch.full((N,), 0.5), "a": torch.full((N,), 0.109), "b": torch.full((N,), 0.3)}
    r = judge(values, higher_is_better=False, n_boot=500)
    assert not r["valid"] and not r["checks"]["oracle_best"]["passed"]
    values = {"oracle": torch.ones(N), "random": _hits(0.5, 0), "a": _hits(0.9, 1), "b": _hits(0.1, 2)}
    r = judge(values, higher_is_better=True, n_boot=500)
    assert not r["checks"]["random_worst"]["passed"] and not r["valid"]
    # non-discriminating: two real methods with the same distribution
    values = {"oracle": torch.ones(N), "random": _hits(0.1, 0), "a": _hits(0.6, 1), "b": _hits(0.6, 2)}
    assert not judge(values, higher_is_better=True, n_boot=500)["checks"]["separated"]["passed"]


def test_judge_input_errors():
    with pytest.raises(ValueError, match="oracle"):
        judge({"a": torch.ones(3), "b": torch.ones(3)}, True)
    with pytest.raises(ValueError, match="two real methods"):
        judge({"oracle": torch.ones(3), "random": torch.ones(3), "a": torch.ones(3)}, True)


@pytest.mark.skipif(shipped_entry("scenes_v2_vgg") is None,
                    reason="v2 VGG not shipped yet: python -m replications train-embedded scenes_v2_vgg")
def test_oracle_beats_random_under_every_protocol_on_a_small_setting():
    from lightning_modules.models import load_model
    from lightning_modules.explainers import create_explainer

    model, _ = load_model("scenes_v2_vgg", weights="embedded")
    es = v2_eval_set(model.scenes_config, 32)
    maps = {"oracle": oracle_maps(es.evidence_mask), "random": random_maps(es.images),
            "gradient": create_explainer("gradient")(model, es.images, es.labels),
            "gradcam": create_explainer("gradcam")(model, es.images, es.labels)}
    params = ProtocolParams(pixels_per_step=256, suppression_alphas=tuple(round(0.05 * i, 2) for i in range(20)))
    out = score_protocols(model, es, maps, params, n_boot=200)
    for proto in PROTOCOLS:
        if proto not in out:  # too few difficult images in 32
            continue
        e = out[proto]
        o, r = e["maps"]["oracle"]["value"], e["maps"]["random"]["value"]
        assert (o > r) if e["higher_is_better"] else (o < r), (proto, o, r)
    assert out["deletion"]["maps"]["oracle"]["value"] < 0.2
