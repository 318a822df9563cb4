"""``python -m replications [list|check|reproduce|seed-spread|bench ...|train-embedded]``.

- ``list`` (default): the papers, their experiments and, per committed report, how many claims hold /
  fail / are known deviations.
- ``check``: verifies every committed ``reports/<paper>/`` against the code: the claims rebuilt from the stored
  results by the paper's ``build_claims`` and its registered deviations must equal the stored ones, no claim may
  fail, README.md and figures must carry the recorded SHA-256, and the report must be as new as the paper's
  sources; exits 1 with a readable list otherwise. CI runs it.
- ``reproduce <paper> [--profile P]``: re-runs the profile in a temporary folder and diffs every number and
  status against the committed report (``replications/reproduce.py``).
- ``seed-spread <paper> [RESULTS]``: the spread over training seeds of the numbers the run trains (fong2017's
  adversarial detectors) and how often a seed resample keeps their claims' statuses (``replications/seed_spread.py``):
  what ``reproduce``'s bound for those numbers rests on.
- ``train-embedded NAME...``: retrains shipped embedded models and ships their weights (``weights/``).
- ``bench explainers|metrics [options]``: the benchmarks that print ratios to their measured floors
  (on a shared machine: ``bench explainers --threads 1 --clock process --rounds 3``; ``--model scenes_cnn`` (v1,
  default), a v2 architecture with random weights (``scenes_vgg``, ``scenes_resnet``) or a shipped v2 model
  (``scenes_v2_vgg``, ``scenes_v2_resnet``)).
- ``bench validity``: whether each protocol can tell methods apart on the embedded benchmarks (oracle map best,
  random worst, methods CI-separated, no saturation): ``reports/benchmarks/validity.md``.
- ``bench pointing``: the pointing game as EBP / TorchRay ran it, on the multi-label scenes and their multi-label
  model, with its validity: the multi-label section of ``reports/benchmarks/validity.md``.
- ``train-embedded NAME``: retrain a shipped embedded model and ship it (e.g. ``scenes_v2_vgg``).
- ``bench paper-scale``: the estimated cost of every paper's published setting (forward passes counted from
  ``configs/<paper>/paper.yaml``, measured FLOPs and CPU time per forward, an assumed GPU throughput).
"""

from __future__ import annotations

import argparse
import os
import sys

from lightning_modules.reporting import REPO_ROOT, check_results, load_results
from replications import list_papers, paper_info


def cmd_list() -> int:
    """One row per paper, readable at 80 columns: name, claims and profile never wrap; the title and the
    experiments (one per line) share the remaining width."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from lightning_modules.reporting.findings import FINDING_STATUSES

    table = Table(title="saliency-replications", show_lines=True, expand=False)
    table.add_column("paper", no_wrap=True, style="bold")
    table.add_column("title and experiments", ratio=1, overflow="fold")
    table.add_column("claims\nhold/fail/\ndev/n.v.\nfindings", no_wrap=True, justify="right")
    table.add_column("profile", no_wrap=True)
    for name in list_papers():
        info = paper_info(name)
        res_path = REPO_ROOT / "reports" / name / "results.json"
        if res_path.is_file():
            r = load_results(res_path)
            c = r.get("claim_counts", {})
            claims = f"{c.get('holds', 0)}/{c.get('fails', 0)}/{c.get('deviation', 0)}/{c.get('not_valid', 0)}"
            f = r.get("finding_counts")
            findings = "/".join(str(f.get(k, 0)) for k in FINDING_STATUSES) if f else "–"
            profile = str(r.get("profile", "?"))
        else:
            claims, findings, profile = "–", "–", "no report"
        details = Text(info["title"], style="italic")
        for exp in info["experiments"]:
            details.append(f"\n- {exp}")
        table.add_row(name, details, f"{claims}\n{findings}", profile)
    Console().print(table)
    print("dev: known deviations; n.v.: not valid here (the protocol the claim rests on\n"
          "fails its validity check in the run). Headline findings (../shared/\n"
          "HEADLINE_CLAIMS.md): reproduced/partly/not reproduced/inconclusive/\n"
          "not valid here/not tested here")
    return 0


def cmd_check(papers: list[str] | None = None) -> int:
    """Verify every committed report against the code (see ``lightning_modules.reporting.verify``)."""
    from replications.contract import contract, findings_for, rebuild

    with_scorecard = not papers  # `check` with no papers also verifies reports/scorecard/ (issue #41)
    papers = papers or list_papers()
    problems: list[str] = []
    warnings: list[str] = []
    if not papers:
        problems.append("no paper packages found under replications/")
    checked = 0
    summaries: list[str] = []
    unknown = sorted(set(papers) - set(list_papers()))
    if unknown:
        problems.append(f"unknown paper(s) {unknown}; known: {list_papers()}")
    for name in sorted(set(papers) - set(unknown)):
        res_path = REPO_ROOT / "reports" / name / "results.json"
        if not res_path.is_file():
            problems.append(f"{name}: no committed report (reports/{name}/results.json); run `python -m replications.{name} fit`")
            continue
        try:
            results = load_results(res_path)
        except (ValueError, UnicodeDecodeError) as e:
            problems.append(f"{name}: reports/{name}/results.json is not valid JSON ({e}); re-run `python -m replications.{name} fit`")
            continue
        has_code = contract(name).build_claims is not None
        if not has_code:
            warnings.append(f"{name}: claims NOT rebuilt from the code (replications/{name}/claims.py has no build_claims)")
        problems += check_results(results, rebuild=rebuild if has_code else None,
                                  rebuild_findings=(lambda r, claims: findings_for(r["paper"], claims, r["profile"]))
                                  if has_code else None, render=contract(name).render)
        if isinstance(results, dict) and isinstance(results.get("claims"), list):
            checked += len(results["claims"])
            if isinstance(results.get("claim_counts"), dict):
                from replications.summary import summary_line

                summaries.append(summary_line(results, res_path.parent))
    if with_scorecard:
        from lightning_modules.scorecard import verify_scorecard

        problems += verify_scorecard()
    for w in warnings:
        print(f"warning: {w}")
    # the closing summary: what each checked report says (read from its results.json)
    for line in summaries:
        print(line)
    if summaries:
        print("re-render one: python -m replications.<paper> report reports/<paper>")
    if problems:
        print(f"check FAILED ({len(problems)} problems):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"check passed: {len(papers)} papers, {checked} claims verified")
    return 0


#: where each benchmark writes its report without ``--out``
BENCH_OUT = {"explainers": "reports/benchmarks/explainers.md", "metrics": "reports/benchmarks/metrics.md",
             "paper-scale": str(REPO_ROOT / "reports" / "benchmarks" / "paper_scale.md"),
             "validity": str(REPO_ROOT / "reports" / "benchmarks"),
             "pointing": str(REPO_ROOT / "reports" / "benchmarks")}


def bench_report_path(what: str, extra: list[str]) -> str:
    """The report a benchmark writes (its ``--out``, else its default; validity's is ``validity.md`` there)."""
    out = BENCH_OUT[what]
    for i, a in enumerate(extra):
        if a == "--out" and i + 1 < len(extra):
            out = extra[i + 1]
        elif a.startswith("--out="):
            out = a.split("=", 1)[1]
    return str(os.path.join(out, "validity.md")) if what in ("validity", "pointing") else out


def cmd_bench(what: str, extra: list[str] | None = None) -> int:
    import resource
    import time

    if what not in BENCH_OUT:
        print(f"unknown benchmark {what!r}; use 'explainers', 'metrics', 'paper-scale' or 'validity'")
        return 2
    extra = list(extra or [])
    if any(a in ("-h", "--help") for a in extra):
        return _bench_main(what, extra)
    started = time.perf_counter()
    cpu = lambda: sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)  # noqa: E731
                      for f in ("ru_utime", "ru_stime"))
    cpu0 = cpu()
    code = _bench_main(what, extra)
    from lightning_modules.progress import duration
    from replications.summary import shown_path

    path = bench_report_path(what, extra)
    print(f"bench {what}: report written to {shown_path(path)}" if os.path.exists(path)
          else f"bench {what}: no report written ({shown_path(path)} does not exist)")
    print(f"  time      {duration(time.perf_counter() - started)} wall, {duration(cpu() - cpu0)} CPU")
    print(f"  re-run    python -m replications bench {what}" + (" " + " ".join(extra) if extra else ""))
    return code


def _bench_main(what: str, extra: list[str]) -> int:
    if what == "explainers":
        from lightning_modules.benchmarks.explainers import main
    elif what == "metrics":
        from lightning_modules.benchmarks.metrics import main
    elif what == "paper-scale":
        from lightning_modules.benchmarks.paper_scale import main
    elif what == "validity":
        from lightning_modules.benchmarks.validity import main
    elif what == "pointing":
        from lightning_modules.benchmarks.pointing import main
    else:  # pragma: no cover - checked by cmd_bench
        return 2
    main(list(extra))
    return 0


def cmd_train_embedded(names: list[str], accelerator: str = "cpu") -> int:
    """Retrain shipped models from scratch and ship them (new SHA-256 in weights/MANIFEST.json)."""
    import time

    from lightning_modules.models import embedded_entry, list_models, retrain_and_ship

    known = list_models(shipped=True)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        print(f"unknown embedded model(s) {unknown}; known: {known}" if unknown else
              f"name the models to retrain; known: {known}")
        return 2
    on_device = [n for n in known if embedded_entry(n).on_device]
    for name in names:
        started, cpu = time.perf_counter(), time.process_time()
        if accelerator != "cpu" and name not in on_device:
            print(f"{name} trains on the CPU only; --accelerator applies to {on_device}")
            return 2
        path = retrain_and_ship(name, accelerator=accelerator)
        print(f"{name}: shipped {path} ({time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replications", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("list", help="papers, experiments and claim status")
    p_check = sub.add_parser("check", help="verify the committed reports against their claims")
    p_check.add_argument("papers", nargs="*", help="papers to check (default: all)")
    p_bench = sub.add_parser("bench", help="run a benchmark")
    p_bench.add_argument("what", choices=["explainers", "metrics", "paper-scale", "validity", "pointing"])
    p_bench.add_argument("extra", nargs=argparse.REMAINDER, help="options of the benchmark, e.g. --threads 1 --clock process")
    p_score = sub.add_parser("scorecard", help="score your own saliency method under every valid protocol", add_help=False)
    p_score.add_argument("extra", nargs=argparse.REMAINDER, help="--explainer module:Name [--init-args JSON] [--model M] "
                                                                 "[--skip P,...] [--out DIR] (--help for all)")
    p_rep = sub.add_parser("reproduce", help="re-run a paper's profile and diff every number against the committed report")
    p_rep.add_argument("extra", nargs=argparse.REMAINDER, help="<paper> [--profile smoke] [--rtol R] [--atol A] [--keep DIR]")
    p_spread = sub.add_parser("seed-spread", help="the spread over training seeds of the numbers a run trains, and "
                                                  "its claims' status stability")
    p_spread.add_argument("extra", nargs=argparse.REMAINDER, help="<paper> [RESULTS] [--resamples N]")
    p_train = sub.add_parser("train-embedded", help="retrain shipped embedded models and ship their weights")
    p_train.add_argument("names", nargs="*", help="e.g. blackbox_default mnist_cnn_default")
    p_train.add_argument("--accelerator", default="cpu", help="v2 models only: Lightning accelerator (cpu, gpu, auto)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["scorecard"]:  # its options start with "--", which argparse's REMAINDER would not take
        from replications.scorecard import main as scorecard_main

        return scorecard_main(argv[1:])
    args = parser.parse_args(argv)
    if args.cmd in (None, "list"):
        return cmd_list()
    if args.cmd == "check":
        return cmd_check(args.papers)
    if args.cmd == "bench":
        return cmd_bench(args.what, args.extra)
    if args.cmd == "reproduce":
        from replications.reproduce import main as reproduce_main

        return reproduce_main(args.extra)
    if args.cmd == "seed-spread":
        from replications.seed_spread import main as seed_spread_main

        return seed_spread_main(args.extra)
    if args.cmd == "train-embedded":
        return cmd_train_embedded(args.names, args.accelerator)
    return 2


def entry(argv: list[str] | None = None) -> int:
    """``main`` for the command line: output piped into a reader that stops early (``python -m replications | head``)
    ends quietly with status 1 instead of a BrokenPipeError traceback (as rich's console does when the pipe closes
    during one of its writes, and as Python's own recipe does)."""
    try:
        code = main(argv)
        sys.stdout.flush()  # inside the try: the last buffered write may be the one that meets the closed pipe
        return code
    except BrokenPipeError:
        # Python's recipe (docs: "Note on SIGPIPE"): point stdout at devnull so the flush at exit does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(entry())
