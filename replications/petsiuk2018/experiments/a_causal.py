"""a. Deletion / insertion AUC (Petsiuk et al. 2018, Sec. 4.1, Table 1) of RISE, Grad-CAM, sliding-window occlusion,
LIME and the gradient, with the paper's protocol (``lightning_modules.metrics.causal``): pixels in decreasing
saliency order, deletion to the model's mean colour (the paper's substrate) and, beside it, to a blurred copy;
insertion from a Gaussian blur (kernel 11, sigma 5 at 224 px, scaled with the image side), softmax probability of
the model's top-1 class. Insertion may have its own step and window (``insertion_pixels_per_step``,
``insertion_max_pixels``; issue 37: on the scenes the class returns within ~2% of the image and the full-image
insertion AUC sits at its ceiling, so the configs score insertion over a window of the mean evidence area in 20 steps).

Two reference rows bound the metric: the *oracle* map (the ground-truth evidence of the target class: benchmark v2's
``evidence_mask``, the v1 scenes' head mask) and uniform random maps. Where the data has the evidence, each map's
evidence precision (the share of its top-A pixels on the evidence) is kept per image, and with both reference rows
the deletion and insertion protocols are judged for validity in the run (the oracle best, random worst, methods
separated, not saturated, plus the first-step checks below, and for insertion the share of images at the AUC's
ceiling, ``lightning_modules.reporting.validity.share_at_ceiling``) from the per-image values (``protocol_validity``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.explainers.baselines import TIE_ORDERS
from lightning_modules.metrics import SampleValues
from lightning_modules.metrics.causal import DeletionAUC, InsertionAUC, default_pixels_per_step
from lightning_modules.reporting import protocol_spec
from lightning_modules.reporting.validity import AUC_CEILING_MARGIN, MAX_SHARE_AT_CEILING, share_at_ceiling
from replications.petsiuk2018 import paper as P

#: the deletion substrates: the paper's mean colour, and a blurred copy (mean colour leaves a grey silhouette)
DELETION_SUBSTRATES = ("mean", "blur")
#: the reference maps scored beside the methods
REFERENCES = ("oracle", "random")
#: rules of judgement 6: the oracle's binary evidence with its ties broken by each stated order of the shared oracle
#: (``explainers.baselines.oracle_map``); the validity's oracle check passes when any oracle is best or within CI
ORACLE_TIE_ORDERS = tuple(f"oracle__{t}" for t in TIE_ORDERS)
#: validity rules of deletion / insertion (as ``lightning_modules.benchmarks.validity``): after the first step at most
#: this share of the best method's mean drop / rise is done; one step at most this share of the mean evidence area;
#: the blurred insertion start at most this many times chance
MAX_FIRST_STEP_SHARE = 0.9
MAX_STEP_SHARE_OF_MEAN_EVIDENCE = 0.25
MAX_BLURRED_START_OVER_CHANCE = 3.0
#: insertion's window (issue 37): at least this share of the mean evidence area, so that the oracle inserts (nearly)
#: all of its evidence within it; the window's upper side is held by the ceiling check (``share_at_ceiling``)
MIN_INSERTION_WINDOW_OVER_EVIDENCE = 0.75
#: the per-batch key of the model's top-1 classes (``ctx.cached``)
TOP1 = "top1"


@dataclass
class CausalConfig:
    """Deletion / insertion (Sec. 4.1): pixels per step (None: the paper's 28 steps), insertion's own step and window
    (``insertion_pixels_per_step``, ``insertion_max_pixels``; None: deletion's step and the whole image, the paper's
    protocol), the insertion start's blur
    (None: the paper's kernel 11 / sigma 5 at 224 px scaled with the image side), the largest batch of perturbed
    images per forward pass, and the reference rows (``oracle``: the ground-truth evidence; ``random``)."""

    pixels_per_step: int | None = None
    insertion_pixels_per_step: int | None = None
    insertion_max_pixels: int | None = None
    blur_kernel: int | None = None
    blur_sigma: float | None = None
    max_batch: int = 256
    references: list[str] = field(default_factory=lambda: ["oracle", "random"])


def scaled_blur(side: int) -> tuple[int, float]:
    """RISE's insertion blur (kernel 11, sigma 5 at 224 px) scaled with the image side: sigma = 5 * side / 224,
    the kernel the odd integer nearest 11 * side / 224 (at least 3)."""
    sigma = P.INSERTION_BLUR["sigma"] * side / 224
    k = max(3, 2 * int(round((P.INSERTION_BLUR["kernel"] * side / 224 - 1) / 2)) + 1)
    return k, float(sigma)


def evidence_precision(maps: torch.Tensor, evidence: torch.Tensor) -> torch.Tensor:
    """Per image: the share of the map's top-A pixels (A = the evidence's area; ties by pixel index, as the
    deletion order) that lie on the evidence. 1 for the oracle; what deletion with small steps rewards."""
    flat, ev = maps.flatten(1), evidence.flatten(1).bool()
    area = ev.sum(1, keepdim=True)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ((rank < area) & ev).sum(1).float() / area[:, 0].clamp_min(1).float()


def top1(ctx: BatchContext) -> torch.Tensor:
    """The model's top-1 class of the unperturbed images (the class RISE explains and scores), once per batch."""

    def predict() -> torch.Tensor:
        with torch.no_grad():
            return ctx.model(ctx.images).argmax(1)

    return ctx.cached(TOP1, predict)


class CausalExperiment(Experiment):
    """Deletion (both substrates) and insertion AUC and evidence precision of every method and reference map, on
    the maps of the model's top-1 class (``ctx.map(method)``)."""

    name = "a_causal"
    splits = ("test", "causal")  # the scenes' one pass; the paper profile's ImageNet pass

    def __init__(self, methods: list[str], references: list[str], causal_kwargs: dict):
        super().__init__()
        self.methods, self.references = list(methods), list(references)
        # the oracle's tie orders are scored beside it for the validity verdicts (not report rows)
        self.oracles = list(ORACLE_TIE_ORDERS) if "oracle" in self.references else []
        self.names = self.methods + self.references + self.oracles
        self.pixels_per_step = causal_kwargs.get("pixels_per_step")
        self.insertion_step = causal_kwargs.get("insertion_pixels_per_step") or self.pixels_per_step
        self.insertion_window = causal_kwargs.get("insertion_max_pixels")
        self.deletion = nn.ModuleDict({f"{sub}_{n}": DeletionAUC(substrate=sub, **causal_kwargs)
                                       for n in self.names for sub in DELETION_SUBSTRATES})
        self.insertion = nn.ModuleDict({n: InsertionAUC(**causal_kwargs) for n in self.names})  # its own step / window
        self.precision = nn.ModuleDict({n: SampleValues("precision") for n in self.names})
        self.evidence_area = SampleValues("area")  # per image: the evidence's pixels (the step-size check)
        self.image_size: tuple[int, int] | None = None
        self.n_classes: int | None = None
        self.seconds: dict[str, float] = {}
        self.curves: dict[str, dict[str, torch.Tensor]] = {}

    def update(self, ctx: BatchContext) -> None:
        images, ids, preds = ctx.images, ctx.ids, top1(ctx)
        self.image_size = tuple(images.shape[-2:])
        self.n_classes = getattr(getattr(ctx.model, "scenes_config", None), "num_classes", None)
        maps = ctx.maps(self.names)
        t0 = time.time()
        for name, m_map in maps.items():
            for sub in DELETION_SUBSTRATES:
                self.deletion[f"{sub}_{name}"].update(ctx.model, images, m_map, preds, ids)
            self.insertion[name].update(ctx.model, images, m_map, preds, ids)
        self.seconds["deletion_insertion_s"] = self.seconds.get("deletion_insertion_s", 0.0) + time.time() - t0
        evidence = ctx.evidence
        if evidence is not None:
            self.evidence_area.update(ids, area=evidence.flatten(1).sum(1).float())
            for name, m_map in maps.items():
                self.precision[name].update(ids, precision=evidence_precision(m_map, evidence))

    def compute(self) -> dict:
        """Per method and reference: mean and per-image AUCs (sorted by sample id, the same images for every map),
        the number of images, the evidence precision; the evidence areas; the protocols' validity inputs."""
        res: dict = {}
        for name in self.names:
            r, curves = {}, {}
            for sub in DELETION_SUBSTRATES:
                key = "deletion" if sub == "mean" else f"deletion_{sub}"
                metric = self.deletion[f"{sub}_{name}"]
                r[f"{key}_per_image"] = metric.per_sample()["auc"].cpu().tolist()
                r[key] = sum(r[f"{key}_per_image"]) / len(r[f"{key}_per_image"])
                curves[key] = metric.mean_curve().cpu()
            ins = self.insertion[name]
            r["insertion_per_image"] = ins.per_sample()["auc"].cpu().tolist()
            r["insertion"] = sum(r["insertion_per_image"]) / len(r["insertion_per_image"])
            curves["insertion"] = ins.mean_curve().cpu()
            r["n_causal"] = len(r["insertion_per_image"])
            prec = self.precision[name]
            if prec.update_count:
                r["evidence_precision_per_image"] = prec.values("precision").cpu().tolist()
                r["evidence_precision"] = sum(r["evidence_precision_per_image"]) / r["n_causal"]
            res[name] = r
            self.curves[name] = curves
        out: dict = {"causal_per_method": res}
        area = self.evidence_area.values("area") if self.evidence_area.update_count else None
        if area is not None:
            out["evidence_area_px"] = {"median": float(area.median()), "min": float(area.min()),
                                       "max": float(area.max()), "n": int(area.numel())}
        specs = self._validity_specs(res, area)
        if specs:
            out["protocol_validity"] = specs
        return out

    def _validity_specs(self, res: dict, area: torch.Tensor | None) -> dict:
        """The inputs of the deletion and insertion verdicts (``lightning_modules.reporting.validity``): per-image
        values of the oracle, random and every method, and the protocol's own checks with this run's numbers."""
        if not set(REFERENCES) <= set(self.references):
            return {}
        names = self.methods + list(REFERENCES) + self.oracles
        h, w = self.image_size or (0, 0)
        step = int(self.pixels_per_step or default_pixels_per_step(h, w))
        evidence_mean = float(area.float().mean()) if area is not None else math.nan
        specs = {}
        for protocol, key, higher in (("deletion", "deletion", False), ("deletion_blur", "deletion_blur", False),
                                      ("insertion", "insertion", True)):
            values = {n: res[n][f"{key}_per_image"] for n in names}
            sign = 1 if higher else -1
            best = max(self.methods, key=lambda n: sign * res[n][key])
            mc = self.curves[best][key]
            span = float(mc[-1] - mc[0])
            first = float((mc[1] - mc[0]) / span) if span != 0 else math.nan
            checks = {"first_step": {"value": first, "op": "<=", "bound": MAX_FIRST_STEP_SHARE,
                                     "text": f"share of {best}'s mean {'rise' if higher else 'drop'} done by the first step"}}
            p_step = step if not higher else int(self.insertion_step or step)
            checks["step_below_evidence"] = {
                "value": p_step / evidence_mean, "op": "<=", "bound": MAX_STEP_SHARE_OF_MEAN_EVIDENCE,
                "text": f"one step ({p_step} px) over the mean evidence area ({evidence_mean:.0f} px)"}
            if higher:
                # issue 37: the saturation rule of a curve's area (lightning_modules.reporting.validity), and the window
                window = min(int(self.insertion_window or h * w), h * w)
                checks["at_ceiling"] = {
                    "value": share_at_ceiling(res[best][f"{key}_per_image"], higher), "op": "<=",
                    "bound": MAX_SHARE_AT_CEILING,
                    "text": f"share of images on which {best}'s AUC is within {AUC_CEILING_MARGIN:g} of its ceiling"}
                checks["window_covers_evidence"] = {
                    "value": window / evidence_mean, "op": ">=", "bound": MIN_INSERTION_WINDOW_OVER_EVIDENCE,
                    "text": f"the insertion window ({window} px) over the mean evidence area ({evidence_mean:.0f} px)"}
            if higher and self.n_classes:
                start = float(self.curves["random"]["insertion"][0])
                checks["blurred_start_uninformative"] = {
                    "value": start * self.n_classes, "op": "<=", "bound": MAX_BLURRED_START_OVER_CHANCE,
                    "text": f"the blurred start's score ({start:.3f}) over chance (1/{self.n_classes})"}
            specs[protocol] = protocol_spec(values, higher, checks=checks)
        return specs

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.petsiuk2018.claims import causal_claims

        return causal_claims(results, profile)

    def examples(self) -> dict:
        """The mean deletion and insertion curves of every map (the curves figure)."""
        return {"curves": dict(self.curves)}


#: where it sees a batch among the experiments (``replication.RiseReplication`` runs them in this order)
ORDER = 10


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``RiseReplication``)."""
    return [CausalExperiment(rep.methods, rep.references, rep.causal_used)]
