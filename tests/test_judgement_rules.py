"""The rules of judgement (``../shared/HEADLINE_CLAIMS.md``) in the shared reporting layer: each test fails if its
rule is dropped."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_modules.reporting import Claim, Deviation, Diagnostic, Relation, apply_deviations, judge
from lightning_modules.reporting.claims import MinimumEffect
from lightning_modules.reporting.findings import count_findings, judge_findings
from lightning_modules.reporting.relations import CONFIDENCE, FAILS, HOLDS, INCONCLUSIVE, _Bootstrap
from lightning_modules.reporting.rules import (
    MIN_EFFECT_FRACTION, curve_summary, fixed_min_effect, span_min_effect, unsaturated_points,
)

NOMINAL = (1.0 - CONFIDENCE) / 2.0  # one-sided: a false "holds" in the paper's direction


def _false_holds(n: int, draw, trials: int, seed: int) -> tuple[float, float]:
    """(rate of judge, rate of the percentile bootstrap alone) of "a < b" holding on null paired differences."""
    rng = np.random.default_rng(seed)
    boot = _Bootstrap()
    ours = percentile = 0
    for _ in range(trials):
        d = draw(rng, n)
        v = judge(Relation.lt("a", "b"), {"a": float(d.mean()), "b": 0.0}, {"a": list(d), "b": [0.0] * n})
        ours += v.status == HOLDS
        percentile += np.quantile(d[boot.indices(n)].mean(1), 1.0 - NOMINAL) < 0
    return ours / trials, percentile / trials


@pytest.mark.parametrize("n", [3, 5, 16, 64])
@pytest.mark.parametrize("null", ["normal", "laplace"])
def test_false_holds_rate_on_null_data_is_at_most_nominal(n, null):
    """Rule 2. Null data: two exchangeable methods, so their paired differences are symmetric around 0 (normal and
    heavy-tailed Laplace). The rate of a false "holds" must stay within Monte Carlo error of the nominal 2.5% at
    every n; the percentile bootstrap alone (the former test) exceeds it at small n (13% at n = 3)."""
    draw = {"normal": lambda rng, n: rng.standard_normal(n), "laplace": lambda rng, n: rng.laplace(size=n)}[null]
    trials = 1500
    ours, percentile = _false_holds(n, draw, trials, seed=n)
    se = math.sqrt(NOMINAL * (1 - NOMINAL) / trials)
    assert ours <= NOMINAL + 3 * se, f"false holds {ours:.3f} at n={n} ({null}) above nominal {NOMINAL}"
    if n == 3:
        assert percentile > 0.08, "the percentile bootstrap alone should be anti-conservative at n = 3"


def _false_holds_replicated(k: int, n: int, seed_sd: float, trials: int, seed: int) -> tuple[float, float]:
    """(rate of judge, rate of judging the seed-averaged unit means as plain samples) of "a < b" holding on null
    replicates x units differences: a random effect per replicate (a network trained per seed), one per unit and
    residual noise, all symmetric around 0."""
    rng = np.random.default_rng(seed)
    ours = averaged = 0
    for _ in range(trials):
        d = seed_sd * rng.standard_normal((k, 1)) + rng.standard_normal((1, n)) + rng.laplace(size=(k, n))
        measured = {"a": float(d.mean()), "b": 0.0}
        ours += judge(Relation.lt("a", "b"), measured, {"a": d.tolist(), "b": np.zeros((k, n)).tolist()}).status == HOLDS
        means = d.mean(0)
        averaged += judge(Relation.lt("a", "b"), measured, {"a": list(means), "b": [0.0] * n}).status == HOLDS
    return ours / trials, averaged / trials


@pytest.mark.parametrize("k", [3, 7])
def test_false_holds_rate_over_few_replicates_is_at_most_nominal(k):
    """Rule 2 over trained replicates (fong2017's detectors: one per training seed). When the training's own
    randomness is large (seed effect sd 1 against a unit effect of sd 1 over 64 units), judging the seed-averaged
    maps as if the seeds were fixed gives false "holds" far above nominal; the replicates x units judgement stays
    within Monte Carlo error of it."""
    trials = 600
    ours, averaged = _false_holds_replicated(k, 64, seed_sd=1.0, trials=trials, seed=k)
    se = math.sqrt(NOMINAL * (1 - NOMINAL) / trials)
    assert ours <= NOMINAL + 3 * se, f"false holds {ours:.3f} over {k} replicates above nominal {NOMINAL}"
    assert averaged > NOMINAL + 3 * se, "ignoring the replicates should be anti-conservative here"


def test_replicated_samples_still_decide_a_clear_effect_and_need_two_replicates():
    rng = np.random.default_rng(0)
    a = 0.3 + 0.02 * rng.standard_normal((5, 40))
    b = 0.6 + 0.02 * rng.standard_normal((5, 40))
    v = judge(Relation.lt("a", "b"), {"a": float(a.mean()), "b": float(b.mean())}, {"a": a.tolist(), "b": b.tolist()})
    assert v.status == HOLDS and v.intervals[0].n == 40
    one = judge(Relation.lt("a", "b"), {"a": float(a[:1].mean()), "b": float(b[:1].mean())},
                {"a": a[:1].tolist(), "b": b[:1].tolist()})
    assert one.status == INCONCLUSIVE  # one trained replicate: its training's randomness is not measured
    with pytest.raises(ValueError, match="differ in length or shape"):
        judge(Relation.lt("a", "b"), {"a": 0.3, "b": 0.6}, {"a": a.tolist(), "b": b[:, :39].tolist()})
    with pytest.raises(ValueError, match="same number of units"):
        Claim("c", "e", "t", Relation.lt("a", "b"), {"a": 0.5, "b": 0.6}, samples={"a": [[0.5, 0.5], [0.5]]})


def test_small_samples_still_decide_a_clear_effect():
    """Calibration does not make small n useless: three seeds with a large consistent effect hold."""
    v = judge(Relation.lt("a", "b"), {"a": 0.1, "b": 0.5}, {"a": [0.1, 0.11, 0.09], "b": [0.5, 0.52, 0.48]})
    assert v.status == HOLDS
    single = judge(Relation.lt("a", "b"), {"a": 0.1, "b": 0.5}, {"a": [0.1], "b": [0.5]})
    assert single.status == INCONCLUSIVE  # one unit decides nothing


def test_minimum_effect_makes_a_tiny_decided_effect_negligible():
    """Rule 3: an interval that excludes zero with an effect below the minimum is inconclusive (negligible), for a
    hold and a failure alike; a comparison with a constant bound is not affected."""
    rng = np.random.default_rng(0)
    a = 0.5 + 0.001 * rng.standard_normal(200)
    b = a + 0.02  # a < b by 0.02, decided
    measured = {"a": float(a.mean()), "b": float(b.mean())}
    samples = {"a": list(a), "b": list(b)}
    assert judge(Relation.lt("a", "b"), measured, samples).status == HOLDS
    v = judge(Relation.lt("a", "b"), measured, samples, min_effect=0.05)
    assert v.status == INCONCLUSIVE and v.negligible and v.intervals[0].negligible
    assert judge(Relation.gt("a", "b"), measured, samples, min_effect=0.05).status == INCONCLUSIVE
    assert judge(Relation.gt("a", "b"), measured, samples, min_effect=0.01).status == FAILS
    assert judge(Relation.at_least("a", 0.4), measured, samples, min_effect=0.5).status == HOLDS
    assert judge(Relation.lt("a", "b"), {"a": 1.0, "b": 1.01}, min_effect=0.05).status == INCONCLUSIVE
    with pytest.raises(ValueError, match="min_effect"):
        judge(Relation.lt("a", "b"), measured, samples, min_effect=-1)
    claim = Claim("c", "e", "t", Relation.lt("a", "b"), measured, samples=samples,
                  min_effect=MinimumEffect(0.05, "stated"))
    assert claim.status == INCONCLUSIVE and claim.to_dict()["negligible"] is True
    assert Claim.from_dict(claim.to_dict()).to_dict() == claim.to_dict()


def test_min_effect_rules():
    m = span_min_effect(oracle=0.1, random=0.6, what="deletion AUC")
    assert math.isclose(m.value, MIN_EFFECT_FRACTION * 0.5) and "0.1 x |0.1 - 0.6|" in m.rule
    assert fixed_min_effect("center_shift_px").value == 1.0
    with pytest.raises(KeyError, match="no fixed minimum effect"):
        fixed_min_effect("nope")
    with pytest.raises(ValueError, match="finite"):
        span_min_effect(float("nan"), 0.1, "x")


def _curves():
    """A lower-is-better curve (ROAR-like accuracy) over 3 points, 3 seeds: method a is worse than b at the two
    informative points, and better only at the last, where both sit within noise of chance (0.042)."""
    a = np.array([[0.40, 0.25, 0.045], [0.41, 0.26, 0.046], [0.39, 0.24, 0.044]])
    b = np.array([[0.20, 0.12, 0.055], [0.21, 0.13, 0.056], [0.19, 0.11, 0.054]])
    return a, b


def test_a_single_saturated_point_cannot_decide_a_curve():
    """Rule 1: read at its last (saturated) point the curve says a < b; judged over its unsaturated points it
    says the opposite, and a curve saturated everywhere cannot decide."""
    a, b = _curves()
    last = judge(Relation.lt("a", "b"), {"a": a[:, 2].mean(), "b": b[:, 2].mean()},
                 {"a": list(a[:, 2]), "b": list(b[:, 2])})
    assert last.status == HOLDS
    points = unsaturated_points({"a": a, "b": b}, floor=0.042, noise=0.02)
    assert points == [0, 1]
    sa, sb = curve_summary(a, points), curve_summary(b, points)
    whole = judge(Relation.lt("a", "b"), {"a": float(np.mean(sa)), "b": float(np.mean(sb))}, {"a": sa, "b": sb})
    assert whole.status == FAILS
    with pytest.raises(ValueError, match="saturated"):
        curve_summary(a, unsaturated_points({"a": a[:, 2:], "b": b[:, 2:]}, floor=0.042, noise=0.02))


def test_every_point_uses_a_bonferroni_correction():
    """Rule 1, point by point: each comparison of ``every`` is judged at (1 - 0.95) / m; an effect decided at 95%
    is not decided at 99.2% (m = 6)."""
    rng = np.random.default_rng(3)
    d = 0.25 + rng.standard_normal(64)  # one-sided z about 2.2: holds at 95%, not at 1 - 0.05/6
    d = d - d.mean() + 0.6 / math.sqrt(64) * 4.0
    measured = {"a": float(d.mean()), "b": 0.0}
    samples = {"a": list(d), "b": [0.0] * 64}
    one = judge(Relation.gt("a", "b"), measured, samples)
    assert one.status == HOLDS
    six = judge(Relation.every(*[Relation.gt("a", "b")] * 6), measured, samples)
    assert six.status == INCONCLUSIVE and six.intervals[0].confidence == pytest.approx(1 - 0.05 / 6)
    assert Relation.from_dict(Relation.every(Relation.gt("a", "b")).to_dict()).kind == "every"


def _dev_claims():
    held = Claim("m.gbp", "e", "gbp beats random", Relation.lt("gbp", "random"), {"gbp": 0.1, "random": 0.5})
    failed = Claim("m.grad", "e", "grad beats random", Relation.lt("grad", "random"), {"grad": 0.6, "random": 0.5})
    return [held, failed]


def test_a_deviation_diagnostic_must_separate_the_failing_claim_from_the_held_ones():
    """Rule 5: a diagnostic that holds for the held claim too explains nothing: the claim fails (blocking); one
    that holds only for the failing claim makes it a known deviation."""
    results = {"removed": {"grad": 0.3, "gbp": 0.35}, "floor": 0.2}
    same = Diagnostic("evidence removed > floor", Relation.gt("removed", "floor"),
                      lambda r: {"removed": r["removed"]["grad"], "floor": r["floor"]},
                      contrast=lambda r: {"m.gbp": {"removed": r["removed"]["gbp"], "floor": r["floor"]}})
    claims = apply_deviations(_dev_claims(), {"m.grad": Deviation("m.grad", "because", same)}, results, "default")
    grad = {c.id: c for c in claims}["m.grad"]
    assert grad.status == FAILS and grad.blocking and "does not separate" in grad.problem
    assert grad.deviation["diagnostic"]["separation"][0]["claim"] == "m.gbp"
    separating = Diagnostic("evidence removed < floor + 0.15", Relation.lt("removed", "bound"),
                            lambda r: {"removed": r["removed"]["grad"], "bound": 0.32},
                            contrast=lambda r: {"m.gbp": {"removed": r["removed"]["gbp"], "bound": 0.32}})
    claims = apply_deviations(_dev_claims(), {"m.grad": Deviation("m.grad", "because", separating)}, results, "default")
    assert {c.id: c for c in claims}["m.grad"].status == "deviation"
    bad = Diagnostic("x", Relation.lt("removed", "bound"), lambda r: {"removed": 0.0, "bound": 1.0},
                     contrast=lambda r: {"m.nope": {"removed": 0.0, "bound": 1.0}})
    with pytest.raises(ValueError, match="not a claim of this run"):
        apply_deviations(_dev_claims(), {"m.grad": Deviation("m.grad", "because", bad)}, results, "default")


def _claim(cid, status, findings=("X1",)):
    return {"id": cid, "kind": "claim", "status": status, "findings": list(findings)}


def test_findings_are_judged_from_their_claims():
    findings = {"X1": "one", "X2": "two", "X3": "three"}
    rows = judge_findings(findings, {"X3": "needs ImageNet"}, [_claim("a", HOLDS), _claim("b", HOLDS),
                                                                _claim("c", "not_valid", ("X2",))])
    by = {r["id"]: r for r in rows}
    assert by["X1"]["status"] == "reproduced" and by["X2"]["status"] == "not valid here"
    assert by["X3"]["status"] == "not tested here" and by["X3"]["reason"] == "needs ImageNet"
    assert count_findings(rows)["tested_valid"] == 1
    status = lambda *s: judge_findings({"X1": "one"}, {}, [_claim(str(i), x) for i, x in enumerate(s)])[0]["status"]  # noqa: E731
    assert status(HOLDS, FAILS) == "partly reproduced"
    assert status(FAILS, "deviation", INCONCLUSIVE) == "not reproduced"
    assert status(HOLDS, INCONCLUSIVE) == "inconclusive"
    assert status(HOLDS, "not_valid") == "reproduced"
    with pytest.raises(ValueError, match="no claim and no reason"):
        judge_findings({"X1": "one", "X2": "two"}, {}, [_claim("a", HOLDS)])
    assert judge_findings({"X1": "one", "X2": "two"}, {}, [_claim("a", HOLDS)], strict=False)[1]["status"] == \
        "not tested here"
    with pytest.raises(ValueError, match="does not list"):
        judge_findings({"X1": "one"}, {}, [_claim("a", HOLDS, ("X9",))])
    with pytest.raises(ValueError, match="also listed"):
        judge_findings({"X1": "one"}, {"X1": "why"}, [_claim("a", HOLDS)])
    with pytest.raises(ValueError, match="sanity check"):
        Claim("s", "e", "t", Relation.at_least("a", 0), {"a": 1}, kind="sanity", findings=("X1",))


def test_an_oracle_is_judged_over_its_tie_orders():
    """Rule 6: a protocol is not valid only when no reasonable oracle scores best. An oracle whose score depends on
    its tie order (one order loses to a method, the other wins) makes the protocol valid; a lone losing oracle
    does not. Tie orders are stated rules (``oracle_map``), not memory layout."""
    import torch

    from lightning_modules.explainers.baselines import oracle_map
    from lightning_modules.reporting.validity import judge as validity

    g = torch.Generator().manual_seed(0)
    n = 40
    base = {"gbp": 0.5 + 0.05 * torch.randn(n, generator=g), "grad": 0.8 + 0.05 * torch.randn(n, generator=g),
            "random": 1.0 + 0.05 * torch.randn(n, generator=g)}  # lower is better (MoRF-like)
    raster = 1.4 + 0.05 * torch.randn(n, generator=g)
    centre = 0.3 + 0.05 * torch.randn(n, generator=g)
    lone = validity({**base, "oracle": raster}, higher_is_better=False)
    assert not lone["checks"]["oracle_best"]["passed"] and not lone["valid"]
    both = validity({**base, "oracle": raster, "oracle__centre_first": centre}, higher_is_better=False)
    assert both["checks"]["oracle_best"]["passed"] and both["best_real"] == "gbp"
    assert "oracle__centre_first" not in (both["best_real"], both["worst_real"])
    ev = torch.zeros(1, 1, 9, 9)
    ev[..., 2:7, 2:7] = 1
    for order in ("centre_first", "border_first"):
        m = oracle_map(ev, order)
        assert m[ev > 0].min() > m[ev == 0].max()  # the evidence always ranks above the background
    c, b = oracle_map(ev, "centre_first")[0, 0], oracle_map(ev, "border_first")[0, 0]
    assert c[4, 4] > c[2, 2] and b[4, 4] < b[2, 2]
    with pytest.raises(ValueError, match="tie_order"):
        oracle_map(ev, "raster")


def test_a_claim_on_a_protocol_that_is_not_valid_still_shows_its_relation():
    """Rule 7: the report row of a not-valid claim names the relation's own verdict beside 'not valid'."""
    from lightning_modules.reporting.report import _claim_row

    c = Claim("p", "e", "a beats b", Relation.gt("a", "b"), {"a": 0.9, "b": 0.5}, protocols=("pointing",),
              findings=("X1",))
    c.validity = {"pointing": {"valid": False, "failed": {"not_saturated": "best real 1 vs bound 0.98"}}}
    row = _claim_row(c.to_dict())
    assert c.status == "not_valid" and "the relation alone holds" in row["status"] and "[X1]" in row["status"]
