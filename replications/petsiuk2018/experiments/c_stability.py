"""c. Stability of RISE: its maps and AUCs vs the number of masks N and across mask seeds, on the first images of the
first batch.

The first n of the N i.i.d. masks are a RISE estimator with n masks, so one all-classes pass per seed gives every n:
RISE's own seed reuses the run's pass (the scores behind ``ctx.map("rise")``, computed once per batch), the other
seeds make one pass each. Per N: the mean deletion / insertion AUC of each seed, the Pearson correlation of the maps
of different seeds (per image, mean over seed pairs) and the correlation to RISE's own map at the full N.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.explainers.rise import RISE
from lightning_modules.metrics.progressive import trapezoid_auc
from lightning_modules.metrics.causal import DeletionAUC, InsertionAUC
from replications.petsiuk2018.experiments.a_causal import top1


@dataclass
class StabilityConfig:
    """RISE vs the number of masks: the N values (each <= ``methods.rise.n_masks``), the mask seeds besides
    RISE's own, and the number of images."""

    n_values: list[int] = field(default_factory=lambda: [50, 100, 250, 500, 1000])
    seeds: list[int] = field(default_factory=lambda: [1, 2])
    n_images: int = 6


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Pearson correlation of flattened maps ``(B, ...)``."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


class StabilityExperiment(Experiment):
    """RISE vs N and mask seeds (see the module docstring), measured once, on the first batch."""

    name = "c_stability"
    splits = ("test", "causal")

    def __init__(self, config: dict, rise: RISE, rise_kwargs: dict, causal_kwargs: dict,
                 scores: Callable[[BatchContext], torch.Tensor]):
        """``rise``: the run's RISE explainer (its masks are the first seed's); ``scores(ctx)``: its all-classes
        scores of a batch ``(B, N, K)``, shared with the maps; ``causal_kwargs``: deletion / insertion's settings."""
        super().__init__()
        self.config = dict(config)
        self.rise, self.rise_kwargs, self.scores = rise, dict(rise_kwargs), scores
        # deletion / insertion curves of the study's maps, without metric state (a tuple: not submodules)
        self.auc = (DeletionAUC(substrate="mean", **causal_kwargs), InsertionAUC(**causal_kwargs))
        self.result: dict = {}
        self.example: dict = {}
        self.seconds: dict[str, float] = {}

    def update(self, ctx: BatchContext) -> None:
        if ctx.batch_idx != 0 or self.result:
            return
        t0 = time.time()
        scores0 = self.scores(ctx)
        self._measure(ctx.model, ctx.images, top1(ctx), scores0)
        self.seconds["stability_s"] = time.time() - t0

    def _measure(self, model, images: torch.Tensor, preds: torch.Tensor, scores0: torch.Tensor) -> None:
        n_img = min(int(self.config["n_images"]), images.shape[0])
        images, preds = images[:n_img], preds[:n_img]
        size = images.shape[-2:]
        pick = lambda s: s.gather(2, preds.view(-1, 1, 1).expand(-1, s.shape[1], 1))[..., 0]  # noqa: E731
        seeds = [self.rise.seed] + [int(s) for s in self.config["seeds"]]
        explainers = {self.rise.seed: self.rise}
        per_seed_scores = {self.rise.seed: pick(scores0[:n_img])}
        for s in seeds[1:]:
            ex = RISE(**{**self.rise_kwargs, "seed": s})
            explainers[s] = ex
            per_seed_scores[s] = pick(ex.class_scores(model, images))
        del_m, ins_m = self.auc
        n_values = [int(n) for n in self.config["n_values"]]
        res = {"n_values": n_values, "seeds": seeds, "n_images": n_img, "deletion": {}, "insertion": {},
               "seed_corr": {}, "seed_corr_per_image": {}, "ref_corr": {}}
        ref = explainers[seeds[0]].maps_from_scores(per_seed_scores[seeds[0]], size)  # N_max, first seed
        maps_n = {}
        for n in n_values:
            maps_n[n] = {s: explainers[s].maps_from_scores(per_seed_scores[s], size, n) for s in seeds}
            res["deletion"][n] = [float(trapezoid_auc(del_m.curves(model, images, maps_n[n][s], preds)).mean()) for s in seeds]
            res["insertion"][n] = [float(trapezoid_auc(ins_m.curves(model, images, maps_n[n][s], preds)).mean()) for s in seeds]
            pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
            if not pairs:
                raise ValueError("the stability study needs at least one seed besides RISE's own: set stability.seeds")
            per_image = torch.stack([_pearson_rows(maps_n[n][a], maps_n[n][b]) for a, b in pairs]).mean(0)
            res["seed_corr_per_image"][n] = per_image.tolist()
            res["seed_corr"][n] = float(per_image.mean())
            res["ref_corr"][n] = float(_pearson_rows(maps_n[n][seeds[0]], ref).mean())
        self.result = res
        # one image's maps for the first two seeds at every N (the maps-vs-N figure); keys as stored (strings)
        self.example = {"image": images[:1].cpu(),
                        "maps": {str(n): {str(s): maps_n[n][s][:1].cpu() for s in seeds[:2]} for n in n_values}}

    def compute(self) -> dict:
        """``stability``: N values, seeds, images, per N the mean AUC of each seed, the seeds' map correlation (mean
        and per image) and the correlation to the full-N map."""
        return {"stability": self.result} if self.result else {}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.petsiuk2018.claims import stability_claims

        return stability_claims(results)

    def examples(self) -> dict:
        return dict(self.example)


#: where it sees a batch among the experiments (``replication.RiseReplication`` runs them in this order)
ORDER = 30


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``RiseReplication``)."""
    return [StabilityExperiment(rep.stability_cfg, rep.rise, rep.method_kwargs["rise"], rep.causal_used,
                                rep.rise_scores)]
