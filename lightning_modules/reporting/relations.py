"""Relations between measured numbers, judged with a seeded paired bootstrap where per-sample values exist.

A :class:`Relation` is a small serialisable expression over named measured numbers: ``Relation.lt("rise",
"gradcam")``, ``Relation.order([...])``, ``Relation.at_least("accuracy", 0.9)``, ``Relation.all_of(...)``. It is
evaluated by :func:`judge` into a :class:`Verdict`:

- an operand that has **per-sample values** (one number per evaluated image, or per seed; the same images in the
  same order for every name of a claim) is compared through the 95% interval of the paired mean difference, and
  the comparison **holds** when the interval lies on the paper's side of zero, **fails** when it lies on the other
  side, and is **inconclusive** otherwise. The interval is the *union* of a paired percentile bootstrap (the
  images resampled with replacement ``N_BOOTSTRAP`` times, one seeded generator shared by every comparison of the
  claim, so the pairing holds) and Student's t interval with n - 1 degrees of freedom. The percentile bootstrap
  alone is anti-conservative at small n (on null data it gives a false "holds" about 13% of the time at n = 3,
  nominal 2.5%): the t interval is exact for normal differences at every n, and the union keeps the rate at or
  below nominal (rules of judgement 2; ``tests/test_judgement_rules.py`` measures it at n = 3, 5, 16, 64);
- an operand whose samples are a **table of replicates x units** (one row per network trained in the run, e.g. a
  detector per training seed; one column per evaluated image, the same in every row) is compared through the
  union of a two-level paired percentile bootstrap (rows and columns resampled with replacement) and Student's t
  interval whose variance is the sum of the row means' and the column means' variances of the mean, with the
  fewer of the two counts less one as its degrees of freedom: the training's own randomness is part of the
  uncertainty, so a status does not hang on which seeds were drawn, and with few replicates the t part keeps the
  false "holds" rate at or below nominal (``tests/test_judgement_rules.py`` measures it at 3 and 7 replicates);
- operands without samples (a single number: an accuracy of a model, a timing ratio) are compared as numbers.

**Minimum effect** (rule 3): ``judge(..., min_effect=m)`` makes a decided comparison between two measured
quantities whose mean distance from the relation's boundary is below ``m`` "inconclusive (negligible)": the
interval excludes zero, but the effect is too small to matter. Comparisons with a constant bound are not affected.

``all_of`` fails when any part fails and holds when all hold; ``any_of`` holds when any part holds and fails when
all fail; ``every`` is ``all_of`` over the points of a curve with a Bonferroni correction (each comparison at level
``(1 - CONFIDENCE) / m``); anything else is inconclusive. An inconclusive comparison records how many samples
would decide it if the mean difference and its spread stayed as measured (``n_to_decide``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import stats

#: bootstrap resamples of every interval; 2,000 keeps the 95% limits' Monte Carlo error well below their width
N_BOOTSTRAP = 2000
#: two-sided coverage of the intervals
CONFIDENCE = 0.95
#: the bootstrap generator's seed (the same intervals on every machine: numpy's PCG64 is platform independent)
BOOTSTRAP_SEED = 0

_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"


def comparison_shorthand(name: str, op: str) -> classmethod:
    """The :class:`Relation` constructor ``name(left, right, margin=0.0)`` of the fixed comparison ``op``
    (``Relation.lt`` ... ``Relation.ge``): ``left + margin op right`` for ``<`` and ``<=``, ``left op right +
    margin`` for ``>`` and ``>=`` (the side :func:`judge` adds the margin to)."""

    def constructor(cls, left, right, margin: float = 0.0) -> "Relation":
        return cls.compare(left, op, right, margin)

    constructor.__name__, constructor.__qualname__ = name, f"Relation.{name}"
    constructor.__doc__ = f"left + margin {op} right." if op in ("<", "<=") else f"left {op} right + margin."
    return classmethod(constructor)


@dataclass(frozen=True)
class Relation:
    """A relation over named measured numbers, serialisable and re-checkable from ``results.json``.

    Operands are names of entries in a claim's ``measured`` or plain numbers. Build with the constructors:
    ``Relation.lt("mask", "gradient")``, ``Relation.order(["mask", "gradcam", "gradient"], "<")``,
    ``Relation.at_least("accuracy", 0.95)``, ``Relation.between("auc", 0.1, 0.2)``,
    ``Relation.close("auc", 0.1076, atol=0.02)``, ``Relation.all_of(...)``.
    """

    kind: str
    args: tuple

    # -- constructors
    @classmethod
    def compare(cls, left, op: str, right, margin: float = 0.0) -> "Relation":
        if op not in _OPS:
            raise ValueError(f"unknown comparison {op!r}; use one of {list(_OPS)}")
        return cls("compare", (left, op, right, float(margin)))

    lt = comparison_shorthand("lt", "<")
    le = comparison_shorthand("le", "<=")
    gt = comparison_shorthand("gt", ">")
    ge = comparison_shorthand("ge", ">=")

    @classmethod
    def at_least(cls, name, bound: float) -> "Relation":
        return cls.compare(name, ">=", float(bound))

    @classmethod
    def at_most(cls, name, bound: float) -> "Relation":
        return cls.compare(name, "<=", float(bound))

    @classmethod
    def between(cls, name, low: float, high: float) -> "Relation":
        return cls("between", (name, float(low), float(high)))

    @classmethod
    def close(cls, name, target, atol: float = 0.0, rtol: float = 0.0) -> "Relation":
        """|name - target| <= atol + rtol * |target| (target: a number or another name)."""
        return cls("close", (name, target, float(atol), float(rtol)))

    @classmethod
    def order(cls, names: Sequence[str], op: str = "<") -> "Relation":
        """names[0] op names[1] op ... (e.g. localisation errors ascending)."""
        if op not in _OPS:
            raise ValueError(f"unknown comparison {op!r}; use one of {list(_OPS)}")
        if len(names) < 2:
            raise ValueError("an ordering needs at least two names")
        return cls("order", (tuple(names), op))

    @classmethod
    def best(cls, name: str, others: Sequence[str], op: str = "<") -> "Relation":
        """``name`` beats every one of ``others`` (``<``: lower is better)."""
        others = [o for o in others if o != name]
        if not others:
            raise ValueError(f"{name!r} must be compared with at least one other name")
        return cls.all_of(*(cls.compare(name, op, o) for o in others))

    @classmethod
    def all_of(cls, *relations: "Relation") -> "Relation":
        return cls("all_of", tuple(relations))

    @classmethod
    def any_of(cls, *relations: "Relation") -> "Relation":
        return cls("any_of", tuple(relations))

    @classmethod
    def every(cls, *relations: "Relation") -> "Relation":
        """Every part holds, each judged at the Bonferroni-corrected level ``(1 - CONFIDENCE) / len(relations)``
        (a curve judged at every point: rules of judgement 1)."""
        if not relations:
            raise ValueError("every() needs at least one relation")
        return cls("every", tuple(relations))

    # -- inspection
    def names(self) -> set[str]:
        """Every measured name the relation reads."""
        if self.kind in ("all_of", "any_of", "every"):
            return set().union(*(r.names() for r in self.args))
        if self.kind == "order":
            return set(self.args[0])
        if self.kind == "compare":
            return {a for a in (self.args[0], self.args[2]) if isinstance(a, str)}
        if self.kind == "between":
            return {self.args[0]}
        if self.kind == "close":
            return {a for a in (self.args[0], self.args[1]) if isinstance(a, str)}
        raise ValueError(f"unknown relation kind {self.kind!r}")

    def evaluate(self, measured: dict) -> bool:
        """The relation on point values alone (no samples): True or False."""
        return judge(self, measured).status == HOLDS

    def describe(self) -> str:
        fmt = lambda o: o if isinstance(o, str) else f"{o:g}"  # noqa: E731
        if self.kind == "compare":
            left, op, right, margin = self.args
            if margin:
                return f"{fmt(left)} + {margin:g} {op} {fmt(right)}" if op in ("<", "<=") else f"{fmt(left)} {op} {fmt(right)} + {margin:g}"
            return f"{fmt(left)} {op} {fmt(right)}"
        if self.kind == "between":
            name, low, high = self.args
            return f"{low:g} <= {name} <= {high:g}"
        if self.kind == "close":
            name, target, atol, rtol = self.args
            tol = " + ".join(t for t in (f"{atol:g}" if atol else "", f"{rtol:g}*|{fmt(target)}|" if rtol else "") if t) or "0"
            return f"|{name} - {fmt(target)}| <= {tol}"
        if self.kind == "order":
            names, op = self.args
            return f" {op} ".join(names)
        if self.kind == "all_of":
            return " and ".join(f"({r.describe()})" for r in self.args)
        if self.kind == "any_of":
            return " or ".join(f"({r.describe()})" for r in self.args)
        if self.kind == "every":
            return "every of [" + "; ".join(r.describe() for r in self.args) + f"] (Bonferroni, m={len(self.args)})"
        return self.kind

    def to_dict(self) -> dict:
        if self.kind in ("all_of", "any_of", "every"):
            return {"kind": self.kind, "args": [r.to_dict() for r in self.args]}
        args = [list(a) if isinstance(a, tuple) else a for a in self.args]
        return {"kind": self.kind, "args": args}

    @classmethod
    def from_dict(cls, d: dict) -> "Relation":
        if not isinstance(d, dict) or "kind" not in d or "args" not in d:
            raise ValueError(f"a relation must be an object with 'kind' and 'args', got {d!r}")
        kind, args = d["kind"], d["args"]
        if kind in ("all_of", "any_of", "every"):
            return cls(kind, tuple(cls.from_dict(r) for r in args))
        if kind == "order":
            names, op = args
            return cls(kind, (tuple(names), op))
        if kind not in ("compare", "between", "close"):
            raise ValueError(f"unknown relation kind {kind!r}")
        return cls(kind, tuple(args))


# --------------------------------------------------------------------------------------------- judging
@dataclass
class Interval:
    """A paired-bootstrap interval of ``left - right`` (``right`` may be a constant)."""

    left: str
    right: str
    mean: float
    low: float
    high: float
    n: int
    status: str
    #: samples that would decide an inconclusive comparison at the measured mean and spread (None otherwise)
    n_to_decide: int | None = None
    #: the interval excludes zero but the effect is below the claim's minimum effect (status: inconclusive)
    negligible: bool = False
    #: two-sided coverage of the interval (below CONFIDENCE's 0.95 inside a Bonferroni-corrected ``every``)
    confidence: float = CONFIDENCE

    def to_dict(self) -> dict:
        out = {"left": self.left, "right": self.right, "mean": self.mean, "low": self.low, "high": self.high,
               "n": self.n, "status": self.status, "n_to_decide": self.n_to_decide}
        if self.negligible:
            out["negligible"] = True
        if self.confidence != CONFIDENCE:
            out["confidence"] = self.confidence
        return out

    def render(self) -> str:
        txt = f"{self.left} − {self.right} = {self.mean:+.4g} [{self.low:+.4g}, {self.high:+.4g}]"
        if self.n_to_decide:
            txt += f" (n={self.n}; ~{self.n_to_decide} would decide)"
        if self.negligible:
            txt += " (negligible)"
        return txt


@dataclass
class Verdict:
    status: str
    intervals: list[Interval] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def negligible(self) -> bool:
        """Inconclusive only because a decided comparison's effect is below the minimum effect."""
        return self.status == INCONCLUSIVE and any(i.negligible for i in self.intervals)


class _Bootstrap:
    """Resampling indices shared by every comparison of one claim (the pairing across names)."""

    def __init__(self, seed: int = BOOTSTRAP_SEED):
        self.seed = seed
        self._indices: dict[tuple[int, int], np.ndarray] = {}

    def indices(self, n: int, stream: int = 0) -> np.ndarray:
        """``(N_BOOTSTRAP, n)`` resampling indices; ``stream`` 1: the replicates' (rows') own draws, independent of
        the units' even where their counts are equal."""
        key = (n, stream)
        if key not in self._indices:
            seed = [self.seed, n] if stream == 0 else [self.seed, n, stream]
            self._indices[key] = np.random.default_rng(seed).integers(0, n, size=(N_BOOTSTRAP, n))
        return self._indices[key]

    def interval(self, diff: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
        """(mean, low, high): the union of the percentile bootstrap and Student's t interval of the mean; a 2-D
        ``diff`` (replicates x units): :meth:`interval_replicated`."""
        if diff.ndim == 2:
            return self.interval_replicated(diff, confidence)
        means = diff[self.indices(diff.size)].mean(axis=1)
        alpha = (1.0 - confidence) / 2.0
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        mean = float(diff.mean())
        t_low, t_high = t_interval(diff, confidence)
        return mean, float(min(low, t_low)), float(max(high, t_high))

    def interval_replicated(self, diff: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
        """(mean, low, high) of a replicates x units table: the union of the two-level percentile bootstrap (the
        rows and the columns resampled with replacement, the same draws for every comparison of the claim) and
        :func:`replicated_t_interval`."""
        k, n = diff.shape
        rows, cols = self.indices(k, stream=1), self.indices(n)
        # the mean of each resampled table is the mean over its rows of the row's mean over the resampled columns
        means = np.empty(N_BOOTSTRAP)
        for start in range(0, N_BOOTSTRAP, 250):  # (250, k, n) at a time: bounded memory at any table size
            r, c = rows[start:start + 250], cols[start:start + 250]
            means[start:start + 250] = diff[r[:, :, None], c[:, None, :]].mean(axis=(1, 2))
        alpha = (1.0 - confidence) / 2.0
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        t_low, t_high = replicated_t_interval(diff, confidence)
        return float(diff.mean()), float(min(low, t_low)), float(max(high, t_high))


def replicated_t_interval(diff: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t interval of the mean of a replicates x units table ``diff`` (k x n): variance ``var(row means) / k
    + var(column means) / n`` (each term carries the residual once more: conservative), ``min(k, n) - 1`` degrees
    of freedom (Satterthwaite's bound from below). One replicate gives an unbounded interval (its training's
    randomness is not measured), one unit too; a constant table the exact point."""
    diff = np.asarray(diff, dtype=np.float64)
    k, n = diff.shape
    mean = float(diff.mean())
    if k < 2 or n < 2:
        return -math.inf, math.inf
    a = float(diff.mean(axis=1).var(ddof=1)) / k
    b = float(diff.mean(axis=0).var(ddof=1)) / n
    var = a + b
    if var == 0.0:
        return mean, mean
    # Satterthwaite's df, estimated from the same few rows, grows exactly when the rows' variance comes out small
    # (false "holds" 3.7% at 3 replicates): the fewer of the two counts bounds it instead (1.1% at 3, 2.1% at 7)
    df = min(k, n) - 1
    half = float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, df)) * math.sqrt(var)
    return mean - half, mean + half


def t_interval(diff: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t interval of the mean of ``diff`` (n - 1 degrees of freedom); a single value gives an unbounded
    interval (one unit decides nothing), a constant one the exact point."""
    diff = np.asarray(diff, dtype=np.float64).ravel()
    mean = float(diff.mean())
    if diff.size < 2:
        return -math.inf, math.inf
    se = float(diff.std(ddof=1)) / math.sqrt(diff.size)
    if se == 0.0:
        return mean, mean
    half = float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, diff.size - 1)) * se
    return mean - half, mean + half


def _point(operand, measured: dict) -> float:
    if isinstance(operand, str):
        if operand not in measured:
            raise KeyError(f"relation refers to {operand!r}, which is not among the measured values {sorted(measured)}")
        v = measured[operand]
    else:
        v = operand
    v = float(v)
    if math.isnan(v):
        raise ValueError(f"measured value {operand!r} is NaN")
    return v


def _n_to_decide(diff: np.ndarray, mean: float) -> int | None:
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    if mean == 0.0 or sd == 0.0:
        return None
    z = 1.959963984540054
    return int(math.ceil((z * sd / abs(mean)) ** 2))


def _compare(left, op: str, right, margin: float, measured: dict, samples: dict, boot: _Bootstrap,
             min_effect: float = 0.0, confidence: float = CONFIDENCE) -> Verdict:
    lower_is_left = op in ("<", "<=")
    has = [isinstance(o, str) and o in samples for o in (left, right)]
    # the minimum effect applies between two measured quantities, never against a stated constant bound
    effect_applies = min_effect > 0 and isinstance(left, str) and isinstance(right, str)
    if not any(has):
        a, b = _point(left, measured), _point(right, measured)
        ok = _OPS[op](a + margin, b) if lower_is_left else _OPS[op](a, b + margin)
        distance = abs((a + margin - b) if lower_is_left else (a - b - margin))
        if effect_applies and distance < min_effect:
            return Verdict(INCONCLUSIVE, [Interval(str(left), str(right), a - b, a - b, a - b, 1, INCONCLUSIVE,
                                                   negligible=True)])
        return Verdict(HOLDS if ok else FAILS)
    vals = []
    for o, h in zip((left, right), has):
        vals.append(np.asarray(samples[o], dtype=np.float64) if h else np.float64(_point(o, measured)))
    if all(has) and vals[0].shape != vals[1].shape:
        raise ValueError(f"paired samples of {left!r} ({'x'.join(map(str, vals[0].shape))}) and {right!r} "
                         f"({'x'.join(map(str, vals[1].shape))}) differ in length or shape")
    diff = np.broadcast_to(vals[0] - vals[1], np.broadcast_shapes(np.shape(vals[0]), np.shape(vals[1]))).astype(np.float64)
    if not np.isfinite(diff).all():
        raise ValueError(f"samples of {left!r} or {right!r} contain NaN or Inf")
    # "left + margin < right" <=> left - right + margin < 0; "left > right + margin" <=> left - right - margin > 0
    shifted = diff + margin if lower_is_left else diff - margin
    mean, low, high = boot.interval(shifted, confidence)
    if lower_is_left:
        status = HOLDS if high < 0 else FAILS if low > 0 else INCONCLUSIVE
    else:
        status = HOLDS if low > 0 else FAILS if high < 0 else INCONCLUSIVE
    # a degenerate interval (every resample equal) is exact: judge the equality by the operator itself
    if low == high == 0.0:
        status = HOLDS if op in ("<=", ">=") else FAILS
    negligible = effect_applies and status != INCONCLUSIVE and abs(mean) < min_effect
    if negligible:
        status = INCONCLUSIVE
    right_name = right if isinstance(right, str) else f"{right:g}"
    if margin:
        right_name += f" {'-' if lower_is_left else '+'} {margin:g}"
    # a replicates x units table counts its units (columns); more units alone need not decide it (its replicates'
    # spread may dominate), so it states no n_to_decide
    n = int(shifted.shape[-1])
    decide = status == INCONCLUSIVE and not negligible and shifted.ndim == 1
    return Verdict(status, [Interval(str(left), right_name, mean, low, high, n, status,
                                     _n_to_decide(shifted, mean) if decide else None, negligible, confidence)])


def _combine(verdicts: list[Verdict], mode: str) -> Verdict:
    statuses = [v.status for v in verdicts]
    if mode == "all":
        status = FAILS if FAILS in statuses else HOLDS if all(s == HOLDS for s in statuses) else INCONCLUSIVE
    else:
        status = HOLDS if HOLDS in statuses else FAILS if all(s == FAILS for s in statuses) else INCONCLUSIVE
    return Verdict(status, [i for v in verdicts for i in v.intervals], [p for v in verdicts for p in v.problems])


def judge(relation: Relation, measured: dict, samples: dict | None = None, seed: int = BOOTSTRAP_SEED,
          min_effect: float = 0.0) -> Verdict:
    """The verdict of ``relation`` on ``measured`` point values and (optional) per-sample values; a decided
    comparison between two measured names closer than ``min_effect`` to its boundary is inconclusive (negligible).

    Raises ``KeyError`` for an unknown name and ``ValueError`` for NaN values or unpaired samples."""
    if not (min_effect >= 0 and math.isfinite(min_effect)):
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect!r}")
    return _judge(relation, measured, samples or {}, _Bootstrap(seed), float(min_effect), CONFIDENCE)


def _judge(r: Relation, measured: dict, samples: dict, boot: _Bootstrap, min_effect: float,
           confidence: float) -> Verdict:
    if r.kind == "compare":
        left, op, right, margin = r.args
        return _compare(left, op, right, margin, measured, samples, boot, min_effect, confidence)
    if r.kind == "order":
        names, op = r.args
        return _combine([_compare(a, op, b, 0.0, measured, samples, boot, min_effect, confidence)
                         for a, b in zip(names, names[1:])], "all")
    if r.kind == "all_of":
        return _combine([_judge(x, measured, samples, boot, min_effect, confidence) for x in r.args], "all")
    if r.kind == "any_of":
        return _combine([_judge(x, measured, samples, boot, min_effect, confidence) for x in r.args], "any")
    if r.kind == "every":
        level = 1.0 - (1.0 - confidence) / len(r.args)
        return _combine([_judge(x, measured, samples, boot, min_effect, level) for x in r.args], "all")
    if r.kind == "between":
        name, low, high = r.args
        return Verdict(HOLDS if low <= _point(name, measured) <= high else FAILS)
    if r.kind == "close":
        name, target, atol, rtol = r.args
        t = _point(target, measured)
        return Verdict(HOLDS if abs(_point(name, measured) - t) <= atol + rtol * abs(t) else FAILS)
    raise ValueError(f"unknown relation kind {r.kind!r}")
