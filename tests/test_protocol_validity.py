"""A claim on a protocol that is not valid in its run does not count as reproduced (issue 19 part 4, the contract):
verdicts recomputed from the stored per-image values, the ``not_valid`` status, its rendering, and ``check``
catching a stored verdict or status that the stored numbers do not give."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lightning_modules.reporting import (  # noqa: E402
    NOT_VALID,
    Claim,
    Relation,
    Report,
    apply_validity,
    check_results,
    count_statuses,
    protocol_spec,
    protocol_verdicts,
    render_readme,
)
from lightning_modules.reporting import report as report_mod  # noqa: E402

N = 96


def _hits(rate: float, seed: int) -> list[float]:
    return list((np.random.default_rng(seed).uniform(size=N) < rate).astype(float))


def _spec(best_rate: float) -> dict:
    """A pointing-like protocol: oracle always hits, random rarely, two methods at ``best_rate`` and 0.4."""
    return protocol_spec({"oracle": [1.0] * N, "random": _hits(0.1, 0), "good": _hits(best_rate, 1),
                          "bad": _hits(0.4, 2)}, higher_is_better=True, bound=0.98)


def test_verdicts_from_plain_specs_known_answers():
    v = protocol_verdicts({"open": _spec(0.8), "saturated": _spec(1.0)})
    assert v["open"]["valid"], v["open"]["checks"]
    assert not v["saturated"]["valid"]
    assert not v["saturated"]["checks"]["not_saturated"]["passed"]
    assert "best real 1 vs bound 0.98" in v["saturated"]["checks"]["not_saturated"]["detail"]
    assert protocol_verdicts({"open": _spec(0.8)}) == protocol_verdicts({"open": _spec(0.8)}), "seeded: deterministic"
    # a protocol-specific check decides by its stored number
    spec = protocol_spec({"oracle": [0.1] * N, "random": [0.6] * N, "good": _hits(0.2, 3), "bad": _hits(0.5, 4)},
                         higher_is_better=False,
                         checks={"first_step": {"value": 0.05, "op": ">=", "bound": 0.1, "text": "drop left after step 1"}})
    (v,) = protocol_verdicts({"deletion": spec}).values()
    assert not v["valid"] and not v["checks"]["first_step"]["passed"]
    assert "drop left after step 1: 0.05 (needs >= 0.1)" in v["checks"]["first_step"]["detail"]
    with pytest.raises(ValueError, match="op must be one of"):
        protocol_spec({"oracle": [1.0]}, True, checks={"x": {"value": 1, "op": "=~", "bound": 1}})


def _claims(results: dict) -> list[Claim]:
    s = results["samples"]
    return [
        Claim("good_beats_bad", "pointing", "good points better than bad", Relation.gt("good", "bad"),
              {"good": float(np.mean(s["good"])), "bad": float(np.mean(s["bad"]))},
              samples={"good": s["good"], "bad": s["bad"]}, protocols=("pointing",)),
        Claim("free", "other", "a claim on no protocol", Relation.at_least("x", 0.5), {"x": 1.0}),
    ]


def _rebuild(stored: dict) -> list[Claim]:
    """What ``replications.contract.claims_for`` does for a paper: verdicts recomputed from the stored inputs."""
    claims = _claims(stored["results"])
    for c in claims:
        c.profile = stored["profile"]
    return apply_validity(claims, protocol_verdicts(stored["results"].get("protocol_validity")))


def _results(best_rate: float) -> dict:
    spec = _spec(best_rate)
    return {"samples": {"good": spec["values"]["good"], "bad": spec["values"]["bad"]},
            "protocol_validity": {"pointing": spec}}


def test_a_claim_on_a_not_valid_protocol_is_not_valid_whatever_its_relation():
    res = _results(1.0)
    good, free = _rebuild({"results": res, "profile": "default"})
    assert good.relation_status == "holds"  # the ordering holds ...
    assert good.status == NOT_VALID and not good.blocking  # ... but the saturated protocol cannot test it
    assert good.validity["pointing"] == {"valid": False, "failed": {"not_saturated": "best real 1 vs bound 0.98"}}
    assert free.status == "holds" and "validity" not in free.to_dict()
    counts = count_statuses(c.to_dict() for c in (good, free))
    assert counts[NOT_VALID] == 1 and counts["holds"] == 1
    good_ok, _ = _rebuild({"results": _results(0.8), "profile": "default"})
    assert good_ok.status == "holds" and good_ok.validity["pointing"]["valid"]
    # round trip
    again = Claim.from_dict(json.loads(json.dumps(good.to_dict())))
    assert again.status == NOT_VALID and again.protocols == ("pointing",)


def test_a_claim_naming_an_unjudged_protocol_is_an_error():
    c = Claim("c", "e", "t", Relation.lt("x", "y"), {"x": 0, "y": 1}, protocols=("deletion",))
    with pytest.raises(ValueError, match="did not judge"):
        apply_validity([c], protocol_verdicts({"pointing": _spec(0.8)}))
    with pytest.raises(ValueError, match="no verdict is attached"):
        c.status  # noqa: B018
    with pytest.raises(ValueError, match="only kind 'claim'"):
        Claim("s", "e", "t", Relation.at_least("x", 0), {"x": 1}, kind="sanity", protocols=("pointing",))


def _write(tmp_path: Path, monkeypatch, res: dict) -> tuple[Path, Path]:
    repo = tmp_path
    (repo / "configs" / "toy").mkdir(parents=True)
    (repo / "configs" / "toy" / "default.yaml").write_text("seed_everything: 0\n")
    (repo / "replications" / "toy").mkdir(parents=True)
    (repo / "replications" / "toy" / "paper.py").write_text("X = 1\n")
    monkeypatch.setattr(report_mod, "REPO_ROOT", repo)
    r = Report("toy", "Toy paper", profile="default", config_path=repo / "configs/toy/default.yaml", seed=0)
    r.add_section("Setting", "A toy setting.")
    plain = json.loads(json.dumps(res))
    r.set_results(plain)
    r.add_claims(_rebuild({"results": plain, "profile": "default"}))
    return repo, r.write(repo / "reports" / "toy")


def _check(repo: Path, out: Path, edit=None) -> list[str]:
    stored = json.loads((out / "results.json").read_text())
    if edit is not None:
        edit(stored)
    return check_results(stored, report_dir=out, repo_root=repo, rebuild=_rebuild, check_freshness=False)


def test_report_renders_and_check_recomputes_the_verdict(tmp_path, monkeypatch):
    repo, out = _write(tmp_path, monkeypatch, _results(1.0))
    stored = json.loads((out / "results.json").read_text())
    readme = (out / "README.md").read_text()
    assert readme == render_readme(stored)
    assert "1 not valid here" in readme and "🚫 not valid here" in readme
    assert "not_saturated (best real 1 vs bound 0.98)" in readme and "the relation alone holds" in readme
    assert _check(repo, out) == []

    def relabel(r):  # a not-valid claim stored as holding, counts fixed
        c = next(c for c in r["claims"] if c["id"] == "good_beats_bad")
        c["status"], c["validity"]["pointing"] = "holds", {"valid": True, "failed": {}}
        r["claim_counts"] = count_statuses(r["claims"])

    assert any("validity: stored" in p for p in _check(repo, out, relabel))

    def unsaturate(r):  # the stored per-image values of the best method edited: the verdict follows the numbers
        r["results"]["protocol_validity"]["pointing"]["values"]["good"] = _hits(0.8, 1)

    assert any("good_beats_bad: validity" in p for p in _check(repo, out, unsaturate))

    def drop_protocol(r):
        c = next(c for c in r["claims"] if c["id"] == "good_beats_bad")
        del c["protocols"], c["validity"]
        c["status"] = "holds"
        r["claim_counts"] = count_statuses(r["claims"])

    assert any("protocols: stored None" in p for p in _check(repo, out, drop_protocol))

    def drop_verdict(r):  # the protocol kept, its verdict removed: a malformed claim, reported (no crash)
        del next(c for c in r["claims"] if c["id"] == "good_beats_bad")["validity"]

    assert any("good_beats_bad is malformed" in p and "validity" in p for p in _check(repo, out, drop_verdict))


def test_a_valid_protocol_is_named_beside_the_status(tmp_path, monkeypatch):
    repo, out = _write(tmp_path, monkeypatch, _results(0.8))
    readme = (out / "README.md").read_text()
    assert "✅ holds (protocol valid here: pointing)" in readme and "not valid here" not in readme.split("## Claims")[0]
    assert _check(repo, out) == []


def test_pointing_specs_judge_the_difficult_subset_only_with_enough_images():
    from lightning_modules.reporting import pointing_specs, validity_rows

    hits = {k: v["values"][k] for v in [_spec(0.8)] for k in ("oracle", "random", "good", "bad")}
    labels = [i % 4 for i in range(N)]
    few = [i < 5 for i in range(N)]
    assert set(pointing_specs("object", hits, labels, few)) == {"pointing_object_all"}
    many = [i % 3 == 0 for i in range(N)]
    specs = pointing_specs("evidence", hits, labels, many)
    assert set(specs) == {"pointing_evidence_all", "pointing_evidence_difficult"}
    assert len(specs["pointing_evidence_difficult"]["values"]["good"]) == sum(many)
    assert specs["pointing_evidence_difficult"]["classes"] == [labels[i] for i in range(N) if many[i]]
    with pytest.raises(ValueError, match="same"):
        pointing_specs("object", hits, labels[:-1], many)
    rows = validity_rows(protocol_verdicts({**specs, "saturated": _spec(1.0)}))
    assert [r["protocol"] for r in rows] == ["pointing_evidence_all (higher better)",
                                             "pointing_evidence_difficult (higher better)", "saturated (higher better)"]
    assert rows[0]["verdict"] == "valid" and rows[0]["failed checks"] == "–"
    assert rows[-1]["verdict"] == "**not valid**" and "not_saturated: best real 1 vs bound 0.98" in rows[-1]["failed checks"]


def test_the_ceiling_check_fails_a_saturated_auc_and_passes_one_that_is_not():
    """Issue 37: the saturation rule of an area under a curve on [0, 1] (every paper alike): the best method within
    AUC_CEILING_MARGIN of its ceiling on more than MAX_SHARE_AT_CEILING of the images fails the protocol."""
    from lightning_modules.reporting.validity import AUC_CEILING_MARGIN, MAX_SHARE_AT_CEILING, share_at_ceiling

    assert AUC_CEILING_MARGIN == 0.05 and MAX_SHARE_AT_CEILING == 0.5
    assert share_at_ceiling([0.99, 0.96, 0.9, 0.5], True) == 0.5
    assert share_at_ceiling([0.01, 0.2, 0.3, 0.04], False) == 0.5
    assert np.isnan(share_at_ceiling([], True))
    rng = np.random.default_rng(0)

    def verdict(best: list[float]) -> dict:
        values = {"oracle": [min(1.0, b + 0.005) for b in best], "random": list(rng.uniform(0.3, 0.45, N)),
                  "best": best, "worst": list(rng.uniform(0.5, 0.65, N))}
        check = {"at_ceiling": {"value": share_at_ceiling(best, True), "op": "<=", "bound": MAX_SHARE_AT_CEILING,
                                "text": "share of images at the ceiling"}}
        return protocol_verdicts({"insertion": protocol_spec(values, True, checks=check)})["insertion"]

    saturated = verdict(list(rng.uniform(0.97, 0.995, N)))  # issue 37's full-image insertion: RISE above 0.97
    assert not saturated["checks"]["at_ceiling"]["passed"] and not saturated["valid"]
    spread = verdict(list(rng.uniform(0.7, 0.96, N)))  # within the window: a few images near 1, most not
    assert spread["checks"]["at_ceiling"]["passed"] and spread["valid"], spread["checks"]
