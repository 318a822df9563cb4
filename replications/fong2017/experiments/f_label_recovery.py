"""f. Label recovery (Fong & Vedaldi 2017, Sec. 5, "adversarial defence").

The deletion mask learned on the adversarial image for its (adversarial) prediction, applied to the adversarial
image with the perturbation it was learned with: how often the result is classified as the original prediction,
as the ground truth, and has the original prediction in its top 5, over the images the attack fooled; the control is
the same mask moved by half the image (same deleted area, elsewhere). The attack is e.'s, shared per batch.
"""

from __future__ import annotations

import torch

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics import SampleValues
from lightning_modules.tasks.mask_learning import compose
from replications.fong2017.experiments.e_adversarial_detection import adversarial_context
from replications.fong2017.masks import mask_result

RATES = ("recover_orig", "recover_gt", "recover_top5", "recover_orig_moved")


class LabelRecoveryExperiment(Experiment):
    name = "f_label_recovery"

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        self.rows = SampleValues("fooled", *RATES)

    def update(self, ctx: BatchContext) -> None:
        adv = adversarial_context(ctx, self.config)
        if adv is None:
            return
        model, images, pred = adv.model, adv.images, adv.batch["clean_pred"]
        res = mask_result(adv)
        substrate = res.extras["substrate"]
        moved = torch.roll(res.mask, shifts=(images.shape[-2] // 2, images.shape[-1] // 2), dims=(-2, -1))
        with torch.no_grad():
            logits = model(compose(images, substrate, res.mask))
            moved_top1 = model(compose(images, substrate, moved)).argmax(1)
        top1 = logits.argmax(1)
        self.rows.update(adv.ids, fooled=(adv.labels != pred).float(), recover_orig=(top1 == pred).float(),
                         recover_gt=(top1 == adv.batch["ground_truth"]).float(),
                         recover_top5=(logits.topk(min(5, logits.shape[1]), 1).indices == pred[:, None]).any(1).float(),
                         recover_orig_moved=(moved_top1 == pred).float())

    def compute(self) -> dict:
        r = self.rows.compute()
        fooled = r["fooled"] > 0.5
        out: dict = {}
        for k in RATES:
            v = r[k][fooled]
            out[k] = float(v.mean()) if v.numel() else float("nan")
            out[f"{k}_per_image"] = v.cpu().tolist()
        out["n_fooled"] = int(fooled.sum())
        return {"adversarial": out}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import recovery_claims

        return recovery_claims(results)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 90


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [LabelRecoveryExperiment(rep.adv_spec)] if rep.adv_spec.get("enabled") else []
