"""Validity of an evaluation protocol on a benchmark, judged from per-image scores of the same run (issue 19, part 4).

A protocol (deletion / insertion AUC, pointing game, weak localisation, smallest suppressing box) can only tell
methods apart where a perfect map wins, an uninformative map loses, real methods differ and the score does not
saturate. :func:`judge` decides that from per-image values of an ``oracle`` map (the ground-truth evidence used as a
heatmap), a ``random`` map and at least two real methods, on the same images, with paired bootstrap 95% CIs over
images (one seeded resampling shared by every map). Its rules (a protocol failing one is *not valid* there):

1. ``oracle_best``: the oracle is the best map, or the best map's margin over it has a CI containing 0. A binary
   evidence mask leaves its pixels' order to the tie-breaking of a sort, and its score under an order-dependent
   protocol (deletion, pixel perturbation) depends on it (rules of judgement 6: 1.475 in raster order, 0.483 by
   guided backprop, on khakzar2019's MoRF): a run may store several oracle variants, ``oracle`` and
   ``oracle__<tie order>`` (:func:`lightning_modules.explainers.baselines.oracle_map`), and the check passes when
   *any* of them is best or within CI of the best; a protocol is not valid only when no reasonable oracle scores best;
2. ``random_worst``: no real method is CI-separated *worse* than random;
3. ``separated``: the best and the worst real method differ by a CI-separated margin;
4. ``not_saturated`` (with ``bound``): the best real method's mean stays on the unsaturated side of ``bound``;
5. any protocol-specific check (``extra_checks``), e.g. deletion's first step not reaching the floor.

A claim that rests on a protocol names it (``Claim.protocols``), and a paper's run stores the inputs of the verdict
in its plain results under ``protocol_validity`` (:func:`protocol_verdicts` reads them): the verdict is recomputed
from those numbers wherever the claims are built -- the run and ``check`` alike --, never carried from an earlier
run. A claim on a protocol that is not valid in the run gets the status ``not_valid``: it does not count as
reproduced, whatever its relation gives (``lightning_modules.reporting.claims``).

``lightning_modules.benchmarks.validity`` uses the same :func:`judge` for ``reports/benchmarks/validity.md``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence

import torch

N_BOOT = 2000
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


# --------------------------------------------------------------------------------------------- statistics
def bootstrap_weights(n: int, n_boot: int = N_BOOT, seed: int = 0) -> torch.Tensor:
    """``(n_boot, n)`` multiplicities of the images in each bootstrap resample (one seeded draw, shared by every
    map: the bootstrap is paired)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(n, (n_boot, n), generator=g)
    return torch.zeros(n_boot, n).scatter_add_(1, idx, torch.ones(n_boot, n))


def group_bootstrap_weights(groups: torch.Tensor, n_boot: int = N_BOOT, seed: int = 0) -> torch.Tensor:
    """``(n_boot, n)`` multiplicities of ``n`` values when whole groups are resampled (a cluster bootstrap:
    ``groups[i]`` is value i's group, e.g. its image); one seeded draw over the groups, shared by every map."""
    _, inverse = torch.unique(groups.cpu(), return_inverse=True)
    return bootstrap_weights(int(inverse.max()) + 1, n_boot, seed)[:, inverse]


def percentile_interval(boots: torch.Tensor) -> list[float]:
    """The 95% percentile interval of bootstrap replicates ``boots`` (NaN replicates dropped; ``[nan, nan]`` when
    none is left)."""
    x = boots[~torch.isnan(boots)]
    if x.numel() == 0:
        return [math.nan, math.nan]
    q = torch.quantile(x, torch.tensor([0.025, 0.975], dtype=x.dtype))
    return [float(q[0]), float(q[1])]


def statistic(values: torch.Tensor, weights: torch.Tensor | None = None, classes: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-image ``values`` (NaN left out), or with ``classes`` the mean over classes of the per-class
    mean (the pointing game's accuracy), for the data itself (``weights=None``) or every resample ``(R,)``."""
    v = values.double()
    w = torch.ones(1, v.numel(), dtype=torch.float64) if weights is None else weights.double()
    ok = ~torch.isnan(v)
    vv = torch.where(ok, v, torch.zeros_like(v))
    if classes is None:
        out = (w @ vv) / (w @ ok.double())
    else:
        onehot = torch.nn.functional.one_hot(classes.long()).double() * ok.double()[:, None]
        per_class = (w @ (vv[:, None] * onehot)) / (w @ onehot)
        out = torch.nanmean(per_class, 1)
    return out if weights is not None else out[0]


def judge(values: dict[str, torch.Tensor], higher_is_better: bool, classes: torch.Tensor | None = None,
          oracle: str = "oracle", random: str = "random", bound: float | None = None, n_boot: int = N_BOOT,
          seed: int = 0, extra_checks: dict | None = None, groups: torch.Tensor | None = None) -> dict:
    """Validity of one protocol from per-image ``values`` of every map (same images, same order).

    ``groups``: the resampling unit of each value when several values share one (the pointing game's (image,
    class) trials share their image): the bootstrap then resamples groups, each with all its values
    (:func:`group_bootstrap_weights`), so trials of one image are not counted as independent.
    ``bound``: the saturation bound of the best real method (pointing 0.98 from below, localisation error 0.02
    from above). ``extra_checks``: protocol-specific ``name -> (passed, detail)`` (e.g. deletion's first step).
    Returns the per-map means and 95% CIs, the best / worst real method, each rule's outcome and ``valid``.
    """
    values = {k: v.detach().float().cpu() for k, v in values.items()}
    classes = None if classes is None else classes.cpu()
    names = list(values)
    if oracle not in values or random not in values:
        raise ValueError(f"values need the {oracle!r} and {random!r} maps, got {names}")
    # every tie order of the oracle is an oracle (rule 6), never a real method
    oracles = [k for k in names if k == oracle or k.startswith(f"{oracle}__")]
    real = [n for n in names if n not in oracles and n != random]
    if len(real) < 2:
        raise ValueError("need at least two real methods to test separation")
    n = next(iter(values.values())).numel()
    if any(v.numel() != n for v in values.values()):
        raise ValueError("every map needs one value per image (the same images)")
    w = bootstrap_weights(n, n_boot, seed) if groups is None else group_bootstrap_weights(groups, n_boot, seed)
    sign = 1.0 if higher_is_better else -1.0
    point = {k: float(statistic(v, classes=classes)) for k, v in values.items()}
    boots = {k: statistic(v, w, classes) for k, v in values.items()}

    ci = percentile_interval

    def better_margin(a: str, b: str) -> torch.Tensor:  # > 0 where a is better than b
        return sign * (boots[a] - boots[b])

    key = lambda k: sign * point[k] if not math.isnan(point[k]) else -math.inf  # noqa: E731
    best_real, worst_real = max(real, key=key), min(real, key=key)
    best_all = max(names, key=key)
    checks: dict[str, dict] = {}
    if best_all in oracles:
        checks["oracle_best"] = {"passed": True, "detail": f"{best_all} is the best map"}
    else:
        margins = {o: ci(better_margin(best_all, o)) for o in oracles}
        passed = [o for o, m in margins.items() if m[0] <= 0]
        detail = "; ".join(f"{best_all} beats the {o} by CI {m[0]:.4g}..{m[1]:.4g}" for o, m in margins.items())
        checks["oracle_best"] = {"passed": bool(passed), "detail": detail}
    m = ci(better_margin(random, worst_real))
    worse_than_random = not (key(random) <= key(worst_real)) and m[0] > 0
    checks["random_worst"] = {"passed": not worse_than_random,
                              "detail": f"random - worst real ({worst_real}) margin CI {m[0]:.4g}..{m[1]:.4g}"}
    m = ci(better_margin(best_real, worst_real))
    checks["separated"] = {"passed": bool(m[0] > 0), "detail": f"best ({best_real}) - worst ({worst_real}) margin CI "
                                                               f"{m[0]:.4g}..{m[1]:.4g}"}
    if bound is not None:
        b = point[best_real]
        ok = b < bound if higher_is_better else b > bound
        checks["not_saturated"] = {"passed": bool(ok), "detail": f"best real {b:.4g} vs bound {bound}"}
    for name, (passed, detail) in (extra_checks or {}).items():
        checks[name] = {"passed": bool(passed), "detail": detail}
    return {
        "higher_is_better": higher_is_better,
        "n_images": n,
        "maps": {k: {"value": point[k], "ci95": ci(boots[k])} for k in names},
        "best_real": best_real,
        "worst_real": worst_real,
        "checks": checks,
        "valid": all(c["passed"] for c in checks.values()),
    }


# --------------------------------------------------------------------------------------------- from plain results
def protocol_spec(values: Mapping[str, list[float]], higher_is_better: bool, *, classes: list[int] | None = None,
                  bound: float | None = None, checks: Mapping[str, Mapping] | None = None,
                  groups: list[int] | None = None) -> dict:
    """The plain (JSON) inputs of one protocol's verdict, as a run stores them in ``results["protocol_validity"]``.

    ``groups``: each value's resampling unit when values share one (the image of a pointing trial; see ``judge``).
    ``values``: per-image values of ``oracle``, ``random`` and the real methods (the same images in the same order).
    ``checks``: protocol-specific checks as ``name -> {"value": x, "op": "<=", "bound": y, "text": "..."}``: passed
    when ``value op bound``; the value is a number of the run (e.g. the share of the drop left after the first step).
    """
    spec = {"higher_is_better": bool(higher_is_better),
            "values": {k: [float(x) for x in v] for k, v in values.items()},
            "classes": None if classes is None else [int(c) for c in classes],
            "bound": None if bound is None else float(bound),
            "checks": {}}
    if groups is not None:
        spec["groups"] = [int(g) for g in groups]
    for name, c in (checks or {}).items():
        if c["op"] not in _OPS:
            raise ValueError(f"check {name}: op must be one of {sorted(_OPS)}, got {c['op']!r}")
        spec["checks"][name] = {"value": float(c["value"]), "op": c["op"], "bound": float(c["bound"]),
                                "text": str(c.get("text", name))}
    return spec


#: the pointing game saturates at this accuracy of the best method (issue 19: best non-oracle pointing < 98%)
POINTING_SATURATION = 0.98
#: the difficult subset is judged only with at least this many images
MIN_DIFFICULT = 10
#: an area under a curve on [0, 1] (insertion AUC, every paper alike) is at its ceiling on an image when it is within
#: this distance of its end of the scale (above 1 - 0.05 for higher-is-better, below 0.05 otherwise) ...
AUC_CEILING_MARGIN = 0.05
#: ... and the protocol saturates when the best method is at its ceiling on more than this share of the images
#: (issue 37: RISE's full-image insertion AUC was above 0.97 on 95% of the images)
MAX_SHARE_AT_CEILING = 0.5


def share_at_ceiling(per_image: Sequence[float], higher_is_better: bool, margin: float = AUC_CEILING_MARGIN) -> float:
    """The share of images whose AUC (on [0, 1]) lies within ``margin`` of its ceiling: above ``1 - margin`` when
    higher is better, below ``margin`` otherwise (the protocol-specific check ``at_ceiling`` compares it with
    ``MAX_SHARE_AT_CEILING``). NaN for no images."""
    values = [float(v) for v in per_image]
    if not values:
        return math.nan
    hits = [v > 1 - margin if higher_is_better else v < margin for v in values]
    return sum(hits) / len(hits)


def pointing_specs(gt: str, hits: Mapping[str, list[float]], labels: list[int], difficult: list[bool],
                   bound: float = POINTING_SATURATION, min_difficult: int = MIN_DIFFICULT,
                   groups: list[int] | None = None) -> dict:
    """The specs ``pointing_<gt>_all`` and (with ``min_difficult`` difficult images or more)
    ``pointing_<gt>_difficult`` from per-trial hits (the same trials for every map), their target classes (the
    pointing game's mean over classes) and difficult flags; ``groups``: each trial's image where an image holds
    several trials (multi-label data: one trial per (image, class), resampled by image)."""
    n = len(labels)
    if len(difficult) != n or any(len(v) != n for v in hits.values()) or (groups is not None and len(groups) != n):
        raise ValueError(f"pointing hits, labels, difficult flags (and groups) must cover the same {n} trials")
    out = {f"pointing_{gt}_all": protocol_spec(hits, True, classes=labels, bound=bound, groups=groups)}
    hard = [i for i, f in enumerate(difficult) if f]
    if len(hard) >= min_difficult:
        out[f"pointing_{gt}_difficult"] = protocol_spec(
            {m: [v[i] for i in hard] for m, v in hits.items()}, True, classes=[labels[i] for i in hard], bound=bound,
            groups=None if groups is None else [groups[i] for i in hard])
    return out


def protocol_verdicts(specs: Mapping[str, Mapping] | None) -> dict[str, dict]:
    """``protocol -> judge(...)`` for every stored spec (see :func:`protocol_spec`); deterministic (seeded)."""
    out: dict[str, dict] = {}
    for protocol, spec in (specs or {}).items():
        values = {k: torch.tensor(v, dtype=torch.float64) for k, v in spec["values"].items()}
        classes = None if spec.get("classes") is None else torch.tensor(spec["classes"])
        extra = {}
        for name, c in (spec.get("checks") or {}).items():
            value = c["value"]
            passed = (not math.isnan(value)) and _OPS[c["op"]](value, c["bound"])
            extra[name] = (passed, f"{c['text']}: {value:.4g} (needs {c['op']} {c['bound']:.4g})")
        groups = None if spec.get("groups") is None else torch.tensor(spec["groups"])
        out[protocol] = judge(values, spec["higher_is_better"], classes=classes, bound=spec.get("bound"),
                              extra_checks=extra, groups=groups)
    return out


def verdict_summary(verdict: Mapping) -> dict:
    """What a claim keeps of a protocol's verdict: valid, and the failed checks with their numbers."""
    return {"valid": bool(verdict["valid"]),
            "failed": {k: c["detail"] for k, c in verdict["checks"].items() if not c["passed"]}}


#: the caption of :func:`validity_rows`' table (a paper appends what is specific to its run)
VALIDITY_CAPTION = (
    "Validity of each protocol in this run (lightning_modules.reporting.validity): the oracle map must be best (or "
    "within CI of the best), random must not beat any method, the best and worst methods must be CI-separated, and "
    "the protocol must not saturate; means over images (pointing: over classes) with paired bootstrap 95% CIs. "
    "Claims on a protocol that is not valid here are reported as not valid, not as reproduced.")


def add_validity_table(report, specs: Mapping[str, Mapping] | None, here: str) -> dict[str, dict]:
    """Judge the stored protocol specs and add the report's ``protocol_validity`` table (when there are any): the
    shared caption, then ``here`` (what each protocol means in this paper's run). Returns the verdicts."""
    verdicts = protocol_verdicts(specs)
    if verdicts:
        report.add_table("protocol_validity", validity_rows(verdicts), caption=VALIDITY_CAPTION + " " + here)
    return verdicts


def validity_rows(verdicts: Mapping[str, Mapping]) -> list[dict]:
    """One report row per judged protocol: verdict, oracle, random, best and worst method with CIs, failed checks."""
    rows = []
    for protocol, v in verdicts.items():
        maps = v["maps"]

        def ci(k: str) -> str:
            return f"{maps[k]['value']:.4g} [{maps[k]['ci95'][0]:.4g}, {maps[k]['ci95'][1]:.4g}]"

        rows.append({
            "protocol": protocol + (" (higher better)" if v["higher_is_better"] else " (lower better)"),
            "verdict": "valid" if v["valid"] else "**not valid**",
            "oracle": "; ".join((f"{k.split('__', 1)[1]}: " if "__" in k else "") + ci(k)
                                for k in maps if k == "oracle" or k.startswith("oracle__")),
            "random": ci("random"),
            "best method": f"{v['best_real']} {ci(v['best_real'])}", "worst method": f"{v['worst_real']} {ci(v['worst_real'])}",
            "failed checks": "; ".join(f"{k}: {c['detail']}" for k, c in v["checks"].items() if not c["passed"]) or "–",
        })
    return rows
