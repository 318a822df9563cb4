"""Ghorbani, Abid & Zou 2019, "Interpretation of Neural Networks is Fragile" (AAAI 2019): the replication.

For every saliency method (simple gradient, Integrated Gradients, DeepLIFT), attack (random sign, top-k,
centre of mass) and L-inf budget epsilon (1, 2, 4, 8 / 255), the images are attacked with
``lightning_modules.attacks.FragilityAttack`` (label-keeping iterative L-inf steps through a softplus surrogate,
Sec. 3), and the original and attacked maps are compared with the paper's three metrics (Sec. 4): top-k
intersection, Spearman rank correlation and centre-of-mass shift (``lightning_modules.metrics.fragility``,
torchmetrics, per-sample, DDP-synced). Label preservation of the attacked images is counted as well.

The attacks learn nothing: ``fit`` runs one no-op training step, then ``test`` runs the attacks.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
from torchmetrics import SumMetric

from lightning_modules.attacks import ATTACKS, METHODS, FragilityAttack, softplus_surrogate
from lightning_modules.metrics.fragility import CenterOfMassShift, RankCorrelation, TopKIntersection
from replications.cli import ReplicationModule

#: k = 1000 of 227 x 227 pixels in the paper: the same fraction of our images' pixels
PAPER_TOPK_FRACTION = 1000 / (227 * 227)


def _key(method: str, attack: str, eps: float) -> str:
    return f"{method}__{attack}__{str(eps).replace('.', 'p')}"


class FragilityReplication(ReplicationModule):
    """See the module docstring. Constructor arguments are the config's ``model:`` section.

    Args:
        model: the black box: ``{"blackbox": "default"}`` (the cached scenes network) or ``load_model`` kwargs
            (``{"name": "squeezenet1_1", "pretrained": true}``).
        methods: saliency methods attacked (``gradient``, ``integrated_gradients``, ``deeplift``).
        attacks: ``random`` (baseline), ``topk``, ``center`` (``targeted`` needs a region; not run here).
        epsilons: L-inf budgets in 0-255 units (divided by 255 for the [0, 1] images).
        steps: attack iterations.
        alpha: step size in 0-255 units; None = epsilon / 4.
        beta: softplus sharpness of the surrogate.
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
        beta: float = 10.0,
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
    ):
        super().__init__()
        self.model_cfg = dict(model or {"blackbox": "default"})
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
        # all budgets below 1 means [0, 1] units were given (8/255 = 0.031): ask for 0-255 units
        if not all(0 < e <= 255 for e in self.epsilons) or max(self.epsilons) < 1:
            raise ValueError(f"epsilons are in 0-255 pixel units (e.g. [1, 2, 4, 8]), got {self.epsilons}")
        if float(claim_epsilon) not in self.epsilons:
            raise ValueError(f"claim_epsilon={claim_epsilon} must be one of epsilons {self.epsilons}")
        if isinstance(baseline, str) and baseline != "mean":
            raise ValueError(f"baseline must be 'mean' or a constant in [0, 1], got {baseline!r}")
        self.steps, self.alpha, self.beta = int(steps), alpha, float(beta)
        self.k_cfg, self.ig_steps, self.baseline_cfg = k, int(ig_steps), baseline
        self.attack_ig_steps = int(attack_ig_steps) if attack_ig_steps is not None else self.ig_steps
        self.only_correct, self.keep_best, self.seed = bool(only_correct), bool(keep_best), int(seed)
        self.claim_epsilon, self.claim_margin = float(claim_epsilon), float(claim_margin)
        self.n_example_images = int(n_example_images)
        # validate the attack settings now (fails early with the reason)
        FragilityAttack("topk", self.methods[0], epsilon=max(self.epsilons) / 255, steps=self.steps, beta=self.beta,
                        ig_steps=self.ig_steps, alpha=None if alpha is None else alpha / 255,
                        attack_ig_steps=self.attack_ig_steps)
        self.blackbox: nn.Module | None = None
        self.surrogate: nn.Module | None = None
        self.blackbox_info: dict = {}
        self.timings: dict = {}
        self._reset_state()

    def _reset_state(self):
        self.metrics = nn.ModuleDict()
        self.results: dict = {}
        self.examples: dict = {}
        self.k: int | None = None
        self.image_size: tuple | None = None

    # ------------------------------------------------------------------ models
    def _ensure_models(self):
        if self.blackbox is not None:
            return
        cfg = dict(self.model_cfg)
        if "blackbox" in cfg:
            from lightning_modules.blackbox import load_blackbox

            model, data_config = load_blackbox(cfg.pop("blackbox"), **cfg)
            self.blackbox_info = dict(getattr(model, "blackbox_info", {}) or {})
        else:
            from lightning_modules.models import load_model

            model, data_config = load_model(**cfg)
        self.data_config = data_config
        self.blackbox = model.to(self.device).eval()
        t0 = time.time()
        self.surrogate = softplus_surrogate(self.blackbox, self.beta).to(self.device)
        self.timings["surrogate_s"] = round(time.time() - t0, 3)

    def _baseline(self, images: torch.Tensor) -> torch.Tensor | float:
        if self.baseline_cfg == "mean":
            mean = torch.as_tensor(self.data_config.mean, dtype=images.dtype, device=images.device)
            return mean.view(1, -1, 1, 1).expand(1, images.shape[1], *images.shape[-2:])
        return float(self.baseline_cfg)

    # ------------------------------------------------------------------ evaluation
    def on_test_start(self) -> None:
        self._ensure_models()
        self._reset_state()
        m = {}
        for method in self.methods:
            for attack in self.attacks:
                for eps in self.epsilons:
                    key = _key(method, attack, eps)
                    m[f"{key}__topk"] = TopKIntersection(k=1)  # k set on the first batch (image size)
                    m[f"{key}__spearman"] = RankCorrelation()
                    m[f"{key}__shift"] = CenterOfMassShift()
                    m[f"{key}__kept"] = SumMetric()
                    m[f"{key}__accepted"] = SumMetric()
                    m[f"{key}__rejected"] = SumMetric()
        m["images"] = SumMetric()
        m["attacked_images"] = SumMetric()
        self.metrics = nn.ModuleDict(m).to(self.device)
        self._test_started = time.time()
        self._attack_s = {m: 0.0 for m in self.methods}

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        images, labels, ids = batch["image"], batch["label"], batch["id"]
        model = self.blackbox
        with torch.no_grad():
            preds = model(images).argmax(1)
        self.metrics["images"].update(torch.tensor(float(images.shape[0]), device=self.device))
        if self.only_correct:
            keep = preds == labels
            images, ids = images[keep], ids[keep]
        if images.shape[0] == 0:
            return None
        self.metrics["attacked_images"].update(torch.tensor(float(images.shape[0]), device=self.device))
        h, w = images.shape[-2:]
        if self.k is None:
            self.k = int(self.k_cfg) if self.k_cfg is not None else max(1, round(PAPER_TOPK_FRACTION * h * w))
            self.image_size = (int(h), int(w))
            for name, metric in self.metrics.items():
                if name.endswith("__topk"):
                    metric.k = self.k
        baseline = self._baseline(images)
        for method in self.methods:
            t0 = time.time()
            for attack in self.attacks:
                for eps in self.epsilons:
                    atk = FragilityAttack(attack, method, epsilon=eps / 255,
                                          alpha=None if self.alpha is None else self.alpha / 255, steps=self.steps,
                                          k=self.k, beta=self.beta, ig_steps=self.ig_steps, baseline=baseline,
                                          seed=self.seed + batch_idx, keep_best=self.keep_best,
                                          attack_ig_steps=self.attack_ig_steps)
                    res = atk(model, images, surrogate=self.surrogate)
                    key = _key(method, attack, eps)
                    self.metrics[f"{key}__topk"].update(res.maps, res.attacked_maps, ids)
                    self.metrics[f"{key}__spearman"].update(res.maps, res.attacked_maps, ids)
                    self.metrics[f"{key}__shift"].update(res.maps, res.attacked_maps, ids)
                    self.metrics[f"{key}__kept"].update(res.label_kept.float().sum())
                    self.metrics[f"{key}__accepted"].update(res.accepted_steps.float().sum())
                    self.metrics[f"{key}__rejected"].update(res.rejected_steps.float().sum())
                    if batch_idx == 0 and eps == max(self.epsilons):
                        n = self.n_example_images
                        self.examples[(method, attack)] = {
                            "image": images[:n].detach().cpu(), "attacked": res.images[:n].detach().cpu(),
                            "map": res.maps[:n].cpu(), "attacked_map": res.attacked_maps[:n].cpu(),
                        }
            self._attack_s[method] += time.time() - t0
        return None

    def on_test_epoch_end(self) -> None:
        res: dict = {}
        n_attacked = float(self.metrics["attacked_images"].compute())
        for method in self.methods:
            for attack in self.attacks:
                for eps in self.epsilons:
                    key = _key(method, attack, eps)
                    if n_attacked == 0:
                        continue
                    shift = float(self.metrics[f"{key}__shift"].compute())
                    steps = float(self.metrics[f"{key}__accepted"].compute()) + float(self.metrics[f"{key}__rejected"].compute())
                    res.setdefault(method, {}).setdefault(attack, {})[str(eps)] = {
                        "topk_intersection": float(self.metrics[f"{key}__topk"].compute()),
                        "spearman": float(self.metrics[f"{key}__spearman"].compute()),
                        "center_shift_px": shift,
                        "center_shift_fraction": shift / max(self.image_size),
                        "label_kept_rate": float(self.metrics[f"{key}__kept"].compute()) / n_attacked,
                        "accepted_step_rate": float(self.metrics[f"{key}__accepted"].compute()) / max(steps, 1.0),
                        "n": int(self.metrics[f"{key}__topk"].per_sample()["values"].numel()),
                    }
        self.results = res
        self.counts = {"images": int(self.metrics["images"].compute()), "attacked": int(n_attacked)}
        self.timings["test_s"] = round(time.time() - self._test_started, 1)
        self.timings["attack_s_per_method"] = {m: round(s, 1) for m, s in self._attack_s.items()}

    # ------------------------------------------------------------------ report
    def build_report(self, report) -> None:
        from replications.ghorbani2019 import claims, figures

        if not self.results:
            raise RuntimeError("no image was attacked (none correctly classified?): set only_correct: false or "
                               "use more images")
        report.add_section("Setting", claims.setting_text(self))
        claims.add_tables(self, report)
        claims.add_claims(self, report)
        figures.add_figures(self, report)
        report.add_section("Deviations from the paper", claims.deviations_text(self))
        report.metrics.update({"results": self.results, "counts": self.counts, "k": self.k,
                               "image_size": list(self.image_size or ()), "timings_s": self.timings,
                               "blackbox": {k: v for k, v in self.blackbox_info.items() if k != "config"}})
