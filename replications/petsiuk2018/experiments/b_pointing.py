"""b. The pointing game (Petsiuk et al. 2018, Sec. 4.2, Table 2; TorchRay's protocol), all and difficult samples, plus
the centre baseline.

On the embedded scenes it runs on the test pass, on the maps of the ground-truth class (``<method>@label``: the same
per-batch cache as deletion's top-1 maps, see ``experiments/__init__``), against the object boxes of the class (the
paper's ground truth) and against the class evidence (benchmark v2: the valid test there), with the oracle and random
maps as reference rows; the protocols with both references are judged for validity in the run. In the paper profile
it is a separate pass (``pointing``: VOC07 test or COCO val2014) explained on its own classifier, against the loaders'
pointing mask (VOC: the union of the class's boxes at the original resolution; COCO: segmentation), as TorchRay.
The embedded default runs it as the paper does, on a separate pass: the multi-label scenes (one trial per (image,
present class), EBP's difficult rule) explained on the multi-label black box, against the class's object pixels and
its evidence, with TorchRay's native tolerance (``PointingConfig.tolerance="native"``); the trials of one image are
resampled together (the validity's bootstrap and the claims' per-image hit rates).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.metrics import SampleValues
from lightning_modules.metrics.pointing import PointingGame, center_heatmaps
from lightning_modules.reporting import pointing_specs

#: the pointing game's ground truths on the embedded scenes: the target class's object boxes (the paper's) and its
#: evidence (benchmark v2)
POINTING_GTS = ("object", "evidence")
#: the suffix of a method's maps of the ground-truth class (``ctx.map("rise@label")``)
LABEL = "@label"


@dataclass
class PointingConfig:
    """Pointing game (Sec. 4.2): the hit tolerance in pixels (None: 15 px at 224 px, scaled; ``"native"``:
    TorchRay's 15 px at the native VOC / COCO image, scaled: ``metrics.pointing.native_tolerance``) and the methods
    explained on a separate pointing pass (None: every method)."""

    tolerance: float | str | None = None
    methods: list[str] | None = None


def label_maps(method: str) -> str:
    """The name of ``method``'s maps of the ground-truth class in the per-batch map cache."""
    return method + LABEL


class PointingExperiment(Experiment):
    """Pointing-game hits of every method, the reference maps (scenes) and the centre baseline, per image."""

    name = "b_pointing"

    def __init__(self, methods: list[str], references: list[str], tolerance: float | str | None,
                 separate_pass: bool = False):
        super().__init__()
        # the scenes' one pass and the paper profile's VOC07 / COCO pass; only the latter where the run has one
        self.splits = ("pointing",) if separate_pass else ("test", "pointing")
        self.methods, self.references = list(methods), list(references)
        self.names = self.methods + self.references + ["center"]
        self.tolerance = tolerance
        self.pointing = nn.ModuleDict({n: PointingGame(tolerance=tolerance) for n in self.names})
        self.pointing_evidence = nn.ModuleDict({n: PointingGame(tolerance=tolerance) for n in self.names})
        # the per-trial target class (the validity's per-class means) and image (the resampling unit)
        self.labels = SampleValues("label", "image_index")

    def update(self, ctx: BatchContext) -> None:
        batch, labels, ids = ctx.batch, ctx.labels, ctx.ids
        separate = ctx.split == "pointing"
        if separate:  # explained for the labels on the pointing pass (+ the references where it has the evidence)
            maps = ctx.maps(self.methods + (self.references if ctx.evidence is not None else []))
        else:  # the scenes: the ground-truth class's maps; the references are the evidence of the label and noise
            maps = {m: ctx.map(label_maps(m)) for m in self.methods}
            maps.update(ctx.maps(self.references))
        use_mask = separate and "mask" in batch
        b, _, h, w = next(iter(maps.values())).shape
        kw = {"difficult": batch.get("difficult"), "ids": ids}
        if use_mask:
            kw["masks"] = batch["mask"]
        else:
            kw["boxes"] = batch["boxes"]
            kw["box_labels"] = batch["box_labels"]
        maps["center"] = center_heatmaps(b, h, w, ctx.images.device)
        evidence = ctx.evidence if not use_mask or "evidence_mask" in batch else None
        for name, m_map in maps.items():
            self.pointing[name].update(m_map, labels, **kw)
            if evidence is not None:  # the evidence of the label's object as the ground truth
                self.pointing_evidence[name].update(m_map, labels, masks=evidence, difficult=kw["difficult"], ids=ids)
        self.labels.update(ids, label=labels, image_index=batch.get("image_index", ids))

    def compute(self) -> dict:
        """Per map: TorchRay's class-mean accuracy (%, all and difficult) and the per-image hits (sorted by sample
        id: the paired unit of the pointing claims) against each ground truth; the validity inputs."""
        res: dict = {}
        for name in self.names:
            for gt in POINTING_GTS:
                pg = self.pointing[name] if gt == "object" else self.pointing_evidence[name]
                if pg.update_count == 0:  # no evidence ground truth (paper data), no reference maps there
                    continue
                vals = pg.compute()
                ps = pg.per_sample()
                key = "pointing" if gt == "object" else "pointing_evidence"
                res.setdefault(name, {}).update({
                    f"{key}_all": 100 * float(vals["all"]), f"{key}_difficult": 100 * float(vals["difficult"]),
                    f"{key}_hits": ps["hits"].cpu().tolist(),
                })
                if gt == "object":
                    res[name].update({"n_pointing": int(ps["hits"].numel()), "n_difficult": int(ps["difficult"].sum()),
                                      "pointing_difficult_flags": ps["difficult"].cpu().bool().tolist()})
        out: dict = {"pointing_per_method": res}
        if self.labels.update_count:
            rows = self.labels.compute()
            out["pointing_image_index"] = [int(x) for x in rows["image_index"].cpu().tolist()]
            some = next(iter(self.pointing.values()))
            if self.tolerance is not None:
                out["pointing_tolerance_px"] = some.tolerance_px
        specs = self._validity_specs(res)
        if specs:
            out["protocol_validity"] = specs
        return out

    def _validity_specs(self, res: dict) -> dict:
        """The inputs of the pointing protocols' verdicts (``lightning_modules.reporting.validity.pointing_specs``)."""
        if not {"oracle", "random"} <= set(self.references):
            return {}
        names = self.methods + ["oracle", "random"]
        labels = [int(x) for x in self.labels.values("label").cpu().tolist()] if self.labels.update_count else []
        flags = res["rise"].get("pointing_difficult_flags")
        # the (image, class) trials of one image are resampled together (a separate multi-label pass)
        groups = ([int(x) for x in self.labels.values("image_index").cpu().tolist()]
                  if self.splits == ("pointing",) else None)
        specs = {}
        for gt in POINTING_GTS:
            key = "pointing" if gt == "object" else "pointing_evidence"
            if f"{key}_hits" in res["rise"]:
                specs.update(pointing_specs(gt, {n: res[n][f"{key}_hits"] for n in names}, labels, flags,
                                            groups=groups))
        return specs

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.petsiuk2018.claims import pointing_claims

        return pointing_claims(results)


#: where it sees a batch among the experiments (``replication.RiseReplication`` runs them in this order)
ORDER = 20


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``RiseReplication``)."""
    separate = rep.has_pointing_pass()
    methods = rep.pointing_methods() if separate else rep.methods
    return [PointingExperiment(methods, rep.references, rep.pointing_cfg["tolerance"], separate_pass=separate)]
