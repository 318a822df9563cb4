"""A paper run's report: ``reports/<paper>/`` = README.md + results.json + figures/*.png, written as one unit.

``results.json`` holds everything the README is rendered from (sections, tables, claims), the run's plain
``results`` (the numbers the claims are computed from, so ``check`` can rebuild the claims from the code), the
SHA-256 of README.md and of every figure, and the SHA-256 of the paper's sources (its package and configs) at
the time of the run. The folder is built beside the old one and swapped in with one atomic exchange, so a run
killed at any moment leaves the old report or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from lightning_modules.reporting.claims import DEVIATION, FAILS, HOLDS, INCONCLUSIVE, NOT_VALID, SANITY, STATUSES, Claim
from lightning_modules.reporting.findings import (
    FINDING_INCONCLUSIVE, FINDING_NOT_VALID, NOT_REPRODUCED, NOT_TESTED, PARTLY, REPRODUCED, count_findings, finding_rows,
)
from lightning_modules.utils import REPO_ROOT, atomic_write

SCHEMA_VERSION = 2


# --------------------------------------------------------------------------------------------- hashes
def file_sha256(path: str | os.PathLike) -> str | None:
    path = Path(path)
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: files of a paper package that ``python -m replications.<paper> report`` re-derives from the stored results (the
#: claims, their findings and the deviation registry; ``report.py``, the tables and figures as a pure function of the
#: stored results, settings and figure tensors): changing them re-renders a report, it does not make it stale
REDERIVABLE = ("deviations.py", "claims.py", "report.py")
#: the figure tensors of a report (``Report.set_inputs``), beside results.json: what ``report.py`` draws from
EXAMPLES_FILE = "examples.pt"
#: the header of results.json that describes the run itself: kept as it was when a report is re-rendered
RUN_RECORD = ("generated_at", "wall_time_s", "environment", "config_sha256", "source_sha256", "metrics")


def paper_source_files(paper: str, repo_root: Path | None = None, config_file: str | os.PathLike | None = None) -> list[Path]:
    """The files a report's freshness is tied to: every file of ``replications/<paper>/`` but ``REDERIVABLE``
    (``claims.py``, ``deviations.py``, ``report.py``: re-derived by ``report`` and ``check`` from the stored results), and the run's config
    (``config_file``, relative to the repository; every file of ``configs/<paper>/`` when not given). Another profile's
    config (``paper.yaml``) does not change the default report, so it does not make it stale."""
    root = repo_root or REPO_ROOT
    package = root / "replications" / paper
    files = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
             and str(p.relative_to(package)) not in REDERIVABLE] if package.is_dir() else []
    if config_file is not None:
        cfg = Path(config_file)
        files.append(cfg if cfg.is_absolute() else root / cfg)
    elif (root / "configs" / paper).is_dir():
        files += [p for p in (root / "configs" / paper).rglob("*") if p.is_file()]
    return sorted(files)


def paper_source_sha256(paper: str, repo_root: Path | None = None, config_file: str | os.PathLike | None = None) -> str:
    """One SHA-256 over the relative paths and contents of :func:`paper_source_files`."""
    root = repo_root or REPO_ROOT
    h = hashlib.sha256()
    for p in paper_source_files(paper, root, config_file):
        name = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
        h.update(name.encode() + b"\0" + (hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"missing"))
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- environment
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


# --------------------------------------------------------------------------------------------- rendering
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


_STATUS_MARK = {HOLDS: "✅ holds", FAILS: "❌ fails", DEVIATION: "⚠️ known deviation", INCONCLUSIVE: "❔ inconclusive",
                SANITY: "🔧 sanity check", NOT_VALID: "🚫 not valid here"}


def count_statuses(claims: Iterable[dict]) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for c in claims:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    return counts


def _claim_row(c: dict) -> dict:
    paper_txt = "; ".join(
        f"{k}: {_fmt_value(v['value'])}{'' if v.get('confirmed', True) else ' (unconfirmed)'} ({v['source']})"
        for k, v in c.get("paper", {}).items()) or "–"
    ours = ", ".join(f"{k}={_fmt_cell(v)}" for k, v in c["measured"].items())
    intervals = [i for i in c.get("intervals", [])]
    if intervals:
        ours += "; " + "; ".join(_render_interval(i) for i in intervals)
    status = _STATUS_MARK[c["status"]]
    dev = c.get("deviation")
    if dev is not None:
        d = dev["diagnostic"]
        status += f": {dev['reason']} — diagnostic: {d['text']} (`{d['relation_text']}`, " + ", ".join(
            f"{k}={_fmt_cell(v)}" for k, v in d["measured"].items()) + f": {d['status']})"
    if c.get("negligible"):
        status += " (negligible: the effect is below the minimum)"
    if c.get("min_effect"):
        status += f"; minimum effect {c['min_effect']['rule']}"
    if c.get("findings"):
        status += " · tests " + ", ".join(f"[{f}]" for f in c["findings"])
    if dev is not None and dev["diagnostic"].get("separation") is None:
        status += " · separation from the held claims not stated"
    elif dev is not None:
        status += " · separates from: " + ", ".join(
            f"{s['claim']} (claim {s['claim_status']}, diagnostic {s['diagnostic']})" for s in dev["diagnostic"]["separation"])
    if c.get("problem"):
        status += f" — {c['problem']}"
    if c["status"] == NOT_VALID:
        failed = "; ".join(f"{p}: " + "; ".join(f"{k} ({d})" for k, d in v["failed"].items())
                           for p, v in (c.get("validity") or {}).items() if not v["valid"])
        status += (f": the protocol fails its validity check in this run ({failed}); the relation alone "
                   f"{c['relation_status']}")
    elif c.get("validity"):
        status += " (protocol valid here: " + ", ".join(c["validity"]) + ")"
    return {"claim": f"`{c['id']}` {c['text']}", "paper": paper_txt, "ours": ours,
            "relation": f"`{c['relation_text']}`", "status": status}


def _fmt_value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _render_interval(i: dict) -> str:
    txt = f"Δ({i['left']} − {i['right']}) = {i['mean']:+.4g} [{i['low']:+.4g}, {i['high']:+.4g}]"
    if i.get("confidence"):
        txt += f" ({100 * i['confidence']:.4g}% interval)"
    if i.get("negligible"):
        txt += " (negligible)"
    if i.get("n_to_decide"):
        txt += f" (n={i['n']}; about {i['n_to_decide']} would decide it)"
    return txt


def render_readme(results: dict) -> str:
    """README.md as a pure function of results.json."""
    env = results["environment"]
    pk = env["packages"]
    paper = results["paper"]
    out = [f"# {results['title']}\n"]
    if results.get("citation"):
        out.append(f"_{results['citation']}_\n")
    counts = results["claim_counts"]
    out.append(
        f"**Profile `{results['profile']}`** · claims: {counts[HOLDS]} hold, {counts[FAILS]} fail (not reproduced), "
        f"{counts[INCONCLUSIVE]} inconclusive, {counts[DEVIATION]} known deviations (each with a diagnostic measured in "
        f"this run), {counts[SANITY]} sanity checks"
        + (f", {counts[NOT_VALID]} not valid here (their protocol fails its validity check in this run)"
           if counts.get(NOT_VALID) else "")
        + f" · wall time {results['wall_time_s']:.0f} s · generated "
        f"{results['generated_at']} by `python -m replications.{paper} fit --config {results['config_file']}`\n"
    )
    out.append(
        "Orderings between methods are decided over the evaluated units (images or seeds) by a 95% interval of the "
        "paired mean difference, the union of a paired percentile bootstrap and Student's t interval (calibrated at "
        "small n; shown as Δ [low, high]): a claim holds when the interval excludes zero in the paper's direction, "
        "fails when it excludes zero the other way, and is inconclusive otherwise; a decided comparison whose effect "
        "is below the claim's stated minimum effect is inconclusive (negligible). "
        "Sanity checks hold by construction and are not counted as reproduced.\n"
    )
    if results.get("findings") is not None:
        fc = results.get("finding_counts") or count_findings(results["findings"])
        out.append("## Headline findings\n")
        out.append(
            f"The findings of `../shared/HEADLINE_CLAIMS.md` for this paper: {fc['tested_valid']} of "
            f"{len(results['findings'])} tested on a valid protocol; {fc[REPRODUCED]} reproduced, {fc[PARTLY]} partly, "
            f"{fc[NOT_REPRODUCED]} not reproduced, {fc[FINDING_INCONCLUSIVE]} inconclusive, {fc[FINDING_NOT_VALID]} "
            f"not valid here, {fc[NOT_TESTED]} not tested here. A finding is reproduced when every claim that tests "
            "it on a valid protocol holds, not reproduced when none holds and one fails (a known deviation counts as "
            "failing), partly when some hold and some fail, inconclusive otherwise "
            "(`lightning_modules.reporting.findings`).\n")
        out.append(markdown_table(finding_rows(results["findings"]), ["finding", "status", "claims"]))
    out.append("## Claims\n")
    out.append(markdown_table([_claim_row(c) for c in results["claims"]], ["claim", "paper", "ours", "relation", "status"]))
    sections = dict((s["title"], s["markdown"]) for s in results.get("sections", []))
    for kind, name in results.get("order", []):
        if kind == "section":
            out.append(f"## {name}\n\n{sections[name].strip()}\n")
        elif kind == "table":
            t = results["tables"][name]
            out.append(f"## Table: {name}\n")
            if t["caption"]:
                out.append(f"{t['caption']}\n")
            out.append(markdown_table(t["rows"], t["columns"]))
        elif kind == "figure":
            f = results["figures"][name]
            out.append(f"## Figure: {name}\n\n![{name}]({f['path']})\n\n{f['caption']}\n")
    out.append("## Environment\n")
    out.append(
        f"seed {results['seed']}; device {env['device']}; {env['cpu_count']} CPUs ({env['torch_threads']} torch threads); "
        + (f"CPU time {env['cpu_time_s']} s; load average {env['load_average']} (1/5/15 min) at the end; "
           if env.get("cpu_time_s") is not None else "")
        + f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in pk.items() if v) + f"; git {env['git_commit']}; "
        f"paper sources sha256 `{(results.get('source_sha256') or '')[:12]}`.\n"
    )
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- atomic folders
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _scratch_dirs(dest: Path) -> list[Path]:
    return sorted(dest.parent.glob(f".{dest.name}.tmp-*")) + sorted(dest.parent.glob(f".{dest.name}.old-*"))


def recover_report_dir(dest: str | os.PathLike) -> None:
    """Clean up after a run killed while writing ``dest``: a previous report moved aside and not replaced is
    put back; half-built folders are removed."""
    dest = Path(dest)
    if not dest.exists():
        olds = sorted(dest.parent.glob(f".{dest.name}.old-*"))
        if olds:
            os.rename(olds[-1], dest)
    for p in _scratch_dirs(dest):
        shutil.rmtree(p, ignore_errors=True)


def _fsync_tree(path: Path) -> None:
    for p in [*path.rglob("*"), path]:
        with contextlib.suppress(OSError):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def swap_in(built: Path, dest: Path) -> None:
    """Replace folder ``dest`` by folder ``built`` as one unit."""
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"report destination {dest} exists and is not a folder; remove it or choose another")
    if not dest.exists():
        os.rename(built, dest)
        return
    if _exchange(built, dest):
        shutil.rmtree(built)  # now the old report
        return
    # no atomic exchange here: move the old one aside first; recover_report_dir restores it after a crash
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    os.rename(dest, old)
    os.rename(built, dest)
    shutil.rmtree(old)


# --------------------------------------------------------------------------------------------- the report
class Report:
    """Collects a paper run's sections, tables, figures, results and claims, and writes them as one unit.

    Typical use at the end of a paper's ``test`` pass (rank zero only)::

        report = Report("fong2017", "Meaningful Perturbation", profile="default", config_path=..., seed=0)
        report.add_section("Setting", "...")
        report.add_table("weak_localisation", rows, caption="Table 1 ...")
        report.add_figure("masks", fig, caption="...")
        report.set_results(results)   # plain numbers the claims are computed from
        report.add_claims(claims)     # built from those results, deviations applied
        report.write()                # reports/fong2017/{README.md,results.json,figures/*.png}
        report.log_wandb(logger)      # the same tables, figures and numbers to W&B
    """

    def __init__(self, paper: str, title: str, profile: str, config_path: str | os.PathLike | None = None,
                 seed: int | None = None, config: dict | None = None, citation: str = "",
                 started_at: float | None = None, device: str | None = None):
        self.paper = paper
        self.title = title
        self.profile = profile
        self.config_path = Path(config_path) if config_path else REPO_ROOT / "configs" / paper / f"{profile}.yaml"
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
        self.plain_results: dict | None = None
        self.findings: list[dict] | None = None
        #: the settings and figure tensors the tables and figures were drawn from (``set_inputs``)
        self.report_config: dict | None = None
        self.examples: dict | None = None
        #: a re-rendered report's run header (``RUN_RECORD``), kept from the run
        self.record: dict = {}
        self._order: list[tuple[str, str]] = []

    @classmethod
    def restore(cls, stored: dict) -> "Report":
        """An empty report with the header of a stored results.json (paper, profile, config, the run's record), to
        re-render its sections, tables and figures from the stored results."""
        report = cls(stored["paper"], stored.get("title", ""), stored["profile"],
                     config_path=REPO_ROOT / stored["config_file"] if stored.get("config_file") else None,
                     seed=stored.get("seed"), config=stored.get("config"), citation=stored.get("citation", ""))
        report.record = {k: stored[k] for k in RUN_RECORD if k in stored}
        return report

    def set_inputs(self, config: dict, examples: dict | None = None) -> None:
        """The settings (plain values) and the figure tensors the report is drawn from: stored with it
        (results.json ``report_config``, ``examples.pt``) so that ``report.py`` can re-render it without a run."""
        self.report_config = jsonable(config)
        self.examples = examples or {}

    # -- content
    def add_section(self, title: str, markdown: str) -> None:
        if any(t == title for t, _ in self.sections):
            raise ValueError(f"duplicate section {title!r}")
        self.sections.append((title, markdown))
        self._order.append(("section", title))

    def add_table(self, name: str, rows: list[dict], caption: str = "", columns: Sequence[str] | None = None) -> None:
        rows = [{str(k): jsonable(v) for k, v in r.items()} for r in rows]
        self.tables[name] = {"caption": caption, "columns": list(columns or dict.fromkeys(k for r in rows for k in r)), "rows": rows}
        self._order.append(("table", name))

    def add_figure(self, name: str, figure, caption: str = "") -> None:
        """A matplotlib figure; rendered to PNG bytes now (deterministic metadata), written by ``write``."""
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
        import matplotlib.pyplot as plt

        plt.close(figure)
        self.figures[name] = {"caption": caption, "png": buf.getvalue(), "path": f"figures/{name}.png"}
        self._order.append(("figure", name))

    def set_results(self, results: dict) -> None:
        """The run's plain results (JSON-serialisable): what the claims are computed from."""
        self.plain_results = jsonable(results)

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
        return count_statuses(c.to_dict() for c in self.claims)

    def results(self) -> dict:
        claims = [c.to_dict() for c in self.claims]
        config_file = (str(self.config_path.relative_to(REPO_ROOT)) if self.config_path.is_relative_to(REPO_ROOT)
                       else str(self.config_path))
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
            "config_file": config_file,
            "config_sha256": file_sha256(self.config_path),
            "source_sha256": paper_source_sha256(self.paper, config_file=self.config_path),
            "config": jsonable(self.config),
            "metrics": jsonable(self.metrics),
            **({"report_config": self.report_config} if self.report_config is not None else {}),
            "results": self.plain_results,
            "sections": [{"title": t, "markdown": m} for t, m in self.sections],
            "tables": self.tables,
            "figures": {k: {"caption": v["caption"], "path": v["path"]} for k, v in self.figures.items()},
            "order": [list(o) for o in self._order],
            "claims": claims,
            "claim_counts": count_statuses(claims),
            **({"findings": self.findings, "finding_counts": count_findings(self.findings)}
               if self.findings is not None else {}),
        } | self.record

    def readme(self, results: dict) -> str:
        return render_readme(results)

    def write(self, out_dir: str | os.PathLike | None = None) -> Path:
        """Write the report folder as one unit; returns it.

        The folder is built beside the destination (``.<name>.tmp-<pid>``), every file fsynced, the SHA-256 of
        README.md and of each figure recorded in results.json, and then swapped in atomically."""
        dest = Path(out_dir) if out_dir else REPO_ROOT / "reports" / self.paper
        dest.parent.mkdir(parents=True, exist_ok=True)
        recover_report_dir(dest)
        built = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        built.mkdir()
        try:
            results = self.results()
            files = {}
            for f in self.figures.values():
                with atomic_write(built / f["path"], "wb") as fh:
                    fh.write(f["png"])
                files[f["path"]] = hashlib.sha256(f["png"]).hexdigest()
            if self.examples:
                data = examples_bytes(self.examples)
                with atomic_write(built / EXAMPLES_FILE, "wb") as fh:
                    fh.write(data)
                files[EXAMPLES_FILE] = hashlib.sha256(data).hexdigest()
            readme = self.readme(results)
            with atomic_write(built / "README.md") as fh:
                fh.write(readme)
            files["README.md"] = hashlib.sha256(readme.encode()).hexdigest()
            results["files_sha256"] = dict(sorted(files.items()))
            with atomic_write(built / "results.json") as fh:
                json.dump(results, fh, indent=2, sort_keys=False)
                fh.write("\n")
            os.chmod(built, 0o755)
            (built / "figures").exists() and os.chmod(built / "figures", 0o755)
            _fsync_tree(built)
            swap_in(built, dest)
            _fsync_tree(dest.parent)
        except BaseException:
            shutil.rmtree(built, ignore_errors=True)
            raise
        if out_dir is None:
            write_index()
        return dest

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


def jsonable(v):
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
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def examples_bytes(examples: dict) -> bytes:
    """``examples`` (nested dicts of tensors and plain values) as ``torch.save`` bytes, tensors detached on the CPU."""
    import torch

    def cpu(v):
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().clone()
        if isinstance(v, dict):
            return {str(k): cpu(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [cpu(x) for x in v]
        return v

    buf = io.BytesIO()
    torch.save(cpu(examples), buf)
    return buf.getvalue()


def load_examples(report_dir: str | os.PathLike) -> dict:
    """The figure tensors stored with a report (``{}`` where it has none)."""
    path = Path(report_dir) / EXAMPLES_FILE
    if not path.is_file():
        return {}
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def render_report(stored: dict, render, examples: dict) -> "Report":
    """A stored report's sections, tables and figures drawn again by ``render(report, results, config, examples)``
    (the paper's ``report.build_report``) from its results, settings and figure tensors; claims not added."""
    report = Report.restore(stored)
    render(report, stored["results"], stored["report_config"], examples)
    report.set_inputs(stored["report_config"], examples)
    report.set_results(stored["results"])
    return report


def rebuild(report_dir: str | os.PathLike, render, claims: list[Claim], findings: list[dict] | None) -> bool:
    """Re-render a whole report folder (README.md, results.json's sections and tables, the figures) from its stored
    results, settings and figure tensors with the current ``render``, the claims and findings given (re-derived by the
    caller); written as one unit. Returns whether README.md or a table changed."""
    report_dir = Path(report_dir)
    stored = load_results(report_dir / "results.json")
    report = render_report(stored, render, load_examples(report_dir))
    report.add_claims(claims)
    report.findings = findings
    new = report.results()
    changed = render_readme(new) != (report_dir / "README.md").read_text() if (report_dir / "README.md").is_file() else True
    changed = changed or new["tables"] != stored.get("tables")
    report.write(report_dir)
    return changed


def rerender(report_dir: str | os.PathLike, claims: list[dict] | None = None, findings: list[dict] | None = None) -> bool:
    """Re-render README.md of a written report from its results.json (no re-run), with ``claims`` and ``findings``
    (re-derived from the stored results by the current code) in place of the stored ones when given; the folder is
    replaced as one unit with the new hashes recorded. Returns whether anything changed."""
    report_dir = Path(report_dir)
    results = load_results(report_dir / "results.json")
    if claims is not None:
        results["claims"] = claims
        results["claim_counts"] = count_statuses(claims)
    if findings is not None:
        results["findings"] = findings
        results["finding_counts"] = count_findings(findings)
    readme = render_readme(results)
    if claims is None and (report_dir / "README.md").is_file() and (report_dir / "README.md").read_text() == readme:
        return False
    built = report_dir.with_name(f".{report_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(built, ignore_errors=True)
    shutil.copytree(report_dir, built)
    try:
        with atomic_write(built / "README.md") as fh:
            fh.write(readme)
        results.setdefault("files_sha256", {})["README.md"] = hashlib.sha256(readme.encode()).hexdigest()
        with atomic_write(built / "results.json") as fh:
            json.dump(results, fh, indent=2, sort_keys=False)
            fh.write("\n")
        _fsync_tree(built)
        swap_in(built, report_dir)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return True


# --------------------------------------------------------------------------------------------- index
def load_results(path: str | os.PathLike) -> dict:
    with open(path) as fh:
        return json.load(fh)


def find_reports(repo_root: Path | None = None) -> list[Path]:
    return sorted(((repo_root or REPO_ROOT) / "reports").glob("*/results.json"))


def write_index(repo_root: Path | None = None) -> Path:
    """reports/README.md: one row per paper with its claim counts (generated)."""
    root = repo_root or REPO_ROOT
    rows = []
    for p in find_reports(root):
        r = load_results(p)
        if not r.get("paper"):  # not a paper's report (the scorecard's results.json)
            continue
        c = r.get("claim_counts", {})
        fc = r.get("finding_counts") or {}
        findings = (f"{fc.get('tested_valid', 0)}/{len(r['findings'])} tested; {fc.get(REPRODUCED, 0)} reproduced, "
                    f"{fc.get(PARTLY, 0)} partly, {fc.get(NOT_REPRODUCED, 0)} not, {fc.get(FINDING_INCONCLUSIVE, 0)} "
                    f"inconclusive, {fc.get(FINDING_NOT_VALID, 0)} not valid, {fc.get(NOT_TESTED, 0)} not testable"
                    if r.get("findings") is not None else "–")
        rows.append({
            "paper": f"[{r.get('paper')}]({r.get('paper')}/README.md)",
            "headline findings": findings,
            "title": r.get("title", ""),
            "profile": r.get("profile"),
            "claims": len(r.get("claims", [])),
            "hold": c.get(HOLDS, 0),
            "fail": c.get(FAILS, 0),
            "inconclusive": c.get(INCONCLUSIVE, 0),
            "known deviations": c.get(DEVIATION, 0),
            "sanity checks": c.get(SANITY, 0),
            "not valid here": c.get(NOT_VALID, 0),
            "wall time (s)": r.get("wall_time_s"),
            "generated": r.get("generated_at"),
        })
    text = ("# Reports\n\nGenerated by the papers' `fit`; verified by `python -m replications check` (claims rebuilt "
            "from the code, file hashes, freshness). Headline findings are those of `../shared/HEADLINE_CLAIMS.md`: "
            "tested on a valid protocol / reproduced / partly / not reproduced / inconclusive / not valid here / not "
            "testable in the profile. Inconclusive claims are not passes; sanity checks are not "
            "reproduced findings; a claim is not valid here when the protocol it rests on fails its validity check "
            "(oracle best, random worst, methods separated, not saturated) in the same run.\n\n" + markdown_table(rows))
    out = root / "reports" / "README.md"
    with atomic_write(out) as fh:
        fh.write(text)
    return out
