"""e. Adversarial detection (Fong & Vedaldi 2017, Sec. 5, "adversarial defence").

For each test image an adversarial image by iterative FGSM (ART ``BasicIterativeMethod``, L-inf, untargeted on the
model's prediction); heatmaps of the clean images (the test pass's maps, target: the ground-truth class) and of the
adversarial images (target: the adversarial prediction) for every method; an AlexNet-architecture classifier per
method trained to tell clean from adversarial heatmaps. Images are split by id parity: even ids train the detector,
odd ids test it (a split that does not depend on the process count).

The mechanism the detection numbers point at is measured too: the high-frequency content of every method's map
(mean absolute difference of neighbouring pixels of the min-max-standardised map, the detector's own input
normalisation) on the adversarial image minus on the clean image. I-FGSM adds sign-of-gradient noise at the pixel
scale; maps that follow the input's gradient pixel by pixel carry it, a smooth mask (upsampled, blurred) cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics import SampleValues
from lightning_modules.tasks.detector import HeatmapDetector, iterative_fgsm, train_detector

#: the split name of the adversarial images' context
ADVERSARIAL = "adversarial"


@dataclass
class AdversarialConfig:
    """e./f. I-FGSM (L-inf ``eps``, ``eps_step``, ``max_iter``) on the first ``images`` test ids, and the detector's
    training (``epochs``, ``hidden`` units, ``lr``, ``seed``)."""

    enabled: bool = False
    images: int = 10 ** 9
    eps: float = 8 / 255
    eps_step: float = 1 / 255
    max_iter: int = 10
    epochs: int = 30
    hidden: int = 256
    lr: float = 1e-3
    seed: int = 0


def adversarial_context(ctx: BatchContext, config: dict) -> BatchContext | None:
    """The batch's attacked images (ids below ``images``: a cost bound) as a context of their own, computed once and
    shared by e. and f.: its labels are the adversarial predictions (the maps explain the adversarial decision);
    ``clean_pred``, ``label`` and ``sel`` keep the clean image's prediction, its ground truth and the selection."""

    def attack() -> BatchContext | None:
        sel = ctx.ids < int(config["images"])
        if not sel.any():
            return None
        model, images = ctx.model, ctx.images[sel]
        with torch.no_grad():
            pred = model(images).argmax(1)
        adv = iterative_fgsm(model, images, None, eps=config["eps"], eps_step=config["eps_step"],
                             max_iter=int(config["max_iter"]), batch_size=images.shape[0])
        with torch.no_grad():
            adv_pred = model(adv).argmax(1)
        return ctx.derive({"image": adv, "label": adv_pred, "id": ctx.ids[sel], "clean_pred": pred,
                           "ground_truth": ctx.labels[sel], "sel": sel}, ADVERSARIAL)

    return ctx.cached(ADVERSARIAL, attack)


def high_frequency(maps: torch.Tensor) -> torch.Tensor:
    """Per map: mean absolute difference of neighbouring pixels of the min-max-standardised map (the detector's
    input normalisation), i.e. its pixel-scale (high-frequency) content."""
    m = HeatmapDetector.standardise(maps)
    return ((m[..., 1:, :] - m[..., :-1, :]).abs().flatten(1).mean(1)
            + (m[..., :, 1:] - m[..., :, :-1]).abs().flatten(1).mean(1))


class AdversarialDetectionExperiment(Experiment):
    name = "e_adversarial_detection"

    def __init__(self, config: dict, methods: list[str]):
        super().__init__()
        self.config = config
        self.methods = list(methods)
        # heatmaps are per-sample rows too: they are gathered across processes before the detectors train
        self.rows = SampleValues("fooled", *[f"{k}_{m}" for m in self.methods for k in ("clean", "adv")])

    def update(self, ctx: BatchContext) -> None:
        adv = adversarial_context(ctx, self.config)
        if adv is None:
            return
        sel = adv.batch["sel"]
        rows = {"fooled": (adv.labels != adv.batch["clean_pred"]).float()}
        for m in self.methods:
            rows[f"clean_{m}"] = ctx.map(m)[sel]
            rows[f"adv_{m}"] = adv.map(m)
        self.rows.update(adv.ids, **rows)

    def compute(self) -> dict:
        r = self.rows.compute()
        ids = r["sample_ids"]
        fooled = r["fooled"] > 0.5
        train, test = (ids % 2 == 0), (ids % 2 == 1)
        out = {"n": int(ids.numel()), "fooled": float(fooled.float().mean()), "accuracy": {},
               "n_train": 2 * int(train.sum()), "n_test": 2 * int(test.sum()), "correct": {}, "hf_change": {}}
        for m in self.methods:
            maps = torch.cat([r[f"clean_{m}"], r[f"adv_{m}"]])
            y = torch.cat([torch.zeros(ids.numel()), torch.ones(ids.numel())]).long().to(maps.device)
            tr, te = torch.cat([train, train]), torch.cat([test, test])
            det = train_detector(maps[tr], y[tr], epochs=int(self.config["epochs"]), lr=float(self.config["lr"]),
                                 seed=int(self.config["seed"]), hidden=int(self.config["hidden"]))
            with torch.no_grad():
                det.eval()
                # per test map (clean maps of the odd ids, then their adversarial maps): the paired unit
                correct = (det(maps[te]).argmax(1) == y[te]).float()
            out["correct"][m] = correct.cpu().tolist()
            out["accuracy"][m] = float(correct.mean())
            out["hf_change"][m] = (high_frequency(r[f"adv_{m}"]) - high_frequency(r[f"clean_{m}"])).cpu().tolist()
        return {"adversarial": out}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import detection_claims

        return detection_claims(results)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 80


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [AdversarialDetectionExperiment(rep.adv_spec, rep.all_methods)] if rep.adv_spec.get("enabled") else []
