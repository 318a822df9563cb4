"""The command line of every paper: ``python -m replications.<paper> fit|validate|test [--config ...]``.

LightningCLI does the parsing (YAML configs under ``configs/<paper>/``, ``--trainer.devices 8`` etc.).
Two additions make ``fit`` a whole replication:

- without ``--config``, the paper's ``configs/<paper>/default.yaml`` is used (the embedded replication);
- after ``fit`` the CLI runs ``test`` on the same trainer, and the module writes ``reports/<paper>/``
  at the end of ``test`` (rank zero only), so ``fit`` alone gives a full replication.

What a user sees (#44): one progress display of the run's stages (``lightning_modules.progress``: the training and
test passes, ROAR retrainings, mask optimisations, attacks; redrawn on a terminal, one line per stage otherwise),
then a closing summary read from the written report (``replications.summary``). ``--quiet`` leaves only errors and
the summary. W&B's own terminal output is silenced; the summary says where an offline run was saved.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI

from lightning_modules import progress

from lightning_modules.reporting import Report
from lightning_modules.utils import REPO_ROOT
from lightning_modules.validation import InputError, check_report_destination
from replications.contract import claims_for, contract, findings_for, plain

SUBCOMMANDS = ("fit", "validate", "test", "predict")


def wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


#: W&B's deprecation warning on the ``anonymous`` argument that Lightning's WandbLogger always passes (None)
_WANDB_ANONYMOUS = "The anonymous setting has no effect and will be removed in a future version."


def quiet_wandb() -> None:
    """W&B prints eleven lines per run (a deprecation warning Lightning triggers, the offline-sync hint at start and
    again at exit, ...); the closing summary says the one that matters (where an offline run was saved and the
    ``wandb sync`` command). ``WANDB_SILENT`` set by the user (``false``) is respected."""
    os.environ.setdefault("WANDB_SILENT", "true")
    if os.environ["WANDB_SILENT"].lower() not in ("true", "1", "yes"):
        return
    try:  # the warning is raised while W&B validates its settings, before WANDB_SILENT applies: mark it as printed
        import wandb.errors.term as term

        term._printed_messages.add(f"{term.WARN_STRING} {_WANDB_ANONYMOUS}")
    except (ImportError, AttributeError):  # pragma: no cover - another wandb version
        pass


def wandb_summary(logger) -> str | None:
    """``offline run saved to X; `wandb sync X` to upload`` (or the online run's address) for a W&B logger whose run
    was started; None otherwise."""
    run = getattr(logger, "_experiment", None)
    if run is None or not hasattr(run, "dir"):
        return None
    try:
        if getattr(run, "offline", False):
            from replications.summary import shown_path

            where = shown_path(Path(run.dir).parent)
            return f"offline run saved to {where}; `wandb sync {where}` to upload"
        return f"run at {run.url}" if getattr(run, "url", None) else None
    except Exception:  # pragma: no cover - a finished or broken run
        return None


def default_logger() -> dict | bool:
    """W&B through Lightning's WandbLogger: offline unless the user logged in (``wandb sync`` uploads later).

    ``WANDB_MODE=disabled`` turns logging off (the tests use it for speed)."""
    if os.environ.get("WANDB_MODE") == "disabled":
        return False
    return {
        "class_path": "lightning.pytorch.loggers.WandbLogger",
        "init_args": {
            "project": "saliency-replications",
            "save_dir": str(REPO_ROOT / "outputs"),
            "offline": not wandb_logged_in(),
        },
    }


class ReplicationModule(pl.LightningModule):
    """Base of every paper's LightningModule.

    Subclasses set ``paper``, ``title`` and ``citation``, compute their experiments in the Lightning loops
    (learned things in ``training_step``; explanation + evaluation passes in ``test_step`` with torchmetrics
    that sync across processes) and implement ``build_report(report)``: tables, figures and claims.
    The report is written at the end of ``test`` on global rank zero.
    """

    paper: str = ""
    title: str = ""
    citation: str = ""

    def __init__(self):
        super().__init__()
        self.run_info: dict = {}
        self._started_at = time.time()

    @property
    def profile(self) -> str:
        return self.run_info.get("profile", "default")

    # Papers whose learning happens inside the test passes (mask learning) or in nested runs (ROAR) train
    # nothing in the outer fit loop: they set ``trainer.max_epochs: 0`` and inherit these no-ops.
    def training_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return None

    def setup(self, stage: str) -> None:
        """Let ``fit`` run under DDP when nothing in the module is trainable.

        Lightning wraps the module in ``DistributedDataParallel`` for ``fit``, and DDP refuses a module without a
        parameter that requires a gradient (our classifiers are frozen; mask learning and ROAR train their own,
        nested models). An empty (zero-element) parameter satisfies DDP's check, holds no state and is never used;
        it is added only in that case, so modules that do train are untouched."""
        super().setup(stage)
        if stage == "fit" and not any(p.requires_grad for p in self.parameters()):
            self.register_parameter("_ddp_placeholder", torch.nn.Parameter(torch.empty(0)))

    def build_report(self, report: Report) -> None:
        """Sections, tables and figures of the report: ``replications/<paper>/report.py``'s ``build_report``, a pure
        function of the plain results, the settings (:meth:`report_config`) and the figure tensors (``examples()``),
        given exactly as they are stored with the report, so that ``python -m replications.<paper> report`` draws the
        same report again without a run. A paper without that file overrides this method."""
        render = contract(self.paper).render
        if render is None:  # pragma: no cover - every paper has report.py or overrides this
            raise NotImplementedError(f"replications/{self.paper}/report.py has no build_report(report, results, "
                                      "config, examples)")
        config = plain(self.report_config())
        examples = self.examples() if hasattr(self, "examples") else {}
        render(report, plain(self.plain_results()), config, examples)
        report.set_inputs(config, examples)

    def report_config(self) -> dict:
        """The settings the report states (plain values), stored with it as ``report_config``."""
        return {}

    def plain_results(self) -> dict:  # pragma: no cover - abstract
        """The run's plain (JSON-serialisable) results: what ``claims.build_claims`` computes the claims from."""
        raise NotImplementedError

    def new_report(self) -> Report:
        return Report(
            self.paper,
            self.title,
            profile=self.profile,
            config_path=self.run_info.get("config_path"),
            seed=self.run_info.get("seed"),
            config=self.run_info.get("config"),
            citation=self.citation,
            started_at=self.run_info.get("started_at", self._started_at),
            device=str(self.device),
        )

    def write_report(self, out_dir: str | os.PathLike | None = None) -> Report | None:
        """Build and write the report (rank zero); returns it there, None elsewhere."""
        if self.trainer is not None and not self.trainer.is_global_zero:
            return None
        report = self.new_report()
        self.build_report(report)
        if contract(self.paper).build_claims is not None:
            report.set_results(plain(self.plain_results()))
            report.add_claims(claims_for(self.paper, report.plain_results, self.profile))
            report.findings = findings_for(self.paper, [c.to_dict() for c in report.claims], self.profile)
        out_dir = out_dir or self.run_info.get("report_dir")
        with progress.stage(f"{self.paper} report"):
            #: where the report was written (the closing summary reads it back)
            self.report_written = report.write(out_dir)
            report.log_wandb(self.logger)
        return report

    def on_test_end(self) -> None:
        if self.run_info.get("write_report", True):
            self.write_report()


#: Lightning's messages for a fit loop with nothing to train, which is by design for the papers that learn inside
#: ``test`` or in nested runs (``max_epochs: 0``, an empty ``train_dataloader``): noise for a newcomer.
_NOTHING_TO_TRAIN_INFO = re.compile(r"^`Trainer\.fit` stopped: (No training batches\.|`max_epochs=0` reached\.)$|"
                                    r"^💡 Tip: For seamless cloud logging|"
                                    # the accelerator lines, only when they matter (a GPU / TPU / HPU is there)
                                    r"^(GPU|TPU|HPU|IPU) available: False\b")
_NOTHING_TO_TRAIN_WARNINGS = (
    r"Total length of `(list|CombinedLoader)` across ranks is zero\. Please make sure this was your intention\.",
    r"`LightningModule\.configure_optimizers` returned `None`, this fit will run with no optimizer",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's own call into torch's pytree, every run
    # the one no-op training batch of the papers that learn nothing in the outer loop (petsiuk2018, adebayo2018)
    r"The number of training batches \(1\) is smaller than the logging interval",
)


class _DropInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _NOTHING_TO_TRAIN_INFO.search(record.getMessage())


def quiet_nothing_to_train() -> None:
    """Silence exactly Lightning's messages about a fit with nothing to train (and its litlogger tip)."""
    for pattern in _NOTHING_TO_TRAIN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropInfo) for f in log.filters):
        log.addFilter(_DropInfo())


class ProgressCallback(Callback):
    """The run's stages in :mod:`lightning_modules.progress`, for every paper: the training pass (batches of all
    epochs), the test pass (batches of every test loader; ``ExperimentReplication`` notes which experiment runs on
    which batch), the work after the last batch (results, ROAR retrainings, ...). Display only."""

    def __init__(self):
        self._stage: progress.Stage | None = None

    def _close(self) -> None:
        if self._stage is not None:
            self._stage.close()
            self._stage = None

    @staticmethod
    def _name(pl_module) -> str:
        return getattr(pl_module, "paper", "") or type(pl_module).__name__

    @staticmethod
    def _total(batches) -> int | None:
        batches = batches if isinstance(batches, (list, tuple)) else [batches]
        total = sum(batches) if batches else 0
        return int(total) if total != float("inf") else None

    def on_train_start(self, trainer, pl_module) -> None:
        per_epoch = self._total(trainer.num_training_batches)
        epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
        if per_epoch == 0 or epochs == 0:
            return
        self._close()
        total = per_epoch * epochs if per_epoch is not None and epochs is not None else None
        self._stage = progress.stage(f"{self._name(pl_module)} training", total=total, unit="batches")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._stage is not None:
            self._stage.note(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")
            self._stage.advance()

    def on_train_end(self, trainer, pl_module) -> None:
        self._close()

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._close()
        self._stage = progress.stage(f"{self._name(pl_module)} test pass", total=self._total(trainer.num_test_batches),
                                     unit="batches")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._stage is not None:
            self._stage.advance()

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        # runs before the module's own hook, which computes the results (and, for some papers, runs for long)
        self._close()
        self._stage = progress.stage(f"{self._name(pl_module)} results")

    def on_test_end(self, trainer, pl_module) -> None:
        self._close()  # before the module's hook, which writes the report

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._stage = None
        progress.close_all(error=exception)


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress, no Lightning information lines (seed, accelerators), no W&B line; warnings, errors
    and the closing summary remain."""
    progress.set_quiet(quiet)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)


class ReplicationCLI(LightningCLI):
    """LightningCLI for one paper; see the module docstring.

    At startup, before anything is built, the report destination is validated (exists or can be created, is a
    writable folder): a bad ``$SALIENCY_REPORT_DIR`` fails at once instead of after the whole run."""

    def __init__(self, model_class, paper: str, datamodule_class=None, args=None, **kwargs):
        self.paper = paper
        argv = list(sys.argv[1:] if args is None else args)
        # read before parsing: the seed line is printed while the arguments are applied
        self.quiet = "--quiet" in argv[1:] and "--help" not in argv and "-h" not in argv
        set_quiet(self.quiet)
        if argv and argv[0] in SUBCOMMANDS and not any(a == "--config" or a.startswith("--config=") for a in argv):
            argv[1:1] = ["--config", str(REPO_ROOT / "configs" / paper / "default.yaml")]
        self._config_path = self._find_config(argv)
        if argv and argv[0] in ("fit", "test"):
            profile = self._config_path.stem if self._config_path else "default"
            check_report_destination(report_dir(paper, profile) or REPO_ROOT / "reports" / paper,
                                     argument="report destination" + (" ($SALIENCY_REPORT_DIR)"
                                                                       if os.environ.get("SALIENCY_REPORT_DIR") else ""))
        quiet_nothing_to_train()
        quiet_wandb()
        self._started_at = time.time()
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault(
            "trainer_defaults",
            {
                "logger": default_logger(),
                "enable_checkpointing": False,
                "default_root_dir": str(REPO_ROOT / "outputs" / paper),
                # Explainers need autograd inside test_step; Lightning's default inference_mode forbids it.
                "inference_mode": False,
            },
        )
        kwargs.setdefault("seed_everything_default", 0)
        try:
            super().__init__(model_class, datamodule_class, args=argv, **kwargs)
        except BaseException as e:
            progress.close_all(error=e)
            raise

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--quiet", action="store_true",
                            help="print only errors and the closing summary (no progress, no information lines)")

    def _instantiate_trainer(self, config, callbacks):
        return super()._instantiate_trainer(config, [*callbacks, ProgressCallback()])

    def parse_arguments(self, parser, args) -> None:
        # ``args`` already holds the command line (with the default config inserted); hiding sys.argv avoids
        # Lightning's warning about getting both, which every paper command would otherwise print.
        saved = sys.argv
        sys.argv = saved[:1]
        try:
            super().parse_arguments(parser, args)
        finally:
            sys.argv = saved

    @staticmethod
    def _find_config(argv: list[str]) -> Path | None:
        for i, a in enumerate(argv):
            if a == "--config" and i + 1 < len(argv):
                return Path(argv[i + 1]).resolve()
            if a.startswith("--config="):
                return Path(a.split("=", 1)[1]).resolve()
        return None

    def _set_run_info(self) -> None:
        cfg_path = self._config_path
        profile = cfg_path.stem if cfg_path else "default"
        sub = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        info = {
            "paper": self.paper,
            "profile": profile,
            "config_path": cfg_path,
            "seed": sub.get("seed_everything"),
            "config": {k: v for k, v in _plain(sub).items() if k != "quiet"},  # --quiet is not a setting
            "started_at": self._started_at,
            "subcommand": self.subcommand,
            "report_dir": report_dir(self.paper, profile),
        }
        if isinstance(self.model, ReplicationModule):
            self.model.run_info.update(info)

    def before_fit(self) -> None:
        self._set_run_info()

    def before_validate(self) -> None:
        self._set_run_info()

    def before_test(self) -> None:
        self._set_run_info()

    def after_fit(self) -> None:
        # ``fit`` is a whole replication: evaluate and write the report on the same trainer.
        if isinstance(self.model, ReplicationModule):
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
            self.print_summary()

    def after_test(self) -> None:
        self.print_summary()

    def print_summary(self) -> None:
        """The closing summary (``replications.summary``), read from the report this run wrote (rank zero)."""
        written = getattr(self.model, "report_written", None)
        if written is None or not self.trainer.is_global_zero or os.environ.get("SALIENCY_SUMMARY") == "0":
            return
        from lightning_modules.reporting import load_results
        from replications.summary import print_summary

        results_path = Path(written) / "results.json"
        if not results_path.is_file():
            return
        extra = []
        wandb_line = None if self.quiet else wandb_summary(self.trainer.logger)
        if wandb_line:
            extra.append(("W&B", wandb_line))
        print_summary(load_results(results_path), written, extra=extra)


def report_dir(paper: str, profile: str) -> Path | None:
    """Where a run writes its report: ``$SALIENCY_REPORT_DIR`` if set; the committed ``reports/<paper>/``
    for the default profile (None = that folder, and the index is regenerated); ``outputs/reports/<paper>/<profile>/``
    for the others, so a smoke or paper run never overwrites the committed report."""
    if os.environ.get("SALIENCY_REPORT_DIR"):
        return Path(os.environ["SALIENCY_REPORT_DIR"])
    if profile == "default":
        return None
    return REPO_ROOT / "outputs" / "reports" / paper / profile


def _plain(cfg):
    """jsonargparse Namespace -> plain dict for the report (class paths and values only)."""
    try:
        from jsonargparse import Namespace

        if isinstance(cfg, Namespace):
            cfg = cfg.as_dict()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(cfg, dict):
        return {k: _plain(v) for k, v in cfg.items() if k not in ("config",)}
    if isinstance(cfg, (list, tuple)):
        return [_plain(v) for v in cfg]
    if isinstance(cfg, (str, int, float, bool)) or cfg is None:
        return cfg
    return str(cfg)


def rerender_report(paper: str, report_path: str | os.PathLike | None = None) -> Path:
    """``python -m replications.<paper> report [DIR]``: re-derive the claims from the report's stored results with the
    current ``claims.py`` / ``deviations.py`` and re-render README.md, without re-running the experiments.

    A ``DIR`` that is not a report folder (missing, a file, no readable results.json) raises a ``DataRootError``
    naming it and the fix, before anything is written."""
    from lightning_modules.reporting import rebuild, rerender, write_index
    from lightning_modules.validation import DataRootError

    out = Path(report_path) if report_path else REPO_ROOT / "reports" / paper
    argument = "report folder" if report_path else f"report folder (default reports/{paper}/)"
    expected = "a report folder holding results.json"
    fix = (f"pass a folder written by `python -m replications.{paper} fit` (reports/{paper}/ for the default "
           f"profile, outputs/reports/{paper}/<profile>/ for the others), or run the fit first")
    if not out.exists():
        raise DataRootError(argument, expected, f"{out}, which does not exist", fix)
    if not out.is_dir():
        raise DataRootError(argument, expected, f"{out}, which is a file", fix)
    if not (out / "results.json").is_file():
        raise DataRootError(argument, expected, f"{out}, which has no results.json", fix)
    from lightning_modules.reporting import load_results

    try:
        stored = load_results(out / "results.json")
    except (ValueError, UnicodeDecodeError) as e:
        raise DataRootError(argument, expected, f"{out / 'results.json'}, which is not valid JSON ({e})",
                            f"re-run `python -m replications.{paper} fit`") from None
    claims = findings = None
    if contract(paper).build_claims is not None and stored.get("results") is not None:
        claim_objects = claims_for(paper, stored["results"], stored["profile"])
        claims = [c.to_dict() for c in claim_objects]
        findings = findings_for(paper, claims, stored["profile"])
    render = contract(paper).render
    if render is not None and claims is not None and "report_config" in stored:
        # the whole report: its tables and figures drawn again by the current report.py
        changed = rebuild(out, render, claim_objects, findings)
    else:
        changed = rerender(out, claims, findings)
    if report_path is None:
        write_index()
    print(f"{out / 'README.md'}: {'re-rendered' if changed else 'already up to date'} from results.json")
    return out


def report_command(paper: str, argv: list[str], from_command_line: bool = True) -> Path:
    """``python -m replications.<paper> report [-h] [DIR]``: options parsed (``--help`` prints the usage, an unknown
    option is refused), then :func:`rerender_report`. From the command line a bad ``DIR`` ends with its message and
    exit status 2 instead of a traceback (``SALIENCY_DEBUG=1`` keeps the traceback)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=f"python -m replications.{paper} report",
        description="Re-derive the claims and findings from a report's stored results (results.json) with the current "
                    f"replications/{paper}/claims.py and deviations.py, and re-render its README.md. Nothing is re-run.")
    parser.add_argument("folder", nargs="?", default=None,
                        help=f"the report folder holding results.json (default: reports/{paper}/)")
    ns = parser.parse_args(argv)
    if not from_command_line or os.environ.get("SALIENCY_DEBUG"):
        return rerender_report(paper, ns.folder)
    try:
        return rerender_report(paper, ns.folder)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def run(model_class, paper: str, datamodule_class=None, args=None, **kwargs) -> ReplicationCLI | Path:
    """The paper's command. From the command line (``args=None``) a bad input (``InputError``: a bad destination,
    data root, image, target ...) ends the run with its message and exit status 2 instead of a traceback
    (``SALIENCY_DEBUG=1`` keeps the traceback); from Python (``args=[...]``) the error propagates."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "report":
        return report_command(paper, argv[1:], from_command_line=args is None)
    if args is not None or os.environ.get("SALIENCY_DEBUG"):
        return ReplicationCLI(model_class, paper, datamodule_class=datamodule_class, args=argv, **kwargs)
    try:
        return ReplicationCLI(model_class, paper, datamodule_class=datamodule_class, args=argv, **kwargs)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
