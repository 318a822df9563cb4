"""Figures of the sanity-check report: the stage grid (paper Fig. 2), similarity curves (Fig. 4) and the
data randomisation maps (Fig. 5). Pure functions of the plain results and the figure tensors the experiments keep
(``examples()``); :mod:`replications.adebayo2018.report` calls them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from replications.adebayo2018.constants import LABELS  # noqa: E402

MEASURE_TITLES = {"spearman_abs": "Spearman (|map|)", "spearman": "Spearman (signed)", "spearman_no_abs": "Spearman (signed)",
                  "ssim": "SSIM", "hog": "HOG similarity"}


def _show(m: torch.Tensor) -> torch.Tensor:
    """|map| scaled to [0, 1] with its 99th percentile (the paper's visualisation)."""
    a = m.abs().float().squeeze(0)
    hi = torch.quantile(a.flatten(), 0.99)
    return (a / hi.clamp_min(1e-12)).clamp(0, 1)


def _image(x: torch.Tensor):
    x = x.float()
    return x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)


def stage_grid(ex: dict, order: list[str], methods: list[str], model: str, mode: str, example: int = 0):
    """``ex``: the examples of ``model`` under ``mode`` (``images``, ``original`` and ``stages``: stage -> maps)."""
    cols = 2 + len(order)
    fig, axes = plt.subplots(len(methods), cols, figsize=(1.3 * cols, 1.3 * len(methods)), squeeze=False)
    for i, m in enumerate(methods):
        axes[i, 0].imshow(_image(ex["images"][example]), cmap="gray")
        axes[i, 1].imshow(_show(ex["original"][m][example]), cmap="gray")
        for j, stage in enumerate(order):
            axes[i, 2 + j].imshow(_show(ex["stages"][stage][m][example]), cmap="gray")
        axes[i, 0].set_ylabel(LABELS.get(m, m), rotation=0, ha="right", va="center", fontsize=7)
    titles = ["input", "original"] + [s.replace("net.", "") for s in order]
    for j, t in enumerate(titles):
        axes[0, j].set_title(t, fontsize=6, rotation=30 if j >= 2 else 0)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{mode} randomisation ({model}); column k: layers from the logits down to k re-initialised"
                 if mode == "cascading" else f"{mode} randomisation ({model}); column k: only layer k re-initialised", fontsize=8)
    return fig


def similarity_curves(res: dict, order: list[str], methods: list[str]):
    """``res``: stage -> method -> measure -> {"mean", "std", ...} (the summaries of one model and mode)."""
    measures = list(res[order[0]][methods[0]])
    measures = [m for m in measures if m in MEASURE_TITLES] or measures
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 3.0), squeeze=False)

    xs = list(range(len(order) + 1))
    for ax, meas in zip(axes[0], measures):
        for m in methods:
            mean = [1.0] + [res[s][m][meas]["mean"] for s in order]
            std = [0.0] + [res[s][m][meas]["std"] for s in order]
            line, = ax.plot(xs, mean, marker="o", ms=3, label=LABELS.get(m, m), lw=1.2)
            lo = [a - b for a, b in zip(mean, std)]
            hi = [a + b for a, b in zip(mean, std)]
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.12)
        ax.set_xticks(xs)
        ax.set_xticklabels(["orig"] + [s.replace("net.", "") for s in order], rotation=60, fontsize=6)
        ax.set_title(MEASURE_TITLES.get(meas, meas), fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylim(-0.5, 1.05)
    axes[0, -1].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig


def data_randomisation_grid(ex: dict, name: str):
    """Paper Fig. 5: per image, every method's map of the true-label and of the random-label model (``ex``: the
    data randomisation test's examples)."""
    methods = ex["methods"]
    n = ex["images"].shape[0]
    fig, axes = plt.subplots(n, 1 + 2 * len(methods), figsize=(1.0 * (1 + 2 * len(methods)), 1.15 * n), squeeze=False)

    for i in range(n):
        axes[i, 0].imshow(_image(ex["images"][i]), cmap="gray")
        axes[i, 0].set_ylabel(f"label {int(ex['labels'][i])}", fontsize=6)
        if i == 0:
            axes[i, 0].set_title(name, fontsize=6)
        for j, m in enumerate(methods):
            axes[i, 1 + 2 * j].imshow(_show(ex["true"][m][i]), cmap="gray")
            axes[i, 2 + 2 * j].imshow(_show(ex["random"][m][i]), cmap="gray")
            if i == 0:
                axes[i, 1 + 2 * j].set_title(f"{LABELS.get(m, m)}\ntrue", fontsize=5)
                axes[i, 2 + 2 * j].set_title("random\nlabels", fontsize=5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
