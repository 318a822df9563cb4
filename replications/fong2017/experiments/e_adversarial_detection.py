"""e. Adversarial detection (Fong & Vedaldi 2017, Sec. 5, "adversarial defence").

For each test image an adversarial image by the paper's attack, the iterative least-likely-class method (ILLC,
Kurakin et al.; ``attack: illc``, :func:`~lightning_modules.tasks.detector.iterative_least_likely`: targeted I-FGSM
toward the clean image's least-likely class, step 1/255, Kurakin's ``min(eps + 4, 1.25 eps)`` iterations) over the
sweep of L-inf budgets of the authors' adversarial code (``eps_sweep``, grey levels: 1, 2, 4, 8, 12, 16). Each image
gets one budget: ``eps_sweep[(id // 2) % len(eps_sweep)]``, so the cost does not multiply and the even (training) and
odd (test) ids both cycle through the whole sweep. ``attack: ifgsm`` keeps the earlier untargeted I-FGSM at one
``eps`` (ART ``BasicIterativeMethod`` on the model's prediction). Heatmaps of the clean images (the test pass's maps, target: the ground-truth class) and of the
adversarial images (target: the adversarial prediction) for every method; an AlexNet-architecture classifier per
method trained to tell clean from adversarial heatmaps, the maps resized to ``detector_size`` px (the paper: 227, the
AlexNet input; 0 = the maps' own size, where the 64-px maps' features collapse to 1x1). Images are split by id parity: even ids train the detector,
odd ids test it (a split that does not depend on the process count).

A detector trained from scratch on a few hundred maps is chaotic in its training: a change of the maps at float
rounding, or another seed, moves its test accuracy by several points. So each method gets ``seeds`` detectors
(training seeds ``seed .. seed + seeds - 1``, the same for every method) and a test map's outcome is the share of
them that classify it correctly: the claim is decided on that seed-averaged correctness, and the spread over seeds
(``accuracy_by_seed``, ``accuracy_sd``) is reported beside it and bounds what another machine may reproduce.

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
from lightning_modules.tasks.detector import HeatmapDetector, iterative_fgsm, iterative_least_likely, train_detector

#: the split name of the adversarial images' context
ADVERSARIAL = "adversarial"


@dataclass
class AdversarialConfig:
    """e./f. The attack on the first ``images`` test ids: ``attack`` ``illc`` (the paper's; one budget per image from
    ``eps_sweep``, grey levels, ``eps_step`` per iteration, Kurakin's iteration count) or ``ifgsm`` (untargeted, L-inf
    ``eps``, ``eps_step``, ``max_iter``); the detector's input size (``detector_size``, 0 = the maps') and training
    (``epochs``, ``hidden`` units, ``lr``, ``seed``; ``seeds`` detectors per method, trained from seeds ``seed`` ..
    ``seed + seeds - 1``). Defaults: the paper's attack and 227-px AlexNet input, one detector (the paper's)."""

    enabled: bool = False
    images: int = 10 ** 9
    attack: str = "illc"
    eps_sweep: tuple[float, ...] = (1, 2, 4, 8, 12, 16)
    detector_size: int = 227
    eps: float = 8 / 255
    eps_step: float = 1 / 255
    max_iter: int = 10
    epochs: int = 30
    hidden: int = 256
    lr: float = 1e-3
    seed: int = 0
    seeds: int = 1


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
        if config.get("attack", "illc") == "illc":
            adv = iterative_least_likely(model, images, attack_eps(ctx.ids[sel], config), eps_step=config["eps_step"])
        elif config["attack"] == "ifgsm":
            adv = iterative_fgsm(model, images, None, eps=config["eps"], eps_step=config["eps_step"],
                                 max_iter=int(config["max_iter"]), batch_size=images.shape[0])
        else:
            raise ValueError(f"adversarial.attack must be illc or ifgsm; got {config['attack']!r}")
        with torch.no_grad():
            adv_pred = model(adv).argmax(1)
        return ctx.derive({"image": adv, "label": adv_pred, "id": ctx.ids[sel], "clean_pred": pred,
                           "ground_truth": ctx.labels[sel], "sel": sel}, ADVERSARIAL)

    return ctx.cached(ADVERSARIAL, attack)


def attack_eps(ids: torch.Tensor, config: dict) -> torch.Tensor:
    """The ILLC budget of each image id (pixel units): ``eps_sweep[(id // 2) % len(eps_sweep)] / 255`` (pairs of ids
    share a budget, so both parities of the train/test split see the whole sweep)."""
    sweep = torch.as_tensor([float(e) for e in config["eps_sweep"]], dtype=torch.float32)
    return (sweep[(ids.cpu().long() // 2) % len(sweep)] / 255).to(ids.device)


def detector_seeds(config: dict) -> list[int]:
    """The training seeds of each method's detectors: ``seed .. seed + seeds - 1``."""
    n = int(config.get("seeds", 1))
    if n < 1:
        raise ValueError(f"adversarial.seeds must be a positive number of detectors per method; got {n} (use 1 for "
                         "the paper's single detector)")
    return list(range(int(config["seed"]), int(config["seed"]) + n))


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
               "n_train": 2 * int(train.sum()), "n_test": 2 * int(test.sum()), "correct": {}, "hf_change": {},
               "seeds": detector_seeds(self.config), "correct_by_seed": {}, "accuracy_by_seed": {}, "accuracy_sd": {}}
        if self.config.get("attack", "illc") == "illc":  # fooled share per budget (grey levels)
            eps = attack_eps(ids, self.config) * 255
            out["fooled_by_eps"] = {f"{e:g}": float(fooled[(eps - e).abs() < 1e-3].float().mean())
                                    for e in map(float, self.config["eps_sweep"]) if ((eps - e).abs() < 1e-3).any()}
        for m in self.methods:
            maps = torch.cat([r[f"clean_{m}"], r[f"adv_{m}"]])
            y = torch.cat([torch.zeros(ids.numel()), torch.ones(ids.numel())]).long().to(maps.device)
            tr, te = torch.cat([train, train]), torch.cat([test, test])
            per_seed = []
            for seed in detector_seeds(self.config):
                det = train_detector(maps[tr], y[tr], epochs=int(self.config["epochs"]), lr=float(self.config["lr"]),
                                     seed=seed, hidden=int(self.config["hidden"]),
                                     input_size=int(self.config.get("detector_size", 0)))
                with torch.no_grad():
                    det.eval()
                    # per test map (clean maps of the odd ids, then their adversarial maps): the paired unit
                    per_seed.append((det(maps[te]).argmax(1) == y[te]).float())
            per_seed = torch.stack(per_seed)  # (seeds, test maps)
            correct = per_seed.mean(0)
            out["correct"][m] = correct.cpu().tolist()
            out["correct_by_seed"][m] = per_seed.cpu().tolist()
            out["accuracy"][m] = float(correct.mean())
            by_seed = per_seed.mean(1)
            out["accuracy_by_seed"][m] = by_seed.cpu().tolist()
            out["accuracy_sd"][m] = float(by_seed.std()) if len(by_seed) > 1 else 0.0
            out["hf_change"][m] = (high_frequency(r[f"adv_{m}"]) - high_frequency(r[f"clean_{m}"])).cpu().tolist()
        return {"adversarial": out}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import detection_claims

        return detection_claims(results)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 80


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    if rep.adv_spec.get("enabled"):
        detector_seeds(rep.adv_spec)  # a bad seed count fails before the run
    return [AdversarialDetectionExperiment(rep.adv_spec, rep.all_methods)] if rep.adv_spec.get("enabled") else []
