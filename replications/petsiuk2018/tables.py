"""Tables of the RISE replication, built from the run's plain results (``RiseReplication.plain_results``),
side by side with the published numbers (``paper.py``)."""

from __future__ import annotations

from lightning_modules.reporting import add_validity_table
from replications.petsiuk2018 import paper as P
from replications.petsiuk2018.claims import per_image_rates


def _mean_or_nan(vals: list[float]) -> float:
    return sum(vals) / len(vals) if vals else float("nan")


def add_tables(res: dict, report) -> None:
    pm = res["per_method"]
    rows = []
    for m in res["methods"] + res["references"]:
        r = pm[m]
        rows.append({
            "method": m + (" (reference)" if m in res["references"] else ""),
            "deletion, mean colour (ours) ↓": r["deletion"],
            "deletion (paper, ResNet50)": P.DELETION_RESNET50[m].render() if m in P.DELETION_RESNET50 else "–",
            "deletion, blurred (ours) ↓": r["deletion_blur"],
            "insertion (ours) ↑": r["insertion"],
            "insertion (paper, ResNet50)": P.INSERTION_RESNET50[m].render() if m in P.INSERTION_RESNET50 else "–",
            "evidence precision (top-A pixels on the evidence)": r.get("evidence_precision", "–"),
            "images": r["n_causal"],
        })
    c = res["causal"]
    report.add_table(
        "deletion_insertion", rows,
        caption=f"Table 1: deletion (lower is better; to the mean colour as the paper, and to the blurred image) and "
                f"insertion (higher is better) AUC, {c['pixels_per_step']} px per step (insertion: over the window "
                "of the Setting, not the whole image, where it sat at its ceiling). Paper: ResNet50 on ImageNet val "
                "(unconfirmed values, PAPERS.md); the official notebook's RISE run gives "
                f"{P.NOTEBOOK_RISE['deletion'].value} / {P.NOTEBOOK_RISE['insertion'].value} (confirmed). Reference rows "
                "bound the metric: the oracle map (the ground-truth evidence) and uniform random maps. Evidence "
                "precision: the share of a map's top-A pixels (A = the evidence's area) that lie on the ground-truth "
                "evidence.",
    )
    ref = res["pointing_reference"]
    rows = []
    idx = res.get("pointing_image_index")
    scored = [x for x in res["methods"] + ["center"] + res["references"] if "pointing_hits" in pm.get(x, {})]
    for m in scored:
        r = pm[m]
        n = len(r["pointing_hits"])
        row = {"method": m + (" (reference)" if m in res["references"] else ""),
               "all (ours)": r["pointing_all"], "difficult (ours)": r["pointing_difficult"],
               "all, per image (ours)": _mean_or_nan(per_image_rates(r["pointing_hits"], [True] * n, idx)),
               "difficult, per image (ours)": _mean_or_nan(per_image_rates(r["pointing_hits"],
                                                                             r["pointing_difficult_flags"], idx))}
        if "pointing_evidence_all" in r:
            row["all, evidence GT (ours)"] = r["pointing_evidence_all"]
            row["difficult, evidence GT (ours)"] = r["pointing_evidence_difficult"]
        if m in P.POINTING_TORCHRAY[ref]:
            row[f"all ({ref}, TorchRay)"] = P.POINTING_TORCHRAY[ref][m][0]
            row[f"difficult ({ref}, TorchRay)"] = P.POINTING_TORCHRAY[ref][m][1]
        row["trials (all / difficult)" if idx else "images (all / difficult)"] = f"{r['n_pointing']} / {r['n_difficult']}"
        rows.append(row)
    report.add_table(
        "pointing_game", rows,
        caption="Table 2: pointing-game accuracy (%): mean over classes (TorchRay's definition) and per image (the "
                "claims' paired unit" + ("; an image's hit rate over its (image, class) trials), against the target "
                "class's object pixels (as COCO's segmentation: the paper's ground truth)" if idx else
                "), against the object boxes of the target class (the paper's ground truth)")
                + " and, where the data has it, against the class evidence. Reference: TorchRay's re-run (the RISE "
                "paper's own Table 2 was not read); LIME and the sliding window were not in that table.",
    )
    add_validity_table(report, res.get("protocol_validity"), (
        "Here: pointing must stay below 0.98; deletion and insertion must not finish in their first step, "
        "each one's step must be at most a quarter of the mean evidence area, insertion's blurred start at "
        "most 3x chance, insertion's window at least 0.75 of the mean evidence area, and the best method's "
        "insertion AUC within 0.05 of 1 on at most half of the images (issue 37: the saturation rule of an AUC, "
        "lightning_modules.reporting.validity.share_at_ceiling)."))
    s = res.get("stability")
    if s:
        rows = []
        for n in s["n_values"]:
            k = str(n)
            d, i = s["deletion"][k], s["insertion"][k]
            rows.append({
                "N": n,
                "deletion mean": sum(d) / len(d), "deletion spread (max-min over seeds)": max(d) - min(d),
                "insertion mean": sum(i) / len(i), "insertion spread": max(i) - min(i),
                "map corr. between seeds": s["seed_corr"][k], f"map corr. to N={res['rise']['n_masks']}": s["ref_corr"][k],
            })
        report.add_table(
            "stability", rows,
            caption=f"RISE vs the number of masks N on {s['n_images']} images, mask seeds {s['seeds']}: mean AUC over the "
                    "seeds, its spread across seeds, and the Pearson correlation of the maps of different seeds (mean over "
                    "images and seed pairs). The first n of the N masks form the n-mask estimator.",
        )
    b = res.get("benchmark")
    if b:
        report.add_table(
            "rise_benchmark", [{k: v for k, v in b.items() if k != "image_size"}],
            caption="RISE cost, measured in this run: time of one RISE call / time of the same forward passes (same batch "
                    "sizes) on a pre-built input (min over repeats, interleaved; the `clock` column: on the CPU the process's CPU time "
                    "with one torch thread, which other jobs on the cores do not inflate), and the call's peak extra memory vs the "
                    "explainer's memory budget (the cached masks, generated once, are listed separately).",
        )
