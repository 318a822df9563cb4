"""Scorecard assembly: the built-in cache, verdicts and ranks, the Markdown table, the figure, the JSON, and the
verification that ``check`` runs on a committed scorecard.

Validity is a property of the benchmark, not of the method being scored: each protocol's verdict is
:func:`lightning_modules.reporting.validity.protocol_verdicts` over the reference maps (oracle in two tie orders,
random) and the built-in methods only (the rule: the oracle best or within CI of the best, random not CI-separated
better than any method, the best and worst methods CI-separated, no saturation, protocol-specific checks). The new
method is then placed among the built-in methods with the same seeded paired bootstrap over images: its mean and 95%
CI, its rank by the mean and the range of ranks its CIs allow (1 + the methods CI-separated better than it, to N -
the methods CI-separated worse).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from lightning_modules.reporting.validity import (N_BOOT, bootstrap_weights, group_bootstrap_weights, percentile_interval,
                                                  protocol_spec, protocol_verdicts, statistic)
from lightning_modules.scorecard.protocols import (BY_NAME, PROTOCOLS, REFERENCES, RETRAINING, Bench, Setting,
                                                   explainer_provider, load_bench, prepare_attacks,
                                                   prepare_randomised, reference_provider, score)
from lightning_modules.scorecard.datarand import (DATARAND_PROFILES, PROTOCOL as DATARAND_PROTOCOL, DataRandSetting,
                                                  control_margins, run_data_randomisation, unavailable)
from lightning_modules.scorecard.roar import PROTOCOL as ROAR_PROTOCOL, ROAR_PROFILES, RoarSetting, run_roar
from lightning_modules.utils import REPO_ROOT, atomic_write

#: every protocol a scorecard may hold (ROAR and the data randomisation test only when asked: --with)
PROTO = {**BY_NAME, "roar": ROAR_PROTOCOL, "data_randomisation": DATARAND_PROTOCOL}

FORMAT = 2
REPORT_DIR = REPO_ROOT / "reports" / "scorecard"
EXAMPLE = REPO_ROOT / "examples" / "my_method.py"
FIGURE = "scorecard.png"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_hash() -> str:
    """The scorecard's protocol code (``protocols.py``, and the multi-label pointing protocol's
    ``benchmarks/pointing.py``): a change invalidates the built-in cache."""
    h = hashlib.sha256((Path(__file__).parent / "protocols.py").read_bytes())
    h.update((Path(__file__).parents[1] / "benchmarks" / "pointing.py").read_bytes())
    return h.hexdigest()[:12]


def bench_fingerprint(bench: Bench) -> str:
    h = hashlib.sha256()
    for k in sorted(bench.data):
        v = bench.data[k]
        if isinstance(v, torch.Tensor):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    for k, v in sorted(bench.model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    if bench.pointing is not None:  # the multi-label pointing trials and their model
        h.update(b"pointing")
        for k in sorted(bench.pointing):
            h.update(k.encode())
            h.update(bench.pointing[k].detach().cpu().contiguous().numpy().tobytes())
        for k, v in sorted(bench.pointing_model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------- running
def _protocols_to_run(bench: Bench, skip: set[str]) -> tuple[list[str], dict[str, str]]:
    run, not_run = [], {}
    for p in PROTOCOLS:
        if p.name in skip:
            not_run[p.name] = "skipped (--skip)"
        elif not bench.available(p) or (p.name.startswith("localisation") and bench.data.get("box_labels") is None):
            missing = [f for f in (*p.needs, *(("box_labels",) if p.name.startswith("localisation") else ()))
                       if bench.data.get(f) is None]
            not_run[p.name] = f"not run: the data has no {', '.join(missing)}"
        elif p.oracle_gt == "evidence" and bench.data.get("evidence_mask") is None:
            # a user's data with object ground truth only (e.g. --data imagenet): the oracle map that judges this
            # protocol's validity is the evidence, which the data do not have
            not_run[p.name] = ("not run: the data has no evidence_mask (no evidence ground truth: this protocol's "
                               "validity is judged against the oracle map made from it)")
        else:
            run.append(p.name)
    return run, not_run


def score_references(bench: Bench, protocols: list[str], log=print) -> dict:
    """Reference maps: each oracle scores the object-GT protocols with the object mask, the rest with the
    evidence; random scores everything."""
    out = {}
    obj = [p for p in protocols if PROTO[p].oracle_gt == "object"]
    rest = [p for p in protocols if p not in obj]
    for ref in REFERENCES:
        if ref == "random":
            out[ref] = score(bench, reference_provider(bench, ref), protocols, log=log)
            continue
        if obj and not rest:  # object ground truth only (a user's data without evidence)
            out[ref] = score(bench, reference_provider(bench, ref, "object"), obj, log=log)
            continue
        r = score(bench, reference_provider(bench, ref, "evidence"), rest, log=log)
        if obj and bench.data.get("object_mask") is not None:
            o = score(bench, reference_provider(bench, ref, "object"), obj, log=log)
            r["values"].update(o["values"])
        out[ref] = r
    return out


def cache_key(bench: Bench) -> str:
    return f"{bench.setting.model.replace(':', '.').replace('/', '.')}_{bench.setting.key()}_{bench_fingerprint(bench)}_{code_hash()}"


def _attacks(bench: Bench, cache_dir: Path | None, log=print) -> None:
    """The attacked images (the same for every method), cached beside the built-in results."""
    path = None if cache_dir is None else Path(cache_dir) / f"attacks_{cache_key(bench)}.pt"
    if path is not None and path.is_file():
        stored = torch.load(path, weights_only=True)
        bench.attacked.update(stored["images"])
        bench.info.update({k: float(v) for k, v in stored["info"].items()})
        return
    prepare_attacks(bench, log)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {k: torch.tensor(v) for k, v in bench.info.items() if k.startswith("attack_")}
        with atomic_write(path, "wb") as fh:
            torch.save({"images": bench.attacked, "info": info}, fh)


def builtin_results(bench: Bench, protocols: list[str], cache_dir: Path | None, log=print) -> dict:
    """References and built-in methods scored on every protocol, read from the cache when it holds them."""
    from lightning_modules.explainers import create_explainer

    key = cache_key(bench)
    path = None if cache_dir is None else Path(cache_dir) / f"builtins_{key}.json"
    if path is not None and path.is_file():
        cached = json.loads(path.read_text())
        if set(protocols) <= set(cached["protocols"]):
            log(f"built-in results from the cache ({path})")
            cached["cache_hit"] = True
            return cached
    log(f"scoring the references and {len(bench.setting.builtins)} built-in methods (cached after this run)")
    w0, c0 = time.perf_counter(), time.process_time()
    maps = score_references(bench, protocols, log)
    failed = {}
    for name, kwargs in bench.setting.builtin_kwargs().items():
        t = time.process_time()
        try:
            maps[name] = score(bench, explainer_provider(create_explainer(name, **kwargs)), protocols, log=log)
        except (ValueError, RuntimeError, NotImplementedError) as e:  # e.g. Grad-CAM on an architecture it cannot read
            failed[name] = f"{type(e).__name__}: {e}"
            log(f"  {name}: not run on this model ({failed[name]})")
            continue
        log(f"  {name}: {time.process_time() - t:.0f} s CPU")
    cached = {"key": key, "protocols": protocols, "maps": maps, "failed_builtins": failed, "info": bench.info,
              "wall_s": round(time.perf_counter() - w0, 1), "cpu_s": round(time.process_time() - c0, 1)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as fh:
            json.dump(cached, fh)
    return cached


def run_scorecard(explainer, name: str, setting: Setting, *, skip: set[str] = frozenset(), with_: set[str] = frozenset(),
                  cache_dir: Path | None = REPO_ROOT / "outputs" / "scorecard" / "cache", model=None, data=None,
                  method_info: dict | None = None, roar_setting: RoarSetting = ROAR_PROFILES["default"],
                  datarand_setting: DataRandSetting = DATARAND_PROFILES["default"], log=print) -> dict:
    """Score ``explainer`` (a :class:`CheckedExplainer`) beside the built-in methods; the plain results."""
    unknown = set(skip) - set(BY_NAME) - set(RETRAINING)
    if unknown:
        raise ValueError(f"--skip: unknown protocol(s) {sorted(unknown)}; known: {sorted(BY_NAME) + sorted(RETRAINING)}")
    asked = set(with_) - set(RETRAINING)
    if asked:
        raise ValueError(f"--with: unknown protocol(s) {sorted(asked)}; the protocols that need retraining: {sorted(RETRAINING)}")
    w0, c0 = time.perf_counter(), time.process_time()
    if model is not None and data is not None and not isinstance(getattr(model, "mean", None), torch.Tensor):
        # the deletion / pixel-perturbation substrate is the model's mean colour: without one, the data's
        model.mean = data["image"].float().mean((0, 2, 3))
    bench = load_bench(setting, model, data, log)
    if bench.data.get("evidence_mask") is None and bench.data.get("object_mask") is None:
        raise ValueError("the data has no 'evidence_mask': the validity references (the oracle map) need the "
                         "evidence ground truth (N, 1, H, W) bool (with only an object 'mask', the object-ground-"
                         "truth protocols run and the rest are listed as not run)")
    protocols, not_run = _protocols_to_run(bench, set(skip))
    protocols = list(protocols)
    if any(p.startswith("fragility") for p in protocols):
        _attacks(bench, cache_dir, log)
    if any(p.endswith("randomisation") for p in protocols):
        prepare_randomised(bench)
    builtins = builtin_results(bench, protocols, cache_dir, log)
    log(f"scoring {name}")
    w1, c1 = time.perf_counter(), time.process_time()
    new = score(bench, explainer_provider(explainer), protocols, log=log)
    own = {"wall_s": round(time.perf_counter() - w1, 1), "cpu_s": round(time.process_time() - c1, 1)}
    roar_vals, roar_time = None, {}
    if "roar" in with_ and "roar" not in skip:
        from lightning_modules.explainers import create_explainer

        log("ROAR (retraining)")
        providers = {r: reference_provider(bench, r) for r in REFERENCES}
        providers.update({m: explainer_provider(create_explainer(m, **kw))
                          for m, kw in setting.builtin_kwargs().items() if m in builtins["maps"]})
        roar_vals, roar_time = run_roar(bench, providers, explainer_provider(explainer), name, roar_setting, cache_dir,
                                        builtins["key"], log)
        own = {"wall_s": round(own["wall_s"] + roar_time["roar_wall_s"], 1),
               "cpu_s": round(own["cpu_s"] + roar_time["roar_cpu_s"], 1)}
    dr_entry = dr_vals = None
    if "data_randomisation" in with_ and "data_randomisation" not in skip:
        why = unavailable(bench, own=model is not None or data is not None)
        if why is not None:
            log(f"data randomisation skipped: {why}")
            not_run["data_randomisation"] = f"not run: {why}"
        else:
            from lightning_modules.explainers import create_explainer

            log("data randomisation (the shipped random-label model and controls)")
            providers = {m: explainer_provider(create_explainer(m, **kw))
                         for m, kw in setting.builtin_kwargs().items() if m in builtins["maps"]}
            dr_entry, dr_vals, dr_time = run_data_randomisation(bench, providers, explainer_provider(explainer), name,
                                                                datarand_setting, cache_dir, builtins["key"], log)
            own = {"wall_s": round(own["wall_s"] + dr_time["data_randomisation_wall_s"], 1),
                   "cpu_s": round(own["cpu_s"] + dr_time["data_randomisation_cpu_s"], 1)}
    for p in RETRAINING:
        if (p == "roar" and roar_vals is not None) or (p == "data_randomisation" and (dr_vals is not None
                                                                                     or p in not_run)):
            continue
        not_run[p] = f"not run ({RETRAINING[p]}; --with {p})" if p not in skip else "skipped (--skip)"
    d = bench.data
    pt = bench.pointing
    # the new method's forward floor, timed interleaved with its own maps (each method's cost has its own)
    builtins["info"]["forward_cpu_s_per_image"] = new["forward_cpu_s_per_image"]
    results = {
        "format": FORMAT, "kind": "scorecard", "method": {"name": name, **(method_info or {})},
        "setting": setting.to_dict(), "setting_key": setting.key(), "cache_key": builtins["key"],
        "n_images": bench.n, "num_classes": bench.num_classes,
        "labels": [int(v) for v in d["label"]],
        "difficult": None if d.get("difficult") is None else [bool(v) for v in d["difficult"]],
        # the pointing game's multi-label trials (None: it ran on the images above, a user's own model and data)
        "pointing": None if pt is None else {
            **builtins["info"].get("pointing", {}), "labels": [int(v) for v in pt["label"]],
            "difficult": [bool(v) for v in pt["difficult"]], "image_index": [int(v) for v in pt["image_index"]]},
        "benchmark": builtins["info"],
        "builtin_methods": [m for m in setting.builtin_kwargs() if m in builtins["maps"]],
        "builtin_failures": builtins.get("failed_builtins", {}),
        "protocols_run": protocols, "not_run": not_run,
        "values": {p: {m: r["values"][p] for m, r in {**builtins["maps"], name: new}.items()} for p in protocols},
        "roar_setting": None if roar_vals is None else asdict(roar_setting),
        "curves": {m: r["curves"] for m, r in {**builtins["maps"], name: new}.items()},
        # one map's CPU time over the forward passes timed interleaved with it (alternating batches, same threads):
        # a change of load on a shared machine hits both alike; a guide to the magnitude, not a precise ratio
        "cost": {m: r["cost"] for m, r in {**builtins["maps"], name: new}.items() if m not in REFERENCES},
        "cost_forward_cpu_s_per_image": {m: r["forward_cpu_s_per_image"] for m, r in {**builtins["maps"], name: new}.items()
                                         if m not in REFERENCES},
        "timing": {"method": own, "method_seconds_per_protocol": new["seconds"],
                   "total": {"wall_s": round(time.perf_counter() - w0, 1), "cpu_s": round(time.process_time() - c0, 1)},
                   "builtins_cached_build": {"wall_s": builtins["wall_s"], "cpu_s": builtins["cpu_s"]},
                   "cache_hit": bool(builtins.get("cache_hit", False)),
                   "threads": torch.get_num_threads(), "machine": platform.machine()},
    }
    if roar_vals is not None:
        results["protocols_run"].append("roar")
        results["values"]["roar"] = {m: roar_vals[m] for m in (*REFERENCES, *results["builtin_methods"], name)}
        results["timing"]["roar"] = roar_time
    if dr_vals is not None:
        results["protocols_run"].append("data_randomisation")
        results["values"]["data_randomisation"] = {m: dr_vals[m] for m in (*REFERENCES, *results["builtin_methods"], name)}
        results["data_randomisation"] = dr_entry
        results["timing"]["data_randomisation"] = dr_time
    results["checks"] = protocol_checks(results)
    return results


def protocol_checks(results: dict) -> dict:
    """The deletion / insertion checks of ``lightning_modules.benchmarks.validity`` on the built-in methods' mean
    curves (a plain ``protocol_spec`` check each)."""
    s, out = results["setting"], {}
    builtins = results["builtin_methods"]
    n_pix = None
    for mode, better in (("deletion", False), ("insertion", True)):
        if mode not in results["protocols_run"]:
            continue
        vals = results["values"][mode]
        sign = 1 if better else -1
        best = max(builtins, key=lambda k: sign * sum(vals[k]) / len(vals[k]))
        mc = results["curves"][best][mode]
        span = mc[-1] - mc[0]
        first = (mc[1] - mc[0]) / span if span != 0 else math.nan
        if mode == "deletion":
            out[mode] = {"first_step_not_at_floor": {"value": first, "op": "<=", "bound": 0.9,
                                                     "text": f"{best}: share of the drop after the first step"}}
            area = results["benchmark"].get("evidence_area_px")
            if area is not None:
                out[mode]["step_well_below_evidence"] = {"value": s["pixels_per_step"], "op": "<=", "bound": area / 4,
                                                         "text": "pixels per step vs a quarter of the evidence area"}
        else:
            chance = 1.0 / results["num_classes"]
            out[mode] = {"blurred_start_uninformative": {"value": results["curves"]["random"][mode][0], "op": "<=",
                                                         "bound": 3 * chance, "text": "blurred start's score vs 3x chance"},
                         "first_step_not_at_top": {"value": first, "op": "<=", "bound": 0.9,
                                                   "text": f"{best}: share of the rise after the first step"}}
    del n_pix
    return out


# --------------------------------------------------------------------------------------------- deriving
def _trials(results: dict, protocol: str) -> dict | None:
    """The multi-label pointing trials of a pointing protocol (None: its values are per image)."""
    return results.get("pointing") if protocol.startswith("pointing_") else None


def _classes(results: dict, protocol: str) -> list[int] | None:
    if not PROTO[protocol].classes:
        return None
    src = _trials(results, protocol) or results
    labels = src["labels"]
    if protocol.endswith("difficult"):
        return [c for c, f in zip(labels, src["difficult"]) if f]
    return labels


def _groups(results: dict, protocol: str) -> list[int] | None:
    """Each value's bootstrap unit where an image holds several values (the multi-label pointing trials: the
    image); None: every value is its own image."""
    tr = _trials(results, protocol)
    if tr is None:
        return None
    if protocol.endswith("difficult"):
        return [g for g, f in zip(tr["image_index"], tr["difficult"]) if f]
    return list(tr["image_index"])


def derive(results: dict) -> dict:
    """Verdicts (references and built-ins only), every map's mean and CI, the new method's rank: a pure function of
    the stored values."""
    name = results["method"]["name"]
    builtins = results["builtin_methods"]
    out = {}
    for p in results["protocols_run"]:
        proto = PROTO[p]
        vals = results["values"][p]
        classes = _classes(results, p)
        groups = _groups(results, p)
        n = len(vals["random"])
        enough = n >= 2 and (p != "pointing_object_difficult" and p != "pointing_evidence_difficult" or n >= 10)
        if not enough:
            out[p] = {"status": "not judged", "reason": f"only {n} {'trials' if groups else 'images'} (needs 10)"}
            continue
        if len(builtins) < 2:
            out[p] = {"status": "not judged", "reason": f"{len(builtins)} built-in method(s) ran on this model; the "
                                                        "validity rule needs two"}
            continue
        spec = protocol_spec({m: vals[m] for m in (*REFERENCES, *builtins)}, proto.higher_is_better, classes=classes,
                             bound=proto.bound, checks=results["checks"].get(p), groups=groups)
        verdict = protocol_verdicts({p: spec})[p]
        # the new method beside them: the same seeded paired bootstrap (over images: a trial's image for pointing)
        w = bootstrap_weights(n, N_BOOT, 0) if groups is None else group_bootstrap_weights(torch.tensor(groups), N_BOOT, 0)
        cls = None if classes is None else torch.tensor(classes)
        sign = 1.0 if proto.higher_is_better else -1.0
        allm = [*REFERENCES, *builtins, name]
        t = {m: torch.tensor([math.nan if v is None else v for v in vals[m]], dtype=torch.float64) for m in allm}
        point = {m: float(statistic(t[m], classes=cls)) for m in allm}
        boots = {m: statistic(t[m], w, cls) for m in allm}

        ci = percentile_interval

        methods = [*builtins, name]
        key = lambda m: sign * point[m] if not math.isnan(point[m]) else -math.inf  # noqa: E731
        order = sorted(methods, key=key, reverse=True)
        better = [m for m in builtins if ci(sign * (boots[m] - boots[name]))[0] > 0]
        worse = [m for m in builtins if ci(sign * (boots[name] - boots[m]))[0] > 0]
        rank = {"rank": order.index(name) + 1, "of": len(methods), "range": [1 + len(better), len(methods) - len(worse)],
                "ci_better": better, "ci_worse": worse}
        out[p] = {"status": "valid" if verdict["valid"] else "not valid",
                  "failed": {k: c["detail"] for k, c in verdict["checks"].items() if not c["passed"]},
                  "best_builtin": verdict["best_real"], "worst_builtin": verdict["worst_real"],
                  "maps": {m: {"value": point[m], "ci95": ci(boots[m])} for m in allm},
                  "rank": rank if verdict["valid"] else None}
        if p == "data_randomisation":  # the reference: the same similarity between two true-label models
            out[p]["control"] = control_margins(results, allm)
    cost = results["cost"]
    order = sorted(cost, key=lambda m: cost[m])
    out["cost"] = {"status": "measured", "maps": {m: {"value": v, "ci95": None} for m, v in cost.items()},
                   "rank": {"rank": order.index(name) + 1, "of": len(order), "range": None}}
    return out


# --------------------------------------------------------------------------------------------- rendering
def _f(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.0f}"


def _cell(entry: dict) -> str:
    ci = entry.get("ci95")
    return _f(entry["value"]) + (f" [{_f(ci[0])}, {_f(ci[1])}]" if ci else "")


def _rank(r: dict | None) -> str:
    if not r:
        return "–"
    s = f"**{r['rank']}** of {r['of']}"
    if r.get("range") and r["range"][0] != r["range"][1]:
        s += f" (CI {r['range'][0]}–{r['range'][1]})"
    return s


def render_markdown(results: dict, derived: dict) -> str:
    name = results["method"]["name"]
    s = results["setting"]
    valid = [p for p in results["protocols_run"] if derived[p]["status"] == "valid"]
    invalid = [p for p in results["protocols_run"] if derived[p]["status"] != "valid"]
    tm = results["timing"]
    lines = [f"# Scorecard: {name}", "",
             f"Written by `python -m replications scorecard` (lightning_modules/scorecard). Method: `{results['method'].get('spec', name)}`"
             + (f" with `{json.dumps(results['method'].get('init_args'))}`" if results["method"].get("init_args") else "")
             + f". Model `{s['model']}`, {results['n_images']} test images at "
             f"{results['benchmark'].get('image_size', '64')} px, target = the label. Values: mean over images "
             "(pointing: mean over classes of the per-class hit rate) with seeded paired bootstrap 95% CIs "
             f"({N_BOOT} resamples over images)."
             + ("" if not results.get("pointing") else
                f" Pointing: on the multi-label benchmark, model `{results['pointing']['model']}`, one trial per "
                f"(image, present class) of {results['pointing']['n_images']} multi-label test scenes "
                f"({results['pointing']['n_trials']} trials, {results['pointing']['n_difficult']} difficult), TorchRay's "
                f"native tolerance ({results['pointing']['tolerance_px']:.2f} px), the bootstrap over images.")
             + f" Rank: {name}'s place among the built-in methods by the mean (CI: the "
             "ranks its paired CIs allow). Validity is judged on the reference maps and the built-in methods only "
             "(oracle best or within CI, random not better than any method, methods CI-separated, no saturation), "
             "so the new method cannot change it.", "",
             f"Cost of scoring {name}: {tm['method']['wall_s']:.0f} s wall, {tm['method']['cpu_s']:.0f} s CPU "
             f"({tm['threads']} threads; the whole command {tm['total']['wall_s']:.0f} s wall, "
             + ("with the built-in results read from the cache" if tm.get("cache_hit") else "building the built-in cache")
             + f"; building that cache takes {tm['builtins_cached_build']['wall_s']:.0f} s wall once).", "",
             "## Valid protocols", ""]
    od = results.get("own_data")
    if od:  # a user's own data by name (--data imagenet --data-root DIR)
        lines[-2:-2] = [f"Data: `--data {od['name']}` ({od['n_images']} images of `{od['root']}` in the data module's "
                        f"order, resized to {od['image_size'][0]} x {od['image_size'][1]}; "
                        f"{od['skipped_without_own_box']} skipped without a box of their class). Ground truth: "
                        f"{od['ground_truth']}: the protocols judged against the evidence are listed under \"Not run\".",
                        ""]
    arrow = lambda p: "↑" if PROTO[p].higher_is_better else "↓"  # noqa: E731
    cols = valid + ["cost"]
    lines.append("| map | " + " | ".join(f"{p} {arrow(p)}" if p != "cost" else "cost ↓ (forward passes)" for p in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    rows = [*REFERENCES, *results["builtin_methods"], name]
    for m in rows:
        cells = []
        for p in cols:
            e = derived[p]["maps"].get(m)
            cells.append("–" if e is None else (f"**{_cell(e)}**" if m == name else _cell(e)))
        label = f"**{m}** (new)" if m == name else (f"{m} (reference)" if m in REFERENCES else m)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(f"| rank of {name} | " + " | ".join(_rank(derived[p]["rank"]) for p in cols) + " |")
    lines += ["", "Paper of each protocol: " + "; ".join(f"{p}: {PROTO[p].paper} ({PROTO[p].what})" for p in valid)
              + ". Cost: CPU time of one map per image relative to one forward pass per image (batched, timed "
              "interleaved, this machine).", ""]
    lines += ["## Not valid on this benchmark (listed, not scored)", ""]
    if invalid:
        lines += [f"| protocol | why | {name} | best built-in | oracle | random |", "|---|---|---|---|---|---|"]
        for p in invalid:
            dp = derived[p]
            if dp["status"] == "not judged":
                lines.append(f"| {p} | {dp['reason']} | – | – | – | – |")
                continue
            why = "; ".join(f"{k}: {v}" for k, v in dp["failed"].items())
            lines.append(f"| {p} {arrow(p)} | {why} | {_cell(dp['maps'][name])} | {dp['best_builtin']} "
                         f"{_cell(dp['maps'][dp['best_builtin']])} | {_cell(dp['maps']['oracle'])} | {_cell(dp['maps']['random'])} |")
    else:
        lines.append("None.")
    lines += _datarand_section(results, derived)
    lines += ["", "## Not run", ""]
    lines += [f"- `{p}`: {why}" for p, why in results["not_run"].items()] or ["None."]
    lines += [f"- built-in `{m}`: not run on this model ({why})" for m, why in results.get("builtin_failures", {}).items()]
    b = results["benchmark"]
    lines += ["", "## Notes", "",
              "- Oracle: the ground truth as a map (`oracle_map`: the evidence, or the object for the object-GT protocols; "
              "ties inside it in two stated orders, both counted as oracles). Random: uniform noise seeded by the image "
              "id, drawn afresh for every other input (attacked image, randomised model), as a method that ignores its "
              "input would.",
              *([] if not {"cascading_randomisation", "independent_randomisation"} & set(results["protocols_run"]) else [
              f"- Randomisation (Adebayo): Spearman rank correlation of |map| with |map| of the randomised model (lower: "
              f"the map depends more on the weights), mean over the kept layers {b.get('randomisation_layers')}, on the "
              f"first {s['randomisation_images']} images. The oracle does not depend on the model, so it scores worst: "
              "a sanity check, not a ranking; it is not valid by the oracle rule."]),
              *([] if not {"fragility_topk", "fragility_centre"} & set(results["protocols_run"]) else [
              f"- Fragility (Ghorbani): top-k ({s['attack_k']} px) intersection between the map of an image and of its "
              f"attacked copy; the attacks ({s['attack_steps']} steps, epsilon {s['attack_epsilon']:.4f}) target the "
              "model's gradient map and are transferred to every method (a new method is never differentiated "
              f"through); first {s['attack_images']} images; labels kept: top-k {b.get('attack_topk_label_kept', math.nan):.2f}, "
              f"centre {b.get('attack_center_label_kept', math.nan):.2f}."]),
              *([] if not results.get("pointing") else [
                  f"- Pointing game (EBP / TorchRay protocol, `lightning_modules/benchmarks/pointing.py`): the single-"
                  f"label scenes saturate it (every method's maximum lands on the one object), so every map explains the "
                  f"multi-label model `{results['pointing']['model']}` (per-class sigmoid, test mAP "
                  f"{results['pointing'].get('test_map', math.nan):.3f}) for each class present in a scene; a hit when "
                  f"the maximum lies within {results['pointing']['tolerance_px']:.2f} px of the class's object / evidence "
                  "pixels; class-mean hit rate; difficult: the class's box under a quarter of the image and another "
                  "class present (EBP's rule). The oracle is the class's ground truth; random is noise per trial."]),
              "- Thresholded protocols (localisation, suppression) use the map clamped at 0; localisation picks each "
              "map's energy threshold on the evaluated images (optimistic for every map alike).",
              f"- Cost: each method's map CPU time over its forward floor timed interleaved with it (every batch of "
              f"{s['batch_size']} maps between two forward passes of the same batch, no gradient, the same "
              f"{results['timing']['threads']} threads; the floor the faster pass), so a change of load hits both alike. "
              f"{name}'s forward floor: {b['forward_cpu_s_per_image'] * 1e3:.2f} ms CPU per image; the built-in "
              "methods' were timed with their maps when the cache was built. On a shared machine the ratios are a "
              "guide to the magnitude, not precise.", ""]
    if results.get("data_randomisation"):
        lines.insert(-1, "- Data randomisation (Adebayo): the value is the Spearman rank correlation of |map| between the "
                         "true-label model and the model trained on permuted labels (lower is better; see its section). "
                         "Its references for the validity rule: the oracle is the evidence for every model that "
                         "learned the true labels and id-seeded noise for the random-label model (the map that "
                         "depends on the labels and nothing else); random is noise that ignores the model (the same for "
                         "every model: similarity 1), so the rule reads: the oracle best, no built-in method worse than a "
                         "map that ignores the model, the built-in methods CI-separated.")
    rs = results.get("roar_setting")
    if rs:
        lines.insert(-1, f"- ROAR (Hooker): the top {rs['fractions']} of each map's pixels (squared) replaced by the mean "
                         f"colour in {rs['train_images']} training and the test images; a {rs['model_name']} retrained "
                         f"from scratch ({rs['max_epochs']} epochs, at {64 // rs['downsample']} px, one seed) per map "
                         "and fraction; value: each test image's accuracy averaged over the fractions (the CI leaves "
                         "out the retraining's own variance).")
    return "\n".join(lines) + "\n"


def _datarand_section(results: dict, derived: dict) -> list[str]:
    """The data randomisation test's reference: each map's similarity between the true-label model and the model
    trained on permuted labels beside the same between the true-label model and the controls (true labels)."""
    dr, d = results.get("data_randomisation"), derived.get("data_randomisation", {})
    if not dr or "control" not in d:
        return []
    name = results["method"]["name"]
    ms = dr["models"]
    acc = lambda k: f"{ms[k]['accuracy_on_these_images']:.2f}"  # noqa: E731
    lines = ["", "## Data randomisation (Adebayo): against two true-label models", "",
             f"Spearman rank correlation of \\|map\\| of the true-label model `{results['setting']['model']}` with "
             f"\\|map\\| of the same kind of network trained on permuted labels (`{ms['random']['weights']}`) and with "
             f"the controls trained on the true labels (`{ms['control']['weights']}`, `{ms['control_seed']['weights']}`: "
             "the random-label model's 600 training scenes and schedule, two seeds), per image on the first "
             f"{dr['n_images']} test images, each model explaining its own predicted class (accuracy on these images: "
             f"true {acc('true')}, random labels {acc('random')}, controls {acc('control')} / {acc('control_seed')}). "
             "Lower true vs random: the map changed with what the model learned. A map that differs between the true- "
             "and random-label models no more than between two true-label models is not shown to depend on the labels "
             "(margin: true vs control (mean of the two) - true vs random, paired bootstrap 95% CI over images).", "",
             "| map | true vs random ↓ | true vs the controls (mean) | true vs control | true vs control_seed | margin "
             "| depends on the labels |", "|---|---|---|---|---|---|---|"]
    for m in [*REFERENCES, *results["builtin_methods"], name]:
        c = d["control"][m]
        label = f"**{m}** (new)" if m == name else (f"{m} (reference)" if m in REFERENCES else m)
        lines.append(f"| {label} | {_cell(d['maps'][m])} | {_cell(c['true_vs_controls'])} | {_f(c['true_vs_control'])} "
                     f"| {_f(c['true_vs_control_seed'])} "
                     f"| {_cell(c['margin'])} | {'yes' if c['depends_on_labels'] else 'not shown'} |")
    return lines


def render_figure(results: dict, derived: dict, path: Path) -> None:
    """Per protocol: where each map stands between random (0) and the oracle (1); the new method with its CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = results["method"]["name"]
    protos = [p for p in results["protocols_run"] if derived[p]["status"] != "not judged"]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(protos) + 1.5))
    for i, p in enumerate(protos):
        d = derived[p]["maps"]
        o = max((d[k]["value"] for k in REFERENCES if k != "random"),
                key=lambda v: v if PROTO[p].higher_is_better else -v)
        r = d["random"]["value"]
        span = (o - r) if o != r else 1.0
        norm = lambda v: max(-0.3, min(1.3, (v - r) / span))  # noqa: E731
        y = len(protos) - 1 - i
        valid = derived[p]["status"] == "valid"
        if not valid:
            ax.axhspan(y - 0.5, y + 0.5, color="0.92", zorder=0)
        for m in results["builtin_methods"]:
            ax.plot(norm(d[m]["value"]), y, "o", color="0.45", ms=5, zorder=2)
        lo, hi = sorted(norm(v) for v in d[name]["ci95"]) if not any(math.isnan(v) for v in d[name]["ci95"]) else (0, 0)
        ax.plot([lo, hi], [y, y], "-", color="tab:blue", lw=2, zorder=3)
        ax.plot(norm(d[name]["value"]), y, "D", color="tab:blue", ms=8, zorder=4)
        rk = derived[p]["rank"]
        ax.text(1.34, y, f"rank {rk['rank']}/{rk['of']}" if rk else "not valid", va="center", fontsize=8)
    ax.axvline(0, color="tab:red", lw=1)
    ax.axvline(1, color="tab:green", lw=1)
    ax.set_yticks(range(len(protos)))
    ax.set_yticklabels([f"{p} {'↑' if PROTO[p].higher_is_better else '↓'}" for p in reversed(protos)], fontsize=8)
    ax.set_xlim(-0.35, 1.55)
    ax.set_xlabel("position between random (0, red) and the oracle (1, green)")
    ax.set_title(f"{name} (blue, 95% CI) among the built-in methods (grey)\ngrey rows: not valid on this benchmark",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _roundtrip(obj):
    return json.loads(json.dumps(obj, default=float))


def write_scorecard(results: dict, out_dir: Path) -> dict:
    """``results.json``, ``README.md`` and the figure under ``out_dir``; the JSON carries the derived numbers and
    both files' SHA-256."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = _roundtrip(results)
    results.pop("derived", None)
    results.pop("files", None)
    derived = _roundtrip(derive(results))
    md = render_markdown(results, derived)
    with atomic_write(out_dir / "README.md") as fh:
        fh.write(md)
    render_figure(results, derived, out_dir / FIGURE)
    results["derived"] = derived
    results["files"] = {"README.md": _sha(md.encode()), FIGURE: _sha((out_dir / FIGURE).read_bytes())}
    with atomic_write(out_dir / "results.json") as fh:
        json.dump(results, fh, indent=None, separators=(",", ":"), default=float)
        fh.write("\n")
    return results


# --------------------------------------------------------------------------------------------- check
def verify_scorecard(out_dir: Path = REPORT_DIR, example: Path | None = EXAMPLE) -> list[str]:
    """Problems of a committed scorecard (empty when it is sound): the derived verdicts, CIs and ranks re-derived
    from the stored values, README.md re-rendered, the files' hashes, and the example's source hash."""
    out_dir = Path(out_dir)
    path = out_dir / "results.json"
    where = out_dir.relative_to(REPO_ROOT) if out_dir.is_relative_to(REPO_ROOT) else out_dir
    if not path.is_file():
        return [f"scorecard: no {where}/results.json; run `python -m replications scorecard --explainer "
                "examples.my_method:EdgeWeightedGradCAM --out reports/scorecard`"]
    try:
        results = json.loads(path.read_text())
    except ValueError as e:
        return [f"scorecard: {where}/results.json is not valid JSON ({e})"]
    problems = []
    base = {k: v for k, v in results.items() if k not in ("derived", "files")}
    try:
        derived = _roundtrip(derive(base))
    except Exception as e:  # noqa: BLE001 -- any failure to re-derive is a problem to report
        return [f"scorecard: cannot re-derive {where}/results.json ({type(e).__name__}: {e})"]
    same = lambda a, b: json.dumps(a, sort_keys=True, default=float) == json.dumps(b, sort_keys=True, default=float)  # noqa: E731
    if not same(derived, results.get("derived")):
        bad = sorted(k for k in set(derived) | set(results.get("derived") or {})
                     if not same(derived.get(k), (results.get("derived") or {}).get(k)))
        problems.append(f"scorecard: the stored verdicts / CIs / ranks differ from those re-derived from the stored "
                        f"values for {bad}; re-run the scorecard")
    md = render_markdown(base, derived)
    files = results.get("files") or {}
    readme = out_dir / "README.md"
    if not readme.is_file() or readme.read_text() != md:
        problems.append(f"scorecard: {where}/README.md is not what the stored results render; re-run the scorecard")
    for f, sha in files.items():
        p = out_dir / f
        if not p.is_file():
            problems.append(f"scorecard: {where}/{f} is missing")
        elif _sha(p.read_bytes()) != sha:
            problems.append(f"scorecard: {where}/{f} does not match its recorded SHA-256")
    if set(files) != {"README.md", FIGURE}:
        problems.append(f"scorecard: results.json records hashes of {sorted(files)}, expected README.md and {FIGURE}")
    if example is not None:
        rec = results.get("method", {}).get("source_sha256")
        if not Path(example).is_file():
            problems.append(f"scorecard: the worked example {example} is missing")
        elif rec != _sha(Path(example).read_bytes()):
            problems.append(f"scorecard: {Path(example).name} changed since its scorecard was written (stale); re-run "
                            "`python -m replications scorecard --explainer examples.my_method:EdgeWeightedGradCAM "
                            "--out reports/scorecard`")
    return problems
