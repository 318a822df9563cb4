"""Figures of the RISE replication: deletion/insertion curves, example maps, convergence with N. Pure functions of
the run's plain results and the experiments' figure tensors (``examples``, by experiment name)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {"rise": "RISE", "gradcam": "Grad-CAM", "occlusion": "sliding window", "lime": "LIME", "gradient": "gradient",
          "center": "centre baseline", "oracle": "oracle (ground-truth evidence)", "random": "random"}


def _img(t):
    return np.clip(t.permute(1, 2, 0).numpy(), 0, 1)


def curves_figure(res: dict, curves: dict):
    """``curves``: method -> {"deletion": mean curve, "insertion": mean curve} (experiment a's examples)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, kind in zip(axes, ("deletion", "insertion")):
        for m in res["methods"] + res["references"]:
            c = np.asarray(curves[m][kind])
            x = np.linspace(0, 1, len(c))
            ax.plot(x, c, label=f"{LABELS.get(m, m)} (AUC {res['per_method'][m][kind]:.3f})", lw=2 if m == "rise" else 1.2,
                    ls=":" if m in res["references"] else "-")
        ax.set_xlabel("fraction of pixels " + ("removed" if kind == "deletion" else "inserted"))
        ax.set_ylabel("softmax probability of the top-1 class")
        ax.set_title(f"{kind} (mean over images)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def examples_figure(res: dict, ex: dict):
    """``ex``: the first images, their labels and top-1 classes and every method's maps (experiment d's examples)."""
    k = ex["images"].shape[0]
    cols = ["image"] + res["methods"]
    fig, axes = plt.subplots(k, len(cols), figsize=(1.9 * len(cols), 1.9 * k), squeeze=False)
    for i in range(k):
        for j, c in enumerate(cols):
            ax = axes[i, j]
            ax.axis("off")
            if c == "image":
                ax.imshow(_img(ex["images"][i]))
                ax.set_title(f"label {int(ex['labels'][i])}, top-1 {int(ex['preds'][i])}", fontsize=7)
            else:
                ax.imshow(_img(ex["images"][i]), alpha=0.35)
                ax.imshow(ex["maps"][c][i, 0].numpy(), cmap="jet", alpha=0.65)
                if i == 0:
                    ax.set_title(LABELS.get(c, c), fontsize=9)
    fig.tight_layout()
    return fig


def stability_figure(res: dict):
    """From the stability results alone (their per-N keys are strings, as stored)."""
    s = res["stability"]
    ns = s["n_values"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ax = axes[0]
    ax.plot(ns, [s["seed_corr"][str(n)] for n in ns], "o-", label="between mask seeds")
    ax.plot(ns, [s["ref_corr"][str(n)] for n in ns], "s--", label=f"to N={res['rise']['n_masks']} (seed {s['seeds'][0]})")
    ax.set_xscale("log")
    ax.set_xlabel("number of masks N")
    ax.set_ylabel("Pearson correlation of maps")
    ax.set_ylim(min(0.0, min(s["seed_corr"].values())), 1.02)
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    ax.set_title("map agreement vs N")
    ax = axes[1]
    for kind, mk in (("deletion", "o-"), ("insertion", "s-")):
        vals = np.array([s[kind][str(n)] for n in ns])  # (len(ns), seeds)
        ax.plot(ns, vals.mean(1), mk, label=f"{kind} (mean over seeds)")
        ax.fill_between(ns, vals.min(1), vals.max(1), alpha=0.25)
    ax.set_xscale("log")
    ax.set_xlabel("number of masks N")
    ax.set_ylabel("AUC")
    ax.set_title(f"AUC vs N ({s['n_images']} images; band = min..max over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def stability_maps_figure(res: dict, ex: dict):
    """``ex``: one image and its RISE maps per N (string keys) and seed (string keys) (experiment c's examples)."""
    ns = res["stability"]["n_values"]
    seeds = list(next(iter(ex["maps"].values())).keys())
    fig, axes = plt.subplots(len(seeds), len(ns) + 1, figsize=(1.9 * (len(ns) + 1), 1.9 * len(seeds)), squeeze=False)
    for i, sd in enumerate(seeds):
        axes[i, 0].imshow(_img(ex["image"][0]))
        axes[i, 0].set_title(f"seed {sd}", fontsize=8)
        axes[i, 0].axis("off")
        for j, n in enumerate(ns):
            ax = axes[i, j + 1]
            ax.imshow(ex["maps"][str(n)][sd][0, 0].numpy(), cmap="jet")
            ax.axis("off")
            if i == 0:
                ax.set_title(f"N={n}", fontsize=8)
    fig.tight_layout()
    return fig


def add_figures(report, res: dict, examples: dict) -> None:
    """Every figure of the report from the plain results and the figure tensors by experiment name."""
    report.add_figure("deletion_insertion_curves", curves_figure(res, examples["a_causal"]["curves"]),
                      "Mean deletion and insertion curves of every method, AUC in the legend (Table 1's metric).")
    if examples.get("d_examples"):
        report.add_figure("example_maps", examples_figure(res, examples["d_examples"]),
                          "Example maps of every method for the model's top-1 class (overlaid on the image).")
    if res.get("stability") and examples.get("c_stability"):
        report.add_figure("rise_stability", stability_figure(res),
                          "RISE vs the number of masks: agreement of maps from independent mask seeds (left) and "
                          "deletion/insertion AUC (right). Where the curves flatten, RISE has converged.")
        report.add_figure("rise_maps_vs_n", stability_maps_figure(res, examples["c_stability"]),
                          "One image's RISE map for increasing N, for two mask seeds: the noise of the Monte-Carlo "
                          "estimate fades as N grows.")
