"""What a user sees while a replication runs: one progress display for the replication's own stages (#44).

A *stage* is one long loop of a run (the test pass over the batches, the ROAR retrainings, a mask optimisation)::

    from lightning_modules import progress

    with progress.stage("ROAR retraining", total=len(runs), unit="runs") as p:
        for run in runs:
            p.note(f"{run.method} {run.fraction:.2f}")  # what it is doing now
            ...
            p.advance()

Stages nest. How they are shown:

- stdout a terminal: one rich display (description, bar, done / total, elapsed, estimate of what is left, the
  current note), redrawn in place; a finished stage leaves one line above it (``✓ ROAR retraining: 519/519 runs in
  1h02m``), the display vanishes when the last stage ends;
- stdout not a terminal (CI logs, a pipe, a file): no redrawn bar; one plain line per finished stage, and, for a
  stage that runs longer than ``SALIENCY_PROGRESS_EVERY`` seconds (default 300), one line each time that many
  seconds pass (done / total, elapsed, estimate of what is left), so a long CI job is not silent;
- ``detail=True`` stages (inner loops called many times per run: one mask optimisation, one attack) are shown
  only on a terminal, inside their parent, and never print a line of their own;
- quiet (:func:`set_quiet`, the CLIs' ``--quiet``, or ``SALIENCY_PROGRESS=off``): nothing.

``SALIENCY_PROGRESS=plain|rich|off`` forces a mode. Only global rank zero shows anything (under DDP every other
process is quiet). Nothing here touches a random generator or a tensor: the numbers of a run do not depend on
whether, or how, its progress is shown.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TextIO

_quiet = False
#: the open stages, outermost first
_stack: list["Stage"] = []
#: the rich display while a stage is open on a terminal
_display = None
#: the stream of plain lines (None: sys.stdout at the time of writing, so that pytest's capture sees it)
_stream: TextIO | None = None


def set_quiet(quiet: bool = True) -> None:
    """Silence (or restore) every progress display and line of this process."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet or os.environ.get("SALIENCY_PROGRESS", "").lower() in ("off", "0", "quiet", "none")


def _rank_zero() -> bool:
    # Lightning's rank where a Lightning run set it (not imported here: a plain library call stays light)
    rank_zero = sys.modules.get("lightning.fabric.utilities.rank_zero")
    rank = getattr(getattr(rank_zero, "rank_zero_only", None), "rank", None)
    if rank is not None:
        return rank == 0
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def mode() -> str:
    """``off``, ``rich`` (a terminal) or ``plain`` (anything else), for a stage opened now."""
    if is_quiet() or not _rank_zero():
        return "off"
    forced = os.environ.get("SALIENCY_PROGRESS", "").lower()
    if forced in ("plain", "rich"):
        return forced
    out = _stream or sys.stdout
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "rich" if tty and os.environ.get("TERM") != "dumb" else "plain"


def _every() -> float:
    try:
        return float(os.environ.get("SALIENCY_PROGRESS_EVERY", "300"))
    except ValueError:
        return 300.0


def duration(seconds: float) -> str:
    """``42 s``, ``3m07s``, ``1h02m``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _write(line: str) -> None:
    """One permanent line: above the rich display while it runs, else a plain print."""
    if _display is not None:
        _display.console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    out = _stream or sys.stdout
    try:
        print(line, file=out, flush=True)
    except (BrokenPipeError, ValueError):  # pragma: no cover - a closed pipe or stream
        pass


def say(line: str) -> None:
    """A permanent progress line (nothing when quiet or off rank zero)."""
    if mode() != "off":
        _write(line)


class Stage:
    """One open stage: :meth:`advance` after each unit of work, :meth:`note` to say what it is doing."""

    def __init__(self, description: str, total: int | None = None, unit: str = "", detail: bool = False):
        self.description = description
        self.total = None if total is None or not math.isfinite(total) else int(total)
        self.unit = unit
        self.detail = detail
        self.completed = 0
        self.text = ""
        self.started = time.perf_counter()
        self._last_line = self.started
        self._closed = False
        self._task = None
        self.mode = "off"

    # -- use
    def advance(self, n: int = 1) -> None:
        self.completed += n
        if self.mode == "rich" and self._task is not None and _display is not None:
            _display.update(self._task, completed=self.completed, total=self.total)
        elif self.mode == "plain" and not self.detail:
            now = time.perf_counter()
            if now - self._last_line >= _every():
                self._last_line = now
                _write(self.status_line(running=True))

    def note(self, text: str) -> None:
        """What the stage is doing now (shown beside its bar on a terminal, in its periodic lines otherwise)."""
        self.text = text
        if self.mode == "rich" and self._task is not None and _display is not None:
            _display.update(self._task, note=text)

    def set_total(self, total: int | None) -> None:
        self.total = None if total is None else int(total)
        if self.mode == "rich" and self._task is not None and _display is not None:
            _display.update(self._task, total=self.total)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self) -> float | None:
        """Seconds left at the pace so far (None: no total or nothing done yet)."""
        if not self.total or not self.completed:
            return None
        return self.elapsed / self.completed * max(self.total - self.completed, 0)

    def status_line(self, running: bool = False, error: BaseException | None = None) -> str:
        count = f"{self.completed}/{self.total}" if self.total is not None else (str(self.completed) if self.completed else "")
        count = f"{count} {self.unit}".strip() if count else ""
        if running:
            left = self.remaining()
            parts = [p for p in (count, self.text) if p]
            return (f"… {self.description}: " + ", ".join(parts) + ("; " if parts else "")
                    + f"{duration(self.elapsed)} elapsed" + (f", ~{duration(left)} left" if left is not None else ""))
        if error is not None:
            why = type(error).__name__
            return f"✗ {self.description}: stopped" + (f" at {count}" if count else "") + f" after {duration(self.elapsed)} ({why})"
        return f"✓ {self.description}: " + (f"{count} in " if count else "") + duration(self.elapsed)

    # -- life
    def _open(self) -> "Stage":
        global _display
        self.mode = mode()
        self.started = self._last_line = time.perf_counter()
        if self.mode == "rich":
            if _display is None:
                _display = _start_display()
            if _display is None:  # another live display holds the terminal (e.g. Lightning's RichProgressBar)
                self.mode = "plain"
            else:
                depth = sum(1 for s in _stack if s.mode == "rich")
                self._task = _display.add_task("  " * depth + self.description, total=self.total,
                                               completed=self.completed, note=self.text)
        _stack.append(self)
        return self

    def close(self, error: BaseException | None = None) -> None:
        global _display
        if self._closed:
            return
        self._closed = True
        if self in _stack:
            _stack.remove(self)
        if self.mode == "rich" and _display is not None and self._task is not None:
            _display.remove_task(self._task)
            if any(s.mode == "rich" for s in _stack):
                _display.refresh()  # the line below goes above the display as it is now, not its last frame
            else:  # the last stage on the terminal: the display goes, then its line is a plain one
                display, _display = _display, None
                try:
                    display.stop()
                except Exception:  # pragma: no cover - a closed terminal
                    pass
        if self.mode in ("rich", "plain") and not self.detail:
            _write(self.status_line(error=error))

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(error=exc)


def _start_display():
    try:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.table import Column

        display = Progress(
            SpinnerColumn(), TextColumn("{task.description}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=20), MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TimeElapsedColumn(table_column=Column(no_wrap=True)), TextColumn("~"),
            TimeRemainingColumn(table_column=Column(no_wrap=True)),
            # what the stage does now: the remaining width, cut short rather than squeezing the others
            TextColumn("{task.fields[note]}", style="dim",
                       table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            console=Console(file=_stream or sys.stdout), transient=True, refresh_per_second=4,
            redirect_stdout=True, redirect_stderr=True)
        display.start()
        return display
    except Exception:  # rich.errors.LiveError: only one live display at a time
        return None


def stage(description: str, total: int | None = None, unit: str = "", detail: bool = False) -> Stage:
    """Open a stage (use it as a context manager, or call :meth:`Stage.close`)."""
    return Stage(description, total, unit, detail)._open()


def current() -> Stage | None:
    """The innermost open stage."""
    return _stack[-1] if _stack else None


def note(text: str) -> None:
    """:meth:`Stage.note` on the innermost open stage (nothing if none is open)."""
    if _stack:
        _stack[-1].note(text)


def close_all(error: BaseException | None = None) -> None:
    """Close every open stage (innermost first), e.g. when a run ends with an error."""
    while _stack:
        _stack[-1].close(error=error)
