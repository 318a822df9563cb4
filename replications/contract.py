"""The claims contract of every paper: claims are a pure function of the run's plain results, in the code.

Each paper package provides

- ``replications/<paper>/claims.py``: ``build_claims(results: dict, profile: str) -> list[Claim]``, a pure function
  of the plain (JSON) results its run stores in ``results.json["results"]``;
- ``replications/<paper>/deviations.py``: ``DEVIATIONS``, the registry of known deviations (exact claim id ->
  :class:`~lightning_modules.reporting.Deviation` with its diagnostic), written before a run;
- in ``claims.py``, ``FINDINGS`` (the paper's headline findings of ``../shared/HEADLINE_CLAIMS.md``, id -> text) and
  ``NOT_TESTED`` (id -> why the embedded profiles cannot test it), judged from the claims by
  :func:`findings_for`.

The run and ``check`` build the claims with the same function (:func:`claims_for`), so ``check`` compares the
stored claims with what the code makes of the stored results: a claim deleted, added, relabelled, loosened or
re-worded in the file is caught.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Callable

from lightning_modules.reporting import Claim, Deviation, apply_deviations, apply_validity, jsonable, protocol_verdicts
from lightning_modules.reporting.findings import judge_findings


@dataclass(frozen=True)
class PaperContract:
    paper: str
    build_claims: Callable[[dict, str], list[Claim]] | None
    deviations: dict[str, Deviation]
    findings: dict[str, str] | None = None
    not_tested: dict[str, str] | None = None
    #: ``replications/<paper>/report.py``'s ``build_report(report, results, config, examples)``: the sections, tables
    #: and figures as a pure function of the stored results, settings and figure tensors (None: not split out yet)
    render: Callable[..., None] | None = None


def contract(paper: str) -> PaperContract:
    """The paper's ``build_claims`` (None where the package has none yet) and its deviation registry."""
    try:
        claims_mod = importlib.import_module(f"replications.{paper}.claims")
    except ModuleNotFoundError as e:
        if e.name not in (f"replications.{paper}", f"replications.{paper}.claims"):
            raise
        claims_mod = None
    build = getattr(claims_mod, "build_claims", None) if claims_mod is not None else None
    findings = getattr(claims_mod, "FINDINGS", None) if claims_mod is not None else None
    not_tested = getattr(claims_mod, "NOT_TESTED", {}) if claims_mod is not None else {}
    try:
        dev_mod = importlib.import_module(f"replications.{paper}.deviations")
        deviations = dict(getattr(dev_mod, "DEVIATIONS"))
    except ModuleNotFoundError as e:
        if e.name not in (f"replications.{paper}", f"replications.{paper}.deviations"):
            raise
        deviations = {}
    try:
        render = getattr(importlib.import_module(f"replications.{paper}.report"), "build_report", None)
    except ModuleNotFoundError as e:
        if e.name not in (f"replications.{paper}", f"replications.{paper}.report"):
            raise
        render = None
    return PaperContract(paper, build, deviations, dict(findings) if findings is not None else None, dict(not_tested),
                         render)


def plain(results: dict) -> dict:
    """``results`` exactly as they read back from results.json (tuples -> lists, keys -> str, tensors -> numbers)."""
    return json.loads(json.dumps(jsonable(results)))


def claims_for(paper: str, results: dict, profile: str) -> list[Claim]:
    """The claims of ``paper`` on plain ``results``, with the verdicts of the protocols they rest on (recomputed
    from ``results["protocol_validity"]``) and the registered deviations of ``profile`` applied."""
    c = contract(paper)
    if c.build_claims is None:
        raise LookupError(f"replications/{paper}/claims.py has no build_claims(results, profile)")
    claims = list(c.build_claims(results, profile))
    for claim in claims:
        claim.profile = profile
    claims = apply_validity(claims, protocol_verdicts(results.get("protocol_validity")))
    return apply_deviations(claims, c.deviations, results, profile)


def findings_for(paper: str, claims: list[dict], profile: str) -> list[dict] | None:
    """The paper's headline findings judged from its claims (dicts); None where the paper lists none."""
    c = contract(paper)
    if c.findings is None:
        return None
    # the committed (default) report must say why a finding is not tested; elsewhere (smoke, paper profiles on a
    # subset of the data) a finding without a claim is "not tested here: no claim in this profile"
    return judge_findings(c.findings, c.not_tested or {}, claims, strict=profile == "default")


def rebuild(stored: dict) -> list[Claim]:
    """What the code makes of a stored results.json's plain results (for ``check``)."""
    return claims_for(stored["paper"], stored["results"], stored["profile"])
