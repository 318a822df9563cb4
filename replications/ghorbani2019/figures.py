"""Figures of the fragility report: metrics vs epsilon, and original vs attacked maps."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from replications.ghorbani2019.claims import ATTACK_NAMES, METHOD_NAMES  # noqa: E402

METRICS = (("topk_intersection", "top-k intersection"), ("spearman", "Spearman rank correlation"),
           ("center_shift_px", "centre-of-mass shift (px)"))


def _rgb(image):
    """(C, H, W) tensor -> what imshow takes: (H, W, 3) colour or (H, W) grey (MNIST)."""
    image = image.clamp(0, 1)
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


def curves(module, part):
    methods, eps = module.methods, part.epsilons
    fig, axes = plt.subplots(len(METRICS), len(methods), figsize=(4 * len(methods), 3.2 * len(METRICS)), squeeze=False)
    for j, method in enumerate(methods):
        for i, (key, label) in enumerate(METRICS):
            ax = axes[i, j]
            for attack in module.attacks:
                ys = [part.results[method][attack][str(e)][key] for e in eps]
                ax.plot(eps, ys, marker="o", label=ATTACK_NAMES[attack])
            ax.set_xscale("log", base=2)
            ax.set_xticks(eps, [f"{e:g}" for e in eps])
            ax.set_xlabel("epsilon (/255)")
            ax.set_ylabel(label)
            if i == 0:
                ax.set_title(METHOD_NAMES[method])
            ax.grid(alpha=0.3)
    axes[0, 0].legend()
    fig.tight_layout()
    return fig


def examples(module, part, method: str):
    attacks = module.attacks
    ex0 = part.examples[(method, attacks[0])]
    n = ex0["image"].shape[0]
    cols = 2 + 2 * len(attacks)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 2.0 * n), squeeze=False)
    for r in range(n):
        axes[r, 0].imshow(_rgb(ex0["image"][r]), cmap="gray", vmin=0, vmax=1)
        axes[r, 1].imshow(ex0["map"][r, 0].numpy(), cmap="hot")
        for a, attack in enumerate(attacks):
            ex = part.examples[(method, attack)]
            axes[r, 2 + 2 * a].imshow(_rgb(ex["attacked"][r]), cmap="gray", vmin=0, vmax=1)
            axes[r, 3 + 2 * a].imshow(ex["attacked_map"][r, 0].numpy(), cmap="hot")
    titles = ["image", "original map"] + [t for a in attacks for t in (f"{ATTACK_NAMES[a]}\nimage", f"{ATTACK_NAMES[a]}\nmap")]
    for c, t in enumerate(titles):
        axes[0, c].set_title(t, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def add_figures(module, part, report) -> None:
    where = "Real MNIST (the cached MNIST CNN): " if part.is_mnist else ""
    report.add_figure(f"metrics_vs_epsilon{part.suffix}", curves(module, part),
                      f"{where}Top-k intersection, Spearman rank correlation and centre-of-mass shift between original "
                      "and attacked maps vs the L-inf budget, per saliency method and attack (cf. the paper's Fig. 3/4).")
    eps = max(part.epsilons)
    for method in module.methods:
        if (method, module.attacks[0]) in part.examples:
            report.add_figure(f"examples_{method}{part.suffix}", examples(module, part, method),
                              f"{where}{METHOD_NAMES[method]}: original image and map, and each attack's image and map "
                              f"at epsilon {eps:g}/255 (label unchanged).")
