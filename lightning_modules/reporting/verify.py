"""Verifying a committed report, and diffing two runs' reports.

:func:`check_results` is what ``python -m replications check`` runs on every ``reports/<paper>/``: it never trusts
the file it checks. The claims are rebuilt from the code (the paper's ``build_claims`` on the stored plain results,
with the registered deviations applied) and must equal the stored ones (ids, relations, thresholds, measured
values, deviation texts, statuses); no claim may fail; README.md and every figure must have the SHA-256 that
results.json records; the report must be as new as the paper's sources.

:func:`diff_reports` compares every number and status of two results.json files (``reproduce`` and the smoke
snapshots), with stated tolerances; timings are skipped by name.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Callable, Sequence

from lightning_modules.reporting.claims import STATUSES, Claim
from lightning_modules.reporting.report import (
    SCHEMA_VERSION, count_statuses, load_examples, paper_source_sha256, render_report,
)
from lightning_modules.utils import REPO_ROOT

REQUIRED = ("schema_version", "paper", "profile", "claims", "claim_counts", "source_sha256", "files_sha256", "results")
#: the parts of a stored claim that must equal the rebuilt one
_CLAIM_FIELDS = ("experiment", "kind", "text", "relation", "paper", "deviation", "status",
                 "relation_status", "problem", "protocols", "validity", "findings", "min_effect")


def _close(a, b, rel=1e-9, abs_=1e-12) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel, abs_) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, rel, abs_) for x, y in zip(a, b))
    return a == b


def _claim_differences(stored: dict, rebuilt: dict) -> list[str]:
    out = []
    for key in _CLAIM_FIELDS:
        if not _close(stored.get(key), rebuilt.get(key)):
            out.append(f"{key}: stored {_short(stored.get(key))}, the code gives {_short(rebuilt.get(key))}")
    for key in ("measured", "samples", "intervals"):
        if not _close(stored.get(key), rebuilt.get(key), rel=1e-9, abs_=1e-12):
            out.append(f"{key} differ from what the code computes from the stored results")
    return out


def _short(v, n: int = 160) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def check_results(results, report_dir: Path | None = None, repo_root: Path = REPO_ROOT,
                  rebuild: Callable[[dict], list[Claim]] | None = None, check_freshness: bool = True,
                  rebuild_findings: Callable[[dict, list[dict]], list[dict] | None] | None = None,
                  render: Callable[..., None] | None = None) -> list[str]:
    """Every problem with one committed results.json; an empty list means it passes.

    ``rebuild(results) -> claims`` recomputes the claims from the code (``replications.contract``); without it
    the claims are only re-judged on their stored numbers (and the caller reports that they were not rebuilt).
    ``rebuild_findings(results, claims) -> findings`` judges the paper's headline findings from the stored claims
    (None where the paper lists none): the stored findings must equal them. ``render`` (the paper's
    ``report.build_report``) draws the sections and tables again from the stored results, settings and figure
    tensors: they must equal the stored ones (a report.py changed without ``report`` re-rendering is caught)."""
    if not isinstance(results, dict):
        return [f"results.json must hold a JSON object, got {type(results).__name__}; regenerate the report with the paper's fit"]
    where = f"{results.get('paper', '?')}/{results.get('profile', '?')}"
    missing = [k for k in REQUIRED if k not in results]
    if missing:
        return [f"{where}: results.json lacks {missing} (written by an older version? re-run the paper's fit)"]
    if results["schema_version"] != SCHEMA_VERSION:
        return [f"{where}: schema version {results['schema_version']} != {SCHEMA_VERSION}; re-run the paper's fit"]
    if not isinstance(results["claims"], list) or not results["claims"]:
        return [f"{where}: the report has no claims (a list of claim objects is expected)"]
    problems: list[str] = []
    stored: dict[str, dict] = {}
    for raw in results["claims"]:
        if not isinstance(raw, dict):
            problems.append(f"{where}: a claim entry is a {type(raw).__name__}, not an object")
            continue
        cid = raw.get("id", "?")
        if cid in stored:
            problems.append(f"{where}: duplicate claim id {cid}")
        try:
            claim = Claim.from_dict(raw)
        except (KeyError, ValueError, TypeError) as e:
            problems.append(f"{where}: claim {cid} is malformed: {e}")
            continue
        stored[cid] = raw
        status = claim.status
        if raw.get("status") != status:
            problems.append(f"{where}: claim {cid} is stored as {raw.get('status')!r} but its relation "
                            f"`{claim.relation.describe()}` on the stored numbers gives {status!r}")
        if claim.blocking:
            problems.append(f"{where}: claim {cid} fails: {claim.text} — `{claim.relation.describe()}` with "
                            f"{claim.measured}: {claim.problem}")
    counts = count_statuses(r for r in stored.values())
    stored_counts = results["claim_counts"]
    if not isinstance(stored_counts, dict) or {s: stored_counts.get(s, 0) for s in STATUSES} != counts:
        problems.append(f"{where}: claim_counts {results['claim_counts']} do not match the claims {counts}")
    if rebuild is not None:
        try:
            rebuilt = {c.id: c.to_dict() for c in rebuild(results)}
        except Exception as e:  # noqa: BLE001 - any failure to rebuild is a failed check, with its reason
            problems.append(f"{where}: the claims cannot be rebuilt from the code on the stored results: {type(e).__name__}: {e}")
        else:
            for cid in sorted(set(rebuilt) - set(stored)):
                problems.append(f"{where}: claim {cid} is made by the code but missing from the report")
            for cid in sorted(set(stored) - set(rebuilt)):
                problems.append(f"{where}: claim {cid} is in the report but the code does not make it")
            for cid in sorted(set(stored) & set(rebuilt)):
                for d in _claim_differences(stored[cid], rebuilt[cid]):
                    problems.append(f"{where}: claim {cid}: {d}")
    if rebuild_findings is not None:
        try:
            expected = rebuild_findings(results, list(stored.values()))
        except ValueError as e:
            problems.append(f"{where}: the headline findings cannot be judged: {e}")
        else:
            if expected is not None and results.get("findings") != expected:
                problems.append(f"{where}: the headline findings stored ({_short(results.get('findings'))}) are not "
                                "what the claims give; re-render with `python -m replications."
                                f"{results['paper']} report`")
            elif expected is None and results.get("findings") is not None:
                problems.append(f"{where}: the report stores headline findings but the paper's claims.py lists none")
    if check_freshness:
        config_file = results.get("config_file") or f"configs/{results['paper']}/{results['profile']}.yaml"
        if not (repo_root / config_file).is_file():
            problems.append(f"{where}: the report's config {config_file} is missing")
        current = paper_source_sha256(results["paper"], repo_root, config_file)
        if results["source_sha256"] != current:
            problems.append(f"{where}: the report is older than the paper's sources (replications/{results['paper']}/ or "
                            f"{config_file} changed); re-run `python -m replications.{results['paper']} fit "
                            f"--config {config_file}`")
    report_dir = report_dir or repo_root / "reports" / results["paper"]
    if render is not None and "report_config" in results:
        try:
            drawn = render_report(results, render, load_examples(report_dir)).results()
        except Exception as e:  # noqa: BLE001 - a report.py that cannot draw the stored results is a failed check
            problems.append(f"{where}: report.py cannot draw the report from the stored results: {type(e).__name__}: {e}")
        else:
            for part in ("sections", "tables"):
                if json.dumps(drawn[part], sort_keys=True) != json.dumps(results.get(part), sort_keys=True):
                    problems.append(f"{where}: the stored {part} are not what replications/{results['paper']}/report.py "
                                    f"draws from the stored results; re-render with `python -m replications."
                                    f"{results['paper']} report`")
    files = results["files_sha256"] if isinstance(results["files_sha256"], dict) else {}
    if "README.md" not in files:
        problems.append(f"{where}: results.json records no hash of README.md")
    for name, fig in (results.get("figures") or {}).items():
        if not isinstance(fig, dict) or fig.get("path") not in files:
            problems.append(f"{where}: figure {name} has no recorded hash")
    for rel, digest in files.items():
        p = report_dir / rel
        if not p.is_file():
            problems.append(f"{where}: {rel} is missing from the report folder")
        elif hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            problems.append(f"{where}: {rel} was changed after the run (SHA-256 differs from results.json); re-run the fit")
    fig_dir = report_dir / "figures"
    if fig_dir.is_dir():
        for p in sorted(fig_dir.iterdir()):
            if f"figures/{p.name}" not in files:
                problems.append(f"{where}: figures/{p.name} is not part of the run's report; remove it")
    return problems


# --------------------------------------------------------------------------------------------- diffs
#: keys that hold timings or machine facts: never compared between runs
VOLATILE = re.compile(r"(^|[_\s(/])(time|times|seconds|wall|cpu|elapsed|timing|timings|speed|ms|load|memory|mb|peak|rss|s)"
                      r"($|[_\s)/])|ratio|per_forward|throughput|generated|environment|git|files_sha256|source_sha256"
                      r"|config_sha256")
_SKIP_TOP = {"generated_at", "wall_time_s", "environment", "files_sha256", "source_sha256", "config_sha256", "config",
             "report_config", "config_file", "sections", "claim_counts"}
#: prose: captions quote timings of the run; a claim's problem text is derived from its status, which is compared.
#: ``n_to_decide``: a sample size derived from an interval's mean and spread (compared), ill-conditioned where the
#: mean is near 0 (a 1e-5 move of a 5e-4 mean moves it by 5%). ``known_deviation``: always null in reports written
#: before the field was dropped from the schema. ``benchmark``: a paper's cost measurements (times and their
#: ratios and shares, measured on this machine under its load), like the benchmark-kind claims that read them.
#: ``runs_reused_from_cache`` / ``reused_attributions``: how much of a run a result cache served (a fact of the
#: machine's cache, not a result; the results it served are compared).
_SKIP_ANY = {"caption", "problem", "n_to_decide", "known_deviation", "benchmark", "runs_reused_from_cache",
             "reused_attributions"}


_NUMBER = re.compile(r"[-+]?\d+(?:\.(\d+))?(?:[eE][-+]?\d+)?")


def _texts_agree(expected: str, actual: str, rtol: float, atol: float) -> bool:
    """Texts that print measured numbers (table cells, deviation reasons) agree when their words are equal and each
    printed number is within the tolerance, widened by one unit of its last printed digit (the rounding)."""
    if _NUMBER.sub("#", expected) != _NUMBER.sub("#", actual):
        return False
    for m, n in zip(_NUMBER.finditer(expected), _NUMBER.finditer(actual)):
        e, a = float(m.group(0)), float(n.group(0))
        if "e" in m.group(0).lower():
            unit = 0.0
        else:
            unit = 10.0 ** -max(len(m.group(1) or ""), len(n.group(1) or ""))
        if not abs(a - e) <= atol + rtol * abs(e) + unit:
            return False
    return True


def diff_reports(expected: dict, actual: dict, rtol: float, atol: float, max_items: int = 200,
                 path_tolerances: Sequence[tuple[str, float, float]] = ()) -> list[str]:
    """Every number or status of ``expected`` that ``actual`` does not reproduce within ``|a - e| <= atol + rtol |e|``
    (statuses, ids: exactly; texts: their words exactly, the numbers they print within the tolerance). Keys matching
    ``VOLATILE`` (timings, load) are skipped.

    ``path_tolerances``: ``(pattern, rtol, atol)`` for the numbers whose path (``/results/a/b[3]``, claims by id:
    ``/claims[<id>]/measured/x``) the regular expression ``pattern`` matches (``re.search``; the first match wins),
    e.g. numbers a network trained in the run produces, with the spread measured over its training seeds. ``atol``
    ``math.inf`` leaves a number's value unchecked (its presence and type still are); statuses stay exact."""
    rules = [(re.compile(p), float(r), float(a)) for p, r, a in path_tolerances]

    def bounds(path: str) -> tuple[float, float]:
        for pattern, r, a in rules:
            if pattern.search(path):
                return r, a
        return rtol, atol

    out: list[str] = []

    def walk(e, a, path: str):
        if len(out) >= max_items:
            return
        if isinstance(e, dict):
            if not isinstance(a, dict):
                out.append(f"{path}: expected an object, got {_short(a, 60)}")
                return
            if e.get("kind") == "benchmark" and "relation" in e:
                return  # a cost measured on this machine: its number and status depend on the machine and its load
            for k in e:
                if path == "" and k in _SKIP_TOP or k in _SKIP_ANY or VOLATILE.search(str(k).lower()):
                    continue
                if k not in a:
                    out.append(f"{path}/{k}: missing")
                    continue
                walk(e[k], a[k], f"{path}/{k}")
            for k in a:
                if k not in e and not (path == "" and k in _SKIP_TOP) and k not in _SKIP_ANY and not VOLATILE.search(str(k).lower()):
                    out.append(f"{path}/{k}: not in the expected report")
            return
        if isinstance(e, list):
            if not isinstance(a, list) or len(a) != len(e):
                out.append(f"{path}: expected {len(e)} entries, got {len(a) if isinstance(a, list) else _short(a, 60)}")
                return
            # claims are matched by id so that the message names the claim
            for i, (x, y) in enumerate(zip(e, a)):
                tag = x.get("id") if isinstance(x, dict) and "id" in x else i
                walk(x, y, f"{path}[{tag}]")
            return
        if isinstance(e, str) and isinstance(a, str):
            if e != a and not _texts_agree(e, a, *bounds(path)):
                out.append(f"{path}: expected {_short(e, 80)}, got {_short(a, 80)}")
            return
        if isinstance(e, bool) or isinstance(a, bool) or not isinstance(e, (int, float)) or not isinstance(a, (int, float)):
            if e != a:
                out.append(f"{path}: expected {_short(e, 80)}, got {_short(a, 80)}")
            return
        if math.isnan(e) and math.isnan(a) or e == a:  # equal infinities too (an unbounded interval at n = 1)
            return
        r, t = bounds(path)
        if math.isinf(t) and not (math.isnan(e) or math.isnan(a)):
            return
        if math.isinf(e) or math.isinf(a) or not (abs(a - e) <= t + r * abs(e)):
            out.append(f"{path}: expected {e:.6g}, got {a:.6g}")

    walk(expected, actual, "")
    return out
