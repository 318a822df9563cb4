"""Adebayo's data randomisation test in the scorecard (``--with data_randomisation``; Adebayo et al. 2018, Sec. 3.2 /
"data randomization test"), on the shared code of ``lightning_modules.tasks.data_randomization``.

For every map (references, built-in methods, the new method) and each of the first ``n_images`` test images: the
Spearman rank correlation of |map| of the true-label model (the shipped ``scenes_v2_vgg``) with |map| of the same
architecture trained on a fixed permutation of the training labels (the shipped, hash-checked
``weights/adebayo2018_default_scenes_v2_random``: ``scenes_vgg`` width 16, the permuted labels of 600 training scenes
memorised). Lower is better: the map changed with what the model learned. Each model explains its own predicted class
(Adebayo's official convention). The reference: the same similarity between the true-label model and the shipped
controls trained on the *true* labels (``..._control`` and ``..._control_seed``: the random-label model's subset and
schedule, two seeds): a method whose maps differ between the true- and random-label models no more than between two
true-label models is not shown to depend on the labels (the paired bootstrap margin ``true vs control - true vs
random``, the controls' per-image mean, has a CI above 0 where it is shown).

Validity (the shared ``lightning_modules.reporting.validity`` rule, unchanged, on this protocol's reference maps):

- the oracle (in both tie orders): the evidence for every model that learned the true labels (the true-label model and
  the controls) and, for the random-label model, which learned no relation of image to label, id-seeded noise: the
  map that depends on the labels and on nothing else (similarity about 0 to the random-label model, 1 to the controls);
- random: id-seeded noise that ignores the model (the same noise for every model of the same image): similarity 1;

so the rule reads: the oracle best (or within CI), no built-in method CI-separated worse than a map that ignores the
model, the best and worst built-in methods CI-separated. Only the shipped embedded model has these models: on any
other model the protocol is listed as not run, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lightning_modules.scorecard.protocols import Protocol

PROTOCOL = Protocol("data_randomisation", False, "Adebayo", "rank correlation of |map| between the true-label model "
                    "and the model trained on permuted labels")

#: the true-label model -> (architecture, its kwargs, the shipped random-label model and its controls)
SHIPPED = {
    "scenes_v2_vgg": {"arch": "scenes_vgg", "kwargs": {"width": 16},
                      "models": {"random": "adebayo2018_default_scenes_v2_random",
                                 "control": "adebayo2018_default_scenes_v2_control",
                                 "control_seed": "adebayo2018_default_scenes_v2_control_seed"}},
}
CONTROLS = ("control", "control_seed")
NEEDS = ("--with data_randomisation needs a model of the same architecture trained on permuted labels (Adebayo "
         "Sec. 3.2) and controls trained on the true labels; they are shipped for the embedded scenes_v2_vgg only "
         "(weights/adebayo2018_default_scenes_v2_*), so it is not run on {what}; train them with "
         "lightning_modules.tasks.data_randomization.train_random_label_model / train_classifier and compare your "
         "method's maps with lightning_modules.metrics.similarity.spearman")


@dataclass(frozen=True)
class DataRandSetting:
    n_images: int = 32  # the first test images of the scorecard's set
    seed: int = 0


DATARAND_PROFILES = {"default": DataRandSetting(), "smoke": DataRandSetting(n_images=24)}


def unavailable(bench, own: bool) -> str | None:
    """Why the test cannot run on ``bench`` (None: it can)."""
    if own:
        return NEEDS.format(what="your own model")
    if bench.setting.model not in SHIPPED:
        return NEEDS.format(what=f"{bench.setting.model}")
    return None


def load_models(bench) -> tuple[dict, dict]:
    """``({kind: model}, {kind: info})``: the true-label model (the bench's) and the shipped random-label model and
    controls, hash-checked (``lightning_modules.models.shipped``), frozen, eval, [0, 1] inputs."""
    from lightning_modules.models import load_model, unwrap
    from lightning_modules.models.shipped import load_shipped, shipped_entry

    spec = SHIPPED[bench.setting.model]
    models, info = {"true": bench.model}, {"true": {"weights": f"{bench.setting.model} (the scorecard's model)"}}
    for kind, name in spec["models"].items():
        state, _ = load_shipped(name)  # SHA-256 checked against weights/MANIFEST.json
        m, _ = load_model(spec["arch"], num_classes=bench.num_classes, freeze=True, **spec["kwargs"])
        unwrap(m).load_state_dict({k: v.float() for k, v in state.items()})
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        models[kind] = m
        info[kind] = {"weights": f"weights/{name}.safetensors", "sha256": shipped_entry(name)["sha256"]}
    return models, info


def _predicted(models: dict, x: torch.Tensor) -> dict:
    with torch.no_grad():
        return {k: m(x).argmax(1) for k, m in models.items()}


def reference_maps(bench, which: str, kind: str, idx: torch.Tensor, ds: DataRandSetting) -> torch.Tensor:
    """This protocol's reference maps (see the module's doc): ``oracle`` / ``oracle__border_first`` and ``random``."""
    from lightning_modules.explainers.baselines import id_seeded_random_maps, oracle_map

    d = bench.data
    hw = tuple(d["image"].shape[-2:])
    if which == "random":  # ignores the model: the same noise for every model
        return id_seeded_random_maps(d["ids"][idx], hw, ds.seed)
    if kind == "random":  # nothing of the true labels to show
        return id_seeded_random_maps(d["ids"][idx], hw, ds.seed + 1 + zlib.crc32(b"data_randomisation") % 100_000)
    return oracle_map(d["evidence_mask"][idx].float(), "border_first" if which.endswith("border_first") else "centre_first")


def similarities(bench, maps_of, models: dict, idx: torch.Tensor, targets: dict) -> dict:
    """Per-image Spearman of |map of the true-label model| with |map of each other model|: ``{kind: [values]}``.
    ``maps_of(kind, model, images, targets)`` gives one model's maps."""
    from lightning_modules.metrics.similarity import spearman

    x = bench.data["image"][idx]
    bs = bench.setting.batch_size

    def maps(kind):
        return torch.cat([maps_of(kind, models[kind], x[i:i + bs], targets[kind][i:i + bs], idx[i:i + bs])
                          for i in range(0, x.shape[0], bs)]).detach().float()

    base = maps("true").abs()
    return {k: [float(v) for v in spearman(base, maps(k).abs())] for k in models if k != "true"}


def code_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def run_data_randomisation(bench, builtin_providers: dict, new_provider, new_name: str, ds: DataRandSetting,
                           cache_dir: Path | None, key: str, log=print) -> tuple[dict, dict, dict]:
    """``(results entry, {map: per-image true-vs-random}, timing)``; the references' and built-ins' similarities
    from the cache where it holds them (keyed by the built-in cache key, this setting, the shipped models' hashes and
    this file)."""
    from lightning_modules.scorecard.protocols import REFERENCES

    models, info = load_models(bench)
    n = min(ds.n_images, bench.n)
    idx = torch.arange(n)
    targets = _predicted(models, bench.data["image"][idx])
    for k in models:
        info[k]["accuracy_on_these_images"] = float((targets[k] == bench.data["label"][idx]).float().mean())
    tag = json.dumps({"setting": asdict(ds), "models": info, "code": code_hash()}, sort_keys=True)
    path = None if cache_dir is None else Path(cache_dir) / f"datarand_{key}_{zlib.crc32(tag.encode()):08x}.json"
    stored = json.loads(path.read_text()) if path is not None and path.is_file() else {}

    def method_maps(provider):
        return lambda kind, model, images, tg, ib: provider(model, images, tg, ib, f"data_randomisation_{kind}")

    w1, c1 = time.perf_counter(), time.process_time()
    new = similarities(bench, method_maps(new_provider), models, idx, targets)
    own = {"data_randomisation_wall_s": round(time.perf_counter() - w1, 1),
           "data_randomisation_cpu_s": round(time.process_time() - c1, 1)}
    log(f"  data randomisation: {new_name} {own['data_randomisation_wall_s']:.0f} s wall")
    w0 = time.perf_counter()
    for name in (*REFERENCES, *builtin_providers):
        if name in stored:
            continue
        t = time.perf_counter()
        if name in REFERENCES:
            fn = lambda kind, model, images, tg, ib, name=name: reference_maps(bench, name, kind, ib, ds)  # noqa: E731
        else:
            fn = method_maps(builtin_providers[name])
        stored[name] = similarities(bench, fn, models, idx, targets)
        if name not in REFERENCES:
            log(f"  data randomisation: {name} {time.perf_counter() - t:.0f} s wall")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(stored))
    own["data_randomisation_builtins_wall_s"] = round(time.perf_counter() - w0, 1)
    allm = {**{m: stored[m] for m in (*REFERENCES, *builtin_providers)}, new_name: new}
    entry = {"setting": asdict(ds), "n_images": n, "target": "each model's own predicted class", "models": info,
             "control": {c: {m: v[c] for m, v in allm.items()} for c in CONTROLS}}
    return entry, {m: v["random"] for m, v in allm.items()}, own


def control_margins(results: dict, name_order: list[str]) -> dict:
    """Per map: true vs the controls (the per-image mean of the two), and the paired bootstrap margin ``true vs
    control - true vs random`` with its CI and whether it is CI-separated above 0 (the maps shown to depend on the
    labels); a pure function of the stored values."""
    import math

    from lightning_modules.reporting.validity import N_BOOT, bootstrap_weights, percentile_interval, statistic

    dr = results["data_randomisation"]
    vals = results["values"]["data_randomisation"]
    n = len(vals["random"])
    w = bootstrap_weights(n, N_BOOT, 0)

    def t(v):
        return torch.tensor([math.nan if x is None else x for x in v], dtype=torch.float64)

    ci = percentile_interval

    out = {}
    for m in name_order:
        ctl = torch.stack([t(dr["control"][c][m]) for c in CONTROLS]).nanmean(0)
        rnd = t(vals[m])
        margin = ctl - rnd
        b = statistic(margin, w)
        lo = ci(b)
        out[m] = {"true_vs_controls": {"value": float(statistic(ctl)), "ci95": ci(statistic(ctl, w))},
                  **{f"true_vs_{c}": float(statistic(t(dr["control"][c][m]))) for c in CONTROLS},
                  "margin": {"value": float(statistic(margin)), "ci95": lo},
                  "depends_on_labels": bool(lo[0] > 0)}
    return out
