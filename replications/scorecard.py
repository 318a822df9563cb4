"""``python -m replications scorecard --explainer my_pkg.my_module:MyExplainer [options]``: a method under every
protocol of the suite that is valid on the embedded benchmark, beside the built-in methods (lightning_modules/scorecard).

The method is an ``Explainer`` subclass (``--init-args`` its constructor's keyword arguments, as JSON), a plain
function ``fn(model, images, targets) -> (B, 1, H, W)`` (``--init-args`` become keyword arguments) or a built-in
method's name. The built-in methods' results are cached under ``outputs/scorecard/cache/``, so a new method costs
only its own runs. ``--model``/``--data`` take ``module:callable`` for a user's own model (an ``nn.Module`` on
``[0, 1]`` images) and data (a dict in the batch schema: ``image``, ``label`` and, where the user has them,
``mask`` (object), ``evidence_mask``, ``boxes``, ``evidence_boxes``, ``box_labels``, ``difficult``); a protocol whose
ground truth is missing is listed as not run. ``--model NAME`` (any name ``load_model`` knows that is not a shipped
model: ``torchvision/resnet50``, ``timm/...``) loads its published weights from the weights folders
(``--weights-dir``); ``--data imagenet --data-root DIR`` reads the ILSVRC validation layout with its XML boxes
(``lightning_modules/scorecard/own.py``): object ground truth only, so the evidence protocols are listed as not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lightning_modules.utils import REPO_ROOT, torch_threads


def _load_callable(spec: str, what: str):
    from lightning_modules.scorecard.contract import import_object

    obj, _ = import_object(spec)
    if not callable(obj):
        raise TypeError(f"--{what} {spec!r} is not callable")
    return obj()


def _positive_int(option: str):
    """An argparse type: a whole number >= 1, the error naming ``option``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} expects a whole number of images >= 1, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{option} expects a whole number of images >= 1, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from lightning_modules.scorecard import PROFILES, PROTOCOLS, RETRAINING

    p = argparse.ArgumentParser(prog="python -m replications scorecard", description=__doc__.split("\n\n")[0])
    p.add_argument("--explainer", required=True, help="module:Name, path/to/file.py:Name or a built-in method's name")
    p.add_argument("--init-args", default="{}", help="JSON object: the constructor's (or function's) keyword arguments")
    p.add_argument("--name", default=None, help="the method's name in the table (default: the class or function name)")
    p.add_argument("--model", default="scenes_v2_vgg", help="a shipped v2 model (scenes_v2_vgg, scenes_v2_resnet), "
                                                           "any other name load_model knows (torchvision/resnet50, "
                                                           "timm/...: its published weights, --weights-dir) or "
                                                           "module:callable returning your nn.Module")
    p.add_argument("--weights-dir", default=None, help="folder holding --model NAME's published weights file "
                                                       "(else $SALIENCY_WEIGHTS, data/weights, the torch hub cache)")
    p.add_argument("--data", default=None, help="your data (with your own --model): imagenet (with --data-root) or "
                                                "module:callable returning a batch dict")
    p.add_argument("--data-root", default=None, help="the folder of --data imagenet (ILSVRC2012 val layout with XML "
                                                     "boxes)")
    p.add_argument("--profile", default="default", choices=sorted(PROFILES), help="smoke: seconds, for tests")
    p.add_argument("--images", type=_positive_int("--images"), default=None,
                   help="test images (default: the profile's)")
    p.add_argument("--pointing-images", type=_positive_int("--pointing-images"), default=None,
                   help="multi-label test scenes of the pointing game (default: the profile's; default profile 600, "
                        "the pointing benchmark's own, of the split's 1,000; fewer read saturated, docs/scorecard.md)")
    p.add_argument("--skip", default="", help="comma-separated protocols to leave out: "
                                              + ", ".join([q.name for q in PROTOCOLS] + list(RETRAINING)))
    p.add_argument("--with", dest="with_", default="", help="protocols that need retrained models, run only when "
                                                            "asked: " + ", ".join(RETRAINING) + " (data_randomisation: "
                                                            "the shipped scenes_v2_vgg only)")
    p.add_argument("--out", default=None, help="output folder (default outputs/scorecard/<name>)")
    p.add_argument("--cache-dir", default=str(REPO_ROOT / "outputs" / "scorecard" / "cache"),
                   help="where the built-in methods' results are cached ('none': no cache)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the stated times are at 2)")
    return p


def main(argv: list[str] | None = None) -> int:
    from dataclasses import replace

    from lightning_modules.scorecard import PROFILES, load_explainer, run_scorecard, write_scorecard
    from lightning_modules.scorecard.contract import ExplainerContractError, file_sha256

    args = build_parser().parse_args(argv)
    try:
        init_args = json.loads(args.init_args)
    except json.JSONDecodeError as e:
        print(f"--init-args must be a JSON object such as '{{\"k\": 3}}' ({e})", file=sys.stderr)
        return 2
    if not isinstance(init_args, dict):
        print("--init-args must be a JSON object such as '{\"k\": 3}'", file=sys.stderr)
        return 2
    try:
        name, explainer, source = load_explainer(args.explainer, init_args, args.name)
    except (ImportError, AttributeError, TypeError, ValueError, FileNotFoundError) as e:
        print(f"scorecard: {e}", file=sys.stderr)
        return 2
    from lightning_modules.scorecard import own as own_data

    setting = PROFILES[args.profile]
    if args.images:
        setting = replace(setting, n_images=args.images)
    model = data = data_info = None
    named_model = ":" not in args.model and not own_data.is_shipped(args.model)
    named_data = bool(args.data) and ":" not in args.data
    try:  # bad input fails here, before any work
        if args.data and ":" not in args.model and not named_model:
            raise own_data.OwnInputError(
                f"--data scores your own model on your data; --model {args.model} is a shipped model scored on its own "
                "benchmark. Pass your model as --model NAME (e.g. torchvision/resnet50) or --model module:callable")
        if named_data:
            own_data.check_data_args(args.data, args.data_root)
        elif args.data_root:
            raise own_data.OwnInputError("--data-root goes with a data name (--data imagenet --data-root DIR)")
        if (":" in args.model or named_model) and not args.data:
            shipped = "" if ":" in args.model else " is not a shipped model (scenes_v2_vgg, scenes_v2_resnet); as your own model it"
            raise own_data.OwnInputError(
                f"--model {args.model}{shipped} needs your data: --data imagenet --data-root DIR or --data "
                "module:callable (the images it is scored on)")
        if ":" in args.model:
            model = _load_callable(args.model, "model")
        elif named_model:
            model, _ = own_data.load_named_model(args.model, args.weights_dir)
        setting = replace(setting, model=args.model)
        if named_data:
            size = own_data.model_image_size(model)
            data, data_info = own_data.load_named_data(args.data, args.data_root, setting.n_images, size,
                                                       own_data.model_outputs(model, size))
        elif args.data:
            data = _load_callable(args.data, "data")
    except (ValueError, FileNotFoundError) as e:  # own.OwnInputError is a ValueError
        print(f"scorecard: {e}", file=sys.stderr)
        return 2
    if args.pointing_images:
        setting = replace(setting, pointing_images=args.pointing_images)
    info = {"spec": args.explainer, "init_args": init_args}
    if source:
        src = Path(source).resolve()
        info["source"] = str(src.relative_to(REPO_ROOT)) if src.is_relative_to(REPO_ROOT) else str(src)
        info["source_sha256"] = file_sha256(src)
    out = Path(args.out) if args.out else REPO_ROOT / "outputs" / "scorecard" / name
    cache = None if args.cache_dir == "none" else Path(args.cache_dir)
    split = lambda s: {x.strip() for x in s.split(",") if x.strip()}  # noqa: E731
    try:
        with torch_threads(args.threads):
            from lightning_modules.scorecard.datarand import DATARAND_PROFILES
            from lightning_modules.scorecard.roar import ROAR_PROFILES

            results = run_scorecard(explainer, name, setting, skip=split(args.skip), with_=split(args.with_),
                                    cache_dir=cache, model=model, data=data, method_info=info,
                                    roar_setting=ROAR_PROFILES[args.profile],
                                    datarand_setting=DATARAND_PROFILES[args.profile])
    except ExplainerContractError as e:
        print(f"scorecard: {e}", file=sys.stderr)
        return 2
    except (ValueError, NotImplementedError) as e:
        print(f"scorecard: {e}", file=sys.stderr)
        return 2
    if data_info is not None:
        results["own_data"] = data_info
    results = write_scorecard(results, out)
    print((out / "README.md").read_text())
    t = results["timing"]
    print(f"wrote {out}/README.md, results.json, scorecard.png; {name}: {t['method']['wall_s']:.0f} s wall, "
          f"{t['method']['cpu_s']:.0f} s CPU; the command {t['total']['wall_s']:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
