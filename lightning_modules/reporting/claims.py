"""Claims: what a paper says, what we measured, the relation that must hold; and registered known deviations.

A :class:`Claim` pairs a paper's published value(s) (:class:`PaperValue`, with table/figure reference) with the
numbers we measured and a :class:`~lightning_modules.reporting.relations.Relation`. Its status is decided by the
relation (paired bootstrap where the claim carries per-sample values): ``holds``, ``fails`` or ``inconclusive``.
A check that holds by construction is not a finding: it is built with ``kind="sanity"`` and reported as a
sanity row, never counted as reproduced.

A :class:`Deviation` is registered *before* a run, by exact claim id, in ``replications/<paper>/deviations.py``.
It states the mechanism we believe keeps our setting from showing the paper's effect, and names a
:class:`Diagnostic`: a quantity measured in the same run (read from the run's results) with its own relation,
that tests that mechanism. Applied to a claim (:func:`apply_deviations`):

- the claim fails and the diagnostic holds: status ``deviation`` (the reason is rendered with the run's numbers);
- the claim fails and the diagnostic does not hold: status ``fails`` (the stated mechanism is not supported);
- the diagnostic also holds for a *contrast* claim (the same claim on another method or setting) that holds: status
  ``fails`` (rules of judgement 5: a diagnostic that does not separate the failing case from the held ones explains
  nothing). A diagnostic names its contrasts with ``Diagnostic.contrast(results) -> {claim id: values}``;
- the claim holds: status ``fails`` with "newly holds: remove the deviation", so the registry stays true;
- the claim is inconclusive: it stays ``inconclusive`` (a deviation does not excuse what the run cannot decide).

A claim names the headline findings it tests (``findings``: ids such as ``"F4"`` of ``../shared/HEADLINE_CLAIMS.md``,
judged per finding by :mod:`lightning_modules.reporting.findings`) and may carry a :class:`MinimumEffect` (rule 3):
a decided comparison between two measured quantities whose effect is smaller is "inconclusive (negligible)".

A claim that rests on an evaluation protocol names it (``protocols``); :func:`apply_validity` attaches the
protocol's verdict measured in the same run (``lightning_modules.reporting.validity``). On a protocol that is not
valid there, the claim's status is ``not_valid`` whatever its relation gives: it is reported with the failed checks
and never counted as reproduced (nor as failing: the run cannot test it).

The last two and a failing sanity check are *blocking*: ``check`` rejects the report. A claim that fails without a
registered deviation is a result ("not reproduced"), reported and counted as failing.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from lightning_modules.reporting.relations import FAILS, HOLDS, INCONCLUSIVE, Relation, judge

SANITY, DEVIATION, NOT_VALID = "sanity", "deviation", "not_valid"
STATUSES = (HOLDS, FAILS, INCONCLUSIVE, DEVIATION, SANITY, NOT_VALID)
#: ``benchmark``: a claim about a cost measured on this machine (a timing ratio); judged like a claim, but not
#: compared between machines by ``reproduce`` and the smoke snapshots
KINDS = ("claim", "sanity", "benchmark")


@dataclass
class PaperValue:
    """A number (or short text) published by a paper, with where it comes from."""

    value: Any
    source: str
    setting: str = ""
    confirmed: bool = True

    def to_dict(self) -> dict:
        return {"value": self.value, "source": self.source, "setting": self.setting, "confirmed": self.confirmed}

    @classmethod
    def from_dict(cls, d: dict) -> "PaperValue":
        return cls(d["value"], d["source"], d.get("setting", ""), d.get("confirmed", True))

    def render(self) -> str:
        v = self.value
        s = f"{v:.4g}" if isinstance(v, float) else str(v)
        return s + ("" if self.confirmed else " (unconfirmed)")


@dataclass(frozen=True)
class MinimumEffect:
    """The smallest effect a hold (or a failure) must show to count (rules of judgement 3), with the rule that set
    it, stated once per protocol (``lightning_modules.reporting.rules``)."""

    value: float
    rule: str

    def __post_init__(self):
        if not (isinstance(self.value, (int, float)) and math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"a minimum effect must be a finite number >= 0, got {self.value!r}")
        if not self.rule.strip():
            raise ValueError("a minimum effect needs the rule that sets it")

    def to_dict(self) -> dict:
        return {"value": float(self.value), "rule": self.rule}

    @classmethod
    def from_dict(cls, d: dict | None) -> "MinimumEffect | None":
        return None if d is None else cls(float(d["value"]), d["rule"])


@dataclass(frozen=True)
class Diagnostic:
    """A measured quantity that tests a deviation's mechanism: ``measure(results) -> {name: value}`` and the
    relation those values must satisfy for the mechanism to be supported by this run.

    ``contrast(results) -> {claim id: {name: value}}``: the same quantity measured for the claims it must *not*
    explain (the same claim on the other methods of the protocol). Where such a claim holds, the diagnostic must
    not hold for it (rules of judgement 5); ``None`` leaves the separation unchecked, which the report says."""

    text: str
    relation: Relation
    measure: Callable[[Mapping], Mapping[str, float]]
    contrast: Callable[[Mapping], Mapping[str, Mapping[str, float]]] | None = None


@dataclass(frozen=True)
class Deviation:
    """A known deviation of one claim, registered before the run (see the module docstring).

    ``reason`` is a ``str.format`` template; its fields are filled from the claim's measured values and the
    diagnostic's values of the same run (``"Grad-CAM {gradcam:.3f} beats RISE {rise:.3f} ..."``), so it never
    carries a number from an earlier run. ``profiles``: where it applies (the embedded ones by default)."""

    claim_id: str
    reason: str
    diagnostic: Diagnostic
    profiles: tuple[str, ...] = ("default", "smoke")

    def __post_init__(self):
        if not self.reason.strip():
            raise ValueError(f"deviation of {self.claim_id}: a known deviation needs a written reason")
        if not isinstance(self.diagnostic, Diagnostic):
            raise TypeError(f"deviation of {self.claim_id}: name a Diagnostic (a measured quantity that tests the reason)")


def register(*deviations: Deviation) -> dict[str, Deviation]:
    """A paper's registry: exact claim id -> Deviation (duplicates refused)."""
    out: dict[str, Deviation] = {}
    for d in deviations:
        if d.claim_id in out:
            raise ValueError(f"two deviations registered for claim {d.claim_id!r}")
        out[d.claim_id] = d
    return out


def sample_mean(values: list[float] | list[list[float]]) -> float:
    """The mean of a name's samples: a flat list (one value per unit) or a table (replicates x units)."""
    flat = [x for row in values for x in row] if values and isinstance(values[0], list) else values
    return math.fsum(flat) / len(flat)


def _sample_values(claim_id: str, name: str, values) -> list[float] | list[list[float]]:
    """A name's samples as floats: a flat list (one value per unit) or a rectangular table (replicates x units)."""
    values = list(values)
    if values and isinstance(values[0], (list, tuple)):
        rows = [[float(x) for x in row] for row in values]
        if len({len(r) for r in rows}) != 1 or not rows[0]:
            lengths = sorted({len(r) for r in rows})
            raise ValueError(f"claim {claim_id}: the samples of {name!r} are a table of replicates x units, so every "
                             f"row needs the same number of units; got rows of lengths {lengths}")
        return rows
    return [float(x) for x in values]


@dataclass
class Claim:
    """One checkable statement of a paper, and our measurement of it.

    ``measured``: the numbers the relation reads (name -> float). ``samples``: per-sample values (name -> list,
    the same images in the same order for every name) for the names whose comparisons are decided by the paired
    bootstrap, or a table of replicates x units (one row per network trained in the run, e.g. per training seed;
    rows of equal length) judged by the two-level bootstrap (``relations``); ``measured[name]`` must be their
    mean. ``paper``: the published values, shown side by side.
    ``kind``: ``claim``, ``sanity`` (holds by construction; reported, never counted as reproduced) or ``benchmark``
    (a cost measured on this machine).
    ``deviation``: filled by :func:`apply_deviations` from the paper's registry, never by hand.
    ``protocols``: the evaluation protocols the measured numbers come from (names of the run's
    ``protocol_validity``); ``validity``: their verdicts, filled by :func:`apply_validity`, never by hand.
    """

    id: str
    experiment: str
    text: str
    relation: Relation
    measured: dict[str, float]
    paper: dict[str, PaperValue] = field(default_factory=dict)
    samples: dict[str, list[float] | list[list[float]]] = field(default_factory=dict)
    kind: str = "claim"
    profile: str | None = None
    deviation: dict | None = None
    protocols: tuple[str, ...] = ()
    validity: dict | None = None
    findings: tuple[str, ...] = ()
    min_effect: MinimumEffect | None = None
    _verdict: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        self.measured = {k: float(v) for k, v in self.measured.items()}
        self.protocols = tuple(self.protocols)
        self.findings = tuple(self.findings)
        if isinstance(self.min_effect, dict):
            self.min_effect = MinimumEffect.from_dict(self.min_effect)
        if self.findings and self.kind == SANITY:
            raise ValueError(f"claim {self.id}: a sanity check holds by construction and tests no finding")
        if self.protocols and self.kind != "claim":
            raise ValueError(f"claim {self.id}: only kind 'claim' rests on a protocol, got kind {self.kind!r}")
        missing = self.relation.names() - set(self.measured)
        if missing:
            raise ValueError(f"claim {self.id}: relation reads {sorted(missing)} which are not in measured {sorted(self.measured)}")
        self.samples = {k: _sample_values(self.id, k, v) for k, v in self.samples.items()}
        for k, v in self.samples.items():
            if k not in self.measured:
                raise ValueError(f"claim {self.id}: samples of {k!r} but no measured value {k!r} (their mean)")
            if not v:  # an empty table row is refused by _sample_values
                raise ValueError(f"claim {self.id}: samples of {k!r} are empty")
            mean = sample_mean(v)
            if not math.isclose(mean, self.measured[k], rel_tol=1e-6, abs_tol=1e-9):
                raise ValueError(f"claim {self.id}: measured {k}={self.measured[k]:.6g} is not the mean of its samples ({mean:.6g})")

    # -- status
    @property
    def verdict(self):
        if self._verdict is None:
            try:
                self._verdict = judge(self.relation, self.measured, self.samples,
                                      min_effect=self.min_effect.value if self.min_effect else 0.0)
            except (KeyError, ValueError) as e:
                from lightning_modules.reporting.relations import Verdict

                self._verdict = Verdict(FAILS, problems=[str(e)])
        return self._verdict

    @property
    def relation_status(self) -> str:
        """The relation's own verdict: holds / fails / inconclusive."""
        return self.verdict.status

    @property
    def holds(self) -> bool:
        return self.relation_status == HOLDS

    @property
    def status(self) -> str:
        base = self.relation_status
        if self.kind == SANITY:
            return SANITY if base == HOLDS else FAILS
        if self.protocols and not self.protocols_valid and not self.verdict.problems:
            return NOT_VALID
        if self.deviation is None:
            return base
        if base == HOLDS:
            return FAILS
        if base == INCONCLUSIVE:
            return INCONCLUSIVE
        return DEVIATION if self.deviation["diagnostic"]["status"] == HOLDS else FAILS

    @property
    def protocols_valid(self) -> bool:
        """Every protocol the claim rests on is valid in this run (True for a claim that names none)."""
        if not self.protocols:
            return True
        if self.validity is None:
            raise ValueError(f"claim {self.id} rests on {list(self.protocols)} but no verdict is attached: "
                             "build it with apply_validity (replications.contract.claims_for)")
        return all(self.validity[p]["valid"] for p in self.protocols)

    @property
    def problem(self) -> str | None:
        """Why a claim's status is ``fails`` (None otherwise)."""
        if self.status != FAILS:
            return None
        if self.verdict.problems:
            return "; ".join(self.verdict.problems)
        if self.kind == SANITY:
            return "sanity check fails"
        if self.deviation is not None and self.relation_status == HOLDS:
            return "newly holds: remove the deviation from deviations.py"
        if self.deviation is not None:
            d = self.deviation["diagnostic"]
            if d.get("separation") and d.get("problem"):
                return d["problem"]
            return f"the deviation's diagnostic does not hold ({d['relation_text']} with {d['measured']}): its stated mechanism is not supported by this run"
        return "not reproduced: no registered mechanism explains it"

    @property
    def blocking(self) -> bool:
        """A failure that makes the report invalid (``check`` fails): a sanity check that fails, a value that cannot
        be judged (NaN, a missing name), or a misused registry (a deviation whose diagnostic fails or whose claim
        holds). A claim that simply does not reproduce is reported as failing; it is a result, not a broken report.
        A ``benchmark`` claim's deviation does not block: its ratio and its diagnostic are timings on a shared
        machine, which move with the load (measured on fong2017's mask-overhead claim: diagnostic 0.243 on a quiet
        machine, 0.178 beside a training), so a failing one is reported, not a broken report."""
        if self.status != FAILS:
            return False
        if self.kind == "benchmark":
            return bool(self.verdict.problems)
        return bool(self.verdict.problems) or self.kind == SANITY or self.deviation is not None

    # -- serialisation
    def to_dict(self) -> dict:
        v = self.verdict
        out = {
            "id": self.id,
            "experiment": self.experiment,
            "kind": self.kind,
            "text": self.text,
            "relation": self.relation.to_dict(),
            "relation_text": self.relation.describe(),
            "measured": self.measured,
            "samples": self.samples,
            "intervals": [i.to_dict() for i in v.intervals],
            "paper": {k: p.to_dict() for k, p in self.paper.items()},
            "deviation": self.deviation,
            "profile": self.profile,
            "relation_status": v.status,
            "status": self.status,
            "problem": self.problem,
            "findings": list(self.findings),
            "min_effect": self.min_effect.to_dict() if self.min_effect else None,
        }
        if v.negligible:
            out["negligible"] = True
        if self.protocols:  # absent otherwise, so reports without protocol verdicts keep their form
            out["protocols"] = list(self.protocols)
            out["validity"] = self.validity
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Claim":
        if not isinstance(d, dict):
            raise TypeError(f"a claim must be a JSON object, got {type(d).__name__}")
        if d.get("known_deviation") is not None:
            # a free-text excuse with no diagnostic: the contract has none (reports written before it stored null)
            raise ValueError("a free-text known_deviation is not part of the contract; register the deviation, "
                             "with its diagnostic, in replications/<paper>/deviations.py")
        dev = d.get("deviation")
        if dev is not None and not (isinstance(dev, dict) and isinstance(dev.get("diagnostic"), dict)
                                    and "status" in dev["diagnostic"]):
            diag = dev.get("diagnostic", None) if isinstance(dev, dict) else None
            got = (f"a {type(dev).__name__}" if not isinstance(dev, dict) else
                   "a diagnostic without a status" if isinstance(diag, dict) else
                   "diagnostic null" if diag is None else f"diagnostic {diag!r}")
            raise ValueError(f"its deviation has no judged diagnostic (got {got}); a stored deviation carries its "
                             "diagnostic's verdict. Fix: re-render the report from its stored results with "
                             "`python -m replications.<paper> report` (the diagnostic is registered in "
                             "replications/<paper>/deviations.py)")
        if d.get("protocols") and not isinstance(d.get("validity"), dict):
            raise ValueError("a claim that rests on protocols must carry their verdicts ('validity'); re-run the fit")
        return cls(
            id=d["id"], experiment=d["experiment"], text=d["text"], relation=Relation.from_dict(d["relation"]),
            measured=d["measured"], paper={k: PaperValue.from_dict(v) for k, v in d.get("paper", {}).items()},
            samples=d.get("samples", {}), kind=d.get("kind", "claim"), profile=d.get("profile"),
            deviation=d.get("deviation"), protocols=tuple(d.get("protocols") or ()), validity=d.get("validity"),
            findings=tuple(d.get("findings") or ()), min_effect=MinimumEffect.from_dict(d.get("min_effect")),
        )


class _Fields(string.Formatter):
    def get_value(self, key, args, kwargs):
        if isinstance(key, str) and key not in kwargs:
            raise KeyError(f"the reason refers to {{{key}}}, which is neither a measured nor a diagnostic value: {sorted(kwargs)}")
        return super().get_value(key, args, kwargs)


def apply_deviations(claims: Iterable[Claim], registry: Mapping[str, Deviation], results: Mapping, profile: str) -> list[Claim]:
    """Attach each registered deviation (exact claim id, this profile) to its claim, with its diagnostic measured
    from ``results`` and its reason rendered with this run's numbers. A registered id that names no claim of the
    run is an error: the registry must name the claims as they are."""
    claims = list(claims)
    ids = {c.id for c in claims}
    active = {k: d for k, d in registry.items() if profile in d.profiles}
    unknown = sorted(set(active) - ids)
    if unknown:
        raise ValueError(f"deviations registered for claims this run does not make: {unknown}; fix the ids in deviations.py")
    by_id = {c.id: c for c in claims}
    for c in claims:
        dev = active.get(c.id)
        if dev is None:
            continue
        if c.kind == SANITY:
            raise ValueError(f"claim {c.id} is a sanity check: it cannot carry a deviation")
        values = {k: float(v) for k, v in dict(dev.diagnostic.measure(results)).items()}
        try:
            verdict = judge(dev.diagnostic.relation, values)
            diag_status, diag_problem = verdict.status, None
        except (KeyError, ValueError) as e:
            diag_status, diag_problem = FAILS, str(e)
        separation = _separation(c.id, dev.diagnostic, results, by_id)
        if separation is not None and diag_status == HOLDS:
            shared = [s["claim"] for s in separation if s["claim_status"] == HOLDS and s["diagnostic"] == HOLDS]
            if shared:
                diag_status = FAILS
                diag_problem = (f"the diagnostic does not separate: it also holds for {shared}, whose claims hold "
                                "(rules of judgement 5)")
        reason = _Fields().format(dev.reason, **{**c.measured, **values})
        c.deviation = {
            "reason": reason,
            "diagnostic": {"text": dev.diagnostic.text, "relation": dev.diagnostic.relation.to_dict(),
                           "relation_text": dev.diagnostic.relation.describe(), "measured": values,
                           "status": diag_status, "problem": diag_problem, "separation": separation},
        }
    return claims


def _separation(claim_id: str, diagnostic: Diagnostic, results: Mapping, by_id: Mapping[str, Claim]) -> list | None:
    """The diagnostic judged on each contrast claim: ``[{claim, claim_status, diagnostic, measured}]`` (None where the
    diagnostic names no contrast)."""
    if diagnostic.contrast is None:
        return None
    rows = []
    for other, values in dict(diagnostic.contrast(results)).items():
        if other == claim_id or other not in by_id:
            raise ValueError(f"deviation of {claim_id}: its diagnostic's contrast names {other!r}, which is "
                             f"{'the claim itself' if other == claim_id else 'not a claim of this run'}")
        values = {k: float(v) for k, v in dict(values).items()}
        try:
            status = judge(diagnostic.relation, values).status
        except (KeyError, ValueError):
            status = FAILS
        rows.append({"claim": other, "claim_status": by_id[other].relation_status, "diagnostic": status,
                     "measured": values})
    return rows


def apply_validity(claims: Iterable[Claim], verdicts: Mapping[str, Mapping]) -> list[Claim]:
    """Attach to each claim the verdicts (``lightning_modules.reporting.validity.judge``) of the protocols it rests
    on, from this run. A claim naming a protocol the run did not judge is an error."""
    from lightning_modules.reporting.validity import verdict_summary

    claims = list(claims)
    for c in claims:
        if not c.protocols:
            continue
        unknown = [p for p in c.protocols if p not in verdicts]
        if unknown:
            raise ValueError(f"claim {c.id} rests on protocols {unknown} that this run did not judge "
                             f"(judged: {sorted(verdicts)}); store them in results['protocol_validity']")
        c.validity = {p: verdict_summary(verdicts[p]) for p in c.protocols}
    return claims
