"""Headline findings: what a reader of each paper takes away, and whether a report reproduces it.

Each paper names its findings (ids and texts of ``../shared/HEADLINE_CLAIMS.md``: ``FINDINGS`` in
``replications/<paper>/claims.py``) and, for those its profile cannot test, the reason (``NOT_TESTED``). Each claim
names the findings it tests (``Claim.findings``). A finding's status is a pure function of its claims' statuses:

- **not tested here**: no claim tests it in this profile (the reason is required in a paper's default profile, whose
  report is committed);
- **not valid here**: every claim that tests it rests on a protocol that fails its validity check in the run (the
  relations' own verdicts are still shown, rules of judgement 7);
- among the claims on valid protocols (sanity checks never count): **reproduced** when all hold, **not
  reproduced** when none holds and at least one fails (a known deviation is a failure with a measured reason),
  **partly reproduced** when some hold and some fail, **inconclusive** otherwise (none fails, not all hold: an
  undecided or negligible comparison).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from lightning_modules.reporting.claims import DEVIATION, NOT_VALID, SANITY
from lightning_modules.reporting.relations import FAILS, HOLDS, INCONCLUSIVE

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"
FINDING_INCONCLUSIVE, FINDING_NOT_VALID, NOT_TESTED = "inconclusive", "not valid here", "not tested here"
FINDING_STATUSES = (REPRODUCED, PARTLY, NOT_REPRODUCED, FINDING_INCONCLUSIVE, FINDING_NOT_VALID, NOT_TESTED)


def judge_findings(findings: Mapping[str, str], not_tested: Mapping[str, str], claims: Iterable[dict],
                   strict: bool = True) -> list[dict]:
    """One row per finding (in ``findings``' order): ``{id, text, status, claims, counts, reason}``.

    ``claims``: claim dicts (``Claim.to_dict``). ``strict``: a finding without claims needs a reason in
    ``not_tested`` (every profile but ``smoke``). A claim naming an unknown finding, or a finding both tested and
    listed as not tested, is an error."""
    claims = list(claims)
    unknown = sorted({f for c in claims for f in c.get("findings") or () if f not in findings})
    if unknown:
        raise ValueError(f"claims name findings {unknown} that the paper does not list (FINDINGS: {sorted(findings)})")
    stray = sorted(set(not_tested) - set(findings))
    if stray:
        raise ValueError(f"NOT_TESTED names findings {stray} that the paper does not list")
    rows = []
    for fid, text in findings.items():
        tested = [c for c in claims if fid in (c.get("findings") or ()) and c.get("kind") != SANITY]
        row = {"id": fid, "text": text, "claims": [c["id"] for c in tested]}
        if not tested:
            if fid not in not_tested and strict:
                raise ValueError(f"finding {fid} has no claim and no reason in NOT_TESTED: add a claim that tests it, "
                                 "or say why this profile cannot")
            row.update(status=NOT_TESTED, counts={}, reason=not_tested.get(fid, "no claim in this profile"))
            rows.append(row)
            continue
        if fid in not_tested:
            raise ValueError(f"finding {fid} is tested by {row['claims']} and also listed in NOT_TESTED")
        valid = [c for c in tested if c["status"] != NOT_VALID]
        counts = {s: sum(c["status"] == s for c in tested) for s in (HOLDS, FAILS, DEVIATION, INCONCLUSIVE, NOT_VALID)}
        held = counts[HOLDS]
        failed = counts[FAILS] + counts[DEVIATION]
        if not valid:
            status = FINDING_NOT_VALID
        elif held == len(valid):
            status = REPRODUCED
        elif held and failed:
            status = PARTLY
        elif failed:
            status = NOT_REPRODUCED
        else:
            status = FINDING_INCONCLUSIVE
        row.update(status=status, counts={k: v for k, v in counts.items() if v}, reason=None)
        rows.append(row)
    return rows


def count_findings(rows: Iterable[dict]) -> dict[str, int]:
    """Per status, how many findings; ``tested_valid``: findings tested on at least one valid protocol."""
    rows = list(rows)
    out = {s: sum(r["status"] == s for r in rows) for s in FINDING_STATUSES}
    out["tested_valid"] = sum(r["status"] not in (NOT_TESTED, FINDING_NOT_VALID) for r in rows)
    return out


def finding_rows(rows: Iterable[dict]) -> list[dict]:
    """The README's table of headline findings."""
    out = []
    for r in rows:
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in (r.get("counts") or {}).items())
        out.append({"finding": f"**{r['id']}** {r['text']}", "status": r["status"],
                    "claims": (", ".join(f"`{c}`" for c in r["claims"]) + (f" ({counts})" if counts else ""))
                    if r["claims"] else (r.get("reason") or "–")})
    return out
