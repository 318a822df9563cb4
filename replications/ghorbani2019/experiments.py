"""Ghorbani, Abid & Zou 2019, "Interpretation of Neural Networks is Fragile" (AAAI 2019): the replication.

For every saliency method (simple gradient, Integrated Gradients, DeepLIFT), attack (random sign, top-k,
centre of mass) and L-inf budget epsilon (1, 2, 4, 8 / 255), the images are attacked with
``lightning_modules.attacks.FragilityAttack`` (iterative L-inf sign steps through a softplus surrogate, Sec. 3;
the official notebooks' rule: the returned image is the label-keeping iterate with the lowest top-k intersection for
the simple gradient and the largest centre-of-mass shift for IG and DeepLIFT, and the attack iterates on past label
flips), and the original and attacked maps are compared with the paper's three
metrics (Sec. 4): top-k intersection, Spearman rank correlation and centre-of-mass shift
(``lightning_modules.metrics.fragility``, torchmetrics, per-sample, DDP-synced). Label preservation of the attacked
images is counted as well. A stated variant (``variant_beta``) re-runs the guided attacks at the claim budget
through a surrogate of another softplus sharpness, and the surrogates' own simple-gradient maps are compared with
the model's on the clean images (how closely each surrogate follows the map it is meant to attack). Where the
data carry the label's ground-truth evidence (benchmark v2), each cell also measures where the original and the
attacked maps put their top-k pixels (``TopKMaskShare``): on the evidence or off it.

The surrogate's sharpness is chosen by a stated rule, measured in the run: the official surrogate (Keras softplus,
beta 1) acts on SqueezeNet's 0-255 inputs, where it is a close stand-in for the ReLU network; on our [0, 1] inputs
the pre-activations are smaller and beta 1 is not. Every beta of ``beta_grid`` is measured on the clean images
(label agreement with the model, top-k intersection and Spearman of its simple-gradient map with the model's), and
the rule (:data:`BETA_RULE`) names the smallest beta whose surrogate gives the model's label wherever any beta does;
the configured ``beta`` must be that one (a sanity row of the report), and the official beta 1 runs as the variant.

The attack-step count is the costliest reduction (the notebooks run 300 steps): a step study (``step_study``)
attacks the first few images once with the largest step count and records the returned image after each smaller
count (``FragilityAttack.record_steps``), so the report shows what stopping at the configured count costs.

Attack results are cached per (part, method, attack, epsilon, batch of images, settings, attack code) under
``cache_dir``, so an interrupted run resumes where it stopped.

Two parts, each a dataset with its own model (the paper attacks ImageNet and CIFAR-10 models): the primary
part (``data.source``: benchmark v2's scenes and its shipped deep model ``model.embedded_v2``, the v1 scenes and
their black box, or ImageNet / CIFAR-10 at paper scale) and,
optionally, real MNIST (``model.mnist`` + ``data.mnist``: the cached real-MNIST CNN of
``lightning_modules.models.mnist`` on its held-out test digits). The DataModule serves one test loader per part.

The attacks learn nothing: ``fit`` runs one no-op training step, then ``test`` runs the attacks. ``validate``
runs the models on the data (accuracy, agreement of the softplus surrogate, finite simple-gradient maps).
"""

from __future__ import annotations

import hashlib
import inspect
import time
from pathlib import Path

import torch
import torch.nn as nn
from torchmetrics import SumMetric

from lightning_modules.attacks import (
    ATTACKS, MEASURES, METHODS, NOTEBOOK_MEASURES, AttackResult, FragilityAttack, softplus_surrogate,
)
from lightning_modules.attacks import fragility as fragility_attacks
from lightning_modules.attacks.fragility import saliency
from lightning_modules.utils import REPO_ROOT

#: the attack code's hash, part of every cache key
_ATTACK_CODE_SHA = hashlib.sha256(inspect.getsource(fragility_attacks).encode()).hexdigest()
from lightning_modules.metrics.fragility import CenterOfMassShift, RankCorrelation, TopKIntersection, TopKMaskShare
from replications.cli import ReplicationModule

#: k = 1000 of 227 x 227 pixels in the paper: the same fraction of our images' pixels
PAPER_TOPK_FRACTION = 1000 / (227 * 227)
#: how the surrogate's softplus sharpness is chosen from ``beta_grid`` (see the module docstring)
BETA_RULE = ("the smallest beta of the grid at which the softplus surrogate's label agreement with the model on the "
             "attacked images reaches its best over the grid, in every part (all images where the grid allows: the "
             "official beta-1 surrogate on SqueezeNet's 0-255 inputs is such a stand-in for the ReLU network)")



def _key(method: str, attack: str, eps: float) -> str:
    return f"{method}__{attack}__{str(eps).replace('.', 'p')}"


def _beta_key(beta: float) -> str:
    return f"beta{beta:g}".replace(".", "p")


def _check_epsilons(epsilons: list[float], claim_epsilon: float, where: str) -> None:
    # all budgets below 1 means [0, 1] units were given (8/255 = 0.031): ask for 0-255 units
    if not epsilons or not all(0 < e <= 255 for e in epsilons) or max(epsilons) < 1:
        raise ValueError(f"{where} epsilons are in 0-255 pixel units (e.g. [1, 2, 4, 8]), got {epsilons}")
    if float(claim_epsilon) not in epsilons:
        raise ValueError(f"{where} claim_epsilon={claim_epsilon} must be one of its epsilons {epsilons}")


class FragilityPart:
    """One dataset of the replication with its model, budgets and (after ``test``) results.

    ``name``: ``scenes_v2`` / ``scenes`` / ``primary`` (the primary part) or ``mnist``; ``suffix`` is appended to
    its claim ids, table and figure names (empty for the primary part, so its report keys never change).
    """

    def __init__(self, name: str, model_cfg: dict, epsilons: list[float], claim_epsilon: float,
                 k: int | None, suffix: str = "", alpha: float | None = None):
        self.name, self.model_cfg, self.suffix = name, dict(model_cfg), suffix
        self.alpha = None if alpha is None else float(alpha)
        self.epsilons = [float(e) for e in epsilons]
        self.claim_epsilon, self.k_cfg = float(claim_epsilon), k
        _check_epsilons(self.epsilons, self.claim_epsilon, f"{name}:")
        self.model: nn.Module | None = None
        self.surrogate: nn.Module | None = None
        self.variant_surrogate: nn.Module | None = None
        self.grid_surrogates: dict[float, nn.Module] = {}
        self.data_config = None
        self.info: dict = {}
        self.reset()

    def reset(self) -> None:
        self.results: dict = {}
        self.variant: dict = {}
        self.surrogate_maps: dict = {}
        #: per beta of the grid: the surrogate's label and map agreement with the model on the clean images
        self.surrogate_grid: dict = {}
        #: per method x attack x step count: the step study's cells (primary part only)
        self.step_results: dict = {}
        #: per method x attack: CPU seconds of the step study's attacks
        self.step_cost_s: dict = {}
        #: per method x attack x epsilon: CPU seconds of the attacks (including cached ones, from the cache)
        self.cell_cpu_s: dict = {}
        #: per method x attack x epsilon: the original and attacked maps' top-k share on the evidence (v2 only)
        self.evidence: dict = {}
        self.ids: list[int] = []
        self.examples: dict = {}
        self.k: int | None = None
        self.image_size: tuple | None = None
        self.counts: dict = {}
        self.attack_s: dict = {}
        self.test_s: float | None = None
        self.test_cpu_s: float | None = None

    @property
    def is_mnist(self) -> bool:
        return self.name == "mnist"

    @property
    def has_evidence(self) -> bool:
        """Benchmark v2's scenes carry the label's ground-truth evidence mask."""
        return self.name == "scenes_v2"


class FragilityReplication(ReplicationModule):
    """See the module docstring. Constructor arguments are the config's ``model:`` section.

    Args:
        model: the primary part's model: ``{"embedded_v2": "scenes_v2_vgg"}`` (benchmark v2's shipped deep model, on
            ``data.source: scenes_v2``), ``{"blackbox": "default"}`` (the v1 scenes black box, on ``data.source:
            scenes``) or ``load_model`` kwargs (``{"name": "squeezenet1_1", "pretrained": true}``).
        methods: saliency methods attacked (``gradient``, ``integrated_gradients``, ``deeplift``).
        attacks: ``random`` (baseline), ``topk``, ``center`` (``targeted`` needs a region; not run here).
        epsilons: L-inf budgets in 0-255 units (divided by 255 for the [0, 1] images).
        steps: attack iterations.
        alpha: step size in 0-255 units; None = epsilon / 4 (official: 0.5).
        beta: softplus sharpness of the surrogate (official: 1, Keras softplus).
        variant_beta: a stated variant (None = none): the guided attacks are re-run at ``claim_epsilon`` through a
            softplus surrogate of this sharpness, as side rows of the report.
        measure: best-iterate criterion (``FragilityAttack``): ``notebook`` (the official notebooks' per method:
            intersection for the simple gradient, mass_center for IG and DeepLIFT), or ``intersection`` /
            ``mass_center`` for every method.
        beta_grid: softplus sharpnesses measured against the model on the clean images (label agreement, map
            agreement); :data:`BETA_RULE` picks one of them, and ``beta`` must be it.
        step_study: ``{"n_images": N, "steps": [20, 100, 300], "methods": [...]}`` (None = none): the first N images
            (by sample id) of the primary part attacked once at ``claim_epsilon`` with the largest count, the result
            recorded after each count.
        cache_dir: where attack results are cached (relative to the repository; None = no cache).
        on_flip: ``continue`` (official: iterate on past a label flip, never return the flipped image) or
            ``reject``.
        k: top-k size; None = the paper's fraction (1000 of 227^2 pixels) of the image area.
        ig_steps: Integrated Gradients steps of the evaluated maps.
        attack_ig_steps: IG steps of the surrogate map the IG / DeepLIFT attacks differentiate (None = ig_steps).
        baseline: IG / DeepLIFT reference: ``"mean"`` = the model's normalisation mean (the paper's reference, zero
            after mean subtraction) or a constant in [0, 1].
        only_correct: attack only correctly classified images (official code: "attacking has no meaning" otherwise).
        keep_best: return the best accepted iterate (official code) instead of the last.
        seed: the random-sign attack's seed.
        claim_epsilon: the budget (0-255 units) at which the claims compare attacks.
        claim_margin: "far more": the targeted attack's top-k intersection must be this much below random's.
        n_example_images: images in the example-maps figure.
        mnist: the real-MNIST part (None = none): ``{"model": <lightning_modules.models.mnist profile, default
            "default">, "epsilons": [...] (default: epsilons), "claim_epsilon": ... (default: claim_epsilon),
            "k": ... (default: the paper's fraction), "alpha": ... (default: alpha)}``; the data come from
            ``data.mnist`` (same profile).
    """

    paper = "ghorbani2019"
    title = "Interpretation of Neural Networks is Fragile"
    citation = "A. Ghorbani, A. Abid, J. Zou. Interpretation of Neural Networks is Fragile. AAAI 2019."

    def __init__(
        self,
        model: dict | None = None,
        methods: list[str] | None = None,
        attacks: list[str] | None = None,
        epsilons: list[float] | None = None,
        steps: int = 20,
        alpha: float | None = None,
        beta: float = 1.0,
        variant_beta: float | None = None,
        beta_grid: list[float] | None = None,
        measure: str = "notebook",
        on_flip: str = "continue",
        k: int | None = None,
        ig_steps: int = 16,
        attack_ig_steps: int | None = None,
        baseline: str | float = "mean",
        only_correct: bool = True,
        keep_best: bool = True,
        seed: int = 0,
        claim_epsilon: float = 8.0,
        claim_margin: float = 0.15,
        n_example_images: int = 3,
        mnist: dict | None = None,
        step_study: dict | None = None,
        cache_dir: str | None = None,
    ):
        super().__init__()
        self.model_cfg = dict(model or {"embedded_v2": "scenes_v2_vgg"})
        if "embedded_v2" in self.model_cfg and set(self.model_cfg) != {"embedded_v2"}:
            raise ValueError(f"model.model.embedded_v2 takes no other keys, got {sorted(self.model_cfg)}")
        self.methods = list(methods or METHODS)
        self.attacks = list(attacks or ("random", "topk", "center"))
        self.epsilons = [float(e) for e in (epsilons or [1, 2, 4, 8])]
        bad = [m for m in self.methods if m not in METHODS] + [a for a in self.attacks if a not in ATTACKS]
        if bad:
            raise ValueError(f"unknown methods/attacks {bad}; methods: {METHODS}, attacks: {ATTACKS}")
        if "targeted" in self.attacks:
            raise ValueError("the targeted attack needs a region per image; run it through FragilityAttack directly")
        if "random" not in self.attacks:
            raise ValueError("attacks must include 'random' (the paper's baseline the claims compare against)")
        _check_epsilons(self.epsilons, float(claim_epsilon), "model.")
        if isinstance(baseline, str) and baseline != "mean":
            raise ValueError(f"baseline must be 'mean' or a constant in [0, 1], got {baseline!r}")
        self.steps, self.alpha, self.beta = int(steps), alpha, float(beta)
        self.variant_beta = None if variant_beta is None else float(variant_beta)
        if self.variant_beta is not None and not self.variant_beta > 0:
            raise ValueError(f"variant_beta must be > 0 (a softplus sharpness) or null, got {variant_beta}")
        if measure != "notebook" and measure not in MEASURES:
            raise ValueError(f"measure must be 'notebook' or one of {MEASURES}, got {measure!r}")
        self.measure, self.on_flip = measure, on_flip
        self.beta_grid = sorted({float(b) for b in (beta_grid or [])})
        if any(not b > 0 for b in self.beta_grid):
            raise ValueError(f"beta_grid holds softplus sharpnesses > 0, got {beta_grid}")
        if self.beta_grid and self.beta not in self.beta_grid:
            raise ValueError(f"beta={self.beta:g} must be one of beta_grid {self.beta_grid} (the rule picks from it)")
        self.step_study = self._check_step_study(step_study, max(self.steps, 1))
        self.cache_dir = None if cache_dir is None else (Path(cache_dir) if Path(cache_dir).is_absolute()
                                                         else REPO_ROOT / cache_dir)
        self.k_cfg, self.ig_steps, self.baseline_cfg = k, int(ig_steps), baseline
        self.attack_ig_steps = int(attack_ig_steps) if attack_ig_steps is not None else self.ig_steps
        self.only_correct, self.keep_best, self.seed = bool(only_correct), bool(keep_best), int(seed)
        self.claim_epsilon, self.claim_margin = float(claim_epsilon), float(claim_margin)
        self.n_example_images = int(n_example_images)
        # validate the attack settings now (fails early with the reason)
        FragilityAttack("topk", self.methods[0], epsilon=max(self.epsilons) / 255, steps=self.steps, beta=self.beta,
                        ig_steps=self.ig_steps, alpha=None if alpha is None else alpha / 255,
                        attack_ig_steps=self.attack_ig_steps, measure=self.measure_for(self.methods[0]),
                        on_flip=self.on_flip)
        primary = ("scenes" if "blackbox" in self.model_cfg else "scenes_v2" if "embedded_v2" in self.model_cfg
                   else "primary")
        self.parts: list[FragilityPart] = [FragilityPart(primary, self.model_cfg, self.epsilons, self.claim_epsilon,
                                                         self.k_cfg, alpha=alpha)]
        self.mnist_cfg = None if mnist is None else dict(mnist)
        if self.mnist_cfg is not None:
            unknown = set(self.mnist_cfg) - {"model", "epsilons", "claim_epsilon", "k", "alpha"}
            if unknown:
                raise ValueError(f"unknown model.mnist keys {sorted(unknown)}; known: model, epsilons, claim_epsilon, k, "
                                 "alpha")
            self.parts.append(FragilityPart(
                "mnist", {"mnist_model": self.mnist_cfg.get("model", "default")},
                self.mnist_cfg.get("epsilons") or self.epsilons,
                float(self.mnist_cfg.get("claim_epsilon", self.claim_epsilon)), self.mnist_cfg.get("k"),
                suffix="_mnist", alpha=self.mnist_cfg.get("alpha", alpha)))
        self.timings: dict = {}
        self.metrics = nn.ModuleDict()

    def measure_for(self, method: str) -> str:
        """The best-iterate measure of ``method``'s attacks."""
        return NOTEBOOK_MEASURES[method] if self.measure == "notebook" else self.measure

    def _check_step_study(self, cfg: dict | None, steps: int) -> dict | None:
        if cfg is None:
            return None
        unknown = set(cfg) - {"n_images", "steps", "methods"}
        if unknown:
            raise ValueError(f"unknown model.step_study keys {sorted(unknown)}; known: n_images, steps, methods")
        counts = sorted({int(t) for t in cfg.get("steps", [])})
        methods = list(cfg.get("methods") or self.methods)
        n = int(cfg.get("n_images", 0))
        if len(counts) < 2 or counts[0] < 1 or n < 1 or any(m not in self.methods for m in methods):
            raise ValueError("model.step_study needs n_images >= 1, at least two step counts >= 1 and methods among "
                             f"model.methods {self.methods}, got {cfg}")
        return {"n_images": n, "steps": counts, "methods": methods}

    # ------------------------------------------------------------------ backward-compatible views of the primary part
    @property
    def primary(self) -> FragilityPart:
        return self.parts[0]

    @property
    def results(self) -> dict:
        return self.primary.results

    @property
    def blackbox(self) -> nn.Module | None:
        return self.primary.model

    @property
    def blackbox_info(self) -> dict:
        return self.primary.info

    # ------------------------------------------------------------------ models
    def _ensure_models(self):
        for part in self.parts:
            if part.model is not None:
                continue
            cfg = dict(part.model_cfg)
            if "blackbox" in cfg:
                from lightning_modules.models import load_model

                profile, retrain = cfg.pop("blackbox"), cfg.pop("retrain", False)
                model, data_config = load_model(f"blackbox_{profile}", weights="retrain" if retrain else "embedded",
                                                **cfg)
                part.info = dict(getattr(model, "blackbox_info", {}) or {})
            elif "embedded_v2" in cfg:
                from lightning_modules.models import load_model

                name = cfg.pop("embedded_v2")
                model, data_config = load_model(name, weights="embedded")
                part.info = {"name": name, **dict(getattr(model, "embedded_info", {}) or {})}
            elif "mnist_model" in cfg:
                from lightning_modules.models import load_model

                model, data_config = load_model(f"mnist_cnn_{cfg.pop('mnist_model')}", weights="embedded")
                part.info = dict(getattr(model, "mnist_info", {}) or {})
            else:
                from lightning_modules.models import load_model

                model, data_config = load_model(**cfg)
            part.data_config = data_config
            part.model = model.to(self.device).eval()
            t0 = time.time()
            part.surrogate = softplus_surrogate(part.model, self.beta).to(self.device)
            if self.variant_beta is not None:
                part.variant_surrogate = softplus_surrogate(part.model, self.variant_beta).to(self.device)
            part.grid_surrogates = {b: softplus_surrogate(part.model, b).to(self.device) for b in self.beta_grid}
            self.timings[f"surrogate_s{part.suffix}"] = round(time.time() - t0, 3)

    def _part(self, dataloader_idx: int) -> FragilityPart:
        if dataloader_idx >= len(self.parts):
            raise ValueError(f"the data serve a test loader #{dataloader_idx} but the module has only the parts "
                             f"{[p.name for p in self.parts]}: set model.mnist for data.mnist (or drop data.mnist)")
        return self.parts[dataloader_idx]

    def _check_data(self) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not hasattr(dm, "mnist_profile"):
            return
        primary = self.primary
        if primary.name == "scenes_v2":
            if dm.source != "scenes_v2":
                raise ValueError(f"model.model.embedded_v2={primary.model_cfg['embedded_v2']!r} is attacked on the v2 "
                                 f"scenes it was trained on: set data.source: scenes_v2 (got {dm.source!r})")
            if primary.model is not None:
                from lightning_modules.models import check_trained_on

                dm.setup("test")
                check_trained_on(primary.model, dm.scenes_config, primary.model_cfg["embedded_v2"])
        elif primary.name == "scenes" and dm.source != "scenes":
            raise ValueError(f"the v1 scenes black box (model.model.blackbox) is attacked on the v1 scenes: set "
                             f"data.source: scenes (got {dm.source!r}), or model.model.embedded_v2 for the v2 scenes")
        if len(self.parts) == 2 and dm.mnist_profile is None:
            raise ValueError("model.mnist is set but data.mnist is not: add data.mnist {n_images: N} (or drop "
                             "model.mnist)")
        if len(self.parts) == 2 and dm.mnist_profile != self.parts[1].model_cfg["mnist_model"]:
            raise ValueError(f"data.mnist.profile={dm.mnist_profile!r} but model.mnist.model="
                             f"{self.parts[1].model_cfg['mnist_model']!r}: the attacked digits must be the test split "
                             "of the MNIST model's own training; use the same profile")

    def _baseline(self, part: FragilityPart, images: torch.Tensor) -> torch.Tensor | float:
        if self.baseline_cfg == "mean":
            mean = torch.as_tensor(part.data_config.mean, dtype=images.dtype, device=images.device)
            return mean.view(1, -1, 1, 1).expand(1, images.shape[1], *images.shape[-2:])
        return float(self.baseline_cfg)

    # ------------------------------------------------------------------ validation: run the models on the data
    def on_validation_start(self) -> None:
        self._ensure_models()
        self._check_data()
        self.val_metrics = nn.ModuleDict({
            f"{p.name}__{q}": SumMetric() for p in self.parts for q in ("images", "correct", "surrogate_agrees")
        }).to(self.device)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        """The model's predictions on the data, the softplus surrogate's agreement with them (the attacks steer by
        the surrogate) and a finite simple-gradient map for every image (the saliency path the attacks use)."""
        part = self._part(dataloader_idx)
        images, labels = batch["image"], batch["label"]
        with torch.no_grad():
            preds = part.model(images).argmax(1)
            surrogate_preds = part.surrogate(images).argmax(1)
        maps = saliency(part.model, images, preds, "gradient")
        if not torch.isfinite(maps).all():
            raise RuntimeError(f"{part.name}: non-finite simple-gradient maps; check the model and the data")
        n = f"{part.name}__"
        self.val_metrics[n + "images"].update(torch.tensor(float(images.shape[0]), device=self.device))
        self.val_metrics[n + "correct"].update((preds == labels).float().sum())
        self.val_metrics[n + "surrogate_agrees"].update((surrogate_preds == preds).float().sum())

    def on_validation_epoch_end(self) -> None:
        for p in self.parts:
            n = float(self.val_metrics[f"{p.name}__images"].compute())
            if n == 0:
                continue
            self.log(f"val/{p.name}/accuracy", float(self.val_metrics[f"{p.name}__correct"].compute()) / n)
            self.log(f"val/{p.name}/surrogate_agreement",
                     float(self.val_metrics[f"{p.name}__surrogate_agrees"].compute()) / n)
            self.log(f"val/{p.name}/images", n)

    # ------------------------------------------------------------------ evaluation
    def _betas(self) -> list[tuple[str, float]]:
        """The surrogates of the run: ("main", beta) and, if set, ("variant", variant_beta)."""
        return [("main", self.beta)] + ([("variant", self.variant_beta)] if self.variant_beta is not None else [])

    def on_test_start(self) -> None:
        self._ensure_models()
        self._check_data()
        m = {}
        for part in self.parts:
            part.reset()
            pm = {}
            cells = [(method, attack, eps, "") for method in self.methods for attack in self.attacks
                     for eps in part.epsilons]
            if self.variant_beta is not None:
                cells += [(method, attack, part.claim_epsilon, "variant__") for method in self.methods
                          for attack in self.attacks if attack != "random"]
            for method, attack, eps, prefix in cells:
                key = prefix + _key(method, attack, eps)
                if part.has_evidence and not prefix:
                    pm[f"{key}__evidence_original"] = TopKMaskShare(k=1)  # k set on the first batch
                    pm[f"{key}__evidence_attacked"] = TopKMaskShare(k=1)
                pm[f"{key}__topk"] = TopKIntersection(k=1)  # k set on the first batch (image size)
                pm[f"{key}__spearman"] = RankCorrelation()
                pm[f"{key}__shift"] = CenterOfMassShift()
                pm[f"{key}__kept"] = SumMetric()
                pm[f"{key}__accepted"] = SumMetric()
                pm[f"{key}__rejected"] = SumMetric()
            for name, _ in self._betas():
                pm[f"surrogate__{name}__topk"] = TopKIntersection(k=1)
                pm[f"surrogate__{name}__spearman"] = RankCorrelation()
                pm[f"surrogate__{name}__agrees"] = SumMetric()
            for beta in self.beta_grid:
                name = _beta_key(beta)
                pm[f"grid__{name}__topk"] = TopKIntersection(k=1)
                pm[f"grid__{name}__spearman"] = RankCorrelation()
                pm[f"grid__{name}__agrees"] = SumMetric()
            if self.step_study is not None and part is self.primary:
                for method in self.step_study["methods"]:
                    for attack in self.attacks:
                        for t in self.step_study["steps"]:
                            key = f"steps__{method}__{attack}__{t}"
                            pm[f"{key}__topk"] = TopKIntersection(k=1)
                            pm[f"{key}__spearman"] = RankCorrelation()
                            pm[f"{key}__shift"] = CenterOfMassShift()
            pm["images"] = SumMetric()
            pm["attacked_images"] = SumMetric()
            m[part.name] = nn.ModuleDict(pm)
            part.attack_s = {method: 0.0 for method in self.methods}
            part.test_s = part.test_cpu_s = 0.0
        self.metrics = nn.ModuleDict(m).to(self.device)
        self._test_started = time.time()

    def _attack(self, part, method, attack, eps, baseline, batch_idx, beta, steps=None, record_steps=()):
        return FragilityAttack(attack, method, epsilon=eps / 255,
                               alpha=None if part.alpha is None else part.alpha / 255, steps=steps or self.steps,
                               k=part.k, beta=beta, ig_steps=self.ig_steps, baseline=baseline,
                               seed=self.seed + batch_idx, keep_best=self.keep_best,
                               attack_ig_steps=self.attack_ig_steps, measure=self.measure_for(method),
                               on_flip=self.on_flip, record_steps=record_steps)

    def _run_attack(self, part, attack_obj: FragilityAttack, model, images, surrogate, ids) -> tuple[AttackResult, float]:
        """``attack_obj`` on ``images``, read from the cache where this exact attack ran before; returns the result
        and the CPU seconds it cost when it ran. The cache key covers the model part, every attack setting, the
        images' bytes, their ids and the attack code, so a changed setting or code never reads a stale entry."""
        path = None
        if self.cache_dir is not None:
            h = hashlib.sha256()
            settings = {k: v for k, v in vars(attack_obj).items() if k != "baseline"}
            h.update(repr((part.name, part.model_cfg, sorted(settings.items()))).encode())
            base = attack_obj.baseline
            h.update(base.detach().cpu().numpy().tobytes() if isinstance(base, torch.Tensor) else repr(base).encode())
            h.update(images.detach().cpu().numpy().tobytes())
            h.update(ids.detach().cpu().numpy().tobytes())
            h.update(_ATTACK_CODE_SHA.encode())
            path = self.cache_dir / f"{part.name}__{attack_obj.method}__{attack_obj.attack}__{h.hexdigest()[:24]}.pt"
            if path.is_file():
                stored = torch.load(path, map_location=images.device, weights_only=False)
                return AttackResult(**stored["result"]), stored["cpu_s"]
        cpu0 = time.process_time()
        res = attack_obj(model, images, surrogate=surrogate)
        cpu_s = time.process_time() - cpu0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            torch.save({"result": {k: ({t: x.cpu() for t, x in v.items()} if isinstance(v, dict) else
                                       v.detach().cpu() if isinstance(v, torch.Tensor) else v)
                                   for k, v in vars(res).items()}, "cpu_s": cpu_s}, tmp)
            tmp.replace(path)  # atomic: an interrupted run never leaves a half-written entry
        return res, cpu_s

    @staticmethod
    def _update(metrics, key, res, ids, evidence=None) -> None:
        if evidence is not None and f"{key}__evidence_original" in metrics:
            metrics[f"{key}__evidence_original"].update(res.maps, evidence, ids)
            metrics[f"{key}__evidence_attacked"].update(res.attacked_maps, evidence, ids)
        metrics[f"{key}__topk"].update(res.maps, res.attacked_maps, ids)
        metrics[f"{key}__spearman"].update(res.maps, res.attacked_maps, ids)
        metrics[f"{key}__shift"].update(res.maps, res.attacked_maps, ids)
        metrics[f"{key}__kept"].update(res.label_kept.float().sum())
        metrics[f"{key}__accepted"].update(res.accepted_steps.float().sum())
        metrics[f"{key}__rejected"].update(res.rejected_steps.float().sum())

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        part = self._part(dataloader_idx)
        metrics = self.metrics[part.name]
        started, started_cpu = time.time(), time.process_time()
        images, labels, ids = batch["image"], batch["label"], batch["id"]
        evidence = batch.get("evidence_mask") if part.has_evidence else None
        if part.has_evidence and evidence is None:
            raise ValueError(f"{part.name}: the batches carry no evidence_mask (benchmark v2's ground truth)")
        model = part.model
        with torch.no_grad():
            preds = model(images).argmax(1)
        metrics["images"].update(torch.tensor(float(images.shape[0]), device=self.device))
        if self.only_correct:
            keep = preds == labels
            images, ids, preds = images[keep], ids[keep], preds[keep]
            evidence = None if evidence is None else evidence[keep]
        if images.shape[0] == 0:
            return None
        metrics["attacked_images"].update(torch.tensor(float(images.shape[0]), device=self.device))
        h, w = images.shape[-2:]
        if part.k is None:
            part.k = int(part.k_cfg) if part.k_cfg is not None else max(1, round(PAPER_TOPK_FRACTION * h * w))
            part.image_size = (int(h), int(w))
            for name, metric in metrics.items():
                if name.endswith("__topk") or "__evidence_" in name:
                    metric.k = part.k
        # how closely each surrogate follows the model it stands in for: its simple-gradient map (and label) on the
        # clean images against the model's own
        maps = saliency(model, images, preds, "gradient")
        surrogates = [(f"surrogate__{name}", part.surrogate if name == "main" else part.variant_surrogate)
                      for name, _ in self._betas()]
        surrogates += [(f"grid__{_beta_key(beta)}", surrogate) for beta, surrogate in part.grid_surrogates.items()]
        for prefix, surrogate in surrogates:
            with torch.no_grad():
                agrees = (surrogate(images).argmax(1) == preds).float().sum()
            smaps = saliency(surrogate, images, preds, "gradient")
            metrics[f"{prefix}__topk"].update(maps, smaps, ids)
            metrics[f"{prefix}__spearman"].update(maps, smaps, ids)
            metrics[f"{prefix}__agrees"].update(agrees)
        baseline = self._baseline(part, images)
        if self.step_study is not None and part is self.primary:
            self._step_study(part, metrics, model, images, ids, baseline, batch_idx)
        for method in self.methods:
            t0 = time.time()
            for attack in self.attacks:
                for eps in part.epsilons:
                    res, cpu_s = self._run_attack(part, self._attack(part, method, attack, eps, baseline, batch_idx,
                                                                     self.beta), model, images, part.surrogate, ids)
                    key = _key(method, attack, eps)
                    part.cell_cpu_s[key] = part.cell_cpu_s.get(key, 0.0) + cpu_s
                    self._update(metrics, key, res, ids, evidence)
                    if (method, attack) not in part.examples and eps == max(part.epsilons):
                        n = self.n_example_images
                        part.examples[(method, attack)] = {
                            "image": images[:n].detach().cpu(), "attacked": res.images[:n].detach().cpu(),
                            "map": res.maps[:n].cpu(), "attacked_map": res.attacked_maps[:n].cpu(),
                        }
                if attack != "random" and self.variant_beta is not None:
                    eps = part.claim_epsilon
                    res, _ = self._run_attack(part, self._attack(part, method, attack, eps, baseline, batch_idx,
                                                                 self.variant_beta),
                                              model, images, part.variant_surrogate, ids)
                    self._update(metrics, "variant__" + _key(method, attack, eps), res, ids)
            part.attack_s[method] += time.time() - t0
        part.test_s += time.time() - started
        part.test_cpu_s += time.process_time() - started_cpu
        return None

    def _step_study(self, part, metrics, model, images, ids, baseline, batch_idx) -> None:
        """The images with sample id below ``step_study.n_images``, attacked at ``claim_epsilon`` once with the
        largest step count; the image returned after each smaller count is recorded and evaluated."""
        study = self.step_study
        sel = ids < study["n_images"]
        if not bool(sel.any()):
            return
        x, sid = images[sel], ids[sel]
        base = baseline[: 1] if isinstance(baseline, torch.Tensor) else baseline
        for method in study["methods"]:
            for attack in self.attacks:
                atk = self._attack(part, method, attack, part.claim_epsilon, base, batch_idx, self.beta,
                                   steps=study["steps"][-1], record_steps=tuple(study["steps"]))
                res, cpu_s = self._run_attack(part, atk, model, x, part.surrogate, sid)
                part.step_cost_s[f"{method}__{attack}"] = part.step_cost_s.get(f"{method}__{attack}", 0.0) + cpu_s
                for t in study["steps"]:
                    attacked = atk.maps(model, res.images_at_steps[t], res.labels)
                    key = f"steps__{method}__{attack}__{t}"
                    metrics[f"{key}__topk"].update(res.maps, attacked, sid)
                    metrics[f"{key}__spearman"].update(res.maps, attacked, sid)
                    metrics[f"{key}__shift"].update(res.maps, attacked, sid)

    def on_test_epoch_end(self) -> None:
        for part in self.parts:
            self._collect(part, self.metrics[part.name])
        self.timings["test_s"] = round(time.time() - self._test_started, 1)
        for part in self.parts:
            self.timings[f"test_s_{part.name}"] = round(part.test_s or 0.0, 1)
            self.timings[f"attack_s_per_method_{part.name}"] = {m: round(s, 1) for m, s in part.attack_s.items()}

    def _cell(self, part, metrics, key: str, n_attacked: float) -> dict:
        """Means and per-image values (sorted by sample id, the same images in every cell) of one attack run."""
        per = {q: metrics[f"{key}__{name}"].per_sample() for q, name in
               (("topk_intersection", "topk"), ("spearman", "spearman"), ("center_shift_px", "shift"))}
        ids = per["topk_intersection"]["ids"].tolist()
        if not part.ids:
            part.ids = ids
        if ids != part.ids or any(v["ids"].tolist() != ids for v in per.values()):
            raise RuntimeError(f"{part.name} {key}: the attack cells saw different images; the per-image values "
                               "would not be paired")
        samples = {q: [float(x) for x in v["values"].double().cpu()] for q, v in per.items()}
        steps = float(metrics[f"{key}__accepted"].compute()) + float(metrics[f"{key}__rejected"].compute())
        shift = float(torch.tensor(samples["center_shift_px"], dtype=torch.float64).mean())
        return {
            **{q: float(torch.tensor(v, dtype=torch.float64).mean()) for q, v in samples.items()},
            "center_shift_fraction": shift / max(part.image_size),
            "label_kept_rate": float(metrics[f"{key}__kept"].compute()) / n_attacked,
            "accepted_step_rate": float(metrics[f"{key}__accepted"].compute()) / max(steps, 1.0),
            "n": len(ids),
            "samples": samples,
        }

    @staticmethod
    def _evidence_cell(part, metrics, key: str) -> dict:
        """The original and the attacked maps' top-k share on the evidence, per image (the cells' images)."""
        samples = {}
        for which in ("original", "attacked"):
            per = metrics[f"{key}__evidence_{which}"].per_sample()
            if per["ids"].tolist() != part.ids:
                raise RuntimeError(f"{part.name} {key}: the evidence shares saw other images than the cell")
            samples[which] = [float(x) for x in per["values"].double().cpu()]
        return {**{w: float(torch.tensor(v, dtype=torch.float64).mean()) for w, v in samples.items()},
                "n": len(part.ids), "samples": samples}

    def _collect(self, part: FragilityPart, metrics: nn.ModuleDict) -> None:
        res: dict = {}
        variant: dict = {}
        evidence: dict = {}
        n_attacked = float(metrics["attacked_images"].compute())
        if n_attacked > 0:
            for method in self.methods:
                for attack in self.attacks:
                    for eps in part.epsilons:
                        res.setdefault(method, {}).setdefault(attack, {})[str(eps)] = self._cell(
                            part, metrics, _key(method, attack, eps), n_attacked)
                        if part.has_evidence:
                            evidence.setdefault(method, {}).setdefault(attack, {})[str(eps)] = self._evidence_cell(
                                part, metrics, _key(method, attack, eps))
                    if attack != "random" and self.variant_beta is not None:
                        variant.setdefault(method, {})[attack] = self._cell(
                            part, metrics, "variant__" + _key(method, attack, part.claim_epsilon), n_attacked)
            for name, beta in self._betas():
                per_t = metrics[f"surrogate__{name}__topk"].per_sample()["values"].double().cpu()
                per_s = metrics[f"surrogate__{name}__spearman"].per_sample()["values"].double().cpu()
                part.surrogate_maps[name] = {
                    "beta": beta, "topk_intersection": float(per_t.mean()), "spearman": float(per_s.mean()),
                    "label_agreement": float(metrics[f"surrogate__{name}__agrees"].compute()) / n_attacked,
                    "samples": {"topk_intersection": [float(x) for x in per_t],
                                "spearman": [float(x) for x in per_s]},
                }
            for beta in self.beta_grid:
                name = _beta_key(beta)
                per_t = metrics[f"grid__{name}__topk"].per_sample()["values"].double().cpu()
                per_s = metrics[f"grid__{name}__spearman"].per_sample()["values"].double().cpu()
                part.surrogate_grid[f"{beta:g}"] = {
                    "beta": beta, "topk_intersection": float(per_t.mean()), "spearman": float(per_s.mean()),
                    "label_agreement": float(metrics[f"grid__{name}__agrees"].compute()) / n_attacked,
                }
            if self.step_study is not None and part is self.primary:
                part.step_results = self._collect_steps(metrics)
        part.results = res
        part.variant = variant
        part.evidence = evidence
        part.counts = {"images": int(metrics["images"].compute()), "attacked": int(n_attacked)}

    def _collect_steps(self, metrics) -> dict:
        out: dict = {}
        for method in self.step_study["methods"]:
            for attack in self.attacks:
                for t in self.step_study["steps"]:
                    key = f"steps__{method}__{attack}__{t}"
                    per = {q: metrics[f"{key}__{name}"].per_sample() for q, name in
                           (("topk_intersection", "topk"), ("spearman", "spearman"), ("center_shift_px", "shift"))}
                    samples = {q: [float(x) for x in v["values"].double().cpu()] for q, v in per.items()}
                    out.setdefault(method, {}).setdefault(attack, {})[str(t)] = {
                        **{q: float(torch.tensor(v, dtype=torch.float64).mean()) for q, v in samples.items()},
                        "n": len(samples["topk_intersection"]), "ids": per["topk_intersection"]["ids"].tolist(),
                        "samples": samples}
        return out

    # ------------------------------------------------------------------ results and report
    def plain_results(self) -> dict:
        """Everything the claims read (``claims.build_claims``): per part, the means and per-image values of every
        method x attack x epsilon cell, the variant cells, the surrogates' map agreement, and the setting."""
        return {
            "methods": list(self.methods),
            "attacks": list(self.attacks),
            "claim_margin": self.claim_margin,
            "setting": {"steps": self.steps, "beta": self.beta, "variant_beta": self.variant_beta,
                        "beta_grid": self.beta_grid, "beta_rule": BETA_RULE,
                        "measure": self.measure, "measures": {m: self.measure_for(m) for m in self.methods},
                        "on_flip": self.on_flip, "keep_best": self.keep_best,
                        "ig_steps": self.ig_steps, "attack_ig_steps": self.attack_ig_steps,
                        "step_study": self.step_study},
            "parts": {p.name: {
                "suffix": p.suffix, "is_mnist": p.is_mnist, "epsilons": p.epsilons, "claim_epsilon": p.claim_epsilon,
                "alpha": p.alpha, "k": p.k, "image_size": list(p.image_size or ()), "counts": p.counts,
                "ids": p.ids, "cells": p.results, "variant": p.variant, "surrogate_maps": p.surrogate_maps,
                "evidence": p.evidence, "surrogate_grid": p.surrogate_grid, "step_study": p.step_results,
            } for p in self.parts},
        }

    def build_report(self, report) -> None:
        from replications.ghorbani2019 import figures, tables

        for part in self.parts:
            if not part.results:
                raise RuntimeError(f"{part.name}: no image was attacked (none correctly classified, or no {part.name} "
                                   "test loader?): set only_correct: false, use more images, or check data.mnist")
        report.add_section("Setting", tables.setting_text(self))
        for part in self.parts:
            tables.add_tables(self, part, report)
        for part in self.parts:
            figures.add_figures(self, part, report)
        tables.add_cost_table(self, report)
        report.add_section("Deviations from the paper", tables.deviations_text(self))
        report.metrics.update({"timings_s": self.timings,
                               "models": {p.name: {k: v for k, v in p.info.items() if k != "config"}
                                          for p in self.parts}})
