"""Claims, relations with paired bootstrap, registered deviations, atomic report folders, W&B offline logging, and
``check``: every tampering with a committed report must make it fail."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lightning_modules.reporting import (  # noqa: E402
    Claim,
    Deviation,
    Diagnostic,
    PaperValue,
    Relation,
    Report,
    apply_deviations,
    check_results,
    judge,
    register,
)
from lightning_modules.reporting import report as report_mod  # noqa: E402
from lightning_modules.utils import atomic_write  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


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
        (Relation.best("a", ["a", "b", "c"]), {"a": 1, "b": 2, "c": 3}, True),
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
    with pytest.raises(ValueError, match="'kind' and 'args'"):
        Relation.from_dict({"kind": "compare"})


def _samples(mean, n=64, sd=0.05, seed=0):
    return list(np.random.default_rng(seed).normal(mean, sd, n))


def test_paired_bootstrap_known_answers():
    a, b = _samples(0.1), _samples(0.3, seed=1)
    m = {"a": float(np.mean(a)), "b": float(np.mean(b))}
    assert judge(Relation.lt("a", "b"), m, {"a": a, "b": b}).status == "holds"
    assert judge(Relation.gt("a", "b"), m, {"a": a, "b": b}).status == "fails"
    # the same means with far more noise than difference: the run cannot tell
    c, d = _samples(0.1, n=16, sd=1.0, seed=2), _samples(0.12, n=16, sd=1.0, seed=3)
    v = judge(Relation.lt("c", "d"), {"c": float(np.mean(c)), "d": float(np.mean(d))}, {"c": c, "d": d})
    assert v.status == "inconclusive"
    (iv,) = v.intervals
    assert iv.low < 0 < iv.high and iv.n == 16 and iv.n_to_decide > 16
    # deterministic: the same interval every time
    again = judge(Relation.lt("c", "d"), {"c": float(np.mean(c)), "d": float(np.mean(d))}, {"c": c, "d": d})
    assert again.intervals[0].to_dict() == iv.to_dict()


def test_paired_bootstrap_uses_the_pairing():
    """A small difference that is consistent image by image holds, although the two marginal distributions
    overlap almost entirely; unpaired (shuffled) it would not."""
    base = _samples(0.5, n=64, sd=0.3)
    a = [x - 0.01 for x in base]
    m = {"a": float(np.mean(a)), "b": float(np.mean(base))}
    assert judge(Relation.lt("a", "b"), m, {"a": a, "b": base}).status == "holds"
    shuffled = list(np.random.default_rng(5).permutation(a))
    assert judge(Relation.lt("a", "b"), m, {"a": shuffled, "b": base}).status == "inconclusive"


def test_bootstrap_against_a_bound_and_margin():
    acc = [1.0] * 60 + [0.0] * 4
    m = {"acc": float(np.mean(acc))}
    assert judge(Relation.at_least("acc", 0.8), m, {"acc": acc}).status == "holds"
    # 60/64 = 0.9375: the t interval [0.876, 0.998] (wider than the bootstrap's) leaves 0.99 undecided, not 0.999
    assert judge(Relation.at_least("acc", 0.99), m, {"acc": acc}).status == "inconclusive"
    assert judge(Relation.at_least("acc", 0.999), m, {"acc": acc}).status == "fails"
    a, b = _samples(0.1), _samples(0.3, seed=1)
    m = {"a": float(np.mean(a)), "b": float(np.mean(b))}
    assert judge(Relation.lt("a", "b", margin=0.5), m, {"a": a, "b": b}).status == "fails"


def test_combinations_are_three_valued():
    h, f = Relation.lt("x", "y"), Relation.gt("x", "y")
    c, d = _samples(0.1, n=16, sd=1.0, seed=2), _samples(0.12, n=16, sd=1.0, seed=3)
    inc = Relation.lt("c", "d")
    m = {"x": 0, "y": 1, "c": float(np.mean(c)), "d": float(np.mean(d))}
    s = {"c": c, "d": d}
    assert judge(Relation.all_of(h, inc), m, s).status == "inconclusive"
    assert judge(Relation.all_of(f, inc), m, s).status == "fails"
    assert judge(Relation.any_of(h, inc), m, s).status == "holds"
    assert judge(Relation.any_of(f, inc), m, s).status == "inconclusive"
    assert judge(Relation.any_of(f, f), m, s).status == "fails"


def test_unpaired_samples_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        judge(Relation.lt("a", "b"), {"a": 0, "b": 1}, {"a": [0.0, 0.0], "b": [1.0]})


# ------------------------------------------------------------------------------------------ claims
def test_claim_status_and_validation():
    ok = Claim("c1", "exp", "a below b", Relation.lt("a", "b"), {"a": 1, "b": 2})
    assert ok.status == "holds"
    bad = Claim("c2", "exp", "a below b", Relation.lt("a", "b"), {"a": 3, "b": 2})
    assert bad.status == "fails" and "not reproduced" in bad.problem and not bad.blocking
    sanity = Claim("c3", "exp", "labels kept", Relation.at_least("kept", 1.0), {"kept": 1.0}, kind="sanity")
    assert sanity.status == "sanity"
    with pytest.raises(ValueError, match="not in measured"):
        Claim("c5", "exp", "t", Relation.lt("a", "b"), {"a": 1})
    with pytest.raises(ValueError, match="not the mean of its samples"):
        Claim("c6", "exp", "t", Relation.lt("a", "b"), {"a": 0.5, "b": 1}, samples={"a": [0.0, 0.2]})
    with pytest.raises(ValueError, match="kind"):
        Claim("c7", "exp", "t", Relation.lt("a", "b"), {"a": 0, "b": 1}, kind="finding")
    nan = Claim("c8", "exp", "t", Relation.lt("a", "b"), {"a": float("nan"), "b": 1})
    assert nan.status == "fails" and "NaN" in nan.problem


def _diag(share):
    return Diagnostic("evidence box inside the object box on >= 90% of images", Relation.at_least("share", 0.9),
                      measure=lambda r: {"share": r["share"]})


def _dev(cid="c", reason="x={x:.2f} below y={y:.2f}; evidence inside on {share:.0%}"):
    return Deviation(cid, reason, _diag(None))


def test_deviation_applies_only_when_its_diagnostic_holds():
    def failing():
        return [Claim("c", "e", "x above y", Relation.gt("x", "y"), {"x": 0.1, "y": 0.2})]

    (c,) = apply_deviations(failing(), register(_dev()), {"share": 0.95}, "default")
    assert c.status == "deviation"
    assert c.deviation["reason"] == "x=0.10 below y=0.20; evidence inside on 95%"  # numbers of this run
    (c,) = apply_deviations(failing(), register(_dev()), {"share": 0.5}, "default")
    assert c.status == "fails" and "diagnostic does not hold" in c.problem
    holding = [Claim("c", "e", "x above y", Relation.gt("x", "y"), {"x": 0.3, "y": 0.2})]
    (c,) = apply_deviations(holding, register(_dev()), {"share": 0.95}, "default")
    assert c.status == "fails" and "newly holds: remove the deviation" in c.problem
    (c,) = apply_deviations(failing(), register(_dev()), {"share": 0.95}, "paper")  # not registered there
    assert c.status == "fails"
    cs, ds = _samples(0.1, n=16, sd=1.0, seed=2), _samples(0.12, n=16, sd=1.0, seed=3)
    inconclusive = [Claim("c", "e", "x below y", Relation.lt("x", "y"), {"x": float(np.mean(cs)), "y": float(np.mean(ds))},
                          samples={"x": cs, "y": ds})]
    (c,) = apply_deviations(inconclusive, register(_dev()), {"share": 0.95}, "default")
    assert c.status == "inconclusive"


def test_deviation_registry_is_exact_and_needs_a_diagnostic():
    with pytest.raises(ValueError, match="does not make"):
        apply_deviations([Claim("c", "e", "t", Relation.lt("x", "y"), {"x": 1, "y": 0})], register(_dev("other")), {"share": 1}, "default")
    with pytest.raises(ValueError, match="two deviations"):
        register(_dev(), _dev())
    with pytest.raises(TypeError, match="Diagnostic"):
        Deviation("c", "a reason", diagnostic="IoU is low")
    with pytest.raises(KeyError, match="neither a measured nor a diagnostic"):
        apply_deviations([Claim("c", "e", "t", Relation.lt("x", "y"), {"x": 1, "y": 0})],
                         register(_dev(reason="{nowhere:.2f}")), {"share": 1}, "default")


# ------------------------------------------------------------------------------------------ reports and check
def _fake_repo(tmp_path: Path, paper="toy", profile="default") -> Path:
    (tmp_path / "configs" / paper).mkdir(parents=True)
    (tmp_path / "configs" / paper / f"{profile}.yaml").write_text("seed_everything: 0\n")
    (tmp_path / "replications" / paper).mkdir(parents=True)
    (tmp_path / "replications" / paper / "paper.py").write_text("X = 1\n")
    return tmp_path


#: the toy paper's code: claims from plain results, and its registered deviation
def toy_build_claims(results: dict, profile: str) -> list[Claim]:
    s = results["samples"]
    return [
        Claim("mask_best", "loc", "mask beats gradient", Relation.lt("mask", "gradient"),
              {"mask": float(np.mean(s["mask"])), "gradient": float(np.mean(s["gradient"]))},
              paper={"mask": PaperValue(43.1, "Table 1", "GoogLeNet"), "gradient": PaperValue(43.9, "Table 1", "GoogLeNet")},
              samples={"mask": s["mask"], "gradient": s["gradient"]}),
        Claim("x_above_y", "loc", "x above y", Relation.gt("x", "y", margin=0.0), {"x": results["x"], "y": results["y"]}),
        Claim("kept", "attack", "labels kept", Relation.at_least("kept", 1.0), {"kept": 1.0}, kind="sanity"),
    ]


TOY_DEVIATIONS = register(Deviation("x_above_y", "x={x:.2f} is below y={y:.2f}: {share:.0%} of the evidence is outside",
                                    Diagnostic("evidence outside the object on >= 50%", Relation.at_least("share", 0.5),
                                               measure=lambda r: {"share": r["share"]})))


def toy_rebuild(stored: dict) -> list[Claim]:
    claims = toy_build_claims(stored["results"], stored["profile"])
    for c in claims:
        c.profile = stored["profile"]
    return apply_deviations(claims, TOY_DEVIATIONS, stored["results"], stored["profile"])


TOY_RESULTS = {"samples": {"mask": _samples(0.4, n=32), "gradient": _samples(0.5, n=32, seed=1)}, "x": 0.1, "y": 0.2, "share": 0.7}


def _report(repo: Path, monkeypatch, results=None) -> Report:
    monkeypatch.setattr(report_mod, "REPO_ROOT", repo)
    r = Report("toy", "Toy paper", profile="default", config_path=repo / "configs/toy/default.yaml", seed=0)
    r.add_section("Setting", "A toy setting.")
    r.add_table("scores", [{"method": "mask", "error": 0.4}, {"method": "gradient", "error": 0.5}], caption="Table 1")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    r.add_figure("curve", fig, caption="a line")
    plain = json.loads(json.dumps(results or TOY_RESULTS))
    r.set_results(plain)
    r.add_claims(apply_deviations(toy_build_claims(plain, "default"), TOY_DEVIATIONS, plain, "default"))
    return r


def _check(repo, out):
    return check_results(json.loads((out / "results.json").read_text()), report_dir=out, repo_root=repo, rebuild=toy_rebuild)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    out = _report(repo, monkeypatch).write(repo / "reports" / "toy")
    return repo, out


def test_report_write_and_check_roundtrip(toy):
    repo, out = toy
    results = json.loads((out / "results.json").read_text())
    assert results["claim_counts"] == {"holds": 1, "fails": 0, "inconclusive": 0, "deviation": 1, "sanity": 1,
                                      "not_valid": 0}
    assert (out / "figures" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    readme = (out / "README.md").read_text()
    assert "mask beats gradient" in readme and "43.1" in readme and "known deviation" in readme
    assert "Δ(mask − gradient)" in readme and "diagnostic: evidence outside" in readme and "sanity check" in readme
    assert "![curve](figures/curve.png)" in readme
    assert readme == report_mod.render_readme(results)  # README is a pure function of results.json
    assert _check(repo, out) == []
    for p in [out / "README.md", out / "results.json", out / "figures" / "curve.png"]:
        assert p.stat().st_mode & 0o044 == 0o044, f"{p} must be world-readable"


def _tamper(out: Path, edit) -> None:
    results = json.loads((out / "results.json").read_text())
    edit(results)
    (out / "results.json").write_text(json.dumps(results))


def _counts_fixed(results):
    from lightning_modules.reporting import count_statuses

    results["claim_counts"] = count_statuses(results["claims"])


def test_tamper_delete_a_claim_and_fix_the_counts(toy):
    repo, out = toy

    def edit(r):
        r["claims"] = [c for c in r["claims"] if c["id"] != "mask_best"]
        _counts_fixed(r)

    _tamper(out, edit)
    assert any("mask_best is made by the code but missing" in p for p in _check(repo, out))


def test_tamper_relabel_a_failing_claim_as_a_deviation(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    res = dict(TOY_RESULTS, samples={"mask": _samples(0.6, n=32), "gradient": _samples(0.5, n=32, seed=1)})
    out = _report(repo, monkeypatch, res).write(repo / "reports" / "toy")
    stored = json.loads((out / "results.json").read_text())
    # a claim that does not reproduce is a result: reported as failing, counted, and the report is valid
    assert next(c for c in stored["claims"] if c["id"] == "mask_best")["status"] == "fails"
    assert stored["claim_counts"]["fails"] == 1 and "not reproduced" in (out / "README.md").read_text()
    assert _check(repo, out) == []

    def edit(r):
        c = next(c for c in r["claims"] if c["id"] == "mask_best")
        c["status"] = "deviation"
        c["known_deviation"] = "our scenes differ"
        _counts_fixed(r)

    _tamper(out, edit)
    problems = _check(repo, out)
    assert any("mask_best is malformed: a free-text known_deviation" in p for p in problems)


def test_tamper_loosen_a_threshold(toy):
    repo, out = toy

    def edit(r):
        c = next(c for c in r["claims"] if c["id"] == "x_above_y")
        c["relation"] = Relation.gt("x", "y", margin=-0.5).to_dict()
        c["relation_text"] = "x > y + -0.5"
        c["status"] = c["relation_status"] = "holds"
        c["deviation"] = None
        c["problem"] = None
        _counts_fixed(r)

    _tamper(out, edit)
    problems = _check(repo, out)
    assert any("x_above_y: relation: stored" in p for p in problems)


def test_tamper_edit_a_number_in_the_readme(toy):
    repo, out = toy
    readme = out / "README.md"
    readme.write_text(readme.read_text().replace("43.1", "41.3"))
    assert any("README.md was changed after the run" in p for p in _check(repo, out))


def test_tamper_replace_or_add_a_figure(toy):
    repo, out = toy
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(out / "figures" / "curve.png")
    fig.savefig(out / "figures" / "extra.png")
    plt.close(fig)
    problems = _check(repo, out)
    assert any("figures/curve.png was changed" in p for p in problems)
    assert any("figures/extra.png is not part of the run" in p for p in problems)
    (out / "figures" / "curve.png").unlink()
    assert any("figures/curve.png is missing" in p for p in _check(repo, out))


def test_a_deviation_whose_diagnostic_fails_fails_check(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    out = _report(repo, monkeypatch, dict(TOY_RESULTS, share=0.2)).write(repo / "reports" / "toy")
    assert any("x_above_y fails" in p and "diagnostic does not hold" in p for p in _check(repo, out))


def test_a_deviation_whose_claim_holds_fails_check(tmp_path, monkeypatch):
    repo = _fake_repo(tmp_path)
    out = _report(repo, monkeypatch, dict(TOY_RESULTS, x=0.3)).write(repo / "reports" / "toy")
    assert any("newly holds: remove the deviation" in p for p in _check(repo, out))


def test_tamper_a_stored_number_or_the_results(toy):
    repo, out = toy

    def edit(r):
        next(c for c in r["claims"] if c["id"] == "x_above_y")["measured"]["x"] = 0.15

    _tamper(out, edit)
    assert any("x_above_y: measured differ" in p for p in _check(repo, out))


def test_check_detects_stale_sources(toy):
    repo, out = toy
    assert _check(repo, out) == []
    (repo / "configs/toy/default.yaml").write_text("seed_everything: 1\n")
    assert any("older than the paper's sources" in p for p in _check(repo, out))
    (repo / "configs/toy/default.yaml").write_text("seed_everything: 0\n")
    assert _check(repo, out) == []
    (repo / "configs/toy/paper.yaml").write_text("trainer: {devices: 8}\n")  # another profile: not this report's input
    assert _check(repo, out) == []
    # the registry acts on stored results only: check verifies it by rebuilding the claims, not by the hash
    (repo / "replications/toy/deviations.py").write_text("DEVIATIONS = {}\n")
    assert _check(repo, out) == []
    (repo / "replications/toy/experiments.py").write_text("N = 1\n")  # any other file of the package counts
    assert any("older than the paper's sources" in p for p in _check(repo, out))


def test_claims_re_derived_from_stored_results_after_a_registry_change(toy):
    """A registry change needs no re-run: the claims are re-derived from the stored results (``report``)."""
    repo, out = toy
    global TOY_DEVIATIONS
    saved = TOY_DEVIATIONS
    try:
        TOY_DEVIATIONS = {}
        assert any("x_above_y: deviation: stored" in p for p in _check(repo, out))
        stored = json.loads((out / "results.json").read_text())
        assert report_mod.rerender(out, [c.to_dict() for c in toy_rebuild(stored)])
        assert _check(repo, out) == []
        assert json.loads((out / "results.json").read_text())["claim_counts"]["fails"] == 1
    finally:
        TOY_DEVIATIONS = saved


def test_check_on_malformed_results():
    assert "JSON object" in check_results([1, 2])[0]
    assert any("lacks" in p for p in check_results({"paper": "toy"}))
    base = {"schema_version": report_mod.SCHEMA_VERSION, "paper": "toy", "profile": "default", "claim_counts": {},
            "source_sha256": "", "files_sha256": {}, "results": {}, "claims": ["not an object"]}
    assert any("not an object" in p for p in check_results(base, check_freshness=False))


# ------------------------------------------------------------------------------------------ atomic folders
def test_atomic_write_survives_crash_mid_write(tmp_path):
    target = tmp_path / "results.json"
    target.write_text('{"old": true}')
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write('{"new": ')  # half a document ...
            raise RuntimeError("simulated crash")
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind


def test_report_write_keeps_the_old_folder_when_writing_fails(toy, monkeypatch):
    repo, out = toy
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = _report(repo, monkeypatch, dict(TOY_RESULTS, x=0.05))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", boom)
    with pytest.raises(OSError):
        r.write(out)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["toy"]  # nothing half-built left beside it


def test_leftovers_of_a_killed_run_are_cleaned_and_a_moved_report_restored(toy, monkeypatch):
    repo, out = toy
    (out.parent / ".toy.tmp-999").mkdir()
    (out.parent / ".toy.tmp-999" / "README.md").write_text("half")
    out.rename(out.parent / ".toy.old-998")  # killed between moving the old report aside and moving the new in
    report_mod.recover_report_dir(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["toy"]
    assert _check(repo, out) == []


_WRITER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lightning_modules.reporting import report as report_mod
    from lightning_modules.reporting import Claim, Relation, Report
    repo, out = Path(sys.argv[1]), Path(sys.argv[2])
    report_mod.REPO_ROOT = repo
    i = 0
    while True:
        i += 1
        r = Report("toy", "Toy", profile="default", config_path=repo / "configs/toy/default.yaml", seed=i)
        for k in range(6):
            fig, ax = plt.subplots()
            ax.plot(range(200), [(x * i * (k + 1)) % 17 for x in range(200)])
            r.add_figure(f"f{k}", fig)
        r.set_results({"run": i})
        r.add_claims([Claim("c", "e", "t", Relation.lt("a", "b"), {"a": 0, "b": i})])
        r.write(out)
        print(i, flush=True)
""")


def _consistent(out: Path) -> int:
    """The run number of the report in ``out``, asserting every file is the one results.json records."""
    import hashlib

    results = json.loads((out / "results.json").read_text())
    for rel, digest in results["files_sha256"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest, f"{rel} is from another run"
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(f"f{k}.png" for k in range(6))
    return results["results"]["run"]


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.7])
def test_kill_9_while_writing_leaves_the_old_or_the_new_report(tmp_path, delay):
    repo = _fake_repo(tmp_path)
    out = repo / "reports" / "toy"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(repo), str(out)], stdout=subprocess.PIPE, env=env, cwd=REPO)
    first = proc.stdout.readline()  # one complete report exists
    assert first.strip() == b"1"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = _consistent(out)  # without any recovery: the folder is one run's, whole
    assert run >= 1
    report_mod.recover_report_dir(out)
    assert _consistent(out) == run
    assert sorted(p.name for p in out.parent.iterdir()) == ["toy"]


# ------------------------------------------------------------------------------------------ W&B
def test_wandb_offline_run_contains_tables(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from lightning.pytorch.loggers import WandbLogger

    repo = _fake_repo(tmp_path / "repo")
    r = _report(repo, monkeypatch)
    logger = WandbLogger(project="test", save_dir=str(tmp_path), offline=True)
    r.log_wandb(logger)
    run = logger.experiment
    assert run.summary["toy/x_above_y/x"] == 0.1
    assert run.summary["toy/claims_holds"] == 1
    run_dir = Path(run.dir).parent
    wandb.finish()
    tables = list(run_dir.rglob("*.table.json"))
    by_name = {p.name.split("_")[0]: json.loads(p.read_text()) for p in tables}
    assert set(by_name) >= {"scores", "claims"}, sorted(by_name)
    assert by_name["scores"]["columns"] == ["method", "error"]
    assert ["mask", "0.4"] in by_name["scores"]["data"]
    assert by_name["claims"]["data"][0][0] == "mask_best"


# ------------------------------------------------------------------------------------------ CLI
def test_check_command_lists_problems_and_refuses_malformed_files(tmp_path, monkeypatch, capsys):
    import replications.__main__ as cli

    reports = tmp_path / "reports" / "toy"
    reports.mkdir(parents=True)
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(cli, "list_papers", lambda: ["toy"])
    (reports / "results.json").write_text("[1, 2, 3]")
    assert cli.cmd_check(["toy"]) == 1
    assert "JSON object" in capsys.readouterr().out
    (reports / "results.json").write_text("{not json")
    assert cli.cmd_check(["toy"]) == 1
    assert "not valid JSON" in capsys.readouterr().out
    assert cli.cmd_check(["nosuchpaper"]) == 1
    assert "unknown paper" in capsys.readouterr().out


def test_a_benchmark_deviation_whose_diagnostic_fails_is_reported_not_blocking():
    """A timing claim's diagnostic moves with the machine's load: its failure is a result; the same on a claim blocks."""
    from lightning_modules.reporting import Claim

    deviation = {"reason": "slow pipeline", "diagnostic": {"text": "share >= 0.2", "relation_text": "share >= 0.2",
                                                           "measured": {"share": 0.1}, "status": "fails"}}
    for kind, blocks in (("benchmark", False), ("claim", True)):
        c = Claim(id="ratio_bound", experiment="x", text="t", relation=Relation.at_most("ratio", 1.2),
                  measured={"ratio": 1.4}, kind=kind, deviation=deviation)
        assert c.status == "fails" and c.blocking is blocks and "diagnostic does not hold" in c.problem


def test_diff_reports_compares_the_numbers_printed_in_texts():
    from lightning_modules.reporting import diff_reports

    e = {"cell": "occlusion 0.06128 [0.03676, 0.0878]", "status": "holds"}
    # words equal, printed numbers within the tolerance (+ one unit of the last printed digit)
    assert not diff_reports(e, {"cell": "occlusion 0.06107 [0.03643, 0.08774]", "status": "holds"}, rtol=1e-2, atol=0)
    assert diff_reports(e, {"cell": "occlusion 0.06107 [0.03643, 0.08774]", "status": "holds"}, rtol=1e-4, atol=0)
    assert diff_reports(e, {"cell": "gradient 0.06128 [0.03676, 0.0878]", "status": "holds"}, rtol=1, atol=1)
    assert diff_reports(e, {"cell": "occlusion 0.06128 [0.03676]", "status": "holds"}, rtol=1, atol=1)
    assert diff_reports(e, {"cell": e["cell"], "status": "fails"}, rtol=1, atol=1)
