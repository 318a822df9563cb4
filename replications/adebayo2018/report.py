"""The adebayo2018 report: the setting, the tables and figures of the model randomisation tests (Fig. 2 and 4),
the edge-detector comparison (Fig. 1) and the data randomisation test (Fig. 5), and the deviations (the claims:
``claims.py``).

A pure function of the run's plain results (``AdebayoReplication.plain_results``), its settings
(``AdebayoReplication.report_config``) and the figure tensors the experiments keep (``examples()``, by experiment
name): it never receives the LightningModule and imports none of the experiments' runtime.
"""

from __future__ import annotations

from replications.adebayo2018 import figures
from replications.adebayo2018.constants import (
    ARCH_LABELS, CLAIM_CONVENTION, CLAIM_MEASURE, DATA_LABELS, LABELS, PAIR_LABELS, SIGNED_METHODS,
)
from replications.adebayo2018.data import SCENE_SOURCES

#: the experiment (``experiments/<name>.py``) whose examples hold each randomisation mode's maps
MODE_EXAMPLES = {"cascading": "a_cascading_randomisation", "independent": "b_independent_randomisation"}
DATA_EXAMPLES = "c_data_randomisation"
KIND_LABELS = (("true", "true labels"), ("random", "permuted labels"),
               ("control", "control: true labels, the random-label model's subset and schedule"),
               ("control_seed", "noise-floor control: the control with another training seed"))


def build_report(report, results: dict, config: dict, examples: dict) -> None:
    """The report of a run: ``results`` its plain results, ``config`` its settings, ``examples`` the figure tensors
    by experiment name."""
    report.add_section("Setting", _setting_text(results, config))
    _add_model_randomisation(report, results, config, examples)
    _add_data_randomisation(report, results, config, examples)
    report.add_section("Deviations from the paper", _deviations_text(results, config))
    timings = results.get("timings_s", {})
    report.metrics.update({"training": _training_metrics(results, timings), "timings_s": timings})


def _training_metrics(results: dict, timings: dict) -> dict:
    """Per test: each model's training (settings, accuracies and, from the timings, its training time)."""
    out = {}
    for name, d in results["data_randomisation"].items():
        out[name] = {kind: {**t, **{k: timings.get(f"{name}_{kind}_{k}") for k in ("training_wall_s", "training_cpu_s")}}
                     for kind, t in d["training"].items()}
        out[name].update(chance=d["chance"], dataset=d["dataset"], model=d["model"])
    return out


def _get_acc(info: dict) -> str:
    for key in ("test_accuracy", "test_acc", "val_accuracy"):
        if key in info:
            return f"{float(info[key]):.3f}"
    return "n/a"


def _fmt(v: dict) -> str:
    if not v.get("n"):
        return f"undefined ({v.get('undefined', 0)} constant maps)"
    text = f"{v['mean']:.3f} ± {v['std']:.3f}"
    return text + (f" ({v['undefined']} undefined: constant map)" if v.get("undefined") else "")


def model_label(key: str, config: dict) -> str:
    if key == config["blackbox_key"]:
        if config["blackbox_model"]:
            return f"{config['blackbox_model']} black box ({DATA_LABELS.get(key, key)})"
        return (f"{config['embedded_v2']} black box (benchmark v2)" if config["embedded_v2"]
                else "synthetic-scenes black box (v1)")
    t = config["data_randomisation"][key]
    return f"{ARCH_LABELS.get(t['model_name'], t['model_name'])} on {DATA_LABELS.get(t['dataset'], t['dataset'])}"


def _n_images(results: dict, model: str) -> int:
    mr = results["model_randomisation"][model]
    r = mr["by_convention"][CLAIM_CONVENTION]
    return len(r[results["modes"][0]][mr["order"][0]][mr["methods"][0]]["per_image"][CLAIM_MEASURE])


def _n_data_images(results: dict, name: str) -> int:
    d = results["data_randomisation"][name]
    return len(d["pairs"]["random_vs_true"][CLAIM_CONVENTION][d["methods"][0]]["per_image"][CLAIM_MEASURE])


def _setting_text(results: dict, config: dict) -> str:
    methods, rnd = config["methods"], config["randomisation"]
    lines = [
        f"- Methods: {', '.join(LABELS.get(m, m) for m in methods)}; settings {config['explainer_kwargs']}. "
        f"{', '.join(LABELS[m] for m in SIGNED_METHODS if m in methods)} sum their channels with their sign "
        "(the official code's diverging maps), so the signed and the absolute Spearman columns differ.",
        "- Which class a map explains: the claims read the official notebooks' convention (each randomised or "
        "random-label model explains its own predicted class, re-taken at every stage: `retaken`); the tables also "
        "give the original model's predicted class kept fixed (`original`) and how often the two agree.",
        f"- Model randomisation ({', '.join(config['modes'])}), re-initialisation with each layer's own initialiser "
        f"(`reset_parameters()`, init=`{rnd['init']}`), seed {rnd['seed']}, layer order from the logits down:",
    ]
    for key, mr in results["model_randomisation"].items():
        if key == config["blackbox_key"]:
            if config["blackbox_model"]:
                src = f"`load_model('{config['blackbox_model']}', pretrained=True)`"
            elif config["embedded_v2"]:
                src = (f"`load_model('{config['embedded_v2']}', weights='embedded')`, SHA-256-checked shipped weights, "
                       "test accuracy "
                       f"{_get_acc(config['blackbox_info'])}")
            else:
                src = (f"`load_model('blackbox_{config['blackbox_profile']}', weights='embedded')`, test accuracy "
                       f"{_get_acc(config['blackbox_info'])}")
            what = f"test images ({DATA_LABELS.get(key, key)})"
        else:
            src = f"the true-label model of data randomisation experiment `{key}`"
            what = f"test images ({DATA_LABELS.get(config['data_randomisation'][key]['dataset'])})"
        lines.append(f"  - {model_label(key, config)} ({src}): {' → '.join(mr['order'])}; "
                     f"{_n_images(results, key)} {what};")
    for source, d in config["digits_info"].items():
        lines.append(f"- {DATA_LABELS.get(source, source)}: {d.get('train_images')} train / {d.get('test_images')} test "
                     f"images; split: {d.get('split')}.")
    if config["blackbox_data"] in SCENE_SOURCES:
        what = ("benchmark v2 scenes (64 px, 24 classes)" if config["blackbox_data"] == "scenes_v2"
                else "synthetic scenes (v1)")
        lines.append(f"- {what}: profile `{config['scenes_profile']}`, the first "
                     f"{_n_images(results, config['blackbox_key'])} test scenes explained.")
    lines.append("- Data randomisation (the same architecture trained on the true labels, on a fixed permutation of "
                 "the labels, and two controls; test accuracy against the true test labels):")
    for name, t in config["data_randomisation"].items():
        training = results["data_randomisation"][name]["training"]
        lines.append(f"  - `{name}`: {ARCH_LABELS.get(t['model_name'], t['model_name'])} on "
                     f"{DATA_LABELS.get(t['dataset'], t['dataset'])}; maps compared on {_n_data_images(results, name)} "
                     "test images.")
        for kind, label in KIND_LABELS:
            if kind not in training:
                continue
            k = training[kind]
            extra = (f"; {k['label_agreement']:.3f} of the permuted labels happen to equal the true ones"
                     if "label_agreement" in k else "")
            lines.append(f"    - {label}: {k['train_images']} training images ({k['schedule']}; seed {k.get('seed', 'n/a')}), "
                         f"{k['weights']} → train accuracy {k['train_accuracy']:.3f}, test {k['test_accuracy']:.3f}{extra}.")
    lines.append(
        "- Similarity (shared `MapSimilarity`, the official code's measures): Spearman rank correlation of |maps| "
        "(`spearman_abs`, the claims' measure) and of signed maps (`spearman_no_abs`), SSIM with Gaussian weights "
        "(11 taps, sigma 1.5) of the [0, 1]-normalised |maps|, Spearman rank correlation of their HOG features. "
        "Mean ± std over images. A constant map (e.g. an all-zero Grad-CAM of a randomised network) has no ranks: "
        "its correlations are undefined, left out of the mean and counted in the tables; a claim compares methods "
        f"on the images where all its values are defined. 'Changes' in a claim means Spearman(|map|) below "
        f"{config['change_threshold']} (our threshold: the paper reads its curves visually); orderings and thresholds are "
        "judged by a paired bootstrap over images.")
    lines.append(f"- Nested trainings run at {config['training_threads'] or 'torch default'} CPU threads (pinned: the weights "
                 "depend on it); `trained_models: "
                 f"{config['trained_models']}`.")
    return "\n".join(lines)


def _deviations_text(results: dict, config: dict) -> str:
    lines = []
    if config["blackbox_model"] is None:
        box = (f"benchmark v2's {config['embedded_v2']} (in the stages listed under Setting)" if config["embedded_v2"]
               else "the synthetic-scenes black box (layer by layer)")
        lines.append(f"- Inception v3 on ImageNet (200 validation images, 17 blocks) is replaced by {box} and by the "
                     "digit CNN; `configs/adebayo2018/paper.yaml` holds the published setting (Inception v3; MNIST "
                     "and Fashion-MNIST with the CNN and the MLP).")
    for name, t in config["data_randomisation"].items():
        r = results["data_randomisation"][name]["training"]["random"]
        subset = (f"a fixed subset ({r['train_images']} images)" if t["random_subset"] is not None
                  else f"its whole training split ({r['train_images']} images)")
        lines.append(f"- `{name}`: the random-label model memorises {subset} with our schedule ({r['schedule']}; "
                     "PyTorch's default init, no L2 term); the paper: the whole training set, Adam 1e-4, batch 50, "
                     "100 epochs, L2 0.001, truncated-normal init. The control rows measure what the subset and "
                     "schedule alone change.")
        if t["true_is_blackbox"]:
            lines.append(f"- `{name}`: the true-label model is the shipped black box (trained once on the scenes' "
                         "whole training split, shared by every paper) rather than a second training of the same "
                         "architecture.")
    lines += [
        "- SmoothGrad / VarGrad / Integrated Gradients use fewer samples/steps than the PAIR defaults, to fit the CPU "
        "budget.",
        "- On the 3-channel scenes the absolute map is |Σ_c a_c| (the absolute value of the signed channel sum); the "
        "official grayscale map is Σ_c |a_c|. On the 1-channel digits the two are the same.",
        "- SSIM: torchmetrics' Gaussian-window SSIM, not skimage's (their implementations differ slightly in the "
        "covariance normalisation and the border).",
    ]
    return "\n".join(lines)


def _model_rows(results: dict, model: str, mode: str) -> list[dict]:
    mr = results["model_randomisation"][model]
    res, agree = mr["by_convention"], mr["agreement"][mode]
    rows = []
    for stage in mr["order"]:
        for m in mr["methods"]:
            off = res[CLAIM_CONVENTION][mode][stage][m]["summary"]
            org = res["original"][mode][stage][m]["summary"]
            row = {"stage (randomised)": stage, "method": LABELS.get(m, m)}
            for meas in off:
                row[meas] = _fmt(off[meas])
            row["spearman_abs (original class)"] = _fmt(org[CLAIM_MEASURE])
            row["spearman_no_abs (original class)"] = _fmt(org["spearman_no_abs"])
            row["re-taken class = original"] = round(agree[stage], 4)
            rows.append(row)
    return rows


def _add_model_randomisation(report, results: dict, config: dict, examples: dict) -> None:
    for model, mr in results["model_randomisation"].items():
        label = model_label(model, config)
        for mode in config["modes"]:
            report.add_table(
                f"{model}_{mode}", _model_rows(results, model, mode),
                caption=f"{mode.capitalize()} randomisation of the {label}: similarity of each method's "
                "map to the original map (mean ± std over images; each randomised model explains its own predicted "
                "class, as the official notebooks), the Spearman columns with the original class kept fixed, and the "
                "share of images whose re-taken class equals the original one. Paper: curves in Fig. 4 (Inception v3).",
            )
            summary = {stage: {m: e["summary"] for m, e in by_m.items()}
                       for stage, by_m in mr["by_convention"][CLAIM_CONVENTION][mode].items()}
            report.add_figure(f"{model}_{mode}_curves", figures.similarity_curves(summary, mr["order"], mr["methods"]),
                              caption=f"{mode.capitalize()} randomisation, {label}: similarity vs. "
                                      "randomised layer (mean ± std over images; re-taken class), as in the paper's Fig. 4.")
            ex = examples.get(MODE_EXAMPLES[mode], {}).get(model)
            if ex and (mode == "cascading" or model != config["blackbox_key"]):
                report.add_figure(f"{model}_{mode}_grid", figures.stage_grid(ex, mr["order"], mr["methods"], model, mode),
                                  caption=f"{mode.capitalize()} randomisation, {label}: rows methods; "
                                          "columns the input, the original map, then each stage (as in the paper's "
                                          "Fig. 2; re-taken class). |map|, normalised per map.")
    for model, by_method in results["similarity_to_edge_detector"].items():
        rows = [{"method": LABELS.get(m, m), **{meas: _fmt(v) for meas, v in res["summary"].items()}}
                for m, res in by_method.items()]
        report.add_table(f"{model}_similarity_to_edge_detector", rows,
                         caption=f"{model_label(model, config)}: similarity of each method's map (original, trained model) "
                                 "to the Sobel edge detector's map of the same image (mean ± std over images). "
                                 "Paper: Fig. 1 (Inception v3), compared visually.")


def _add_data_randomisation(report, results: dict, config: dict, examples: dict) -> None:
    rows = []
    for name, t in config["data_randomisation"].items():
        training = results["data_randomisation"][name]["training"]
        for kind, label in (("true", "true labels"), ("random", "permuted labels"), ("control", "control (true labels)"),
                            ("control_seed", "control, another seed")):
            if kind not in t["kinds"]:
                continue
            k = training[kind]
            rows.append({"experiment": name, "model": f"{t['model_name']}, {label}",
                         "data": DATA_LABELS.get(t["dataset"], t["dataset"]), "train images": k["train_images"],
                         "epochs": k["epochs"], "seed": k.get("seed"), "train accuracy": k["train_accuracy"],
                         "test accuracy": k["test_accuracy"]})
    report.add_table("data_randomisation_accuracy", rows,
                     caption="Data randomisation: each architecture trained on true and on permuted labels, and the two "
                             "controls (test accuracy against the true test labels). Paper: random-label model fits its "
                             "training set, test at chance.")
    for name, t in config["data_randomisation"].items():
        data = DATA_LABELS.get(t["dataset"], t["dataset"])
        pairs = results["data_randomisation"][name]["pairs"]
        rows = []
        for pair in t["pairs"]:
            for m in t["methods"]:
                off = pairs[pair][CLAIM_CONVENTION][m]["summary"]
                row = {"comparison": PAIR_LABELS[pair], "method": LABELS.get(m, m)}
                row.update({meas: _fmt(v) for meas, v in off.items()})
                org = pairs[pair].get("original", {}).get(m)
                row["spearman_abs (reference model's class)"] = _fmt(org["summary"][CLAIM_MEASURE]) if org else "–"
                rows.append(row)
        report.add_table(f"{name}_data_randomisation_similarity", rows,
                         caption=f"Data randomisation, {ARCH_LABELS.get(t['model_name'], t['model_name'])} on {data}: "
                                 "similarity between the maps of two models (mean ± std over test images; each model "
                                 "explains its own predicted class; last column, the paper's comparison only: both explain the second model's class). "
                                 "First rows: the paper's test; then the controls: the subset and schedule alone, the "
                                 "labels alone at equal subset and schedule, and the seed noise floor. Paper: Fig. 5 "
                                 "(rank correlation, MNIST).")
        ex = examples.get(DATA_EXAMPLES, {}).get(name)
        if ex:
            report.add_figure(f"{name}_data_randomisation_maps", figures.data_randomisation_grid(ex, name),
                              caption=f"Data randomisation ({data}): maps of the true-label model and of the random-label "
                                      "model for the same images, each explaining its own predicted class. |map|, "
                                      "normalised per map.")
