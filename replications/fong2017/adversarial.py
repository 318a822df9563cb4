"""e./f. Adversarial detection and label recovery (Fong & Vedaldi 2017, Sec. 5 "adversarial defence").

e. For each test image an adversarial image by iterative FGSM (ART ``BasicIterativeMethod``, L-inf, untargeted on
   the model's prediction); heatmaps of clean images (the test pass's maps, target: the ground-truth class) and of
   adversarial images (target: the adversarial prediction) for every method; an AlexNet-architecture classifier trained to
   tell clean from adversarial heatmaps, one per method. Images are split by id parity: even ids train the
   detector, odd ids test it (a split that does not depend on the process count).
f. Label recovery: the deletion mask learned on the adversarial image for its (adversarial) prediction, applied to
   the adversarial image: how often the result is classified as the original prediction, as the ground truth, and
   has the original prediction in its top 5.
"""

from __future__ import annotations

import torch

from lightning_modules.reporting import Relation
from lightning_modules.tasks.detector import detector_accuracy, iterative_fgsm, train_detector
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
        from replications.fong2017.experiments import SampleRows

        names = [f"{k}_{m}" for m in methods for k in ("clean", "adv")]
        # heatmaps are per-sample rows too: they are gathered across processes before the detector trains
        return SampleRows("fooled", "recover_orig", "recover_gt", "recover_top5", "recover_orig_moved", *names)

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
        for m in module.all_methods:
            maps = torch.cat([r[f"clean_{m}"], r[f"adv_{m}"]])
            y = torch.cat([torch.zeros(ids.numel()), torch.ones(ids.numel())]).long().to(maps.device)
            tr, te = torch.cat([train, train]), torch.cat([test, test])
            det = train_detector(maps[tr], y[tr], epochs=int(self.spec["epochs"]), lr=float(self.spec["lr"]),
                                 seed=int(self.spec["seed"]), hidden=int(self.spec["hidden"]))
            out["accuracy"][m] = detector_accuracy(det, maps[te], y[te])
        # f. over the images the attack fooled
        for k in ("recover_orig", "recover_gt", "recover_top5", "recover_orig_moved"):
            v = r[k][fooled]
            out[k] = float(v.mean()) if v.numel() else float("nan")
        out["n_fooled"] = int(fooled.sum())
        return out


def report_adversarial(module, report, a: dict, claim) -> None:
    from replications.fong2017.report import _label

    spec = module.adversarial.spec
    report.add_table("adversarial_detection", [{"method": _label(m), "detector accuracy %": 100 * a["accuracy"][m]}
                                               for m in module.all_methods],
                     caption=f"e. Clean vs adversarial heatmap detection (AlexNet architecture sized to the "
                     f"heatmaps, {a['n_train']} training / {a['n_test']} test maps, split by image id). I-FGSM via ART: "
                     f"eps {spec['eps'] * 255:.3g}/255, step {spec['eps_step'] * 255:.3g}/255, {spec['max_iter']} "
                     f"iterations (the paper's settings were not read); {100 * a['fooled']:.1f}% of the images fooled. "
                     "Paper: per-method accuracies (numbers not read).")
    meas = {m: a["accuracy"][m] for m in module.all_methods}
    claim(report, module, "e_mask_best_detector", "e", "Heatmaps of the mask separate clean from adversarial images "
          "best of all methods (Sec. 5).", Relation.all_of(*[Relation.gt("mask", m) for m in module.methods]), meas,
          {"paper": P.ADVERSARIAL})
    report.add_table("label_recovery", [{"fooled images": a["n_fooled"], "original prediction recovered %": 100 * a["recover_orig"],
                                         "ground-truth label %": 100 * a["recover_gt"],
                                         "original prediction in top 5 %": 100 * a["recover_top5"],
                                         "control: mask moved, original recovered %": 100 * a["recover_orig_moved"]}],
                     caption="f. The deletion mask learned on the adversarial image (for its adversarial prediction) "
                     "applied to the adversarial image. Paper: percentages not read.")
    claim(report, module, "f_label_recovery", "f", "Deleting the region the mask finds on an adversarial image "
          "recovers the original prediction more often than deleting the same area elsewhere (the mask moved by half "
          "the image).", Relation.gt("recover_orig", "recover_orig_moved"),
          {k: a[k] for k in ("recover_orig", "recover_gt", "recover_top5", "recover_orig_moved")}, {"paper": P.LABEL_RECOVERY})
