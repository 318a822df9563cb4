"""Claims -> ``reports/<paper>/`` (README.md, results.json, figures/*.png) and the same to W&B.

A :class:`Claim` is the contract between a paper and our replication: what the paper says (its value(s),
with the table/figure they come from), what we measured, and the :class:`Relation` that must hold between
the measured numbers (an ordering of methods, a bound, a tolerance). ``python -m replications check``
recomputes every relation from the numbers stored in the committed ``results.json``, so an edited number
that breaks a relation is caught.

A claim that does not hold is a failure unless it carries ``known_deviation``: a written reason why our
setting cannot show the paper's effect. The measured numbers are still reported; the claim is never loosened.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from lightning_modules.utils import REPO_ROOT, atomic_write

SCHEMA_VERSION = 1
STATUSES = ("holds", "fails", "deviation")
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


# --------------------------------------------------------------------------------------------- relations
@dataclass(frozen=True)
class Relation:
    """A relation over named measured numbers, serialisable and re-checkable from ``results.json``.

    Operands are names of entries in ``Claim.measured`` or plain numbers. Build with the constructors:
    ``Relation.lt("mask", "gradient")``, ``Relation.order(["mask", "gradcam", "gradient"], "<")``,
    ``Relation.at_least("accuracy", 0.95)``, ``Relation.between("auc", 0.1, 0.2)``,
    ``Relation.close("auc", 0.1076, atol=0.02)``, ``Relation.all_of(...)``.
    """

    kind: str
    args: tuple

    # -- constructors
    @classmethod
    def compare(cls, left, op: str, right, margin: float = 0.0) -> "Relation":
        if op not in _OPS:
            raise ValueError(f"unknown comparison {op!r}; use one of {list(_OPS)}")
        return cls("compare", (left, op, right, float(margin)))

    @classmethod
    def lt(cls, left, right, margin: float = 0.0) -> "Relation":
        """left + margin < right."""
        return cls.compare(left, "<", right, margin)

    @classmethod
    def le(cls, left, right, margin: float = 0.0) -> "Relation":
        return cls.compare(left, "<=", right, margin)

    @classmethod
    def gt(cls, left, right, margin: float = 0.0) -> "Relation":
        """left > right + margin."""
        return cls.compare(left, ">", right, margin)

    @classmethod
    def ge(cls, left, right, margin: float = 0.0) -> "Relation":
        return cls.compare(left, ">=", right, margin)

    @classmethod
    def at_least(cls, name, bound: float) -> "Relation":
        return cls.compare(name, ">=", float(bound))

    @classmethod
    def at_most(cls, name, bound: float) -> "Relation":
        return cls.compare(name, "<=", float(bound))

    @classmethod
    def between(cls, name, low: float, high: float) -> "Relation":
        return cls("between", (name, float(low), float(high)))

    @classmethod
    def close(cls, name, target, atol: float = 0.0, rtol: float = 0.0) -> "Relation":
        """|name - target| <= atol + rtol * |target| (target: a number or another name)."""
        return cls("close", (name, target, float(atol), float(rtol)))

    @classmethod
    def order(cls, names: Sequence[str], op: str = "<") -> "Relation":
        """names[0] op names[1] op ... (e.g. localisation errors ascending)."""
        if op not in _OPS:
            raise ValueError(f"unknown comparison {op!r}; use one of {list(_OPS)}")
        if len(names) < 2:
            raise ValueError("an ordering needs at least two names")
        return cls("order", (tuple(names), op))

    @classmethod
    def all_of(cls, *relations: "Relation") -> "Relation":
        return cls("all_of", tuple(relations))

    @classmethod
    def any_of(cls, *relations: "Relation") -> "Relation":
        return cls("any_of", tuple(relations))

    # -- evaluation
    def names(self) -> set[str]:
        """Every measured name the relation reads."""
        if self.kind in ("all_of", "any_of"):
            return set().union(*(r.names() for r in self.args))
        if self.kind == "order":
            return set(self.args[0])
        if self.kind == "compare":
            return {a for a in (self.args[0], self.args[2]) if isinstance(a, str)}
        if self.kind == "between":
            return {self.args[0]}
        if self.kind == "close":
            return {a for a in (self.args[0], self.args[1]) if isinstance(a, str)}
        raise ValueError(f"unknown relation kind {self.kind!r}")

    @staticmethod
    def _value(operand, measured: dict) -> float:
        if isinstance(operand, str):
            if operand not in measured:
                raise KeyError(f"relation refers to {operand!r}, which is not among the measured values {sorted(measured)}")
            v = measured[operand]
        else:
            v = operand
        v = float(v)
        if math.isnan(v):
            raise ValueError(f"measured value {operand!r} is NaN")
        return v

    def evaluate(self, measured: dict) -> bool:
        v = lambda o: self._value(o, measured)  # noqa: E731
        if self.kind == "compare":
            left, op, right, margin = self.args
            if op in ("<", "<="):
                return _OPS[op](v(left) + margin, v(right))
            return _OPS[op](v(left), v(right) + margin)
        if self.kind == "between":
            name, low, high = self.args
            return low <= v(name) <= high
        if self.kind == "close":
            name, target, atol, rtol = self.args
            t = v(target)
            return abs(v(name) - t) <= atol + rtol * abs(t)
        if self.kind == "order":
            names, op = self.args
            vals = [v(n) for n in names]
            return all(_OPS[op](a, b) for a, b in zip(vals, vals[1:]))
        if self.kind == "all_of":
            return all(r.evaluate(measured) for r in self.args)
        if self.kind == "any_of":
            return any(r.evaluate(measured) for r in self.args)
        raise ValueError(f"unknown relation kind {self.kind!r}")

    def describe(self) -> str:
        fmt = lambda o: o if isinstance(o, str) else f"{o:g}"  # noqa: E731
        if self.kind == "compare":
            left, op, right, margin = self.args
            if margin:
                return f"{fmt(left)} + {margin:g} {op} {fmt(right)}" if op in ("<", "<=") else f"{fmt(left)} {op} {fmt(right)} + {margin:g}"
            return f"{fmt(left)} {op} {fmt(right)}"
        if self.kind == "between":
            name, low, high = self.args
            return f"{low:g} <= {name} <= {high:g}"
        if self.kind == "close":
            name, target, atol, rtol = self.args
            tol = " + ".join(t for t in (f"{atol:g}" if atol else "", f"{rtol:g}*|{fmt(target)}|" if rtol else "") if t) or "0"
            return f"|{name} - {fmt(target)}| <= {tol}"
        if self.kind == "order":
            names, op = self.args
            return f" {op} ".join(names)
        if self.kind == "all_of":
            return " and ".join(f"({r.describe()})" for r in self.args)
        if self.kind == "any_of":
            return " or ".join(f"({r.describe()})" for r in self.args)
        return self.kind

    def to_dict(self) -> dict:
        if self.kind in ("all_of", "any_of"):
            return {"kind": self.kind, "args": [r.to_dict() for r in self.args]}
        args = [list(a) if isinstance(a, tuple) else a for a in self.args]
        return {"kind": self.kind, "args": args}

    @classmethod
    def from_dict(cls, d: dict) -> "Relation":
        kind = d["kind"]
        if kind in ("all_of", "any_of"):
            return cls(kind, tuple(cls.from_dict(r) for r in d["args"]))
        if kind == "order":
            names, op = d["args"]
            return cls(kind, (tuple(names), op))
        if kind not in ("compare", "between", "close"):
            raise ValueError(f"unknown relation kind {kind!r}")
        return cls(kind, tuple(d["args"]))


# --------------------------------------------------------------------------------------------- claims
@dataclass
class PaperValue:
    """A number (or short text) published by a paper, with where it comes from."""

    value: Any
    source: str
    setting: str = ""
    confirmed: bool = True

    def to_dict(self) -> dict:
        return {"value": self.value, "source": self.source, "setting": self.setting, "confirmed": self.confirmed}

    @classmethod
    def from_dict(cls, d: dict) -> "PaperValue":
        return cls(d["value"], d["source"], d.get("setting", ""), d.get("confirmed", True))

    def render(self) -> str:
        v = self.value
        s = f"{v:.4g}" if isinstance(v, float) else str(v)
        return s + ("" if self.confirmed else " (unconfirmed)")


@dataclass
class Claim:
    """One checkable statement of a paper, and our measurement of it.

    ``measured``: the numbers the relation reads (name -> float). ``paper``: the published values
    (name -> PaperValue), shown side by side. ``known_deviation``: a written reason, required for a claim
    that is allowed to fail (our setting cannot show the effect); without it a failing claim fails CI.
    """

    id: str
    experiment: str
    text: str
    relation: Relation
    measured: dict[str, float]
    paper: dict[str, PaperValue] = field(default_factory=dict)
    known_deviation: str | None = None
    profile: str | None = None

    def __post_init__(self):
        if self.known_deviation is not None and not str(self.known_deviation).strip():
            raise ValueError(f"claim {self.id}: a known deviation needs a written reason")
        self.measured = {k: float(v) for k, v in self.measured.items()}
        missing = self.relation.names() - set(self.measured)
        if missing:
            raise ValueError(f"claim {self.id}: relation reads {sorted(missing)} which are not in measured {sorted(self.measured)}")

    @property
    def holds(self) -> bool:
        try:
            return bool(self.relation.evaluate(self.measured))
        except (KeyError, ValueError):
            return False

    @property
    def status(self) -> str:
        if self.holds:
            return "holds"
        return "deviation" if self.known_deviation else "fails"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "experiment": self.experiment,
            "text": self.text,
            "relation": self.relation.to_dict(),
            "relation_text": self.relation.describe(),
            "measured": self.measured,
            "paper": {k: v.to_dict() for k, v in self.paper.items()},
            "known_deviation": self.known_deviation,
            "profile": self.profile,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Claim":
        return cls(
            id=d["id"],
            experiment=d["experiment"],
            text=d["text"],
            relation=Relation.from_dict(d["relation"]),
            measured=d["measured"],
            paper={k: PaperValue.from_dict(v) for k, v in d.get("paper", {}).items()},
            known_deviation=d.get("known_deviation"),
            profile=d.get("profile"),
        )


# --------------------------------------------------------------------------------------------- environment
def file_sha256(path: str | os.PathLike) -> str | None:
    path = Path(path)
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{commit}{'+dirty' if dirty and commit else ''}" if commit else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info(device: str | None = None) -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "torchvision", "lightning", "timm", "torchmetrics", "captum", "adversarial-robustness-toolbox",
                "numpy", "scipy", "scikit-image"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device or ("cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"),
        "packages": versions,
        "git_commit": git_commit(),
        # Wall times on a shared machine mean little alone: the load average (1, 5, 15 min) when the report was
        # written and the CPU time of this process (and its finished children) say how contended the run was.
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "cpu_time_s": _cpu_time_s(),
    }


def _cpu_time_s() -> float | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 1)


def paper_files(paper: str, profile: str) -> dict[str, Path]:
    """The files a report's freshness is tied to: the profile's config and the paper's reference numbers."""
    return {
        "config": REPO_ROOT / "configs" / paper / f"{profile}.yaml",
        "reference": REPO_ROOT / "replications" / paper / "paper.py",
    }


# --------------------------------------------------------------------------------------------- report
def _fmt_cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "_(empty)_\n"
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt_cell(r.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


_STATUS_MARK = {"holds": "✅ holds", "fails": "❌ fails", "deviation": "⚠️ known deviation"}


class Report:
    """Collects a paper run's tables, figures and claims and writes them atomically.

    Typical use at the end of a paper's ``test`` pass (rank zero only)::

        report = Report("fong2017", "Meaningful Perturbation", profile="default", config_path=..., seed=0)
        report.add_section("Setting", "...")
        report.add_table("weak_localisation", rows, caption="Table 1 ...")
        report.add_figure("masks", fig, caption="...")
        report.add_claims(claims)
        report.write()              # reports/fong2017/{README.md,results.json,figures/*.png}
        report.log_wandb(logger)    # the same tables, figures and numbers to W&B
    """

    def __init__(
        self,
        paper: str,
        title: str,
        profile: str,
        config_path: str | os.PathLike | None = None,
        seed: int | None = None,
        config: dict | None = None,
        citation: str = "",
        started_at: float | None = None,
        device: str | None = None,
    ):
        self.paper = paper
        self.title = title
        self.profile = profile
        self.config_path = Path(config_path) if config_path else paper_files(paper, profile)["config"]
        self.seed = seed
        self.config = config or {}
        self.citation = citation
        self.started_at = started_at if started_at is not None else time.time()
        self.device = device
        self.sections: list[tuple[str, str]] = []
        self.tables: dict[str, dict] = {}
        self.figures: dict[str, dict] = {}
        self.claims: list[Claim] = []
        self.metrics: dict[str, Any] = {}
        self._order: list[tuple[str, str]] = []

    # -- content
    def add_section(self, title: str, markdown: str) -> None:
        self.sections.append((title, markdown))
        self._order.append(("section", title))

    def add_table(self, name: str, rows: list[dict], caption: str = "", columns: Sequence[str] | None = None) -> None:
        rows = [{k: _jsonable(v) for k, v in r.items()} for r in rows]
        self.tables[name] = {"caption": caption, "columns": list(columns or dict.fromkeys(k for r in rows for k in r)), "rows": rows}
        self._order.append(("table", name))

    def add_figure(self, name: str, figure, caption: str = "") -> None:
        """A matplotlib figure; rendered to PNG bytes now, written atomically by ``write``."""
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
        self.figures[name] = {"caption": caption, "png": buf.getvalue(), "path": f"figures/{name}.png"}
        self._order.append(("figure", name))

    def add_claim(self, claim: Claim) -> None:
        if any(c.id == claim.id for c in self.claims):
            raise ValueError(f"duplicate claim id {claim.id!r}")
        claim.profile = self.profile
        self.claims.append(claim)

    def add_claims(self, claims: Iterable[Claim]) -> None:
        for c in claims:
            self.add_claim(c)

    # -- output
    def claim_counts(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for c in self.claims:
            counts[c.status] += 1
        return counts

    def results(self) -> dict:
        files = paper_files(self.paper, self.profile)
        return {
            "schema_version": SCHEMA_VERSION,
            "paper": self.paper,
            "title": self.title,
            "citation": self.citation,
            "profile": self.profile,
            "seed": self.seed,
            "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - self.started_at, 1),
            "environment": environment_info(self.device),
            "config_file": str(self.config_path.relative_to(REPO_ROOT)) if self.config_path.is_relative_to(REPO_ROOT) else str(self.config_path),
            "config_sha256": file_sha256(self.config_path),
            "reference_sha256": file_sha256(files["reference"]),
            "config": _jsonable(self.config),
            "metrics": _jsonable(self.metrics),
            "tables": self.tables,
            "figures": {k: {"caption": v["caption"], "path": v["path"]} for k, v in self.figures.items()},
            "claims": [c.to_dict() for c in self.claims],
            "claim_counts": self.claim_counts(),
        }

    def readme(self, results: dict) -> str:
        env = results["environment"]
        pk = env["packages"]
        out = [f"# {self.title}\n"]
        if self.citation:
            out.append(f"_{self.citation}_\n")
        counts = results["claim_counts"]
        out.append(
            f"**Profile `{self.profile}`** · claims: {counts['holds']} hold, {counts['fails']} fail, "
            f"{counts['deviation']} known deviations · wall time {results['wall_time_s']:.0f} s · "
            f"generated {results['generated_at']} by `python -m replications.{self.paper} fit --config {results['config_file']}`\n"
        )
        out.append("## Claims\n")
        rows = []
        for c in self.claims:
            paper_txt = "; ".join(f"{k}: {v.render()} ({v.source})" for k, v in c.paper.items()) or "–"
            ours = ", ".join(f"{k}={_fmt_cell(v)}" for k, v in c.measured.items())
            status = _STATUS_MARK[c.status] + (f": {c.known_deviation}" if c.status == "deviation" else "")
            rows.append({"claim": f"`{c.id}` {c.text}", "paper": paper_txt, "ours": ours, "relation": f"`{c.relation.describe()}`", "status": status})
        out.append(markdown_table(rows, ["claim", "paper", "ours", "relation", "status"]))
        for kind, name in self._order:
            if kind == "section":
                md = dict(self.sections)[name]
                out.append(f"## {name}\n\n{md.strip()}\n")
            elif kind == "table":
                t = self.tables[name]
                out.append(f"## Table: {name}\n")
                if t["caption"]:
                    out.append(f"{t['caption']}\n")
                out.append(markdown_table(t["rows"], t["columns"]))
            elif kind == "figure":
                f = self.figures[name]
                out.append(f"## Figure: {name}\n\n![{name}]({f['path']})\n\n{f['caption']}\n")
        out.append("## Environment\n")
        out.append(
            f"seed {self.seed}; device {env['device']}; {env['cpu_count']} CPUs ({env['torch_threads']} torch threads); "
            + (f"CPU time {env['cpu_time_s']} s; load average {env['load_average']} (1/5/15 min) at the end; "
               if env.get("cpu_time_s") is not None else "")
            + f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in pk.items() if v) + f"; git {env['git_commit']}; "
            f"config sha256 `{(results['config_sha256'] or '')[:12]}`, reference numbers sha256 `{(results['reference_sha256'] or '')[:12]}`.\n"
        )
        return "\n".join(out)

    def write(self, out_dir: str | os.PathLike | None = None) -> Path:
        """Write README.md, results.json and figures atomically; returns the report folder.

        Figures are written first, results.json last: a crash leaves the previous results.json intact,
        and every file is replaced by rename, never truncated in place.
        """
        out = Path(out_dir) if out_dir else REPO_ROOT / "reports" / self.paper
        out.mkdir(parents=True, exist_ok=True)
        results = self.results()
        for f in self.figures.values():
            with atomic_write(out / f["path"], "wb") as fh:
                fh.write(f["png"])
        with atomic_write(out / "README.md") as fh:
            fh.write(self.readme(results))
        with atomic_write(out / "results.json") as fh:
            json.dump(results, fh, indent=2, sort_keys=False)
            fh.write("\n")
        if out_dir is None:
            write_index()
        return out

    def log_wandb(self, logger=None) -> None:
        """Tables (wandb.Table), figures (wandb.Image) and summary numbers to the run's W&B logger."""
        run = getattr(logger, "experiment", None) if logger is not None else None
        if run is None:
            return
        try:
            import wandb
        except ImportError:
            return
        if not hasattr(run, "log"):
            return
        payload: dict[str, Any] = {}
        for name, t in self.tables.items():
            cols = t["columns"]
            payload[f"{self.paper}/table/{name}"] = wandb.Table(columns=cols, data=[[_fmt_cell(r.get(c)) for c in cols] for r in t["rows"]])
        claim_cols = ["id", "experiment", "relation", "status"]
        payload[f"{self.paper}/claims"] = wandb.Table(
            columns=claim_cols, data=[[c.id, c.experiment, c.relation.describe(), c.status] for c in self.claims]
        )
        from PIL import Image

        for name, f in self.figures.items():
            payload[f"{self.paper}/figure/{name}"] = wandb.Image(Image.open(io.BytesIO(f["png"])), caption=f["caption"])
        run.log(payload)
        for c in self.claims:
            for k, v in c.measured.items():
                run.summary[f"{self.paper}/{c.id}/{k}"] = v
        for k, v in self.claim_counts().items():
            run.summary[f"{self.paper}/claims_{k}"] = v


def _jsonable(v):
    """Tensors/numpy -> python numbers and lists, recursively."""
    try:
        import numpy as np
        import torch
    except ImportError:  # pragma: no cover
        np = torch = None
    if torch is not None and isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        return v.item() if v.numel() == 1 and v.dim() == 0 else v.tolist()
    if np is not None and isinstance(v, np.ndarray):
        return v.tolist()
    if np is not None and isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


# --------------------------------------------------------------------------------------------- reading / checking
def load_results(path: str | os.PathLike) -> dict:
    with open(path) as fh:
        return json.load(fh)


def check_results(results: dict, repo_root: Path = REPO_ROOT, check_freshness: bool = True) -> list[str]:
    """Every problem with one committed results.json; an empty list means it passes.

    Re-validates the schema, recomputes each claim's relation from the stored numbers (so a tampered
    number is caught), rejects failing claims without a known-deviation reason, and checks the report is
    not older than its configuration and reference numbers (sha256 of both files).
    """
    problems: list[str] = []
    where = f"{results.get('paper', '?')}/{results.get('profile', '?')}"
    for key in ("schema_version", "paper", "profile", "claims", "config_sha256", "reference_sha256", "claim_counts"):
        if key not in results:
            problems.append(f"{where}: results.json lacks {key!r} (regenerate the report with the paper's fit)")
    if problems:
        return problems
    if results["schema_version"] != SCHEMA_VERSION:
        problems.append(f"{where}: schema version {results['schema_version']} != {SCHEMA_VERSION}; regenerate the report")
    if not results["claims"]:
        problems.append(f"{where}: the report has no claims")
    counts = {s: 0 for s in STATUSES}
    ids = set()
    for raw in results["claims"]:
        cid = raw.get("id", "?")
        if cid in ids:
            problems.append(f"{where}: duplicate claim id {cid}")
        ids.add(cid)
        try:
            claim = Claim.from_dict(raw)
        except (KeyError, ValueError, TypeError) as e:
            problems.append(f"{where}: claim {cid} is malformed: {e}")
            continue
        status = claim.status
        counts[status] += 1
        if raw.get("status") != status:
            problems.append(
                f"{where}: claim {cid} is stored as {raw.get('status')!r} but its relation "
                f"`{claim.relation.describe()}` on the stored numbers {claim.measured} gives {status!r}"
            )
        if status == "fails":
            problems.append(f"{where}: claim {cid} fails: {claim.text} — `{claim.relation.describe()}` with {claim.measured}")
    if counts != results["claim_counts"]:
        problems.append(f"{where}: claim_counts {results['claim_counts']} do not match the claims {counts}")
    if check_freshness:
        files = {
            "config": repo_root / results.get("config_file", f"configs/{results['paper']}/{results['profile']}.yaml"),
            "reference": repo_root / "replications" / results["paper"] / "paper.py",
        }
        for kind, path in files.items():
            stored = results[f"{kind}_sha256"]
            current = file_sha256(path)
            if current is None:
                problems.append(f"{where}: {path.relative_to(repo_root)} is missing")
            elif stored != current:
                problems.append(
                    f"{where}: the report is older than {path.relative_to(repo_root)} (sha256 changed); "
                    f"re-run `python -m replications.{results['paper']} fit --config {path.relative_to(repo_root)}`"
                    if kind == "config" else
                    f"{where}: the report is older than {path.relative_to(repo_root)} (the paper's reference numbers changed); re-run the paper's fit"
                )
    for name, fig in results.get("figures", {}).items():
        p = repo_root / "reports" / results["paper"] / fig["path"]
        if not p.is_file():
            problems.append(f"{where}: figure {name} ({p.relative_to(repo_root)}) is missing")
    return problems


def find_reports(repo_root: Path = REPO_ROOT) -> list[Path]:
    return sorted((repo_root / "reports").glob("*/results.json"))


def write_index(repo_root: Path = REPO_ROOT) -> Path:
    """reports/README.md: one row per paper with its claim counts (generated)."""
    rows = []
    for p in find_reports(repo_root):
        r = load_results(p)
        c = r.get("claim_counts", {})
        rows.append({
            "paper": f"[{r.get('paper')}]({r.get('paper')}/README.md)",
            "title": r.get("title", ""),
            "profile": r.get("profile"),
            "claims": len(r.get("claims", [])),
            "hold": c.get("holds", 0),
            "fail": c.get("fails", 0),
            "known deviations": c.get("deviation", 0),
            "wall time (s)": r.get("wall_time_s"),
            "generated": r.get("generated_at"),
        })
    text = "# Reports\n\nGenerated by the papers' `fit`; verified by `python -m replications check`.\n\n" + markdown_table(rows)
    out = repo_root / "reports" / "README.md"
    with atomic_write(out) as fh:
        fh.write(text)
    return out
