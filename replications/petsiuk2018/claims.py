"""The claims of the RISE replication: a pure function of the run's plain results (``build_claims``).

Every ordering between methods reads per-image values (the same images, sorted by sample id) and is judged by
the paired bootstrap of ``lightning_modules.reporting``. Known deviations are registered, with a diagnostic
measured in the same run, in ``deviations.py``. Where the run judged a protocol's validity (the embedded scenes,
with the oracle and random reference rows), every claim on that protocol names it and is reported as not valid when
the protocol fails its checks in the run.
"""

from __future__ import annotations

from lightning_modules.reporting import Claim, Relation
from replications.petsiuk2018 import paper as P

#: our convergence criteria (not the paper's numbers): maps of independent mask sets agree, AUCs stop moving
CONVERGED_SEED_CORR = 0.9
CONVERGED_AUC_SPREAD = 0.02
#: RISE's time against its N masked forward passes
TIME_RATIO_BOUND = 1.10
#: the protocol's resolution rule: one deletion step is at most this share of the median evidence area
MAX_STEP_SHARE_OF_EVIDENCE = 0.5


def _mean(v: list[float]) -> float:
    return sum(v) / len(v)


def _on(res: dict, *protocols: str) -> tuple[str, ...]:
    """The protocols (of those given) that this run judged: the ones a claim rests on."""
    judged = res.get("protocol_validity") or {}
    return tuple(p for p in protocols if p in judged)


def _per_image(res: dict, metric: str, names) -> tuple[dict, dict]:
    pm = res["per_method"]
    samples = {m: pm[m][f"{metric}_per_image"] for m in names}
    return {m: _mean(v) for m, v in samples.items()}, samples


def _causal(res: dict, profile: str) -> list[Claim]:
    methods, order = res["methods"], res["paper_methods"]
    others = [m for m in methods if m != "rise"]
    out = []
    for metric, op, word in (("deletion", "<", "lowest"), ("insertion", ">", "highest")):
        measured, samples = _per_image(res, metric, methods)
        paper_tab = P.DELETION_RESNET50 if metric == "deletion" else P.INSERTION_RESNET50
        out.append(Claim(
            f"rise_best_{metric}", "a. deletion/insertion",
            f"RISE has the {word} {metric} AUC of all methods (Table 1: RISE best)",
            Relation.best("rise", others, op), measured, samples=samples,
            paper={m: paper_tab[m] for m in order}, protocols=_on(res, metric),
        ))
        if len(order) >= 3:
            names = " < " if op == "<" else " > "
            out.append(Claim(
                f"{metric}_order", "a. deletion/insertion",
                f"{metric.capitalize()} AUC ordering of Table 1 (ResNet50): "
                + names.join({"rise": "RISE", "lime": "LIME", "gradcam": "Grad-CAM", "occlusion": "sliding window"}[m] for m in order),
                Relation.order(order, op), {m: measured[m] for m in order}, samples={m: samples[m] for m in order},
                paper={m: paper_tab[m] for m in order}, protocols=_on(res, metric),
            ))
    refs = res["references"]
    if {"oracle", "random"} <= set(refs):
        measured, samples = {}, {}
        parts = []
        for metric, op in (("deletion", "<"), ("deletion_blur", "<"), ("insertion", ">")):
            for m in ("oracle", "random"):
                samples[f"{m}_{metric}"] = res["per_method"][m][f"{metric}_per_image"]
                measured[f"{m}_{metric}"] = _mean(samples[f"{m}_{metric}"])
            parts.append(Relation.compare(f"oracle_{metric}", op, f"random_{metric}"))
        out.append(Claim(
            "protocol_oracle_beats_random", "a. deletion/insertion",
            "The protocol discriminates: the oracle map (ground-truth evidence first) beats uniform random maps in "
            "deletion (both substrates) and insertion",
            Relation.all_of(*parts), measured, samples=samples,
        ))
    ev = res.get("evidence_area_px")
    if ev:
        out.append(Claim(
            "protocol_step_below_evidence", "a. deletion/insertion",
            f"One deletion/insertion step changes at most {MAX_STEP_SHARE_OF_EVIDENCE:g} of the median evidence area "
            "(the configured step against the measured head area)",
            Relation.at_most("step_share_of_evidence", MAX_STEP_SHARE_OF_EVIDENCE),
            {"step_share_of_evidence": res["causal"]["pixels_per_step"] / ev["median"]}, kind="sanity",
        ))
    if profile.startswith("paper") and not res["model"]["is_vgg16"]:
        # Table 1's VGG16 row was not retrieved (PAPERS.md): a VGG16 run reports its AUCs without a value comparison
        for metric, table in (("deletion", P.DELETION_RESNET50), ("insertion", P.INSERTION_RESNET50)):
            for m in order:
                out.append(Claim(
                    f"{metric}_{m}_value", "a. deletion/insertion",
                    f"{metric} AUC of {m} within {P.PAPER_AUC_ATOL} of Table 1",
                    Relation.close(m, table[m].value, atol=P.PAPER_AUC_ATOL), {m: res["per_method"][m][metric]},
                    paper={m: table[m]},
                ))
    return out


def _pointing(res: dict) -> list[Claim]:
    """RISE against the centre baseline and the gradient, all and difficult images; against the object boxes of
    the target class (the paper's ground truth) and, where the data has it, against the class evidence
    (``_evidence`` claims: the valid test on benchmark v2, where the evidence is a part of the object)."""
    pm, ref = res["per_method"], res["pointing_reference"]
    flags = pm["rise"]["pointing_difficult_flags"]
    out = []
    for gt, key, suffix, gt_text in (("object", "pointing", "", ""),
                                     ("evidence", "pointing_evidence", "_evidence", "against the class evidence; ")):
        if f"{key}_hits" not in pm["rise"]:
            continue
        for subset in ("all", "difficult"):
            keep = [True] * len(flags) if subset == "all" else flags
            if not any(keep):
                continue
            for other, note in (("center", ""), ("gradient", "; TorchRay: in every dataset/model column")):
                if other != "center" and other not in res["methods"]:
                    continue
                samples = {m: [100.0 * h for h, k in zip(pm[m][f"{key}_hits"], keep) if k] for m in ("rise", other)}
                out.append(Claim(
                    f"rise_beats_{other}_{subset}{suffix}", "b. pointing game",
                    f"RISE points better than the {'centre baseline' if other == 'center' else other} ({gt_text}"
                    f"{subset}{note}; per-image hit rate, %)",
                    Relation.gt("rise", other), {m: _mean(v) for m, v in samples.items()}, samples=samples,
                    paper={m: P.pointing_value(ref, m, subset) for m in ("rise", other)},
                    protocols=_on(res, f"pointing_{gt}_{subset}"),
                ))
    return out


def _stability(res: dict) -> list[Claim]:
    s = res.get("stability")
    if not s:
        return []
    ns = [str(n) for n in s["n_values"]]
    n_max = ns[-1]
    samples = {f"corr_N{n}": s["seed_corr_per_image"][n] for n in ns}
    measured = {k: _mean(v) for k, v in samples.items()}
    spread = {"deletion_spread": max(s["deletion"][n_max]) - min(s["deletion"][n_max]),
              "insertion_spread": max(s["insertion"][n_max]) - min(s["insertion"][n_max])}
    return [
        Claim(
            "rise_maps_converge_with_n", "c. stability",
            "Maps from independent mask sets agree more as N grows (seed-to-seed correlation increases with N)",
            Relation.order(list(samples), "<"), measured, samples=samples,
        ),
        Claim(
            "rise_maps_converged", "c. stability",
            f"At N = {n_max} the maps of different mask seeds correlate at >= {CONVERGED_SEED_CORR} (our convergence "
            "criterion)",
            Relation.at_least(f"corr_N{n_max}", CONVERGED_SEED_CORR), {f"corr_N{n_max}": measured[f"corr_N{n_max}"]},
            samples={f"corr_N{n_max}": samples[f"corr_N{n_max}"]},
        ),
        Claim(
            "rise_auc_stable_across_seeds", "c. stability",
            f"At N = {n_max} deletion and insertion AUC differ by <= {CONVERGED_AUC_SPREAD} across mask seeds",
            Relation.all_of(Relation.at_most("deletion_spread", CONVERGED_AUC_SPREAD),
                            Relation.at_most("insertion_spread", CONVERGED_AUC_SPREAD)), spread,
        ),
    ]


def _benchmark(res: dict, profile: str) -> list[Claim]:
    b = res.get("benchmark")
    if not b or profile == "smoke":  # the smoke profile's timings (64 masks, a 32-px toy) measure nothing
        return []
    out = [Claim(
        "rise_time_overhead", "benchmark",
        f"RISE costs at most {TIME_RATIO_BOUND}x its N masked forward passes at the same batch size",
        Relation.at_most("time_ratio", TIME_RATIO_BOUND), {"time_ratio": b["time_ratio"]}, kind="benchmark",
    )]
    if b.get("budget_mb") is not None:
        out.append(Claim(
            "rise_memory_within_budget", "benchmark",
            "The peak extra memory of a RISE call stays within its memory budget",
            Relation.le("peak_mb", "budget_mb"), {"peak_mb": b["peak_mb"], "budget_mb": b["budget_mb"]}, kind="benchmark",
        ))
    return out


def build_claims(results: dict, profile: str) -> list[Claim]:
    """The claims of one run, from its plain results alone."""
    return _causal(results, profile) + _pointing(results) + _stability(results) + _benchmark(results, profile)
