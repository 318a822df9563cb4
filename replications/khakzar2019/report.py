"""The khakzar2019 report: sections, tables and figures (the claims: ``claims.py``).

A pure function of the run's plain results (``Khakzar2019Replication.plain_results``), its settings
(``report_config``) and the tensors the experiments keep for the figures: it never receives the LightningModule, so
``python -m replications.khakzar2019 report [DIR]`` draws the same report again from a report folder."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lightning_modules.reporting import Report, add_validity_table  # noqa: E402
from lightning_modules.tasks.roar import REFERENCE  # noqa: E402

PIXEL_MEASURES = {
    "logit": "target logit (higher = more evidence kept)",
    "dp": "official measure |p0 - p| / p0 of the predicted class's softmax probability (RoarTorch; MoRF: higher = "
          "better, LeRF: lower = better)",
}


FILLS = {
    "mean": "the per-channel training mean (Hooker et al.)",
    "noisy_linear": "ROAD's noisy linear imputation (each removed pixel the weighted mean of its 8 neighbours, plus "
                    "Gaussian noise of std {noise:g}; Rong et al. 2022: leakage-free)",
}


def _pct(f: float) -> str:
    return f"{100 * f:g}%"


def build_report(report: Report, results: dict, config: dict, examples: dict) -> None:
    """The report of a run: ``results`` its plain results, ``config`` its settings, ``examples`` the figure
    tensors by experiment name."""
    _setting(config, report, results, examples)
    for name, block in results["models"].items():
        where = "" if name == "explained" else f"_{name}"
        label = ("the explained classifier" if name == "explained"
                 else f"the ROAR `{name}` reference model (retrained on the unmodified data, seed {config['roar'][name]['seeds'][0]})")
        if "sanity" in block:
            _sanity_tables(report, where, label, block["sanity"])
        if "pixel" in block:
            _pixel_tables(report, where, label, block["pixel"])
    rules = [{"model": "explained classifier (test passes)" if n == "explained" else f"ROAR `{n}` reference model",
              **{k: v for k, v in b["prunegrad_rules"].items()}} for n, b in results["models"].items() if b.get("prunegrad_rules")]
    pg = config["methods"]["prunegrad"].get("percentile", 85)
    report.add_table(
        "prunegrad_threshold_rules", rules,
        caption=f"PruneGrad at {pg}%: share of ReLU neurons whose NeuronMCT score |a * dy/da| is exactly zero (mean, min "
        "and max over images), and the share of images whose map under the official global rule (`prunegrad`, `scope: "
        "all`) equals the plain gradient exactly (same channel reduction). When the zero share exceeds the percentile "
        "the official threshold is 0 and the pruning removes only neurons that carry no gradient.",
    )
    add_validity_table(report, results.get("protocol_validity"), (
        "Here: each pixel-perturbation curve of each model (MoRF / LeRF, target logit / official |p0 - p| / p0), "
        "per-image means over the removed fractions; the oracle map is the ground-truth evidence (v2: the label's "
        "evidence region; MNIST: the stroke pixels)."))
    for name, roar in results["roar"].items():
        _roar_tables(report, name, roar)
    if sanity_examples := examples.get("a_sanity_checks"):
        report.add_figure("maps", _maps_figure(sanity_examples), caption="Example maps (rows: images; columns: methods).")
    report.metrics.update({"roar": config["roar_info"]})


def _setting(config: dict, report: Report, results: dict, examples: dict) -> None:
    pg = config["methods"]["prunegrad"]
    sanity_cfg, pixel_cfg = config["sanity"], config["pixel"]
    n_test = results["test_images"]
    sanity_examples = examples.get("a_sanity_checks") or {}
    px = sanity_examples["images"].shape[-1] if sanity_examples.get("images") is not None else "?"
    if config["classifier"]:
        classifier = config["classifier"]
        model_text = (f"`{classifier['name']}`{' (published weights)' if classifier.get('pretrained') else ''} on "
                      f"{n_test} test images ({config['datamodule']})")
    elif config["embedded_v2"]:
        model_text = (f"benchmark v2's shipped `{config['embedded_v2']}` (`load_model(..., weights='embedded')`, "
                      "SHA-256-checked weights, "
                      f"{px} px v2 scenes, {config['num_classes']} classes) on {n_test} test scenes")
    else:
        model_text = (f"the synthetic-scenes black box (`{config['blackbox_name']}`, profile `{config['blackbox_profile']}`, "
                      f"shipped weights, {px} px scenes) on {n_test} test scenes")
    sanity = results["models"]["explained"]["sanity"]
    text = (
        f"Explained: {model_text}, the predicted class (top-1 accuracy of the explained model on these images: "
        f"{results['classifier_test_accuracy']:.3f}). PruneGrad (`prunegrad`, the row every claim reads) uses the "
        f"official rule: one global percentile ({pg.get('percentile', 85)}%, the official sanity-check sparsity; the "
        "method's default is 85%) over all ReLU neurons (`scope: all`). "
    )
    side = [m for m in config["methods"] if m.startswith("prunegrad_")]
    if side:
        text += (f"Side row{'s' if len(side) > 1 else ''} {', '.join(f'`{m}`' for m in side)}: the percentile over the "
                 "neurons with a nonzero NeuronMCT score only (`scope: active`): where most scores are exactly zero (table "
                 "`prunegrad_threshold_rules`) the official threshold is 0. No claim reads the side rows. ")
    text += (
        f"(a) Sanity checks on {sanity['images']} images, cascading randomisation from the logits down "
        f"({len(sanity['order'])} stages), weights re-initialised "
        f"{'N(0, %g)' % sanity_cfg['std'] if sanity_cfg['init'] == 'normal' else 'with their own initialisers'} as in the official "
        "code; a constant map after randomisation (all zero: no rank correlation exists) is counted as undefined, left out "
        "of the means and counted in `sanity*_constant_maps`; a claim on the final stage needs a defined map on at least "
        f"half the images. (b) Pixel perturbation: {pixel_cfg['substrate']} substrate, fractions "
        f"{', '.join(_pct(f) for f in pixel_cfg['fractions'])}; two measures: the target {pixel_cfg['output']} and the official "
        "code's |p0 - p| / p0 (softmax probability of the predicted class); the claims compare the per-image mean over "
        "the fractions > 0 (paired bootstrap over the images). "
    )
    for name, setup in config["roar"].items():
        info = config["roar_info"].get(name, {})
        own = setup["data"] is not None
        split = info.get("split") or {}
        pooled = (f", on {setup['downsample']}x{setup['downsample']} average-pooled copies of the modified images (pixels "
                  "removed at full resolution)") if setup["downsample"] > 1 else ""
        source = ((info.get("data", "") + (" (" + split.get("source", "") + ")" if split else "")
                   + ", attributions of the model retrained on the unmodified data, seed " + str(setup["seeds"][0]) + " (RoarTorch)")
                  if own else "the scenes of the test DataModule, attributions of the explained model")
        text += (
            f"(c) ROAR `{name}`: {info.get('train_images')} training / {info.get('test_images')} test images "
            f"{'x'.join(str(v) for v in info.get('image_size', []))} ({source}; the explaining model's test accuracy "
            f"{info.get('explained_model_test_accuracy', float('nan')):.3f}), top pixels by the squared attribution replaced "
            f"by {FILLS[setup['fill']].format(noise=setup['fill_noise'])}, a fresh `{setup['model']}` {setup['model_kwargs'] or ''} retrained for "
            f"{setup['epochs']} epochs ({setup['optimizer']}, lr {setup['lr']:g}, {setup['scheduler']} schedule, batch "
            f"{setup['batch_size']}, {setup['threads'] or 'default'} CPU thread(s)) per (method, fraction, seed){pooled}, "
            f"fractions {', '.join(_pct(f) for f in setup['fractions'])}, seeds {setup['seeds']} (the claims' samples are "
            "the seeds); the row `none` retrains on the unmodified data"
            + ("; the mask-only control retrains the same model on the removal mask alone (the image replaced by the "
               "binary mask), per method, fraction and seed. " if setup["mask_only_control"] else ". ")
        )
        reused = info.get("runs_reused_from_cache", 0)
        cache = info.get("cache", "")
        text += (f"This run reused {reused} of {info.get('runs', '?')} retrainings and {info.get('reused_attributions', 0)} "
                 f"attribution sets from the cache `{cache}` (their recorded cost is in results.json `metrics.roar`). "
                 if reused or info.get("reused_attributions") else
                 f"All {info.get('runs', '?')} retrainings ran in this run (cache `{cache}`; their wall and CPU seconds are "
                 "in results.json `metrics.roar`). ")
    if not config["roar"]:
        text += "(c) ROAR was not run in this profile (`roar` is empty). "
    if config["profile"] != "paper":
        text += (
            "Deviations from the papers (ImageNet ResNet50 for (a) and (b), 1,000 images; CIFAR-10 ResNet8 for ROAR, 50 "
            "epochs, 5 retrainings per point): small CNNs on synthetic scenes and on real MNIST, few images, epochs and "
            "seeds, so that the whole benchmark runs in about half an hour on 2 CPU cores. "
        )
    report.add_section("Setting", text)


def _sanity_tables(report: Report, where: str, label: str, sanity: dict) -> None:
    order, means, constant = sanity["order"], sanity["means"], sanity["constant"]
    methods = list(means[order[0]])
    report.add_table(
        f"sanity{where}_cascading_spearman_abs",
        [{"method": m, **{st: means[st][m]["spearman_abs"] for st in order}} for m in methods],
        caption=f"Sanity checks on {label}: Spearman |.| between the original map and the map after cascading "
        f"randomisation down to each layer, mean over the images with a defined (non-constant) map of {sanity['images']} "
        "(empty: no defined map). Low = the map depends on the weights (passes).",
    )
    if any(constant[st][m] for st in order for m in methods):
        report.add_table(
            f"sanity{where}_constant_maps", [{"method": m, **{st: constant[st][m] for st in order}} for m in methods],
            caption=f"Images (of {sanity['images']}) whose map on {label} is constant after cascading randomisation down to "
            "each layer (PruneGrad: its pruning cuts every path of the randomised network, so the input gradient is zero; "
            "Grad-CAM: the ReLU of the weighted activations is zero everywhere): undefined Spearman, left out of the means.",
        )
    report.add_figure(f"sanity{where}_curves", _sanity_figure(sanity), caption=f"Similarity to the original map vs randomised layer (cascading), {label}.")


def _pixel_tables(report: Report, where: str, label: str, pixel: dict) -> None:
    fr = pixel["fractions"]
    for key, text in PIXEL_MEASURES.items():
        curves = pixel["curves"][key]
        name = f"pixel_perturbation{where}" + ("" if key == "logit" else "_official_measure")
        report.add_table(
            name,
            [{"method": m, **{f"MoRF {_pct(f)}": v for f, v in zip(fr, curves["morf"][m])},
              **{f"LeRF {_pct(f)}": v for f, v in zip(fr, curves["lerf"][m])}} for m in curves["morf"]],
            caption=f"Pixel perturbation on {label}, {pixel['images']} test images: {text}, after removing the given share "
            "of pixels, most (MoRF) or least (LeRF) relevant first (mean over images).",
        )
        report.add_figure(name, _pp_figure(fr, curves, key), caption=f"Pixel perturbation curves on {label}: {text}.")
    if pixel.get("evidence_precision"):
        prec = pixel["evidence_precision"]
        report.add_table(
            f"evidence_precision{where}",
            [{"method": m, "evidence precision": sum(v) / len(v)} for m, v in prec.items()],
            caption=f"On {label}: share of each image's top-k pixels by |map| that lie in the class evidence (k = its "
            "evidence pixels; scenes: the head of the label's object, MNIST: the stroke pixels > 0), mean over images.",
        )


def _roar_tables(report: Report, name: str, roar: dict) -> None:
    fractions, seeds = roar["fractions"], roar["seeds"]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    hi = str(max(fractions))
    columns = ["0%"] + [_pct(f) for f in fractions]
    rows = []
    if roar["reference"]:
        ref = roar["reference"]
        rows.append({"method": "none (unmodified data)", **{c: (mean(ref) if c == "0%" else None) for c in columns},
                     "seed range": max(ref) - min(ref)})
    for m, acc in roar["accuracy"].items():
        row = {"method": m, "0%": None, **{_pct(float(f)): mean(v) for f, v in acc.items()},
               "seed range": max(acc[hi]) - min(acc[hi])}
        row[f"mask-only accuracy {_pct(float(hi))}"] = roar["mask_only_accuracy"].get(m)
        if roar.get("mask_only_retrained"):
            row[f"mask-only retrained {_pct(float(hi))}"] = mean(roar["mask_only_retrained"][m][hi])
        if roar.get("evidence"):
            row[f"{roar['evidence']} removed {_pct(float(hi))}"] = roar["evidence_removed"].get(m)
        rows.append(row)
    chance = 1 / roar["num_classes"] if roar.get("num_classes") else None
    report.add_table(
        f"roar_{name}_test_accuracy", rows,
        caption=f"ROAR on `{name}`: test accuracy of a model retrained from scratch after removing the top-t pixels "
        f"(fill: {roar.get('fill', 'mean')}), mean over seeds {seeds}; `seed range` = max - min over the seeds at "
        f"{_pct(float(hi))}. Lower = the removed pixels mattered more. `mask-only accuracy`: the class predicted from the "
        "removal mask alone (a ridge-regression classifier fitted on the training masks), i.e. class information in the "
        "removal pattern itself"
        + ("; `mask-only retrained`: the benchmark's model retrained on the removal mask alone (mean over the seeds)"
           if roar.get("mask_only_retrained") else "")
        + (f"; `{roar['evidence']} removed`: share of the class evidence pixels removed" if roar.get("evidence") else "")
        + (f"; chance = {chance:.3f}" if chance else "") + ".",
    )
    report.add_figure(f"roar_{name}", _roar_figure(roar), caption=f"ROAR on `{name}`: test accuracy vs fraction removed (dotted: unmodified data).")


# ------------------------------------------------------------------ figures
def _sanity_figure(sanity: dict):
    measures = ("spearman_abs", "spearman_no_abs", "ssim", "hog")
    order, means = sanity["order"], sanity["means"]
    fig, axes = plt.subplots(1, len(measures), figsize=(4 * len(measures), 3.2), sharey=True)
    for ax, measure in zip(axes, measures):
        for m in means[order[0]]:
            vals = [means[s][m][measure] for s in order]
            ax.plot(range(len(order)), [float("nan") if v is None else v for v in vals], marker="o", label=m)
        ax.set_xticks(range(len(order)), [s.split(".")[-1] for s in order], rotation=60, fontsize=7)
        ax.set_title(measure)
        ax.set_xlabel("randomised down to layer")
        ax.set_ylim(-0.2, 1.05)
    axes[0].set_ylabel("similarity to original map")
    axes[-1].legend(fontsize=7)
    return fig


def _pp_figure(fractions, curves: dict, key: str):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, order, title in ((axes[0], "morf", "MoRF (most relevant first)"), (axes[1], "lerf", "LeRF (least relevant first)")):
        for m, c in curves[order].items():
            ax.plot([100 * f for f in fractions], c, marker="o", label=m)
        ax.set_title(title)
        ax.set_xlabel("pixels removed (%)")
    axes[0].set_ylabel("target logit" if key == "logit" else "|p0 - p| / p0")
    axes[1].legend(fontsize=7)
    return fig


def _roar_figure(roar: dict):
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if roar["reference"]:
        ax.axhline(sum(roar["reference"]) / len(roar["reference"]), color="k", linestyle=":", label="none (unmodified)")
    for m, acc in roar["accuracy"].items():
        if m == REFERENCE:
            continue
        ax.plot([100 * float(f) for f in acc], [sum(v) / len(v) for v in acc.values()], marker="o", label=m,
                linestyle="--" if m == "random" else "-")
    ax.set_xlabel("pixels removed (%)")
    ax.set_ylabel("test accuracy after retraining")
    ax.legend(fontsize=7)
    return fig


def _maps_figure(ex: dict):
    images, originals = ex["images"], ex["original"]
    methods = list(originals)
    n = images.shape[0]
    fig, axes = plt.subplots(n, len(methods) + 1, figsize=(1.6 * (len(methods) + 1), 1.6 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy())
        for j, m in enumerate(methods):
            axes[i, j + 1].imshow(originals[m][i, 0].abs().numpy(), cmap="inferno")
            if i == 0:
                axes[i, j + 1].set_title(m, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    return fig
