"""Figures of the RISE replication: deletion/insertion curves, example maps, convergence with N."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {"rise": "RISE", "gradcam": "Grad-CAM", "occlusion": "sliding window", "lime": "LIME", "gradient": "gradient",
          "oracle": "oracle (ground-truth evidence)", "random": "random"}


def _img(t):
    return np.clip(t.permute(1, 2, 0).numpy(), 0, 1)


def curves_figure(module):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, kind in zip(axes, ("deletion", "insertion")):
        for m in module.methods + module.references:
            c = module.results[m][f"{kind}_curve"].numpy()
            x = np.linspace(0, 1, len(c))
            ax.plot(x, c, label=f"{LABELS.get(m, m)} (AUC {module.results[m][kind]:.3f})", lw=2 if m == "rise" else 1.2,
                    ls=":" if m in module.references else "-")
        ax.set_xlabel("fraction of pixels " + ("removed" if kind == "deletion" else "inserted"))
        ax.set_ylabel("softmax probability of the top-1 class")
        ax.set_title(f"{kind} (mean over images)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def examples_figure(module):
    ex = module.examples
    k = ex["images"].shape[0]
    cols = ["image"] + module.methods
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


def stability_figure(module):
    s = module.stability
    ns = s["n_values"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ax = axes[0]
    ax.plot(ns, [s["seed_corr"][n] for n in ns], "o-", label="between mask seeds")
    ax.plot(ns, [s["ref_corr"][n] for n in ns], "s--", label=f"to N={module.rise.n_masks} (seed {s['seeds'][0]})")
    ax.set_xscale("log")
    ax.set_xlabel("number of masks N")
    ax.set_ylabel("Pearson correlation of maps")
    ax.set_ylim(min(0.0, min(s["seed_corr"].values())), 1.02)
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    ax.set_title("map agreement vs N")
    ax = axes[1]
    for kind, mk in (("deletion", "o-"), ("insertion", "s-")):
        vals = np.array([s[kind][n] for n in ns])  # (len(ns), seeds)
        ax.plot(ns, vals.mean(1), mk, label=f"{kind} (mean over seeds)")
        ax.fill_between(ns, vals.min(1), vals.max(1), alpha=0.25)
    ax.set_xscale("log")
    ax.set_xlabel("number of masks N")
    ax.set_ylabel("AUC")
    ax.set_title(f"AUC vs N ({s['n_images']} images; band = min..max over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def stability_maps_figure(module):
    s = module.stability
    ns = s["n_values"]
    seeds = list(next(iter(s["example_maps"].values())).keys())
    fig, axes = plt.subplots(len(seeds), len(ns) + 1, figsize=(1.9 * (len(ns) + 1), 1.9 * len(seeds)), squeeze=False)
    for i, sd in enumerate(seeds):
        axes[i, 0].imshow(_img(s["example_image"][0]))
        axes[i, 0].set_title(f"seed {sd}", fontsize=8)
        axes[i, 0].axis("off")
        for j, n in enumerate(ns):
            ax = axes[i, j + 1]
            ax.imshow(s["example_maps"][n][sd][0, 0].numpy(), cmap="jet")
            ax.axis("off")
            if i == 0:
                ax.set_title(f"N={n}", fontsize=8)
    fig.tight_layout()
    return fig


def add_figures(module, report) -> None:
    report.add_figure("deletion_insertion_curves", curves_figure(module),
                      "Mean deletion and insertion curves of every method, AUC in the legend (Table 1's metric).")
    if module.examples:
        report.add_figure("example_maps", examples_figure(module),
                          "Example maps of every method for the model's top-1 class (overlaid on the image).")
    if module.stability:
        report.add_figure("rise_stability", stability_figure(module),
                          "RISE vs the number of masks: agreement of maps from independent mask seeds (left) and "
                          "deletion/insertion AUC (right). Where the curves flatten, RISE has converged.")
        report.add_figure("rise_maps_vs_n", stability_maps_figure(module),
                          "One image's RISE map for increasing N, for two mask seeds: the noise of the Monte-Carlo "
                          "estimate fades as N grows.")
