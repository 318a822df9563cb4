"""Measures and settings shared by khakzar2019's experiments: the methods, the per-image rows (torchmetrics states
keyed by sample id), the plain summaries of a cascading randomisation test and of pixel-perturbation curves, and
PruneGrad's threshold-rule measurements."""

from __future__ import annotations

import torch

from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.prunegrad import PruneGrad, relu_modules
from lightning_modules.metrics import PerSampleMetric
from lightning_modules.tasks.randomization import ModelRandomizationTest

#: Explainer settings shared by the three benchmarks (names -> create_explainer kwargs; an ``explainer`` key names
#: the registered explainer when the method name differs, so PruneGrad can appear under both threshold rules).
#: ``prunegrad`` is the official rule (one global percentile over all ReLU neurons; the claims read it);
#: ``prunegrad_active`` takes the percentile over the neurons with a nonzero score only (``scope: active``), a side
#: row: in sparse small CNNs most scores are exactly zero and the official rule then prunes only neurons that carry
#: no gradient, so it equals the plain gradient (table ``prunegrad_threshold_rules`` measures this).
DEFAULT_METHODS = {
    "prunegrad": {"percentile": 70.0, "scope": "all"},
    "prunegrad_active": {"explainer": "prunegrad", "percentile": 70.0, "scope": "active"},
    "gradient": {},
    "input_x_gradient": {},
    "guided_backprop": {},
    "integrated_gradients": {"steps": 32},
    "gradcam": {},
}
DEFAULT_ROAR_METHODS = {
    "prunegrad": {"percentile": 70.0, "scope": "all"},
    "gradient": {},
    "integrated_gradients": {"steps": 16},
    "smoothgrad_sq": {"n_samples": 16, "stdev": 0.15},
    "vargrad": {"n_samples": 16, "stdev": 0.15},
    "guided_backprop": {},
    "gradcam": {},
    "random": {},
}


def make_explainer(name: str, kwargs: dict | None):
    """``create_explainer`` for a method entry: ``kwargs`` may name the registered explainer (``explainer: prunegrad``)."""
    kw = dict(kwargs or {})
    return create_explainer(kw.pop("explainer", name), **kw)


def cascade_summary(test: ModelRandomizationTest) -> dict:
    """Plain per-stage results of a cascading randomisation test: ``order``, ``means`` (stage -> method -> measure
    -> mean over the images whose map is defined), ``constant`` (stage -> method -> images whose map is constant)
    and ``final_spearman_abs`` (method -> per-image Spearman |.| at the last stage, ``None`` where undefined).

    A constant map (PruneGrad's all-zero map once its pruning cuts every path of a randomised network, Grad-CAM's
    all-zero ReLU) has no rank correlation with the original: its Spearman is undefined, neither a pass nor a
    failure, so it is left out of the means and counted; a stage where every map is constant has no mean (None)."""
    per = test.compute(per_sample=True)["cascading"]
    out: dict = {"order": list(test.order), "means": {}, "constant": {}}
    for stage, methods in per.items():
        out["means"][stage], out["constant"][stage] = {}, {}
        for m, vals in methods.items():
            row = {}
            for k in ("spearman_abs", "spearman_no_abs", "ssim", "hog"):
                v = vals[k].float()
                row[k] = float(v[~torch.isnan(v)].mean()) if (~torch.isnan(v)).any() else None
            out["means"][stage][m] = row
            out["constant"][stage][m] = int(torch.isnan(vals["spearman_abs"]).sum())
    last = per[test.order[-1]]
    out["final_spearman_abs"] = {m: [None if x != x else float(x) for x in vals["spearman_abs"].tolist()] for m, vals in last.items()}
    out["images"] = int(next(iter(last.values()))["ids"].numel())
    return out


def evidence_precision(importance: torch.Tensor, evidence: torch.Tensor) -> torch.Tensor:
    """(B,) share of each image's top-k pixels by ``importance`` that lie in ``evidence`` (k = its evidence pixels):
    how far a ranking puts the class evidence (the scenes' head, MNIST's strokes) first. Ties by pixel index."""
    imp, ev = importance.flatten(1), evidence.flatten(1).bool()
    k = ev.sum(1)
    order = imp.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(imp.shape[1], device=imp.device).expand_as(order))
    top = ranks < k[:, None]
    return (top & ev).sum(1).float() / k.clamp(min=1).float()


class TestRows(PerSampleMetric):
    """Per test image (keyed by ``batch["id"]``, de-duplicated across processes): whether the prediction is correct,
    PruneGrad's zero-score share and whether the official rule's map equals the plain gradient."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._add_row_states("correct", "zero_share", "official_equal")

    def update(self, ids, correct, zero_share, official_equal) -> None:
        self._append_rows(ids, correct.shape[0], correct.device, correct=correct.float(), zero_share=zero_share.float(),
                          official_equal=official_equal.float())

    def compute(self) -> dict:
        return self._rows()


class EvidenceRows(PerSampleMetric):
    """Per test image: the evidence precision of one method's map (see ``evidence_precision``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._add_row_states("precision")

    def update(self, ids, precision) -> None:
        self._append_rows(ids, precision.shape[0], precision.device, precision=precision.float())

    def compute(self) -> torch.Tensor:
        return self._rows()["precision"]


def pixel_block(fractions, curves: dict, evidence: dict | None = None) -> dict:
    """Plain pixel-perturbation results of one model: ``curves`` = method -> {"morf"|"lerf" -> {"logit"|"prob" ->
    (N, K) per-image curves}} (same images, same order). The logit (our primary output) and the official code's
    measure |p0 - p_k| / p0 of the predicted class's softmax probability (RoarTorch ``pixel_perturbation_analysis``)
    per fraction (mean curve) and per image (mean over the fractions > 0: the claims' samples)."""
    fr = [float(f) for f in fractions]
    later = torch.tensor([f > 0 for f in fr])
    out: dict = {"fractions": fr, "curves": {"logit": {}, "dp": {}}, "per_image": {"logit": {}, "dp": {}}}
    for order in ("morf", "lerf"):
        for key in ("logit", "dp"):
            out["curves"][key][order], out["per_image"][key][order] = {}, {}
        for m, c in curves.items():
            logit, prob = c[order]["logit"].double(), c[order]["prob"].double()
            p0 = prob[:, :1]
            dp = ((p0 - prob) / p0).abs()
            for key, v in (("logit", logit), ("dp", dp)):
                out["curves"][key][order][m] = v.mean(0).tolist()
                out["per_image"][key][order][m] = v[:, later].mean(1).tolist()
    out["images"] = int(next(iter(curves.values()))["morf"]["logit"].shape[0])
    if evidence:
        out["evidence_precision"] = {m: v.double().tolist() for m, v in evidence.items()}
    return out


def relu_neuron_count(model, input_shape: tuple) -> int:
    """ReLU output elements per image (PruneGrad's neurons) for inputs of ``input_shape`` (C, H, W)."""
    counts: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: counts.append(out[0].numel())) for m in relu_modules(model)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return int(sum(counts))


def rules_summary(zero: torch.Tensor, equal: torch.Tensor, relu_neurons: int) -> dict:
    """PruneGrad's threshold-rule measurements of one model: the zero-score share per image (mean, min, max) and the
    share of images whose official-rule map equals the plain gradient."""
    return {"zero_score_share_mean": float(zero.mean()), "zero_score_share_min": float(zero.min()),
            "zero_score_share_max": float(zero.max()), "official_equals_gradient_share": float(equal.mean()),
            "relu_neurons": relu_neurons, "images": int(zero.numel())}


def prunegrad_rules(official: PruneGrad, plain: PruneGrad, model, images: torch.Tensor, targets: torch.Tensor,
                    batch: int, device) -> dict:
    """:func:`rules_summary` of ``model`` on ``images`` (explaining ``targets``), in chunks of ``batch``."""
    zero, equal = [], []
    for i in range(0, images.shape[0], batch):
        x, t = images[i : i + batch].to(device), targets[i : i + batch].to(device)
        zero.append(official.score_sparsity(model, x, t).cpu())
        equal.append((official(model, x, t) == plain(model, x, t)).flatten(1).all(1).float().cpu())
    return rules_summary(torch.cat(zero), torch.cat(equal), relu_neuron_count(model, tuple(images.shape[1:])))
