"""A real fit killed with SIGKILL at several moments leaves the report folder holding the old report, whole, and the
next run cleans up and writes the new one (the report is built beside the folder and swapped in as one unit).

The fit is fong2017's smoke profile, run as ``python -m replications.fong2017 fit`` in a child process whose
``atomic_write`` and batch loop print a marker and wait at the chosen moment, so that the kill lands there: during
the imports, in the middle of the test pass, while a figure is being written, and between README.md and
results.json."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from lightning_modules.reporting import load_results

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/fong2017/smoke.yaml"

_RUNNER = textwrap.dedent("""
    import contextlib, os, runpy, sys, time
    from pathlib import Path
    stop = os.environ.get("KILL_AT", "")

    def mark(what):
        if what == stop:
            print("AT " + what, flush=True)
            time.sleep(600)

    mark("imports")
    from lightning_modules import experiment as E
    from lightning_modules.reporting import report as R

    inner = R.atomic_write

    @contextlib.contextmanager
    def atomic_write(path, *args, **kwargs):
        with inner(path, *args, **kwargs) as fh:
            yield fh
            mark("writing " + Path(path).name)  # written into its temporary file, not yet renamed

    R.atomic_write = atomic_write
    step = E.ExperimentReplication.test_step
    calls = []

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        calls.append(batch_idx)
        if len(calls) == 2:  # one batch done, the next one starting
            mark("mid-run")
        return step(self, batch, batch_idx, dataloader_idx)

    E.ExperimentReplication.test_step = test_step
    sys.argv = ["replications.fong2017", "fit", "--config", sys.argv[1]]
    runpy.run_module("replications.fong2017", run_name="__main__")
""")


def _fit(out: Path, kill_at: str = "") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), SALIENCY_REPORT_DIR=str(out), WANDB_MODE="disabled", KILL_AT=kill_at)
    return subprocess.Popen([sys.executable, "-c", _RUNNER, CONFIG], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def _whole(out: Path) -> str:
    """The run that wrote ``out`` (its generated_at), asserting every file is the one its results.json records and
    nothing else is in the folder."""
    results = load_results(out / "results.json")
    files = results["files_sha256"]
    for rel, digest in files.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest, f"{rel} is from another run"
    present = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert present == set(files) | {"results.json"}, present ^ (set(files) | {"results.json"})
    return results["generated_at"] + json.dumps(results["files_sha256"], sort_keys=True)


def test_a_fit_killed_at_any_moment_leaves_the_old_report_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "fong2017"
    first = _fit(out)
    assert first.wait(timeout=600) == 0
    old = _whole(out)
    moments = ["imports", "mid-run", "writing masks.png", "writing README.md"]
    for moment in moments:
        proc = _fit(out, kill_at=moment)
        for line in proc.stdout:
            if line.startswith("AT "):
                break
        assert line.strip() == f"AT {moment}", f"the run ended before reaching {moment!r}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _whole(out) == old, f"killed at {moment!r}: the folder is not the old report"
    # a half-built report of the last kills lies beside the folder; the next run removes it and swaps in its own
    assert any(p.name.startswith(".fong2017.tmp-") for p in tmp_path.iterdir())
    last = _fit(out)
    assert last.wait(timeout=600) == 0
    assert _whole(out) != old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fong2017"]
