"""The closing summary of a run (#44): where the report was written, what it found, what it cost, how to re-render it.

Printed at the end of ``python -m replications.<paper> fit|test``, ``python -m replications reproduce`` and (one line
per report) ``check``; every number is read from the written report's ``results.json``, so the summary says what
the report says::

    fong2017 (smoke): report written to outputs/reports/fong2017/smoke/README.md
      claims    5 hold, 4 fail, 8 inconclusive, 0 deviations, 10 not valid (and 3 sanity checks)
      findings  F1 inconclusive, F2 reproduced, F3 not reproduced, ...
      time      121 s wall, 80 s CPU
      re-render python -m replications.fong2017 report outputs/reports/fong2017/smoke
"""

from __future__ import annotations

import os
from pathlib import Path

#: claim statuses as the summary names them, in its order (results.json's ``claim_counts`` keys)
CLAIM_WORDS = (("holds", "hold"), ("fails", "fail"), ("inconclusive", "inconclusive"), ("deviation", "deviations"),
               ("not_valid", "not valid"))


def shown_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory where it lies below it, else absolute."""
    p = Path(path).absolute()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def claim_counts_text(results: dict) -> str:
    """``5 hold, 4 fail, 8 inconclusive, 0 deviations, 10 not valid (and 3 sanity checks)``."""
    c = results.get("claim_counts") or {}
    text = ", ".join(f"{c.get(key, 0)} {word}" for key, word in CLAIM_WORDS)
    if c.get("sanity"):
        text += f" (and {c['sanity']} sanity check{'s' if c['sanity'] != 1 else ''})"
    return text


def findings_text(results: dict) -> str | None:
    """``F1 inconclusive, F2 reproduced, ...`` (None: the report has no headline findings)."""
    findings = results.get("findings")
    if not findings:
        return None
    return ", ".join(f"{f['id']} {f['status']}" for f in findings)


def time_text(results: dict) -> str:
    from lightning_modules.progress import duration

    wall = results.get("wall_time_s")
    cpu = (results.get("environment") or {}).get("cpu_time_s")
    parts = [f"{duration(wall)} wall" if wall is not None else None, f"{duration(cpu)} CPU" if cpu is not None else None]
    return ", ".join(p for p in parts if p) or "not recorded"


def summary_lines(results: dict, report_dir: str | os.PathLike | None, *, rerender: bool = True,
                  extra: list[tuple[str, str]] | None = None) -> list[str]:
    """The summary of the report ``results`` (its results.json, loaded) written to ``report_dir`` (None: a report
    that no longer exists, e.g. ``reproduce``'s temporary folder)."""
    paper, profile = results.get("paper", "?"), results.get("profile", "?")
    where = (f"report written to {shown_path(Path(report_dir) / 'README.md')}" if report_dir is not None
             else "report not kept (a temporary folder; --keep DIR keeps it)")
    lines = [f"{paper} ({profile}): {where}", f"  claims    {claim_counts_text(results)}"]
    found = findings_text(results)
    if found:
        lines.append(f"  findings  {found}")
    lines.append(f"  time      {time_text(results)}")
    for key, value in extra or []:
        lines.append(f"  {key:<9} {value}")
    if rerender and report_dir is not None:
        lines.append(f"  re-render python -m replications.{paper} report {shown_path(report_dir)}")
    return lines


def summary_line(results: dict, report_dir: str | os.PathLike) -> str:
    """One line for a list of reports (``check``)."""
    found = results.get("finding_counts") or {}
    findings = (", ".join(f"{v} {k}" for k, v in found.items() if v and k != "tested_valid")
                if results.get("findings") else "")
    return (f"{results.get('paper', '?')} ({results.get('profile', '?')}, {shown_path(report_dir)}): "
            f"{claim_counts_text(results)}" + (f"; findings: {findings}" if findings else "")
            + f"; {time_text(results)}")


def print_summary(results: dict, report_dir: str | os.PathLike | None, **kwargs) -> None:
    print("\n".join(summary_lines(results, report_dir, **kwargs)), flush=True)
