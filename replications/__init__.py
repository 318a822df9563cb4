"""One subpackage per replicated paper; ``python -m replications`` lists them and checks their reports."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

_NOT_PAPERS = {"cli"}


def list_papers() -> list[str]:
    """Names of the paper subpackages (each has ``__main__.py`` and ``paper.py``)."""
    here = Path(__file__).parent
    return sorted(
        m.name for m in pkgutil.iter_modules([str(here)]) if m.ispkg and m.name not in _NOT_PAPERS
    )


def paper_info(name: str) -> dict:
    """``PAPER`` dict of a paper package: title, citation, experiments (falls back to the name)."""
    mod = importlib.import_module(f"replications.{name}")
    info = dict(getattr(mod, "PAPER", {}))
    info.setdefault("title", name)
    info.setdefault("experiments", [])
    return info
