"""Adebayo et al. 2018, "Sanity Checks for Saliency Maps": model and data randomisation tests.

- Model randomisation (Sec. 3): cascading (logits down, cumulative) and independent (one layer at a time)
  re-initialisation of (a) the cached synthetic-scenes black box and (b) the MNIST CNN trained here on real
  digits; every method's map at every stage compared with the original map (Spearman rank correlation of
  absolute and of signed maps, SSIM, HOG similarity), mean and spread over images.
- Data randomisation (Sec. 4): the paper's MNIST CNN trained on the true labels and on a fixed permutation of
  them (memorised on a fixed subset, see ``TrainingConfig.subset``); both models' train/test accuracy, and
  every method's map similarity between the two models.

Learning (the two digit models) happens in ``training_step``; the explanation passes in ``test_step``; the
report in ``build_report``. The machinery is ``lightning_modules.tasks.randomization`` and
``lightning_modules.tasks.data_randomization``.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

from lightning_modules.reporting import Claim as _Claim, Relation
from lightning_modules.tasks.data_randomization import TrainingConfig, train_true_and_random
from lightning_modules.tasks.randomization import MODES, ModelRandomizationTest, resolve_order
from replications.cli import ReplicationModule
from replications.adebayo2018 import paper as P

#: The paper's methods (official notebook) plus the edge detector it compares with (Fig. 1).
DEFAULT_METHODS = [
    "gradient", "input_x_gradient", "smoothgrad", "vargrad", "integrated_gradients",
    "guided_backprop", "guided_gradcam", "gradcam", "sobel",
]
LABELS = {
    "gradient": "Gradient", "input_x_gradient": "Gradient⊙Input", "smoothgrad": "SmoothGrad",
    "vargrad": "VarGrad", "integrated_gradients": "Integrated Gradients", "guided_backprop": "Guided BackProp",
    "guided_gradcam": "Guided Grad-CAM", "gradcam": "Grad-CAM", "sobel": "Sobel edge detector",
}
#: Similarity measure that the claims read (the paper's main curves: Spearman rank correlation of |maps|).
CLAIM_MEASURE = "spearman_abs"
MODELS = ("scenes", "mnist")

#: Why a claim can fail in our setting (shown only when it fails; the measured numbers are filled in). Written
#: from the mechanism of each method in the small networks used here, not tuned to a run.
DEVIATION_REASONS = {
    "guided_gradcam_more_invariant_than_gradcam": (
        "Guided Grad-CAM is Guided BackProp times the Grad-CAM map; in our small networks the coarse Grad-CAM factor "
        "(last conv block: 7x7 on MNIST, 16x16 on the scenes) decorrelates under randomisation and drags the product's "
        "ranks with it (measured {measured}); the paper shows this for Inception v3, whose Grad-CAM layer sits 16 blocks "
        "above the input"),
    "random_label_model_memorises": (
        "the random-label model did not memorise its permuted labels within the CPU budget ({measured}); the paper "
        "trains 100 epochs"),
    "data_gradient_gradcam_change": (
        "Grad-CAM of this CNN is a 7x7 map of the last conv block, upsampled to 28x28: for both models it covers the "
        "digit's ink (the ReLU features are non-zero only on strokes), so the rank correlation of the two maps stays "
        "high although the class evidence differs ({measured}); the gradient alone is the paper's clean pass here"),
    "gradient_gradcam_change": (
        "a map of the fully re-initialised network still correlates with the original above our threshold ({measured})"),
    "gbp_more_invariant_than_gradient": (
        "Guided BackProp decorrelated as fast as the gradient in this small network ({measured})"),
}


def deviation_for(claim_id: str, measured: dict) -> str:
    for key, reason in DEVIATION_REASONS.items():
        if claim_id.endswith(key):
            return reason.format(measured=", ".join(f"{k}={v:.3f}" for k, v in measured.items()))
    return None
MODEL_LABELS = {"scenes": "synthetic-scenes black box", "mnist": "MNIST CNN (real digits)"}


def _similarity():
    from lightning_modules.metrics.similarity import MapSimilarity

    return MapSimilarity()


def summarize_similarity(value) -> dict[str, dict[str, float]]:
    """MapSimilarity ``per_sample()`` values (or ``compute()`` means) -> measure -> {"mean", "std", "n",
    "undefined"}. A similarity is undefined (NaN) when a map is constant, e.g. a Grad-CAM map that the ReLU
    zeroes everywhere after randomisation: such a map keeps no rank information of the original, so it counts
    as similarity 0 (no agreement); ``undefined`` says how many samples that was."""
    out = {}
    for measure, v in dict(value).items():
        if measure == "ids":
            continue
        t = torch.as_tensor(v, dtype=torch.float64).flatten().cpu()
        undefined = int((~torch.isfinite(t)).sum())
        t = torch.where(torch.isfinite(t), t, torch.zeros_like(t))
        if t.numel() == 0:
            out[measure] = {"mean": float("nan"), "std": float("nan"), "n": 0, "undefined": 0}
            continue
        out[measure] = {
            "mean": float(t.mean()),
            "std": float(t.std(unbiased=False)) if t.numel() > 1 else 0.0,
            "n": int(t.numel()),
            "undefined": undefined,
        }
    return out


def Claim(id, experiment, text, relation, measured, paper=None, known_deviation=None):  # noqa: N802
    """A reporting Claim with this paper's written deviation reason attached (used only if it fails)."""
    return _Claim(id, experiment, text, relation, measured, paper or {},
                  known_deviation=known_deviation or deviation_for(id, measured))


def _get_acc(info: dict) -> str:
    for key in ("test_accuracy", "test_acc", "val_accuracy"):
        if key in info:
            return f"{float(info[key]):.3f}"
    return "n/a"


def _fmt(v: dict) -> str:
    text = f"{v['mean']:.3f} ± {v['std']:.3f}"
    return text + (f" ({v['undefined']} constant maps, counted as 0)" if v.get("undefined") else "")


class AdebayoReplication(ReplicationModule):
    """Sanity checks for saliency maps (see the module docstring). Constructor arguments = the config."""

    paper = "adebayo2018"
    title = "Sanity Checks for Saliency Maps"
    citation = "J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim. Sanity Checks for Saliency Maps. NeurIPS 2018."

    def __init__(
        self,
        methods: list[str] | None = None,
        explainer_kwargs: dict[str, dict] | None = None,
        blackbox_profile: str = "default",
        blackbox_model: str | None = None,
        blackbox_order: list[str] | None = None,
        modes: list[str] | None = None,
        init: str = "default",
        randomization_seed: int = 0,
        keep_examples: int = 2,
        true_labels: dict | None = None,
        random_labels: dict | None = None,
        training_seed: int = 0,
        change_threshold: float = 0.5,
    ):
        super().__init__()
        self.methods = list(methods or DEFAULT_METHODS)
        unknown_kw = set(explainer_kwargs or {}) - set(self.methods)
        if unknown_kw:
            raise ValueError(f"explainer_kwargs for methods not in methods: {sorted(unknown_kw)}")
        self.explainer_kwargs = dict(explainer_kwargs or {})
        self.blackbox_profile = blackbox_profile
        # The paper's setting: a pretrained model (e.g. inception_v3 from a local weight file) and its block order.
        self.blackbox_model = blackbox_model
        self.blackbox_order = list(blackbox_order) if blackbox_order else None
        self.modes = list(modes or MODES)
        for m in self.modes:
            if m not in MODES:
                raise ValueError(f"unknown mode {m!r}; use {list(MODES)}")
        self.init = init
        self.randomization_seed = randomization_seed
        self.keep_examples = keep_examples
        self.true_config = TrainingConfig(**(true_labels or {}))
        self.random_config = TrainingConfig(**(random_labels or {"max_epochs": 25, "lr": 3e-4, "batch_size": 32, "subset": 1000}))
        self.training_seed = training_seed
        self.change_threshold = change_threshold
        from lightning_modules.explainers import create_explainer

        self.explainers = {m: create_explainer(m, **self.explainer_kwargs.get(m, {})) for m in self.methods}
        self.automatic_optimization = False
        self.digit_models: dict[str, nn.Module] = {}
        self.training_metrics: dict[str, dict] = {}
        self.runners = nn.ModuleDict()
        self.data_similarity = nn.ModuleDict()
        self.data_examples: dict = {}
        self.blackbox: nn.Module | None = None
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ learning
    def configure_optimizers(self):
        return None  # the digit models are trained by their own ClassifierTasks (see training_step)

    def training_step(self, batch, batch_idx):
        started = time.time()
        dm = self.trainer.datamodule
        pair = train_true_and_random(
            dm.digits_train, dm.digits_test, self.true_config, self.random_config, dm.num_classes,
            seed=self.training_seed, accelerator="cpu" if self.device.type == "cpu" else "auto", devices=1,
        )
        for kind, (model, metrics) in pair.items():
            # Kept outside the module tree: the cached state of the replication is its results, not weights.
            self.digit_models[kind] = model.to(self.device)
            self.training_metrics[kind] = metrics
        self.timings["training_s"] = round(time.time() - started, 1)
        return None

    # ------------------------------------------------------------------ explanation passes
    def on_test_start(self) -> None:
        if set(self.digit_models) != {"true", "random"}:
            raise RuntimeError("the digit models are trained by `fit`; run `python -m replications.adebayo2018 fit`")
        from lightning_modules.blackbox import blackbox_info, load_blackbox

        dm = self.trainer.datamodule
        if self.blackbox_model is not None:
            from lightning_modules.models import load_model

            self.blackbox, _ = load_model(self.blackbox_model, pretrained=True)
            self.blackbox_info = {"model": self.blackbox_model, "pretrained": True}
        elif getattr(dm, "scenes_profile", self.blackbox_profile) != self.blackbox_profile:
            raise ValueError(
                f"model.blackbox_profile={self.blackbox_profile!r} but data.scenes_profile={dm.scenes_profile!r}: "
                "the black box must be explained on the scenes it was trained on; set both to the same profile"
            )
        else:
            self.blackbox, _ = load_blackbox(self.blackbox_profile)
            self.blackbox_info = blackbox_info(self.blackbox_profile)
        self.blackbox = self.blackbox.to(self.device)
        common = dict(modes=self.modes, init=self.init, seed=self.randomization_seed, similarity=_similarity,
                      keep_examples=self.keep_examples)
        self.runners = nn.ModuleDict({
            "scenes": ModelRandomizationTest(self.explainers, resolve_order(self.blackbox, self.blackbox_order), **common),
            "mnist": ModelRandomizationTest(self.explainers, resolve_order(self.digit_models["true"]), **common),
        }).to(self.device)
        self.data_similarity = nn.ModuleDict({m: _similarity() for m in self.methods}).to(self.device)
        self.data_examples = {}

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        started = time.time()
        key = "scenes_model_randomisation_s" if dataloader_idx == 0 else "mnist_model_and_data_randomisation_s"
        self._test_step(batch, dataloader_idx)
        self.timings[key] = round(self.timings.get(key, 0.0) + time.time() - started, 1)

    def _test_step(self, batch, dataloader_idx):
        images = batch["image"].to(self.device)
        if dataloader_idx == 0:
            model = self.blackbox
            with torch.no_grad():
                targets = model(images).argmax(1)  # the paper explains the original model's predicted class
            self.runners["scenes"].update(model, images, targets, batch.get("id"))
            return
        true_model, random_model = self.digit_models["true"], self.digit_models["random"]
        with torch.no_grad():
            targets = true_model(images).argmax(1)
        original = self.runners["mnist"].update(true_model, images, targets, batch.get("id"))
        # Data randomisation: the same logit (the true-label model's predicted class) of the random-label model.
        randomised = self.runners["mnist"].explain(random_model, images, targets)
        for m in self.methods:
            self.data_similarity[m].update(randomised[m], original[m], batch.get("id"))
        if not self.data_examples:
            n = min(3, images.shape[0])
            self.data_examples = {
                "images": images[:n].cpu(), "labels": batch["label"][:n].cpu(), "targets": targets[:n].cpu(),
                "true": {m: original[m][:n].cpu() for m in self.methods},
                "random": {m: randomised[m][:n].cpu() for m in self.methods},
            }

    def on_test_epoch_end(self) -> None:
        self.results_model = {k: r.compute(per_sample=True) for k, r in self.runners.items()}
        self.results_model = {
            model: {mode: {stage: {m: summarize_similarity(v) for m, v in by_m.items()} for stage, by_m in by_stage.items()}
                    for mode, by_stage in res.items()}
            for model, res in self.results_model.items()
        }
        self.results_data = {m: summarize_similarity(self.data_similarity[m].per_sample()) for m in self.methods}

    # ------------------------------------------------------------------ report
    def _sim(self, model: str, mode: str, stage: str, method: str, measure: str = CLAIM_MEASURE) -> float:
        return self.results_model[model][mode][stage][method][measure]["mean"]

    def _mean_over_stages(self, model: str, mode: str, method: str, measure: str = CLAIM_MEASURE) -> float:
        stages = self.runners[model].order
        return sum(self._sim(model, mode, s, method, measure) for s in stages) / len(stages)

    def build_report(self, report) -> None:
        from replications.adebayo2018 import figures

        dm = self.trainer.datamodule if self.trainer is not None else None
        report.add_section("Setting", self._setting_text(dm))
        self._add_model_randomisation(report, figures)
        self._add_data_randomisation(report, figures)
        report.add_section("Deviations from the paper", self._deviations_text())
        report.metrics.update({
            "model_randomisation": self.results_model,
            "data_randomisation": self.results_data,
            "training": self.training_metrics,
            "timings_s": self.timings,
        })

    def _setting_text(self, dm) -> str:
        t, r = self.training_metrics.get("true", {}), self.training_metrics.get("random", {})
        d = getattr(dm, "digits_info", {}) if dm is not None else {}
        return "\n".join([
            f"- Methods: {', '.join(LABELS.get(m, m) for m in self.methods)}; settings {self.explainer_kwargs or 'defaults'}. "
            "Each map explains the logit of the original (true-label) model's predicted class, kept fixed across stages.",
            f"- Model randomisation ({', '.join(self.modes)}), re-initialisation with each layer's own initialiser "
            f"(`reset_parameters()`, init=`{self.init}`), seed {self.randomization_seed}, layer order from the logits down:",
            f"  - synthetic-scenes black box (`load_blackbox('{self.blackbox_profile}')`, test accuracy "
            f"{_get_acc(getattr(self, 'blackbox_info', {}))}): {' → '.join(self.runners['scenes'].order)}; "
            f"{self._n_images('scenes')} test scenes;",
            f"  - MNIST CNN (conv5x5-32, pool, conv5x5-64, pool, fc1024, fc10) trained here on true labels: "
            f"{' → '.join(self.runners['mnist'].order)}; {self._n_images('mnist')} test digits.",
            f"- Digits: {d.get('source')} ({d.get('train_images')} train / {d.get('test_images')} test images; split: {d.get('split')}).",
            f"- Data randomisation: true-label model {self._cfg_text(self.true_config)} → train accuracy "
            f"{t.get('train_accuracy', float('nan')):.3f}, test {t.get('test_accuracy', float('nan')):.3f} ({t.get('wall_s')} s); "
            f"random-label model memorises a fixed permutation of the labels of a fixed class-stratified subset of "
            f"{r.get('train_images')} training images, {self._cfg_text(self.random_config)} → train accuracy "
            f"{r.get('train_accuracy', float('nan')):.3f}, test {r.get('test_accuracy', float('nan')):.3f} ({r.get('wall_s')} s); "
            f"{r.get('label_agreement', float('nan')):.3f} of the permuted labels happen to equal the true ones.",
            f"- Similarity: Spearman rank correlation of |maps| (`spearman_abs`, the claims' measure) and of signed maps, "
            f"SSIM and HOG similarity (shared `MapSimilarity` metric); mean ± std over images; a constant map (e.g. an all-zero "
            f"Grad-CAM of a randomised network) has no rank information and counts as similarity 0. 'Changes' in a claim means "
            f"mean Spearman(|map|) below {self.change_threshold} (our threshold: the paper reads its curves visually).",
            f"- Wall time is measured on a 2-core CPU shared with other jobs; it is inflated by them. Phases: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()) + ".",
        ])

    def _n_images(self, model: str) -> int:
        stage = self.runners[model].order[0]
        return int(self.results_model[model][self.modes[0]][stage][self.methods[0]][CLAIM_MEASURE]["n"])

    @staticmethod
    def _cfg_text(c: TrainingConfig) -> str:
        return (f"({c.optimizer} lr {c.lr:g}, {c.scheduler} schedule, batch {c.batch_size}, {c.max_epochs} epochs, "
                f"weight decay {c.weight_decay:g})")

    def _deviations_text(self) -> str:
        return "\n".join([
            "- Inception v3 on ImageNet (200 validation images, 17 blocks) is replaced by the synthetic-scenes black box "
            "(layer by layer) and by the MNIST CNN; `configs/adebayo2018/paper.yaml` holds the published setting.",
            f"- The random-label model memorises a fixed subset ({self.random_config.subset} images) instead of the whole "
            "training set for 100 epochs: memorising random labels of all 8,000 images does not fit the CPU budget "
            "(measured: 77% train accuracy after 40 epochs, 9.5 min). The true-label model uses the whole training split.",
            f"- Training schedules are ours (Adam, no L2 term, PyTorch default init; the paper: Adam 1e-4, batch 50, L2 0.001, "
            f"truncated-normal init): {self._cfg_text(self.true_config)} for true labels, {self._cfg_text(self.random_config)} "
            "for permuted labels.",
            "- SmoothGrad / VarGrad / Integrated Gradients use fewer samples/steps than the PAIR defaults, to fit the CPU budget.",
        ])

    def _add_model_randomisation(self, report, figures) -> None:
        measures = None
        for model in MODELS:
            for mode in self.modes:
                rows = []
                for stage in self.runners[model].order:
                    for m in self.methods:
                        res = self.results_model[model][mode][stage][m]
                        measures = measures or list(res)
                        row = {"stage (randomised)": stage, "method": LABELS.get(m, m)}
                        for meas in res:
                            row[meas] = _fmt(res[meas])
                        rows.append(row)
                report.add_table(
                    f"{model}_{mode}", rows,
                    caption=f"{mode.capitalize()} randomisation of the {MODEL_LABELS[model]}: similarity of each method's "
                    "map to the original map (mean ± std over images). Paper: curves in Fig. 4 (Inception v3).",
                )
                report.add_figure(f"{model}_{mode}_curves", figures.similarity_curves(self, model, mode),
                                  caption=f"{mode.capitalize()} randomisation, {MODEL_LABELS[model]}: similarity vs. randomised layer "
                                          "(mean ± std over images), as in the paper's Fig. 4.")
                if mode == "cascading" or model == "mnist":
                    report.add_figure(f"{model}_{mode}_grid", figures.stage_grid(self, model, mode),
                                      caption=f"{mode.capitalize()} randomisation, {MODEL_LABELS[model]}: rows methods; columns the "
                                              "original map, then each stage (as in the paper's Fig. 2). |map|, normalised per map.")
        for model in MODELS:
            self._add_model_claims(report, model)

    def _add_model_claims(self, report, model: str) -> None:
        order = self.runners[model].order
        last = order[-1]
        exp = f"cascading model randomisation ({model})"
        if "cascading" not in self.modes:
            return
        have = set(self.methods)
        if {"guided_backprop", "gradient"} <= have:
            measured = {
                "guided_backprop": self._mean_over_stages(model, "cascading", "guided_backprop"),
                "gradient": self._mean_over_stages(model, "cascading", "gradient"),
            }
            report.add_claim(Claim(
                f"{model}_gbp_more_invariant_than_gradient", exp,
                "Guided BackProp stays more similar to its original map than the gradient does under cascading "
                "randomisation (mean Spearman(|map|) over all stages)",
                Relation.gt("guided_backprop", "gradient"), measured,
                paper={"guided_backprop": P.GBP_INVARIANT, "gradient": P.GRADIENT_SENSITIVE},
            ))
        if {"guided_gradcam", "gradcam"} <= have:
            measured = {
                "guided_gradcam": self._mean_over_stages(model, "cascading", "guided_gradcam"),
                "gradcam": self._mean_over_stages(model, "cascading", "gradcam"),
            }
            report.add_claim(Claim(
                f"{model}_guided_gradcam_more_invariant_than_gradcam", exp,
                "Guided Grad-CAM stays more similar to its original map than Grad-CAM does under cascading "
                "randomisation (mean Spearman(|map|) over all stages)",
                Relation.gt("guided_gradcam", "gradcam"), measured,
                paper={"guided_gradcam": P.GUIDED_GRADCAM_INVARIANT, "gradcam": P.GRADCAM_SENSITIVE},
            ))
        changing = [m for m in ("gradient", "gradcam") if m in have]
        if changing:
            measured = {f"{m}_fully_randomised": self._sim(model, "cascading", last, m) for m in changing}
            report.add_claim(Claim(
                f"{model}_gradient_gradcam_change", exp,
                f"Gradient and Grad-CAM maps of the fully re-initialised network differ from the original maps "
                f"(Spearman(|map|) < {self.change_threshold}): they pass the check",
                Relation.all_of(*(Relation.lt(k, self.change_threshold) for k in measured)), measured,
                paper={"gradient": P.GRADIENT_SENSITIVE, "gradcam": P.GRADCAM_SENSITIVE},
            ))
        if "sobel" in have:
            sims = [self.results_model[model][mode][s]["sobel"][meas]["mean"]
                    for mode in self.modes for s in order for meas in self.results_model[model][mode][s]["sobel"]]
            report.add_claim(Claim(
                f"{model}_edge_detector_model_independent", f"model randomisation ({model})",
                "The Sobel edge detector's map is the same at every stage (similarity 1 on every measure): "
                "it is model-independent by construction",
                Relation.close("sobel_min_similarity", 1.0, atol=1e-6), {"sobel_min_similarity": min(sims)},
                paper={"sobel": P.EDGE_DETECTOR},
            ))

    def _add_data_randomisation(self, report, figures) -> None:
        t, r = self.training_metrics["true"], self.training_metrics["random"]
        report.add_table("data_randomisation_accuracy", [
            {"model": "true labels", "train images": t["train_images"], "epochs": t["epochs"],
             "train accuracy": t["train_accuracy"], "test accuracy": t["test_accuracy"], "wall (s)": t["wall_s"]},
            {"model": "permuted labels", "train images": r["train_images"], "epochs": r["epochs"],
             "train accuracy": r["train_accuracy"], "test accuracy": r["test_accuracy"], "wall (s)": r["wall_s"]},
        ], caption="Data randomisation: the MNIST CNN trained on true and on permuted labels (test accuracy against "
                   "the true test labels). Paper: random-label model fits its training set, test at chance.")
        rows = []
        for m in self.methods:
            row = {"method": LABELS.get(m, m)}
            for meas, v in self.results_data[m].items():
                row[meas] = _fmt(v)
            rows.append(row)
        report.add_table("data_randomisation_similarity", rows,
                         caption="Similarity between the maps of the true-label and the random-label model (mean ± std over "
                                 "test digits). Paper: Fig. 5 (rank correlation, MNIST).")
        report.add_figure("data_randomisation_maps", figures.data_randomisation_grid(self),
                          caption="Data randomisation: maps of the true-label model and of the random-label model for the "
                                  "same digits and the same explained logit. |map|, normalised per map.")
        chance = 1.0 / self.trainer.datamodule.num_classes
        exp = "data randomisation (MNIST)"
        report.add_claim(Claim(
            "random_label_model_memorises", exp,
            "The random-label model fits its (permuted) training labels (train accuracy >= 0.95) while its test "
            "accuracy stays near chance (<= 0.2 for 10 classes); the true-label model generalises (test >= 0.9)",
            Relation.all_of(Relation.at_least("random_train_accuracy", 0.95), Relation.at_most("random_test_accuracy", 0.2),
                            Relation.at_least("true_test_accuracy", 0.9)),
            {"random_train_accuracy": r["train_accuracy"], "random_test_accuracy": r["test_accuracy"],
             "true_test_accuracy": t["test_accuracy"], "true_train_accuracy": t["train_accuracy"], "chance": chance},
            paper={"random_label_model": P.RANDOM_LABEL_FIT},
        ))
        sim = {m: self.results_data[m][CLAIM_MEASURE]["mean"] for m in self.methods}
        if {"guided_backprop", "gradient"} <= set(self.methods):
            report.add_claim(Claim(
                "data_gbp_more_invariant_than_gradient", exp,
                "Guided BackProp maps of the two models are more similar than their gradient maps (Spearman(|map|))",
                Relation.gt("guided_backprop", "gradient"), {k: sim[k] for k in ("guided_backprop", "gradient")},
                paper={"maps": P.DATA_RANDOMISATION},
            ))
        changing = [m for m in ("gradient", "gradcam") if m in sim]
        if changing:
            report.add_claim(Claim(
                "data_gradient_gradcam_change", exp,
                f"Gradient and Grad-CAM maps of the random-label model differ from the true-label model's "
                f"(Spearman(|map|) < {self.change_threshold}): they pass the data randomisation test",
                Relation.all_of(*(Relation.lt(m, self.change_threshold) for m in changing)), {m: sim[m] for m in changing},
                paper={"maps": P.DATA_RANDOMISATION},
            ))
        if "sobel" in sim:
            report.add_claim(Claim(
                "data_edge_detector_model_independent", exp,
                "The Sobel edge detector gives identical maps for both models (similarity 1)",
                Relation.close("sobel", 1.0, atol=1e-6), {"sobel": sim["sobel"]}, paper={"sobel": P.EDGE_DETECTOR},
            ))
