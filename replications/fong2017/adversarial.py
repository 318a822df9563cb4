"""e./f. Adversarial detection and label recovery (Fong & Vedaldi 2017, Sec. 5 "adversarial defence").

e. For each test image an adversarial image by iterative FGSM (ART ``BasicIterativeMethod``, L-inf, untargeted on
   the model's prediction); heatmaps of clean images (the test pass's maps, target: the ground-truth class) and of
   adversarial images (target: the adversarial prediction) for every method; an AlexNet-architecture classifier trained to
   tell clean from adversarial heatmaps, one per method. Images are split by id parity: even ids train the
   detector, odd ids test it (a split that does not depend on the process count).
f. Label recovery: the deletion mask learned on the adversarial image for its (adversarial) prediction, applied to
   the adversarial image: how often the result is classified as the original prediction, as the ground truth, and
   has the original prediction in its top 5.

The mechanism the detection numbers point at is measured too: the high-frequency content of every method's map
(mean absolute difference of neighbouring pixels of the min-max-standardised map, the detector's own input
normalisation) on the adversarial image minus on the clean image. I-FGSM adds sign-of-gradient noise at the pixel
scale; maps that follow the input's gradient pixel by pixel carry it, a smooth mask (upsampled, blurred) cannot.
"""

from __future__ import annotations

import torch

from lightning_modules.metrics import SampleValues
from lightning_modules.tasks.detector import HeatmapDetector, iterative_fgsm, train_detector
from lightning_modules.tasks.mask_learning import compose, learn_masks
from replications.fong2017 import paper as P


class AdversarialExperiment:
    def __init__(self, spec: dict):
        self.spec = {"images": 10 ** 9, "eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 10, "epochs": 30, "hidden": 256, "lr": 1e-3,
                     "seed": 0, **spec}
        self.rows = None

    @staticmethod
    def make_rows(methods: list[str]):
        """The per-sample state (register it on the LightningModule so it is moved and synced with it)."""
        names = [f"{k}_{m}" for m in methods for k in ("clean", "adv")]
        # heatmaps are per-sample rows too: they are gathered across processes before the detector trains
        return SampleValues("fooled", "recover_orig", "recover_gt", "recover_top5", "recover_orig_moved", *names)

    def setup(self, module) -> None:
        self.rows = module.adv_rows

    def update(self, module, batch, clean_maps: dict) -> None:
        """``clean_maps``: the test pass's heatmaps of the clean images (target: the ground-truth class), reused
        as the clean class of the detector; images with ``id >= images`` are skipped (cost bound)."""
        sel = batch["id"] < int(self.spec["images"])
        if not sel.any():
            return
        images, labels, ids = batch["image"][sel], batch["label"][sel], batch["id"][sel]
        model = module.blackbox
        with torch.no_grad():
            pred = model(images).argmax(1)
        adv = iterative_fgsm(model, images, None, eps=self.spec["eps"], eps_step=self.spec["eps_step"],
                             max_iter=int(self.spec["max_iter"]), batch_size=images.shape[0])
        with torch.no_grad():
            adv_pred = model(adv).argmax(1)
        rows = {"fooled": (adv_pred != pred).float()}
        # adversarial heatmaps explain the adversarial decision (the model's prediction on the adversarial image)
        for m, ex in module.explainers.items():
            rows[f"clean_{m}"] = clean_maps[m][sel]
            rows[f"adv_{m}"] = ex(model, adv, adv_pred).clamp(min=0)
        rows["clean_mask"] = clean_maps["mask"][sel]
        res = learn_masks(model, adv, adv_pred, module.mask_config)
        rows["adv_mask"] = (1 - res.mask).clamp(0, 1)
        # f. the deletion mask applied to the adversarial image (the perturbation it was learned with)
        with torch.no_grad():
            logits = model(compose(adv, res.extras["substrate"], res.mask))
        top1 = logits.argmax(1)
        # control: the same mask moved by half the image (same deleted area, elsewhere)
        moved = torch.roll(res.mask, shifts=(adv.shape[-2] // 2, adv.shape[-1] // 2), dims=(-2, -1))
        with torch.no_grad():
            rows["recover_orig_moved"] = (model(compose(adv, res.extras["substrate"], moved)).argmax(1) == pred).float()
        rows["recover_orig"] = (top1 == pred).float()
        rows["recover_gt"] = (top1 == labels).float()
        rows["recover_top5"] = (logits.topk(min(5, logits.shape[1]), 1).indices == pred[:, None]).any(1).float()
        self.rows.update(ids, **rows)

    def compute(self, module) -> dict:
        r = self.rows.compute()
        ids = r["sample_ids"]
        fooled = r["fooled"] > 0.5
        train, test = (ids % 2 == 0), (ids % 2 == 1)
        out = {"n": int(ids.numel()), "fooled": float(fooled.float().mean()), "accuracy": {},
               "n_train": 2 * int(train.sum()), "n_test": 2 * int(test.sum())}
        out["correct"], out["hf_change"] = {}, {}
        for m in module.all_methods:
            maps = torch.cat([r[f"clean_{m}"], r[f"adv_{m}"]])
            y = torch.cat([torch.zeros(ids.numel()), torch.ones(ids.numel())]).long().to(maps.device)
            tr, te = torch.cat([train, train]), torch.cat([test, test])
            det = train_detector(maps[tr], y[tr], epochs=int(self.spec["epochs"]), lr=float(self.spec["lr"]),
                                 seed=int(self.spec["seed"]), hidden=int(self.spec["hidden"]))
            with torch.no_grad():
                det.eval()
                # per test map (clean maps of the odd ids, then their adversarial maps): the paired unit
                correct = (det(maps[te]).argmax(1) == y[te]).float()
            out["correct"][m] = correct.cpu().tolist()
            out["accuracy"][m] = float(correct.mean())
            hf = high_frequency(r[f"adv_{m}"]) - high_frequency(r[f"clean_{m}"])
            out["hf_change"][m] = hf.cpu().tolist()
        # f. over the images the attack fooled
        for k in ("recover_orig", "recover_gt", "recover_top5", "recover_orig_moved"):
            v = r[k][fooled]
            out[k] = float(v.mean()) if v.numel() else float("nan")
            out[f"{k}_per_image"] = v.cpu().tolist()
        out["n_fooled"] = int(fooled.sum())
        return out


def high_frequency(maps: torch.Tensor) -> torch.Tensor:
    """Per map: mean absolute difference of neighbouring pixels of the min-max-standardised map (the detector's
    input normalisation), i.e. its pixel-scale (high-frequency) content."""
    m = HeatmapDetector.standardise(maps)
    return ((m[..., 1:, :] - m[..., :-1, :]).abs().flatten(1).mean(1)
            + (m[..., :, 1:] - m[..., :, :-1]).abs().flatten(1).mean(1))
