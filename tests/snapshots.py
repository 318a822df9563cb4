"""Committed smoke snapshots: CI re-runs every paper's smoke profile and compares its numbers with
``tests/snapshots/<paper>_smoke.json``, so a code change that moves a number fails until the snapshot (and the
paper's default report) are regenerated in the same commit.

Regenerate with ``UPDATE_SNAPSHOTS=1 python -m pytest tests/test_<paper>.py`` (then re-run the paper's default
profile and commit both). Statuses, ids and texts must match exactly; numbers within the paper's tolerance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightning_modules.reporting import diff_reports
from replications.reproduce import tolerance

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
#: Numbers within the paper's measured machine-to-machine tolerance (``replications.reproduce.TOLERANCES``, the
#: same bound ``reproduce`` uses): the smoke runs explain the shipped smoke models with the same seeds.


def snapshot_path(paper: str, profile: str = "smoke") -> Path:
    return SNAPSHOTS / f"{paper}_{profile}.json"


def assert_matches_snapshot(paper: str, results: dict, profile: str = "smoke") -> None:
    path = snapshot_path(paper, profile)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        keep = {k: v for k, v in results.items() if k not in ("environment", "generated_at", "wall_time_s", "files_sha256")}
        path.write_text(json.dumps(keep, indent=1, sort_keys=True) + "\n")
        return
    assert path.is_file(), f"no snapshot {path.name}: create it with UPDATE_SNAPSHOTS=1 python -m pytest tests/test_{paper}.py"
    expected = json.loads(path.read_text())
    tol = tolerance(paper)
    diffs = diff_reports(expected, results, rtol=tol.rtol, atol=tol.atol)
    assert not diffs, (f"{paper} {profile} numbers moved from the committed snapshot ({len(diffs)} differences; if the "
                       f"change is intended, regenerate with UPDATE_SNAPSHOTS=1 and re-run the default report):\n  "
                       + "\n  ".join(diffs[:40]))
