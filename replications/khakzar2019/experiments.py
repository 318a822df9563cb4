"""Khakzar et al. 2019 (PruneGrad) with its three benchmarks, as one LightningModule.

a. Sanity checks (Adebayo et al. 2018's cascading randomisation, the shared ``tasks.randomization`` code):
   PruneGrad and the compared methods; similarity of every stage's maps to the original maps.
b. Pixel perturbation (Khakzar Sec. 4): remove the least (LeRF) / most (MoRF) important pixels; the target
   output should hold under LeRF and fall under MoRF (shared ``metrics.PixelPerturbation``).
c. ROAR (Hooker et al. 2019; shared ``tasks.roar``): remove the top-t pixels of the training and test sets by
   each method's attribution, retrain from scratch, test accuracy vs t, against a random ranking.

(a) and (b) run in ``test_step`` on the test batches (torchmetrics, DDP-synced). (c) retrains models under
their own Trainers at the end of the test epoch on global rank zero (each retraining is itself a Lightning
run and can use GPUs through ``roar.accelerator``/``roar.devices``; under a multi-process test run the
other ranks wait at a barrier).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lightning_modules.blackbox import load_blackbox  # noqa: E402
from lightning_modules.explainers import create_explainer  # noqa: E402
from lightning_modules.metrics import PixelPerturbation  # noqa: E402
from lightning_modules.reporting import Claim, Relation, Report  # noqa: E402
from lightning_modules.tasks.randomization import ModelRandomizationTest, resolve_order  # noqa: E402
from lightning_modules.tasks.roar import RoarConfig, RoarPipeline, cached_attributions, random_attributions, summarize  # noqa: E402
from lightning_modules.utils import REPO_ROOT  # noqa: E402
from replications.cli import ReplicationModule  # noqa: E402
from replications.khakzar2019 import paper  # noqa: E402

#: Explainer settings shared by the three benchmarks (names -> create_explainer kwargs).
DEFAULT_METHODS = {
    "prunegrad": {"percentile": 70.0},
    "gradient": {},
    "input_x_gradient": {},
    "guided_backprop": {},
    "integrated_gradients": {"steps": 32},
    "gradcam": {},
}
DEFAULT_ROAR_METHODS = {
    "prunegrad": {"percentile": 70.0},
    "gradient": {},
    "integrated_gradients": {"steps": 16},
    "smoothgrad_sq": {"n_samples": 16, "stdev": 0.15},
    "vargrad": {"n_samples": 16, "stdev": 0.15},
    "guided_backprop": {},
    "gradcam": {},
    "random": {},
}


#: Claims our embedded setting does not reproduce, with the reason (written after reading the measured numbers;
#: the numbers themselves stay in the report). Empty until a run shows a deviation.
KNOWN_DEVIATIONS: dict[str, str] = {}


class Khakzar2019Replication(ReplicationModule):
    paper = "khakzar2019"
    title = "Khakzar et al. 2019 — Improving Feature Attribution through Input-specific Network Pruning (PruneGrad)"
    citation = (
        "A. Khakzar, S. Baselizadeh, S. Khanduja, C. Rupprecht, S. T. Kim, N. Navab. Improving Feature Attribution "
        "through Input-specific Network Pruning. arXiv 1911.11081, 2019. ROAR: S. Hooker, D. Erhan, P.-J. Kindermans, "
        "B. Kim. A Benchmark for Interpretability Methods in Deep Neural Networks. NeurIPS 2019."
    )

    def __init__(
        self,
        blackbox_profile: str = "default",
        methods: dict[str, dict] | None = None,
        sanity_images: int = 32,
        sanity_init: str = "normal",
        sanity_std: float = 0.1,
        sanity_stages: int | None = None,
        pass_threshold: float = 0.5,
        pixel_fractions: list[float] | None = None,
        pixel_substrate: str = "mean",
        pixel_output: str = "logit",
        roar_methods: dict[str, dict] | None = None,
        roar_train_size: int = 2000,
        roar_test_size: int = 500,
        roar_fractions: list[float] | None = None,
        roar_seeds: list[int] | None = None,
        roar_model: str = "scenes_cnn",
        roar_model_kwargs: dict | None = None,
        roar_epochs: int = 4,
        roar_batch_size: int = 64,
        roar_lr: float = 3e-3,
        roar_accelerator: str = "cpu",
        roar_devices: int = 1,
        roar_attribution_batch: int = 100,
        work_dir: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.methods = dict(methods if methods is not None else DEFAULT_METHODS)
        self.roar_methods = dict(roar_methods if roar_methods is not None else DEFAULT_ROAR_METHODS)
        if "prunegrad" not in self.methods:
            raise ValueError("methods must include 'prunegrad': it is the method this replication is about")
        self.pixel_fractions = list(pixel_fractions or [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
        self.roar_fractions = list(roar_fractions or [0.1, 0.3, 0.5, 0.7, 0.9])
        self.roar_seeds = list(roar_seeds or [0])
        self.model, self.data_config = load_blackbox(profile=blackbox_profile)
        self.explainers = {name: create_explainer(name, **kw) for name, kw in self.methods.items()}
        self.explainers.setdefault("random", create_explainer("random"))
        order = resolve_order(self.model)
        if sanity_stages is not None:
            order = order[:sanity_stages]
        self.sanity = ModelRandomizationTest(
            {k: v for k, v in self.explainers.items() if k != "random"}, order, modes=("cascading",),
            init=sanity_init, std=sanity_std, seed=0, keep_examples=3,
        )
        self.morf = torch.nn.ModuleDict({m: PixelPerturbation("morf", self.pixel_fractions, pixel_substrate, pixel_output) for m in self.explainers})
        self.lerf = torch.nn.ModuleDict({m: PixelPerturbation("lerf", self.pixel_fractions, pixel_substrate, pixel_output) for m in self.explainers})
        self._sanity_seen = 0
        self.roar_rows: list[dict] = []
        self.accuracy_sum = torch.zeros(())

    # ------------------------------------------------------------------ (a) + (b): test passes
    def test_step(self, batch, batch_idx):
        images = batch["image"]
        with torch.no_grad():
            logits = self.model(images)
        targets = logits.argmax(1)  # the paper explains the predicted class
        self.accuracy_sum = self.accuracy_sum.to(images.device) + (targets == batch["label"]).sum()
        ids = batch.get("id")
        need = self.hparams.sanity_images - self._sanity_seen
        if need > 0:
            self.sanity.update(self.model, images[:need], targets[:need])
            self._sanity_seen += min(need, images.shape[0])
        for name, explainer in self.explainers.items():
            maps = explainer(self.model, images, targets)
            self.morf[name].update(self.model, images, maps, targets, ids=ids)
            self.lerf[name].update(self.model, images, maps, targets, ids=ids)

    def on_test_epoch_end(self):
        self.sanity_results = self.sanity.compute()
        self.morf_curves = {m: metric.compute().cpu() for m, metric in self.morf.items()}
        self.lerf_curves = {m: metric.compute().cpu() for m, metric in self.lerf.items()}
        if self.trainer.is_global_zero:
            self.roar_rows = self.run_roar()
        self.trainer.strategy.barrier("roar")

    # ------------------------------------------------------------------ (c): ROAR
    def _work_dir(self) -> Path:
        if self.hparams.work_dir:
            return Path(self.hparams.work_dir)
        return REPO_ROOT / "data" / "roar" / f"khakzar2019-{self.profile}"

    def _attributions(self, name: str, images: torch.Tensor, targets: torch.Tensor, split: str) -> torch.Tensor:
        def compute() -> torch.Tensor:
            if name == "random":
                return random_attributions((images.shape[0], 1, *images.shape[-2:]), seed=1 if split == "train" else 2)
            explainer = create_explainer(name, **self.roar_methods[name])
            bs = self.hparams.roar_attribution_batch
            device = self.device
            chunks = [
                explainer(self.model, images[i : i + bs].to(device), targets[i : i + bs].to(device)).cpu()
                for i in range(0, images.shape[0], bs)
            ]
            return torch.cat(chunks)

        return cached_attributions(self._work_dir() / "attributions" / f"{split}_{name}.pt", compute)

    def run_roar(self) -> list[dict]:
        dm = self.trainer.datamodule
        train_ds, test_ds = dm.dataset("train"), dm.dataset("test")
        n_train = min(self.hparams.roar_train_size, len(train_ds))
        n_test = min(self.hparams.roar_test_size, len(test_ds))
        x_train, y_train = (t[:n_train] for t in train_ds.tensors())
        x_test, y_test = (t[:n_test] for t in test_ds.tensors())
        # Attributions explain the black box's prediction on each image (as for the test passes).
        with torch.no_grad():
            t_train = torch.cat([self.model(x_train[i : i + 256].to(self.device)).argmax(1).cpu() for i in range(0, n_train, 256)])
            t_test = torch.cat([self.model(x_test[i : i + 256].to(self.device)).argmax(1).cpu() for i in range(0, n_test, 256)])
        attributions = {
            m: (self._attributions(m, x_train, t_train, "train"), self._attributions(m, x_test, t_test, "test"))
            for m in self.roar_methods
        }
        cfg = RoarConfig(
            model_name=self.hparams.roar_model, model_kwargs=dict(self.hparams.roar_model_kwargs or {}),
            fractions=tuple(self.roar_fractions), seeds=tuple(self.roar_seeds), max_epochs=self.hparams.roar_epochs,
            batch_size=self.hparams.roar_batch_size, lr=self.hparams.roar_lr,
            accelerator=self.hparams.roar_accelerator, devices=self.hparams.roar_devices,
        )
        pipeline = RoarPipeline(cfg, self._work_dir(), num_classes=self.model.num_classes)
        return pipeline.run((x_train, y_train), (x_test, y_test), attributions)

    # ------------------------------------------------------------------ report
    def build_report(self, report: Report) -> None:
        hp = self.hparams
        final_stage = self.sanity.order[-1]
        cascade = self.sanity_results["cascading"]
        report.add_section(
            "Setting",
            f"Embedded replication: the synthetic-scenes black box (`{self.data_config.name}`, "
            f"{self.sanity.examples['images'].shape[-1]} px scenes), the predicted class explained. PruneGrad prunes "
            f"{self.methods['prunegrad'].get('percentile', 85)}% of the ReLU neurons per input (the official "
            f"sanity-check setting is 70%, the method's default 85%). Sanity checks on {hp.sanity_images} test images, "
            f"cascading randomisation from the logits down ({len(self.sanity.order)} layers), weights re-initialised "
            f"{'N(0, %g)' % hp.sanity_std if hp.sanity_init == 'normal' else 'with their own initialisers'} as in the "
            f"official code. Pixel perturbation: {hp.pixel_substrate} substrate, target {hp.pixel_output}. ROAR: "
            f"{hp.roar_train_size} training / {hp.roar_test_size} test scenes, a fresh `{hp.roar_model}` retrained for "
            f"{hp.roar_epochs} epochs per (method, fraction, seed), seeds {self.roar_seeds}. "
            "Deviations from the papers (ImageNet ResNet50; CIFAR-10 ResNet8 for ROAR, 5 retrainings per point): a "
            "small CNN on synthetic scenes, few epochs and seeds, so that the whole benchmark runs on 2 CPU cores.",
        )
        # (a) sanity checks
        rows = []
        for method in self.sanity.explainers:
            r = {"method": method}
            for stage in self.sanity.order:
                r[stage] = float(cascade[stage][method]["spearman_abs"])
            rows.append(r)
        report.add_table(
            "sanity_cascading_spearman_abs",
            rows,
            caption="Spearman rank correlation (absolute values) between the original map and the map after "
            "cascading randomisation down to each layer (mean over images). Low = the map depends on the weights (passes).",
        )
        final = {m: float(cascade[final_stage][m]["spearman_abs"]) for m in self.sanity.explainers}
        final_ssim = {m: float(cascade[final_stage][m]["ssim"]) for m in self.sanity.explainers}
        report.add_figure("sanity_curves", self._sanity_figure(cascade), caption="Similarity to the original map vs randomised layer (cascading).")
        self._add_claim(report, Claim(
            "sanity.prunegrad_passes", "sanity_checks",
            f"PruneGrad maps change under full cascading randomisation (Spearman |.| < {hp.pass_threshold})",
            Relation.lt("prunegrad", hp.pass_threshold), {"prunegrad": final["prunegrad"]},
            paper={"prunegrad": paper.PRUNEGRAD_SANITY},
        ))
        if "guided_backprop" in final:
            self._add_claim(report, Claim(
                "sanity.prunegrad_more_sensitive_than_guided_backprop", "sanity_checks",
                "PruneGrad is more sensitive to model randomisation than guided backprop (lower final Spearman |.|)",
                Relation.lt("prunegrad", "guided_backprop"), {"prunegrad": final["prunegrad"], "guided_backprop": final["guided_backprop"]},
                paper={"guided_backprop": paper.GUIDED_BACKPROP_FAILS_SANITY},
            ))
        # (b) pixel perturbation
        fr = self.pixel_fractions
        rows = []
        for m in self.explainers:
            rows.append({"method": m, **{f"MoRF {f:.0%}": float(v) for f, v in zip(fr, self.morf_curves[m])},
                         **{f"LeRF {f:.0%}": float(v) for f, v in zip(fr, self.lerf_curves[m])}})
        report.add_table("pixel_perturbation", rows, caption=f"Target {hp.pixel_output} after removing the given share of pixels, most (MoRF) or least (LeRF) relevant first.")
        report.add_figure("pixel_perturbation", self._pp_figure(), caption="Pixel perturbation curves (mean over test images).")
        lerf_mean = {m: float(self.lerf_curves[m][1:].mean()) for m in self.explainers}
        morf_mean = {m: float(self.morf_curves[m][1:].mean()) for m in self.explainers}
        self._add_claim(report, Claim(
            "pixel.lerf_prunegrad_beats_gradient", "pixel_perturbation",
            "Removing the least relevant pixels by PruneGrad keeps the output higher than by the plain gradient (mean LeRF curve)",
            Relation.gt("prunegrad", "gradient"), {"prunegrad": lerf_mean["prunegrad"], "gradient": lerf_mean["gradient"]},
            paper={"prunegrad": paper.PRUNEGRAD_PASSES_ALL},
        ))
        self._add_claim(report, Claim(
            "pixel.morf_prunegrad_beats_random", "pixel_perturbation",
            "Removing the most relevant pixels by PruneGrad lowers the output more than removing random pixels (mean MoRF curve)",
            Relation.lt("prunegrad", "random"), {"prunegrad": morf_mean["prunegrad"], "random": morf_mean["random"]},
            paper={"prunegrad": paper.PRUNEGRAD_PASSES_ALL},
        ))
        self._add_claim(report, Claim(
            "pixel.lerf_prunegrad_beats_random", "pixel_perturbation",
            "Removing the least relevant pixels by PruneGrad keeps the output higher than removing random pixels (mean LeRF curve)",
            Relation.gt("prunegrad", "random"), {"prunegrad": lerf_mean["prunegrad"], "random": lerf_mean["random"]},
            paper={"prunegrad": paper.PRUNEGRAD_PASSES_ALL},
        ))
        # (c) ROAR
        acc = summarize(self.roar_rows)
        rows = [{"method": m, **{f"{f:.0%}": acc[m].get(f) for f in self.roar_fractions}} for m in acc]
        report.add_table("roar_test_accuracy", rows, caption="ROAR: test accuracy of a model retrained from scratch after removing the top-t pixels (per-channel mean), mean over seeds. Lower = the removed pixels mattered more.")
        report.add_figure("roar", self._roar_figure(acc), caption="ROAR test accuracy vs fraction removed.")
        hi = max(self.roar_fractions)
        roar_hi = {m: acc[m][hi] for m in acc}
        for base in ("gradient", "integrated_gradients", "guided_backprop"):
            if base in roar_hi:
                self._add_claim(report, self._roar_claim(
                    f"roar.random_not_worse_than_{base}", f"At {hi:.0%} removed, {base} is no better than a random ranking (accuracy >= random's)",
                    Relation.ge(base, "random"), {base: roar_hi[base], "random": roar_hi["random"]}, paper.HOOKER_RANDOM_BEATS_BASE,
                ))
        for ens in ("smoothgrad_sq", "vargrad"):
            if ens in roar_hi:
                self._add_claim(report, self._roar_claim(
                    f"roar.{ens}_beats_random", f"At {hi:.0%} removed, {ens} degrades accuracy more than a random ranking",
                    Relation.lt(ens, "random"), {ens: roar_hi[ens], "random": roar_hi["random"]}, paper.HOOKER_ENSEMBLES_BEAT_RANDOM,
                ))
        if "prunegrad" in roar_hi:
            self._add_claim(report, self._roar_claim(
                "roar.prunegrad_beats_random", f"At {hi:.0%} removed, PruneGrad degrades accuracy more than a random ranking",
                Relation.lt("prunegrad", "random"), {"prunegrad": roar_hi["prunegrad"], "random": roar_hi["random"]}, paper.PRUNEGRAD_PASSES_ALL,
            ))
        report.add_figure("maps", self._maps_figure(), caption="Example maps (rows: images; columns: methods).")
        report.metrics.update({"sanity_final_spearman_abs": final, "sanity_final_ssim": final_ssim,
                               "pixel_lerf_mean": lerf_mean, "pixel_morf_mean": morf_mean, "roar_accuracy": {m: {str(f): v for f, v in d.items()} for m, d in acc.items()},
                               "blackbox_test_accuracy": float(self.accuracy_sum) / max(1, len(self.morf["gradient"].per_sample()["ids"]))})

    @staticmethod
    def _add_claim(report: Report, claim: Claim) -> None:
        claim.known_deviation = KNOWN_DEVIATIONS.get(claim.id)
        report.add_claim(claim)

    @staticmethod
    def _roar_claim(cid, text, relation, measured, paper_value) -> Claim:
        return Claim(cid, "roar", text, relation, measured, paper={"claim": paper_value})

    # ------------------------------------------------------------------ figures
    def _sanity_figure(self, cascade):
        measures = ("spearman_abs", "spearman_no_abs", "ssim", "hog")
        fig, axes = plt.subplots(1, len(measures), figsize=(4 * len(measures), 3.2), sharey=True)
        stages = self.sanity.order
        for ax, measure in zip(axes, measures):
            for m in self.sanity.explainers:
                ax.plot(range(len(stages)), [float(cascade[s][m][measure]) for s in stages], marker="o", label=m)
            ax.set_xticks(range(len(stages)), [s.split(".")[-1] for s in stages], rotation=60, fontsize=7)
            ax.set_title(measure)
            ax.set_xlabel("randomised down to layer")
            ax.set_ylim(-0.2, 1.05)
        axes[0].set_ylabel("similarity to original map")
        axes[-1].legend(fontsize=7)
        return fig

    def _pp_figure(self):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
        for ax, curves, name in ((axes[0], self.morf_curves, "MoRF (most relevant first)"), (axes[1], self.lerf_curves, "LeRF (least relevant first)")):
            for m, c in curves.items():
                ax.plot([100 * f for f in self.pixel_fractions], c.numpy(), marker="o", label=m)
            ax.set_title(name)
            ax.set_xlabel("pixels removed (%)")
        axes[0].set_ylabel(f"target {self.hparams.pixel_output}")
        axes[1].legend(fontsize=7)
        return fig

    def _roar_figure(self, acc):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for m, d in acc.items():
            ax.plot([100 * f for f in d], list(d.values()), marker="o", label=m, linestyle="--" if m == "random" else "-")
        ax.set_xlabel("pixels removed (%)")
        ax.set_ylabel("test accuracy after retraining")
        ax.legend(fontsize=7)
        return fig

    def _maps_figure(self):
        ex = self.sanity.examples
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
