"""Benchmark of every explainer against its floor: the forward/backward passes the method cannot avoid.

For each method and batch size ``B`` (1 and 32 by default), on the synthetic black box (``scenes_cnn``,
random weights, 64x64, CPU), one run measures

- ``ms/img``: time (wall, or with ``--clock process`` the CPU time) of ``explainer(model, images, targets)``
  divided by ``B`` (best of 2-30 repeats, as many as fit in 4 s,
  interleaved with the floor's: the minimum is the least disturbed by other processes on a shared machine);
- ``floor ms/img``: the same model running only the passes the method must make, with the same batch
  sizes, on a pre-built input (no perturbation, no hooks, no reduction):
  input-gradient methods = 1 fwd+bwd; Grad-CAM and excitation backprop = 1 fwd + a backward pass down to
  their layer (the gradient w.r.t. the layer's output); excitation backprop = 1 fwd + a backward pass down to
  its layer + the forward pass with positive weights of every linear/conv/pooling module above the layer
  (the normaliser ``f+`` of Zhang et al. Eq. 3, which its rule needs; the VJP through ``f+`` replaces the
  ordinary one, so it adds no backward); contrastive EBP = 1 fwd + 2 such backward passes + the positive pass
  once, the classifier's twice (the dual negates its weights; the other positive forwards do not depend on the signal);
  guided Grad-CAM = both of guided backprop's and Grad-CAM's passes; SmoothGrad/-SQ/VarGrad (n samples) = n fwd+bwd; IG (steps) =
  steps fwd+bwd; occlusion = windows + 1 fwd (the unoccluded reference); blurred-circle occlusion =
  discs + 1 fwd; LIME = n_samples fwd; Score-CAM = 1 + K fwd (K channels at the layer); RISE = N fwd in
  its own chunks (target <= 1.10); meaningful perturbation (Fong & Vedaldi mask learning) = iterations
  fwd+bwd + the forwards of its setup (clean, fully perturbed and final score, and the circle initialisation's
  radii); Sobel/random: no model pass (no floor);
- ``ratio`` = ms/img / floor ms/img (target <= 1.2 at B = 32, RISE <= 1.10); with ``--rounds R`` the whole
  measurement is repeated R times and the table gives the median and the minimum of the R ratios;
- ``speed-up vs loop`` (at the largest B): per-image time of B single-image calls / per-image time of
  the batched call, i.e. ms/img at B=1 over ms/img at B.

The run first fixes glibc's malloc thresholds (``clock.steady_allocator``): otherwise a method's floor is faster
or slower depending on the blocks the methods measured before it freed, and a ratio moved by 0.2 with the order.

``--model``: the v1 black box ``scenes_cnn`` (random weights, the default), any registered architecture with
random weights (the v2 ones: ``scenes_vgg``, ``scenes_resnet``) or a shipped benchmark-v2 model
(``scenes_v2_vgg``, ``scenes_v2_resnet``: the trained weights, ``load_model(name, weights="embedded")``), at the model's
own input size unless ``--image-size`` is given. The costs do not depend on the weights.

``python -m lightning_modules.benchmarks.explainers`` (or ``python -m replications bench explainers``)
writes ``reports/benchmarks/explainers.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from lightning_modules.benchmarks.clock import steady_allocator
from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.cam import ScoreCAM
from lightning_modules.models import load_model, resolve_layer
from lightning_modules.utils import REPO_ROOT

#: Paper-like settings (SmoothGrad n=50, IG 50 steps, 8x8 occlusion with stride 4, LIME 1000 samples; RISE and
#: the masks at the fong2017 / petsiuk2018 default profiles' N = 1000 and 80 iterations).
METHODS: dict[str, dict] = {
    "gradient": {},
    "input_x_gradient": {},
    "guided_backprop": {},
    "deconvnet": {},
    "smoothgrad": dict(n_samples=50),
    "smoothgrad_sq": dict(n_samples=50),
    "vargrad": dict(n_samples=50),
    "integrated_gradients": dict(steps=50),
    "gradcam": {},
    "guided_gradcam": {},
    "score_cam": {},
    "excitation_backprop": {},
    "contrastive_excitation_backprop": {},
    "occlusion": dict(window=8, stride=4),
    "blurred_circle_occlusion": {},
    "lime": dict(n_samples=1000),
    "rise": dict(n_masks=1000),
    "meaningful_perturbation": dict(iterations=80),
    "sobel": {},
    "random": {},
}


#: Ratio targets other than the run's ``ratio_target``.
RATIO_TARGETS = {"rise": 1.10}


def _split(total: int, chunk: int) -> list[int]:
    return [min(chunk, total - s) for s in range(0, total, chunk)]


def floor_passes(name: str, explainer, model, b: int, h: int, w: int) -> tuple[str, list[tuple[str, int]]]:
    """(description, [(kind, batch size), ...]) of the passes ``explainer`` must make on ``b`` images.
    ``kind``: ``fwd``, ``fwd_bwd`` (input gradient), ``fwd_bwd_layer`` / ``fwd_2bwd_layer`` (one / two
    gradients w.r.t. the output of the method's layer: the backward pass stops there; the tuple's third entry is
    the layer), ``..._pos`` (excitation backprop: each backward also needs the excitatory forward of the rule
    modules above the layer; fourth entry: those ``(module, input)`` pairs)."""
    if name in ("gradient", "input_x_gradient", "guided_backprop", "deconvnet"):
        return "1 fwd+bwd", [("fwd_bwd", b)]
    if name == "gradcam":
        return "1 fwd + bwd to layer", [("fwd_bwd_layer", b, resolve_layer(model, explainer.layer))]
    if name == "guided_gradcam":
        return "1 fwd+bwd + 1 fwd + bwd to layer", [("fwd_bwd", b), ("fwd_bwd_layer", b, resolve_layer(model, explainer.layer))]
    if name in ("excitation_backprop", "contrastive_excitation_backprop"):
        from lightning_modules.explainers.excitation import default_excitation_layer

        layer = resolve_layer(model, explainer.layer if explainer.layer is not None else default_excitation_layer(model))
        dev = next(model.parameters()).device
        # the inputs of the modules above the layer, for the excitatory forwards (their cost depends on shapes only)
        above = _positive_passes_above(model, layer, torch.rand(b, _in_chans(model), h, w, device=dev))
        if name == "excitation_backprop":
            return "1 fwd + bwd to layer + positive fwd above it", [("fwd_bwd_layer_pos", b, layer, above)]
        # the dual pass needs only the classifier's positive forward again (its weights negated, run_floor): the
        # others do not depend on the signal (the method keeps them from the first pass)
        return ("1 fwd + 2 bwd to layer + positive fwd above it (the classifier's twice)",
                [("fwd_2bwd_layer_pos", b, layer, above)])
    if name == "rise":
        from lightning_modules.benchmarks.rise import forward_batch_sizes

        x = torch.rand(1, _in_chans(model), h, w,
                       device=next(model.parameters()).device)
        sizes = forward_batch_sizes(b, explainer.n_masks, explainer.chunk_size(model, x))
        return f"{explainer.n_masks} fwd", [("fwd", s) for s in sizes]
    if name == "meaningful_perturbation":
        cfg = explainer.config
        it = cfg.iterations
        setup = [("fwd", b), ("fwd", b)]  # clean and fully perturbed scores
        extra = 2
        if cfg.init == "circle":
            setup += [("fwd", k) for k in _split(b * cfg.init_radii, 256)]  # mask_learning.circle_init's chunks
            extra += cfg.init_radii
        return f"{it} fwd+bwd + {extra + 1} fwd", setup + [("fwd_bwd", b)] * it + [("fwd", b)]
    if name in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        n = explainer.n_samples
        per = n if explainer.samples_batch_size is None else max(1, min(n, explainer.samples_batch_size // b))
        return f"{n} fwd+bwd", [("fwd_bwd", b * k) for k in _split(n, per)]
    if name == "integrated_gradients":
        steps = explainer.steps
        per = steps if explainer.samples_batch_size is None else max(1, max(b, explainer.samples_batch_size) // b)
        return f"{steps} fwd+bwd", [("fwd_bwd", b * k) for k in _split(steps, per)]
    if name == "occlusion":
        n = explainer.n_windows(h, w)
        per = max(1, explainer.samples_batch_size // b)
        return f"{n}+1 fwd", [("fwd", b)] + [("fwd", b * k) for k in _split(n, per)]
    if name == "blurred_circle_occlusion":
        n = explainer.centres(h, w).shape[0]
        return f"{n}+1 fwd", [("fwd", b)] + [("fwd", k) for k in _split(b * n, explainer.samples_batch_size)]
    if name == "lime":
        n = explainer.n_samples
        return f"{n} fwd", [("fwd", k) for k in _split(b * n, explainer.samples_batch_size)]
    if name == "score_cam":
        x = torch.rand(1, 3, h, w, device=next(model.parameters()).device)
        with torch.no_grad():
            k = ScoreCAM.layer_activations(model, resolve_layer(model, explainer.layer), x)[0].shape[1]
        return f"1+{k} fwd", [("fwd", b)] + [("fwd", s) for s in _split(b * k, explainer.chunk_size)]
    if name in ("sobel", "random"):
        return "none", []
    raise KeyError(f"no floor defined for {name!r}; add it to floor_passes")


def _in_chans(model) -> int:
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            return m.in_channels if isinstance(m, torch.nn.Conv2d) else m.in_features
    raise ValueError(f"cannot tell the input channels of {type(model).__name__}")


def _positive_passes_above(model, layer, x: torch.Tensor) -> list[tuple]:
    """(module, input) of every excitation-backprop rule module that runs after ``layer`` in a forward pass of
    ``x``: the modules whose excitatory forward ``f+`` the rule evaluates."""
    from lightning_modules.explainers.excitation import RULE_MODULES

    seen, calls, handles = [False], [], []

    def after_layer(_m, _i, _o):
        seen[0] = True

    def record(m, inputs, _o):
        if seen[0]:
            calls.append((m, inputs[0].detach()))

    handles.append(layer.register_forward_hook(after_layer))
    handles += [m.register_forward_hook(record) for m in model.modules() if isinstance(m, RULE_MODULES)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hd in handles:
            hd.remove()
    return calls


def run_floor(model, passes: list[tuple], inputs: torch.Tensor) -> None:
    for kind, size, *layer in passes:
        x = inputs[:size]
        if kind == "fwd":
            with torch.no_grad():
                model(x)
            continue
        if kind == "fwd_bwd":
            x = x.detach().requires_grad_(True)
            torch.autograd.grad(model(x)[:, 0].sum(), x)
            continue
        store: list[torch.Tensor] = []
        handle = layer[0].register_forward_hook(lambda _m, _i, out: store.append(out))
        try:
            out = model(x.detach().requires_grad_(True))[:, 0].sum()
        finally:
            handle.remove()
        twice = kind.startswith("fwd_2bwd")
        torch.autograd.grad(out, store[0], retain_graph=twice)
        if twice:
            torch.autograd.grad(out, store[0])
        if kind.endswith("_pos"):
            from lightning_modules.explainers.excitation import classifier_layer, excitatory_forward

            dual = classifier_layer(model) if twice else None  # the dual pass: only the classifier's f+ again
            with torch.no_grad():
                for module, inp in layer[1]:
                    excitatory_forward(module)(inp)
                for module, inp in layer[1]:
                    if module is dual:
                        excitatory_forward(module)(inp)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_times(fns, device: torch.device, clock: str = "wall", min_repeats: int = 2, max_repeats: int = 30,
               budget_s: float = 4.0) -> list[float]:
    """Minimum time of each of ``fns`` over repeats, the calls interleaved (a, b, a, b, ...) so a method and
    its floor see the same machine load; stops after ``budget_s`` of wall time (at least ``min_repeats``
    rounds). ``clock``: ``wall`` (``perf_counter``) or ``process`` (this process's CPU time: with one torch
    thread it is the compute the call needs, unaffected by other processes waiting for the same cores).
    The first round is a warm-up; it counts as a repeat only when a call takes over a second (warm-up
    effects are then negligible and the repeats costly)."""
    if clock not in ("wall", "process"):
        raise ValueError(f"clock must be 'wall' or 'process', got {clock!r}")
    now = time.perf_counter if clock == "wall" else time.process_time
    times: list[list[float]] = [[] for _ in fns]
    warm: list[float] = []
    for fn in fns:
        t0 = now()
        fn()
        _sync(device)
        warm.append(now() - t0)
    if warm[0] > 1.0:
        for ts, t in zip(times, warm):
            ts.append(t)
    start = time.perf_counter()
    while len(times[0]) < max_repeats and (len(times[0]) < min_repeats or time.perf_counter() - start < budget_s):
        for fn, ts in zip(fns, times):
            t0 = now()
            fn()
            _sync(device)
            ts.append(now() - t0)
    return [min(ts) for ts in times]


def load_bench_model(model_name: str):
    """``(model, data_config, weights)``: the v1 black box architecture with random weights (``load_model``), or a
    benchmark-v2 model (``scenes_v2_*``) with its shipped trained weights (``load_model(name, weights="embedded")``)."""
    if model_name.startswith("scenes_v2"):
        model, cfg = load_model(model_name, weights="embedded")
        return model, cfg, "shipped trained weights"
    model, cfg = load_model(model_name)
    return model, cfg, "random weights"


def run(out_path: str | Path = "reports/benchmarks/explainers.md", batch_sizes=(1, 32), model_name: str = "scenes_cnn",
        image_size: int | None = None, device: str = "cpu", methods: dict[str, dict] | None = None, seed: int = 0,
        threads: int | None = None, ratio_target: float = 1.2, clock: str = "wall",
        command: str = "python -m replications bench explainers", rounds: int = 1) -> list[dict]:
    """Measure every method at every batch size, ``rounds`` times; write the markdown table to ``out_path``
    (relative paths are relative to the repository root; ``None`` writes nothing). Returns the rows.
    ``image_size=None``: the model's input size."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if threads is not None:
        torch.set_num_threads(threads)
    allocator = steady_allocator()
    methods = dict(METHODS if methods is None else methods)
    dev = torch.device(device)
    torch.manual_seed(seed)
    model, cfg, weights = load_bench_model(model_name)
    model = model.to(dev)
    c = cfg.input_size[0]
    image_size = int(cfg.input_size[-1]) if image_size is None else int(image_size)
    gen = torch.Generator().manual_seed(seed)
    bmax = max(batch_sizes)
    images = torch.rand(bmax, c, image_size, image_size, generator=gen).to(dev)
    num_classes = getattr(model, "num_classes", None)
    if not isinstance(num_classes, int):
        with torch.no_grad():
            num_classes = model(images[:1]).shape[1]
    targets = torch.randint(0, num_classes, (bmax,), generator=gen).to(dev)
    rows: list[dict] = []
    load_before = os.getloadavg()[0]
    for name, kwargs in methods.items():
        try:
            rows.append(_bench_method(name, kwargs, model, images, targets, batch_sizes, image_size, c, gen, dev, clock,
                                      rounds, ratio_target))
        except Exception as e:  # a method that does not run on this model is a row saying why, not a lost table
            print(f"{name:34s} failed: {type(e).__name__}: {e}", flush=True)
            rows.append(dict(method=name, settings=kwargs, floor="–", per_batch={}, speedup=math.nan,
                             target=RATIO_TARGETS.get(name, ratio_target), error=f"{type(e).__name__}: {e}"))
        if out_path is not None:  # after every method, so an interrupted run still leaves the rows it measured
            load = (load_before, os.getloadavg()[0])
            write_markdown(rows, out_path, batch_sizes, model_name, image_size, dev, ratio_target, load, clock, command,
                           rounds=rounds, weights=weights, allocator=allocator)
    return rows


def _bench_method(name, kwargs, model, images, targets, batch_sizes, image_size, c, gen, dev, clock, rounds,
                  ratio_target) -> dict:
    bmax = max(batch_sizes)
    explainer = create_explainer(name, **kwargs)
    per_b = {}
    for b in batch_sizes:
        x, t = images[:b], targets[:b]
        desc, passes = floor_passes(name, explainer, model, b, image_size, image_size)
        largest = max([p[1] for p in passes], default=1)
        floor_inputs = torch.rand(largest, c, image_size, image_size, generator=gen).to(dev)
        fns = [lambda: explainer(model, x, t)]
        if passes:
            fns.append(lambda: run_floor(model, passes, floor_inputs))
        t_methods, t_floors = [], []
        for _ in range(rounds):
            t_method, t_floor = (best_times(fns, dev, clock) + [math.nan])[:2]
            t_methods.append(t_method)
            t_floors.append(t_floor)
        ratios = [tm / tf for tm, tf in zip(t_methods, t_floors)] if passes else [math.nan]
        per_b[b] = dict(ms=1e3 * min(t_methods) / b, floor_ms=1e3 * min(t_floors) / b,
                        ratio=statistics.median(ratios), ratio_min=min(ratios), ratios=ratios)
        print(f"{name:34s} B={b:3d} {per_b[b]['ms']:10.2f} ms/img  floor {per_b[b]['floor_ms']:10.2f}  "
              f"ratio median {per_b[b]['ratio']:.2f} min {per_b[b]['ratio_min']:.2f}  ({desc})", flush=True)
    speedup = per_b[min(batch_sizes)]["ms"] / per_b[bmax]["ms"]
    return dict(method=name, settings=kwargs, floor=desc, per_batch=per_b, speedup=speedup,
                target=RATIO_TARGETS.get(name, ratio_target))


#: Reading notes printed under the table (no numbers: those come from the run).
NOTES = """Notes:

- Speed-up vs loop is ~1x for the sampling methods (SmoothGrad, VarGrad, IG, Score-CAM, occlusion, LIME, RISE):
  a single-image call already runs its samples in batches of `samples_batch_size` (128), so there is nothing
  left to amortise; batching over images pays off for the one-pass methods.
- Excitation backprop's floor counts, besides the forward pass and the backward pass down to its layer, the
  forward pass with positive weights (`f+`, the normaliser of Zhang et al. Eq. 3) of every linear, conv and
  pooling module above the layer: its rule needs it in every backward pass (the vector-Jacobian product through
  `f+` replaces the ordinary one, so no backward is added). Contrastive EBP runs two backward passes and the
  positive pass once (it does not depend on the signal), only the classifier's twice (negated for the dual).
  The method runs the layers below its saliency layer without recording a graph (nothing there is
  differentiated), which this floor (the same forward as Grad-CAM's) still records: its ratio can fall below 1
  and then understates the rule's own per-call work above the layer (hooks, elementwise rule terms).
- Occlusion is our own batched code with Captum's windows, batches and map (equal to Captum's `Occlusion`,
  tests/test_perturbation_occlusion.py).
- Meaningful perturbation's floor is its iterations' forward+backward passes plus the forwards of its setup (clean
  and fully perturbed scores, the circle initialisation's radii, the final score); the mask pipeline itself
  (composite, upsampling, L1/TV, Adam) is the overhead.
- Guided backprop, deconvnet and SmoothGrad/-SQ/VarGrad are our own hooks and noise loop, bit-identical to Captum's
  `GuidedBackprop`, `Deconvolution` and `NoiseTunnel(Saliency)` (tests/test_explainers_captum.py).
- Ratios below 1 are measurement noise (best-of-repeats on a shared machine), of about +-10 %.
"""


def _fmt(v: float, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def write_markdown(rows, out_path, batch_sizes, model_name, image_size, device, ratio_target, load=(math.nan, math.nan),
                   clock: str = "wall", command: str = "python -m replications bench explainers", rounds: int = 1,
                   weights: str = "random weights", allocator: str = "the default allocator") -> Path:
    path = Path(out_path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    bmax = max(batch_sizes)
    ratio_word = "ratio" if rounds == 1 else "ratio median [min]"
    head = ["method", "settings", "floor (passes)"]
    for b in batch_sizes:
        head += [f"ms/img B={b}", f"floor ms/img B={b}", f"{ratio_word} B={b}"]
    head += [f"speed-up vs loop (B={bmax})", f"ratio <= target at B={bmax}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    misses = []
    for r in rows:
        cells = [f"`{r['method']}`", ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults", r["floor"]]
        if r.get("error"):
            misses.append(f"`{r['method']}` (did not run: {r['error']})")
            lines.append("| " + " | ".join(cells + ["–"] * (3 * len(batch_sizes) + 1) + ["**did not run**"]) + " |")
            continue
        for b in batch_sizes:
            p = r["per_batch"][b]
            ratio_cell = _fmt(p["ratio"]) if rounds == 1 or math.isnan(p["ratio"]) else f"{_fmt(p['ratio'])} [{_fmt(p['ratio_min'])}]"
            cells += [_fmt(p["ms"], 3), _fmt(p["floor_ms"], 3), ratio_cell]
        ratio = r["per_batch"][bmax]["ratio"]
        target = r.get("target", ratio_target)
        ok = "n/a (no model pass)" if math.isnan(ratio) else (f"yes (<= {target})" if ratio <= target else f"**no** (> {target})")
        if ok.startswith("**no**"):
            misses.append(f"`{r['method']}` ({ratio:.2f} > {target})")
        cells += [_fmt(r["speedup"], 1) + "x", ok]
        lines.append("| " + " | ".join(cells) + " |")
    threads = torch.get_num_threads()
    thread_word = "thread" if threads == 1 else "threads"
    repeat_text = ("Times are the best of 2-30 repeats (as many as fit in 4 s; plus a warm-up for calls under 1 s), method and floor calls "
                   "interleaved" + ("" if rounds == 1 else f"; the whole measurement ran {rounds} times, the ratio "
                   "column gives the median and, in brackets, the minimum of the rounds' ratios, the ms columns the "
                   "fastest round"))
    text = [
        "# Explainer benchmark: time per image and ratio to the floor",
        "",
        f"Generated by `{command}` (`lightning_modules/benchmarks/explainers.py`) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Model: `{model_name}` ({weights}), {image_size}x{image_size}, device `{device}`"
        f"{f' ({threads} torch {thread_word}, {platform.processor() or platform.machine()})' if device.type == 'cpu' else ''}, "
        f"torch {torch.__version__}. Clock: {'wall time' if clock == 'wall' else 'CPU time of the process (one torch thread: the compute each call needs, robust to other processes on the cores)'}. "
        f"{repeat_text}; the floor is measured in "
        "the same run, on the same model, batch sizes and device: only the forward/backward passes the method must "
        "make (see the module docstring), on a pre-built input. "
        f"Memory: {allocator}. "
        f"Machine: {os.cpu_count()} CPU cores, 1-minute load average {load[0]:.1f} at the start and {load[1]:.1f} at "
        "the end of the run (other processes share the cores: absolute times are noisy, ratios less so).",
        "",
        "\n".join(lines),
        "",
        f"Methods missing their ratio target ({ratio_target} at B={bmax}, RISE {RATIO_TARGETS['rise']}): "
        + (", ".join(misses) if misses else "none") + ".",
        "",
        NOTES,
    ]
    path.write_text("\n".join(text))
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/benchmarks/explainers.md")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--model", default="scenes_cnn",
                    help="scenes_cnn (v1 black box, random weights) or a benchmark-v2 model: scenes_v2_vgg, scenes_v2_resnet")
    ap.add_argument("--image-size", type=int, default=None, help="default: the model's input size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", nargs="+", default=None, help="subset of the methods (default: all)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole measurement; report median and min ratio")
    ap.add_argument("--clock", choices=["wall", "process"], default="wall",
                    help="wall time, or the process's CPU time (use with --threads 1 on a shared machine)")
    # Called without arguments by ``python -m replications bench explainers``: defaults, not that CLI's argv.
    args = ap.parse_args([] if argv is None else argv)
    methods = None if args.methods is None else {m: METHODS.get(m, {}) for m in args.methods}
    command = "python -m replications bench explainers" if not argv else (
        "python -m lightning_modules.benchmarks.explainers " + " ".join(argv))
    run(args.out, tuple(args.batch_sizes), args.model, args.image_size, args.device, methods, threads=args.threads,
        clock=args.clock, command=command, rounds=args.rounds)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
