"""``python -m replications reproduce <paper>``: re-run a profile in a temporary folder and diff every number and
status against the committed report (default profile: ``reports/<paper>/results.json``; other profiles: the
committed smoke snapshot ``tests/snapshots/<paper>_<profile>.json``).

Statuses, claim ids and texts must match exactly; numbers within ``|new - committed| <= ATOL + RTOL |committed|``.
Timings and machine facts are not compared (``lightning_modules.reporting.verify.VOLATILE``). The shipped models
(``weights/``) make the runs explain the same weights everywhere; what remains between machines is float rounding
in CPU kernels, which the tolerances bound (measured: README, "Same numbers on every machine").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning_modules.reporting import diff_reports, load_results
from lightning_modules.utils import REPO_ROOT

#: default tolerances of ``reproduce`` (see the module docstring)
RTOL, ATOL = 1e-4, 1e-6


def committed_results(paper: str, profile: str, repo_root: Path = REPO_ROOT) -> Path:
    if profile == "default":
        return repo_root / "reports" / paper / "results.json"
    return repo_root / "tests" / "snapshots" / f"{paper}_{profile}.json"


def run_profile(paper: str, profile: str, out_dir: Path, repo_root: Path = REPO_ROOT, extra: list[str] | None = None) -> Path:
    """Run ``python -m replications.<paper> fit`` on ``configs/<paper>/<profile>.yaml`` writing into ``out_dir``."""
    config = repo_root / "configs" / paper / f"{profile}.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"no profile {profile!r} for {paper}: {config} does not exist")
    env = dict(os.environ, SALIENCY_REPORT_DIR=str(out_dir), WANDB_MODE="disabled")
    env["PYTHONPATH"] = str(repo_root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", f"replications.{paper}", "fit", "--config", str(config), *(extra or [])]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return out_dir / "results.json"


def reproduce(paper: str, profile: str = "default", rtol: float = RTOL, atol: float = ATOL,
              repo_root: Path = REPO_ROOT, keep: Path | None = None) -> tuple[list[str], dict]:
    """``(differences, summary)`` of a fresh run of ``paper``/``profile`` against the committed numbers."""
    expected_path = committed_results(paper, profile, repo_root)
    if not expected_path.is_file():
        raise FileNotFoundError(f"nothing committed to reproduce: {expected_path} does not exist")
    expected = load_results(expected_path)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"reproduce-{paper}-") as tmp:
        out = Path(keep) if keep else Path(tmp) / "report"
        actual = load_results(run_profile(paper, profile, out, repo_root))
    diffs = diff_reports(expected, actual, rtol=rtol, atol=atol)
    statuses = {c["id"]: c["status"] for c in actual.get("claims", [])}
    summary = {"paper": paper, "profile": profile, "against": str(expected_path), "rtol": rtol, "atol": atol,
               "claims": len(statuses), "wall_s": round(time.perf_counter() - started, 1)}
    return diffs, summary


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m replications reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("paper")
    p.add_argument("--profile", default="default")
    p.add_argument("--rtol", type=float, default=RTOL)
    p.add_argument("--atol", type=float, default=ATOL)
    p.add_argument("--keep", type=Path, default=None, help="write the new report here instead of a temporary folder")
    args = p.parse_args(argv)
    from replications import list_papers

    if args.paper not in list_papers():
        print(f"unknown paper {args.paper!r}; known: {list_papers()}")
        return 2
    try:
        diffs, summary = reproduce(args.paper, args.profile, args.rtol, args.atol, keep=args.keep)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"reproduce {args.paper}: {e}")
        return 2
    head = (f"reproduce {summary['paper']} ({summary['profile']}): {summary['claims']} claims, against "
            f"{Path(summary['against']).relative_to(REPO_ROOT) if Path(summary['against']).is_relative_to(REPO_ROOT) else summary['against']}, "
            f"rtol {summary['rtol']:g}, atol {summary['atol']:g}, {summary['wall_s']:.0f} s")
    if diffs:
        print(f"{head}: FAILED, {len(diffs)} numbers or statuses differ:")
        for d in diffs[:100]:
            print(f"  - {d}")
        return 1
    print(f"{head}: every number and status reproduced")
    print(json.dumps(summary))
    return 0
