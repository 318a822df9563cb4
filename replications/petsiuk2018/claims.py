"""Tables and claims of the RISE replication, side by side with the published numbers (``paper.py``).

Known deviations (a claim that our synthetic setting does not reproduce) carry a written reason here; they
apply to the embedded profiles only (``default``/``smoke``); the published-setting profiles (``paper*``) have none.
"""

from __future__ import annotations

from lightning_modules.reporting import Claim, Relation
from replications.petsiuk2018 import paper as P

EMBEDDED_PROFILES = ("default", "smoke")
#: Table 1's methods in its order by deletion / insertion (ResNet50)
PAPER_METHODS = ("rise", "lime", "gradcam", "occlusion")

#: claim id -> the written reason why the synthetic setting cannot show the paper's effect (embedded profiles).
#: Written after the default run (the measured numbers are in each claim's row and in the tables).
_NOT_CONVERGED = (
    "RISE runs with N = 1000 masks here (CPU budget) against the paper's 4000 (unconfirmed) / TorchRay's 8000, and "
    "the stability table shows it has not converged at N = 1000: on the stability images its deletion AUC is still "
    "falling steeply from N = 250 to 500 to 1000 and the maps of different mask seeds still disagree "
    "(correlation below 0.9)"
)
_COMPACT_EVIDENCE = (
    "in the scenes the class evidence is one compact head about as large as a RISE grid cell (64 px / s = 7 = 10 px), "
    "which Grad-CAM's 16x16 feature map localises directly, so the deletion metric, which rewards removing exactly the "
    "head pixels first, favours Grad-CAM over a RISE map that is smooth at the cell scale"
)
_LIME_SETTING = (
    "LIME comes last here (the paper has it second): our LIME uses 200 samples on about 50 SLIC superpixels to fit the "
    "CPU budget (the lime package's default is 1000 samples on quickshift superpixels of 224 px images); at 64 px a "
    "superpixel often joins the head to the body or background, so LIME cannot rank the head pixels first"
)
KNOWN_DEVIATIONS: dict[str, str] = {
    "rise_best_deletion": f"Grad-CAM has a lower deletion AUC than RISE: {_COMPACT_EVIDENCE}; and {_NOT_CONVERGED}.",
    "deletion_order": f"{_LIME_SETTING}; and Grad-CAM beats RISE in deletion ({_COMPACT_EVIDENCE}).",
    "insertion_order": f"{_LIME_SETTING}. RISE is still first in insertion (claim rise_best_insertion).",
    "rise_maps_converged": f"{_NOT_CONVERGED}; the paper profile runs N = 4000.",
}


def _deviation(module, claim_id: str) -> str | None:
    if module.profile in EMBEDDED_PROFILES:
        return KNOWN_DEVIATIONS.get(claim_id)
    return None


def _is_vgg16(module) -> bool:
    return "vgg16" in str(module.model_cfg.get("name", ""))


def _others(module, among=None):
    return [m for m in (among or module.methods) if m != "rise" and m in module.methods]


# --------------------------------------------------------------------------------------------- (a) Table 1
def add_causal(module, report) -> None:
    r = module.results
    rows = []
    for m in module.methods:
        rows.append({
            "method": m,
            "deletion (ours) ↓": r[m]["deletion"],
            "deletion (paper, ResNet50)": P.DELETION_RESNET50[m].render() if m in P.DELETION_RESNET50 else "–",
            "insertion (ours) ↑": r[m]["insertion"],
            "insertion (paper, ResNet50)": P.INSERTION_RESNET50[m].render() if m in P.INSERTION_RESNET50 else "–",
            "images": r[m]["n_causal"],
        })
    report.add_table(
        "deletion_insertion", rows,
        caption="Table 1: deletion (lower is better) and insertion (higher is better) AUC. Paper: ResNet50 on ImageNet "
                "val (unconfirmed values, PAPERS.md); the official notebook's RISE run gives 0.1048 / 0.7719 "
                "(confirmed). Ours: the embedded setting (see Setting).",
    )
    dele = {m: r[m]["deletion"] for m in module.methods}
    ins = {m: r[m]["insertion"] for m in module.methods}
    others = _others(module)
    report.add_claim(Claim(
        "rise_best_deletion", "a. deletion/insertion",
        "RISE has the lowest deletion AUC of all methods (Table 1: RISE best)",
        Relation.all_of(*[Relation.lt("rise", m) for m in others]), dele,
        paper={m: P.DELETION_RESNET50[m] for m in PAPER_METHODS if m in module.methods},
        known_deviation=_deviation(module, "rise_best_deletion"),
    ))
    report.add_claim(Claim(
        "rise_best_insertion", "a. deletion/insertion",
        "RISE has the highest insertion AUC of all methods (Table 1: RISE best)",
        Relation.all_of(*[Relation.gt("rise", m) for m in others]), ins,
        paper={m: P.INSERTION_RESNET50[m] for m in PAPER_METHODS if m in module.methods},
        known_deviation=_deviation(module, "rise_best_insertion"),
    ))
    order = [m for m in PAPER_METHODS if m in module.methods]
    if len(order) >= 3:
        report.add_claim(Claim(
            "deletion_order", "a. deletion/insertion",
            "Deletion AUC ordering of Table 1 (ResNet50): RISE < LIME < Grad-CAM < sliding window",
            Relation.order(order, "<"), {m: dele[m] for m in order},
            paper={m: P.DELETION_RESNET50[m] for m in order},
            known_deviation=_deviation(module, "deletion_order"),
        ))
        report.add_claim(Claim(
            "insertion_order", "a. deletion/insertion",
            "Insertion AUC ordering of Table 1 (ResNet50): RISE > LIME > Grad-CAM > sliding window",
            Relation.order(order, ">"), {m: ins[m] for m in order},
            paper={m: P.INSERTION_RESNET50[m] for m in order},
            known_deviation=_deviation(module, "insertion_order"),
        ))
    # the published-setting profiles (paper*.yaml) compare values with Table 1's ResNet50 row; its VGG16 row was not
    # retrieved (PAPERS.md), so a VGG16 run reports its AUCs without a value comparison
    if module.profile.startswith("paper") and not _is_vgg16(module):
        for kind, table, vals in (("deletion", P.DELETION_RESNET50, dele), ("insertion", P.INSERTION_RESNET50, ins)):
            for m in order:
                report.add_claim(Claim(
                    f"{kind}_{m}_value", "a. deletion/insertion",
                    f"{kind} AUC of {m} within {P.PAPER_AUC_ATOL} of Table 1",
                    Relation.close(m, table[m].value, atol=P.PAPER_AUC_ATOL), {m: vals[m]}, paper={m: table[m]},
                ))


# --------------------------------------------------------------------------------------------- (b) pointing game
def add_pointing(module, report) -> None:
    r = module.results
    ref = module.pointing_reference
    rows = []
    for m in module.methods + ["center"]:
        row = {"method": m, "all (ours)": r[m]["pointing_all"], "difficult (ours)": r[m]["pointing_difficult"]}
        if m in P.POINTING_TORCHRAY[ref]:
            row[f"all ({ref}, TorchRay)"] = P.POINTING_TORCHRAY[ref][m][0]
            row[f"difficult ({ref}, TorchRay)"] = P.POINTING_TORCHRAY[ref][m][1]
        row["images (all / difficult)"] = f"{r[m]['n_pointing']} / {r[m]['n_difficult']}"
        rows.append(row)
    report.add_table(
        "pointing_game", rows,
        caption="Table 2: pointing-game accuracy (%), mean over classes. Reference: TorchRay's re-run (the RISE "
                "paper's own Table 2 was not read); LIME and the sliding window were not in that table.",
    )
    for subset in ("all", "difficult"):
        key = f"pointing_{subset}"
        measured = {"rise": r["rise"][key], "center": r["center"][key]}
        report.add_claim(Claim(
            f"rise_beats_center_{subset}", "b. pointing game",
            f"RISE points better than the centre baseline ({subset})",
            Relation.gt("rise", "center"), measured,
            paper={m: P.pointing_value(ref, m, subset) for m in ("rise", "center")},
            known_deviation=_deviation(module, f"rise_beats_center_{subset}"),
        ))
        if "gradient" in module.methods:
            measured = {"rise": r["rise"][key], "gradient": r["gradient"][key]}
            report.add_claim(Claim(
                f"rise_beats_gradient_{subset}", "b. pointing game",
                f"RISE points better than the gradient ({subset}; TorchRay: in every dataset/model column)",
                Relation.gt("rise", "gradient"), measured,
                paper={m: P.pointing_value(ref, m, subset) for m in ("rise", "gradient")},
                known_deviation=_deviation(module, f"rise_beats_gradient_{subset}"),
            ))


# --------------------------------------------------------------------------------------------- (c) stability
#: our convergence criteria (not the paper's numbers): maps of independent mask sets agree, AUCs stop moving
CONVERGED_SEED_CORR = 0.9
CONVERGED_AUC_SPREAD = 0.02


def add_stability(module, report) -> None:
    s = module.stability
    if not s:
        return
    rows = []
    for n in s["n_values"]:
        d, i = s["deletion"][n], s["insertion"][n]
        rows.append({
            "N": n,
            "deletion mean": sum(d) / len(d), "deletion spread (max-min over seeds)": max(d) - min(d),
            "insertion mean": sum(i) / len(i), "insertion spread": max(i) - min(i),
            "map corr. between seeds": s["seed_corr"][n], f"map corr. to N={module.rise.n_masks}": s["ref_corr"][n],
        })
    report.add_table(
        "stability", rows,
        caption=f"RISE vs the number of masks N on {s['n_images']} images, mask seeds {s['seeds']}: mean AUC over the "
                "seeds, its spread across seeds, and the Pearson correlation of the maps of different seeds (mean over "
                "images and seed pairs). The first n of the N masks form the n-mask estimator.",
    )
    ns = s["n_values"]
    n_max = ns[-1]
    corr = {f"corr_N{n}": s["seed_corr"][n] for n in ns}
    report.add_claim(Claim(
        "rise_maps_converge_with_n", "c. stability",
        "Maps from independent mask sets agree more as N grows (seed-to-seed correlation increases with N)",
        Relation.order([f"corr_N{n}" for n in ns], "<"), corr,
        known_deviation=_deviation(module, "rise_maps_converge_with_n"),
    ))
    report.add_claim(Claim(
        "rise_maps_converged", "c. stability",
        f"At N = {n_max} the maps of different mask seeds correlate at >= {CONVERGED_SEED_CORR} (our convergence criterion)",
        Relation.at_least(f"corr_N{n_max}", CONVERGED_SEED_CORR), {f"corr_N{n_max}": s["seed_corr"][n_max]},
        known_deviation=_deviation(module, "rise_maps_converged"),
    ))
    spread = {"deletion_spread": max(s["deletion"][n_max]) - min(s["deletion"][n_max]),
              "insertion_spread": max(s["insertion"][n_max]) - min(s["insertion"][n_max])}
    report.add_claim(Claim(
        "rise_auc_stable_across_seeds", "c. stability",
        f"At N = {n_max} deletion and insertion AUC differ by <= {CONVERGED_AUC_SPREAD} across mask seeds",
        Relation.all_of(Relation.at_most("deletion_spread", CONVERGED_AUC_SPREAD),
                        Relation.at_most("insertion_spread", CONVERGED_AUC_SPREAD)), spread,
        known_deviation=_deviation(module, "rise_auc_stable_across_seeds"),
    ))


# --------------------------------------------------------------------------------------------- benchmark
TIME_RATIO_BOUND = 1.10


def add_benchmark(module, report) -> None:
    b = module.bench
    if not b:
        return
    report.add_table(
        "rise_benchmark", [{k: v for k, v in b.items() if k != "image_size"}],
        caption="RISE cost, measured in this run: time of one RISE call / time of the same forward passes (same batch "
                "sizes) on a pre-built input (min over repeats, interleaved), and the call's peak extra memory vs the "
                "explainer's memory budget (the cached masks, generated once, are listed separately).",
    )
    report.add_claim(Claim(
        "rise_time_overhead", "benchmark",
        f"RISE costs at most {TIME_RATIO_BOUND}x its N masked forward passes at the same batch size",
        Relation.at_most("time_ratio", TIME_RATIO_BOUND), {"time_ratio": b["time_ratio"]},
    ))
    if b.get("budget_mb") is not None:
        report.add_claim(Claim(
            "rise_memory_within_budget", "benchmark",
            "The peak extra memory of a RISE call stays within its memory budget",
            Relation.le("peak_mb", "budget_mb"), {"peak_mb": b["peak_mb"], "budget_mb": b["budget_mb"]},
        ))
