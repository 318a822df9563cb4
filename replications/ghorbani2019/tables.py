"""Tables and the setting / deviation text of the fragility report (Ghorbani et al. 2019); the claims are in
``claims.py``."""

from __future__ import annotations

from lightning_modules.reporting import Relation, judge
from replications.ghorbani2019 import paper as P
from replications.ghorbani2019.claims import ATTACK_NAMES, METHOD_NAMES


def _at(part, method: str, attack: str, eps: float) -> dict:
    return part.results[method][attack][str(float(eps))]


def _where(part) -> str:
    """How a part is named in its captions ("" for the primary part, whose report keys predate the MNIST part)."""
    return "Real MNIST (the cached MNIST CNN): " if part.is_mnist else ""


def _row(part, method, attack, eps, beta, r) -> dict:
    return {
        "method": METHOD_NAMES[method], "attack": ATTACK_NAMES[attack], "epsilon (/255)": eps, "softplus beta": beta,
        f"top-{part.k} intersection": round(r["topk_intersection"], 4),
        "Spearman": round(r["spearman"], 4),
        "centre shift (px)": round(r["center_shift_px"], 2),
        "centre shift (/ side)": round(r["center_shift_fraction"], 4),
        "label kept": round(r["label_kept_rate"], 4),
        "label-keeping iterates": round(r["accepted_step_rate"], 4),
        "n": r["n"],
    }


def add_tables(module, part, report) -> None:
    rows = [_row(part, method, attack, eps, "-" if attack == "random" else module.beta, _at(part, method, attack, eps))
            for method in module.methods for attack in module.attacks for eps in part.epsilons]
    report.add_table(f"fragility_vs_epsilon{part.suffix}", rows,
                     f"{_where(part)}Original vs attacked maps on the original model, mean over the "
                     f"{part.counts['attacked']} correctly classified images ({module.steps} steps, softplus beta "
                     f"{module.beta:g} for the guided attacks; random sign uses no surrogate); 'label-keeping "
                     "iterates' = fraction of the attack's iterates that keep the label (only those can be returned).")
    if part.variant:
        eps = part.claim_epsilon
        rows = []
        for method in module.methods:
            for attack in module.attacks:
                if attack == "random":
                    rows.append(_row(part, method, attack, eps, "-", _at(part, method, attack, eps)))
                    continue
                rows.append(_row(part, method, attack, eps, module.beta, _at(part, method, attack, eps)))
                rows.append(_row(part, method, attack, eps, f"{module.variant_beta:g} (variant)",
                                 part.variant[method][attack]))
        report.add_table(f"softplus_beta_variant{part.suffix}", rows,
                         f"{_where(part)}The stated variant: the guided attacks at epsilon {eps:g}/255 through a "
                         f"softplus(beta={module.variant_beta:g}) surrogate beside the official beta={module.beta:g} "
                         "(same images, steps and seeds); the claims use the official beta.")
    if part.evidence:
        _add_evidence_table(module, part, report)
    if part.surrogate_grid:
        add_surrogate_grid_table(module, part, report)
    if part.step_results:
        add_step_study_table(module, part, report)
    if part.surrogate_maps:
        report.add_table(f"surrogate_agreement{part.suffix}", [
            {"surrogate": f"softplus beta {v['beta']:g}" + (" (variant)" if name == "variant" else ""),
             f"top-{part.k} intersection with the model's map": round(v["topk_intersection"], 4),
             "Spearman with the model's map": round(v["spearman"], 4),
             "same label as the model": round(v["label_agreement"], 4), "n": len(v["samples"]["spearman"])}
            for name, v in part.surrogate_maps.items()],
            f"{_where(part)}How closely each softplus surrogate (whose maps the guided attacks differentiate) follows "
            "the ReLU model on the clean images: its simple-gradient map against the model's, and its label.")
    if "center" in module.attacks and "gradient" in module.methods and not part.is_mnist:
        eps = max(part.epsilons)
        r = _at(part, "gradient", "center", eps)
        report.add_table("paper_side_by_side", [
            {"quantity": "top-k intersection", "ours": round(r["topk_intersection"], 4),
             "paper (notebook, one image)": P.NOTEBOOK_TOPK_INTERSECTION.value},
            {"quantity": "Spearman rank correlation", "ours": round(r["spearman"], 4),
             "paper (notebook, one image)": P.NOTEBOOK_SPEARMAN.value},
            {"quantity": "centre shift (px)", "ours": round(r["center_shift_px"], 2),
             "paper (notebook, one image)": P.NOTEBOOK_CENTER_SHIFT_PX.value},
            {"quantity": "centre shift (/ image side)", "ours": round(r["center_shift_fraction"], 4),
             "paper (notebook, one image)": P.NOTEBOOK_CENTER_SHIFT_FRACTION.value},
        ], f"Simple gradient, centre-of-mass attack, epsilon {eps:g}/255. Ours: mean over "
           f"{part.counts['attacked']} images, top-{part.k} of {part.image_size[0]}x{part.image_size[1]} px, "
           f"{module.steps} steps; paper: {P.NOTEBOOK_SETTING}, top-1000 of 227x227 px (illustrative, single image).")


def _add_evidence_table(module, part, report) -> None:
    """Where the original and the attacked maps put their top-k pixels: on the label's evidence or off it."""
    rows = []
    for method in module.methods:
        for attack in module.attacks:
            for eps in part.epsilons:
                e = part.evidence[method][attack][str(float(eps))]
                verdict = judge(Relation.lt("attacked", "original"), {"attacked": e["attacked"],
                                                                     "original": e["original"]}, e["samples"])
                i = verdict.intervals[0]
                rows.append({"method": METHOD_NAMES[method], "attack": ATTACK_NAMES[attack], "epsilon (/255)": eps,
                             "original on evidence": round(e["original"], 4),
                             "attacked on evidence": round(e["attacked"], 4),
                             "attacked - original [95% CI]": f"{i.mean:+.4f} [{i.low:+.4f}, {i.high:+.4f}]",
                             "n": e["n"]})
    report.add_table(f"evidence_share{part.suffix}", rows,
                     f"{_where(part)}Fraction of the map's top-{part.k} pixels on the label's ground-truth evidence "
                     "(benchmark v2's evidence mask), for the original and the attacked image's map (same images, "
                     "label kept), with a paired bootstrap interval of the difference: a negative difference means the "
                     "attack moved the interpretation off the evidence the model uses, not only away from the "
                     "original map. Not a claim of the paper (its body was not read); a diagnostic the ground truth "
                     "allows.")


def add_cost_table(module, report) -> None:
    rows = []
    for part in module.parts:
        for method in module.methods:
            cpu = sum(v for k, v in part.cell_cpu_s.items() if k.startswith(f"{method}__"))
            n_cells = len(module.attacks) * len(part.epsilons)
            per_step = cpu / max(n_cells * module.steps * max(part.counts["attacked"], 1), 1)
            rows.append({"part": part.name, "method": METHOD_NAMES[method], "attacked images": part.counts["attacked"],
                         "attack x budget cells": n_cells, "steps": module.steps, "cpu_s": round(cpu, 1),
                         "cpu_s per image per step": round(per_step, 4),
                         "cpu_h per image at 300 steps, 4 budgets, 3 attacks": round(per_step * 300 * 4 * 3 / 3600, 3)})
    report.add_table("run_cost", rows, "CPU cost of the attacks of this run per method (process CPU seconds of the "
                     "attacks when they ran; a resumed run reads them from its cache with their cost), per image and "
                     "step, and what the official grid (300 steps, 4 budgets, 3 attacks) would cost per image here. "
                     "Timings depend on the machine and its load.")


def add_surrogate_grid_table(module, part, report) -> None:
    """Every softplus sharpness of the grid against the model, and the beta the stated rule picks."""
    from replications.ghorbani2019.claims import rule_beta
    from replications.ghorbani2019.experiments import BETA_RULE

    chosen = rule_beta([p.surrogate_grid for p in module.parts])
    rows = [{"softplus beta": v["beta"], "same label as the model": round(v["label_agreement"], 4),
             f"top-{part.k} intersection with the model's map": round(v["topk_intersection"], 4),
             "Spearman with the model's map": round(v["spearman"], 4),
             "role": ("attacks (configured)" if v["beta"] == module.beta else
                      "official value (variant)" if v["beta"] == module.variant_beta else "measured")
             + (" · the rule's choice" if v["beta"] == chosen else "")}
            for v in part.surrogate_grid.values()]
    report.add_table(f"surrogate_beta_grid{part.suffix}", rows,
                     f"{_where(part)}Each softplus surrogate of the grid on the {part.counts['attacked']} attacked "
                     f"clean images: its label and its simple-gradient map against the ReLU model's. Rule: {BETA_RULE}"
                     f"; over the parts of this run, beta {'none of the grid' if chosen is None else f'{chosen:g}'}.")


def add_step_study_table(module, part, report) -> None:
    """The attacks stopped after each step count of the study (one run, recorded), and the targeted-random gap."""
    study = module.step_study
    rows = []
    for method, by_attack in part.step_results.items():
        for attack, by_steps in by_attack.items():
            for t in study["steps"]:
                r = by_steps[str(t)]
                row = {"method": METHOD_NAMES[method], "attack": ATTACK_NAMES[attack], "steps": t,
                       f"top-{part.k} intersection": round(r["topk_intersection"], 4),
                       "Spearman": round(r["spearman"], 4), "centre shift (px)": round(r["center_shift_px"], 2),
                       "n": r["n"]}
                if attack != "random":
                    gap = by_attack["random"][str(t)]["topk_intersection"] - r["topk_intersection"]
                    row["random - this attack (top-k)"] = round(gap, 4)
                rows.append(row)
    cost = ", ".join(f"{METHOD_NAMES[m]} {ATTACK_NAMES[a]} {part.step_cost_s.get(f'{m}__{a}', 0.0):.0f} s"
                     for m in study["methods"] for a in module.attacks)
    report.add_table("attack_steps", rows,
                     f"The cost of the step count: the first {study['n_images']} test images (by id; the correctly "
                     f"classified ones) attacked at epsilon {part.claim_epsilon:g}/255 once for {study['steps'][-1]} "
                     f"steps, the returned image recorded after {', '.join(map(str, study['steps']))} steps (the "
                     f"best label-keeping iterate so far, so each row is what a run of that many steps returns). "
                     f"The main run uses {module.steps} steps. CPU seconds of the {study['steps'][-1]}-step runs: "
                     f"{cost}.")


def _model_line(module, part) -> str:
    info = part.info
    h, w = part.image_size
    if part.is_mnist:
        split = info.get("split", {})
        model = (f"the cached real-MNIST CNN (`{info.get('model_name')}`, Adebayo et al.'s conv5x5-32, pool, "
                 f"conv5x5-64, pool, fc1024, fc10; `lightning_modules.models.mnist`), trained {info.get('epochs')} "
                 f"epochs (Adam, lr {info.get('config', {}).get('lr')}, batch {info.get('config', {}).get('batch_size')}"
                 f", {info.get('torch_threads')} threads, {info.get('training_s')} s wall / {info.get('training_cpu_s')} "
                 f"s CPU, cached) on {info.get('train_images')} digits: train accuracy "
                 f"{info.get('train_accuracy', float('nan')):.4f}, test accuracy {info.get('test_accuracy', float('nan')):.4f}"
                 f" on the {info.get('test_images')} held-out digits ({split.get('source', 'MNIST')}, seed "
                 f"{split.get('seed')})")
        what = "held-out test digits"
    elif part.name == "scenes_v2":
        cfg = info.get("config", {})
        kwargs = ", ".join(f"{k} {v}" for k, v in cfg.get("model_kwargs", {}).items())
        model = (f"benchmark v2's shipped `{info.get('name')}` (`{cfg.get('model_name')}`, {kwargs}; "
                 f"`lightning_modules.models.embedded_v2`, hash-checked weights), test accuracy "
                 f"{info.get('test_accuracy', float('nan')):.3f} on the {info.get('test', {}).get('n_images')} v2 test "
                 f"scenes (chance {info.get('test', {}).get('chance', float('nan')):.3f}), attacked on v2 test scenes "
                 "(`lightning_modules.data.scenes_v2`: 24 classes, textured evidence on a noise background)")
        what = "v2 test scenes"
    else:
        acc = info.get("val_accuracy")
        model = (f"the cached synthetic-scenes black box (`scenes_cnn`, validation accuracy {acc:.3f})"
                 if acc is not None else f"`{module.model_cfg}`")
        what = "test images"
    return (f"- {'Real MNIST' if part.is_mnist else 'Primary part'}: {model}; images {h}x{w} in [0, 1]; "
            f"{part.counts['attacked']} of {part.counts['images']} {what} attacked (only correctly classified: "
            f"{module.only_correct}); epsilons {', '.join(f'{e:g}' for e in part.epsilons)} /255 (claims at "
            f"{part.claim_epsilon:g}/255); top-{part.k} intersection (k = {part.k} = the paper's 1000/227^2 fraction "
            f"of the pixels{'' if part.k_cfg is None else ', set in the config'}).\n")


def _alpha(part) -> str:
    return "epsilon / 4" if part.alpha is None else f"{part.alpha:g}/255"


def setting_text(module) -> str:
    alpha = ", ".join(f"{_alpha(p)} ({p.name})" for p in module.parts)
    lines = "".join(_model_line(module, part) for part in module.parts)
    mnist = ""
    if any(p.is_mnist for p in module.parts):
        q = next(p for p in module.parts if p.is_mnist)
        mnist = (f"- MNIST budgets: the paper gives its budgets as L-inf epsilons in 0-255 pixel units (the official "
                 f"notebooks attack with 8; the code recommends epsilon < 16 to stay imperceptible). The MNIST part "
                 f"keeps those units (1/255 = one grey level of the [0, 1] digits) and doubles the budget up to that "
                 f"bound: {', '.join(f'{e:g}' for e in q.epsilons)} /255, claims at {q.claim_epsilon:g}/255, and "
                 f"its step size with them ({_alpha(q)}, so that the steps reach the largest budget). "
                 f"Larger budgets than on natural images because MNIST's near-binary digits are robust to small "
                 f"grey-level changes (its usual adversarial L-inf budgets are 0.1-0.3 = 25-76/255); on MNIST most "
                 f"pixels are black (0), so the [0, 1] clipping lets the background move only upwards: the effective "
                 f"budget there is one-sided.\n")

    return (
        lines + mnist +
        f"- Saliency: |attribution| summed over channels, normalised to sum to H*W (official code). Methods: "
        f"{', '.join(METHOD_NAMES[m] for m in module.methods)}; IG with {module.ig_steps} right-Riemann steps "
        f"({module.attack_ig_steps} in the surrogate map the attacks differentiate); IG / "
        f"DeepLIFT reference: {module.baseline_cfg} (the paper's mean image = zero after mean subtraction; for MNIST "
        f"the MNIST mean grey level).\n"
        f"- Attacks: {', '.join(ATTACK_NAMES[a] for a in module.attacks)}; {module.steps} steps of size {alpha}; "
        f"L-inf projection (ART) and [0, 1] clipping after each step. Returned image: the iterate that keeps the "
        f"label and has the best criterion of the official notebooks, per method ("
        + ", ".join(f"{METHOD_NAMES[m]}: `{module.measure_for(m)}`" for m in module.methods)
        + "; `intersection` = the lowest top-k intersection, `mass_center` = the largest centre-of-mass shift), "
        f"and only if it beats the original image; "
        f"an iterate that changes the label is never returned, and the attack "
        + ("keeps iterating from it (official code)" if module.on_flip == "continue" else "undoes that step")
        + f". Attack directions through a softplus(beta={module.beta:g}) surrogate copy of each model, beta chosen "
        f"by the stated rule from the grid {', '.join(f'{b:g}' for b in module.beta_grid) or '(none)'} (tables "
        f"`surrogate_beta_grid*`; the official code's Keras softplus has beta 1 on 0-255 inputs)"
        + (f"; variant: the guided attacks at the claim budget again through softplus(beta={module.variant_beta:g}) "
           "(tables `softplus_beta_variant*`)" if module.variant_beta is not None else "")
        + "; evaluation on the original model.\n"
        f"- Metrics: top-k intersection, Spearman rank correlation, centre-of-mass shift (px and as a fraction of the "
        f"image side).\n"
        f"- Run time: table `run_cost` (wall and CPU time of the whole run are in the header / Environment)."
    )


def _data_model(part) -> str:
    if part.name == "scenes_v2":
        return (f"benchmark v2's 64 px synthetic scenes and its 8-conv VGG-style `{part.info.get('name')}` (with "
                "BatchNorm)")
    if part.name == "scenes":
        return "the v1 synthetic scenes and a small 4-layer CNN"
    return "the configured model and data"


def deviations_text(module) -> str:
    p = module.primary
    mnist = [q for q in module.parts if q.is_mnist]
    mnist_line = ""
    if mnist:
        q = mnist[0]
        mnist_line = (
            f"- Real MNIST instead of CIFAR-10 as the second, small-image dataset (the paper's second dataset is "
            f"CIFAR-10; CIFAR-10 is not available offline, real MNIST is shipped): {q.counts['attacked']} held-out "
            f"digits, the same attacks, steps and claims as the primary part.\n")
    if p.alpha is not None:
        steps = (f"{module.steps} steps instead of the notebooks' 300 (step size {_alpha(p)} as in the notebooks, so "
                 f"the largest budget of the primary part, {max(p.epsilons):g}/255, is reached after "
                 f"{max(p.epsilons) / p.alpha:.0f} steps)")
    else:
        steps = f"{module.steps} steps of epsilon / 4 instead of the notebooks' 300 of 0.5/255"
    return (
        f"- Data and model: {_data_model(p)} instead of SqueezeNet on ImageNet (and the paper's CIFAR-10 model); the "
        "paper profile (`configs/ghorbani2019/paper.yaml`) has the ImageNet/SqueezeNet setting.\n"
        + mnist_line +
        f"- Scale: {p.counts['attacked']} images, {steps}. The cost grows linearly with the steps (table `run_cost`: "
        f"this run's CPU time per image and step and what the official grid would take); {module.steps} steps and the "
        "image counts of the size rule in the config keep the embedded profile within its 20-minute budget on 2 cores "
        "(this run's wall time is in the header); "
        + ("table `attack_steps` measures what the reduction costs (the same attacks stopped after "
           f"{', '.join(map(str, module.step_study['steps']))} steps). " if module.step_study else "")
        + "IG with "
        f"{module.ig_steps} steps (paper: 100) and {module.attack_ig_steps} in the attack's second-order pass (the IG "
        "and DeepLIFT attacks cost that many double backward passes per step).\n"
        "- DeepLIFT: maps are Captum's DeepLift (Rescale) on the original model; Captum's hooks give no "
        "differentiable map, so the attack direction comes from the surrogate's Integrated-Gradients map (a transfer "
        "attack; the official code differentiates its own TensorFlow DeepLIFT graph).\n"
        f"- Surrogate: softplus beta = {module.beta:g}, the stated rule's choice, where the official code has beta 1 "
        "(Keras softplus) on SqueezeNet's 0-255 inputs; on our [0, 1] inputs the pre-activations are smaller and the "
        "beta-1 surrogate does not stand in for the model (table `surrogate_beta_grid`)"
        + (f"; beta = {module.variant_beta:g} runs as a stated variant, reported beside it and not used by the claims"
           if module.variant_beta is not None else "") + ".\n"
        "- Best iterate: the official code's measures of the centre of mass truncate the centres to integer pixels; "
        "ours are not truncated.\n"
        "- Published numbers: only the official notebook's single-image example (centre attack, simple gradient) is "
        "quantitative here; the paper's averaged curves were not read, so the claims are the paper's qualitative "
        "statements, with thresholds chosen before the run (margin "
        f"{module.claim_margin:g} for 'far more').\n"
        "- Random-sign attack under DDP: the random directions depend on the batch a process sees (seeded per "
        "batch), so its numbers on one and on several processes differ by sampling noise."
    )
