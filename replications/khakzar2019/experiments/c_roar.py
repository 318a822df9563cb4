"""c. ROAR (Hooker et al. 2019; the generic ``lightning_modules.tasks.roar_benchmark``): remove the top-t pixels of
the training and test sets by each method's attribution, retrain from scratch, test accuracy vs t, against a random
ranking (and, where the data has the class evidence, the oracle ranking).

Each benchmark is a typed config section (``roar: {<name>: {...}}``, in the order given): the test DataModule's
images explained by the classifier (``data: null``), or its own data (``data: {class_path, init_args}``, e.g. real
MNIST, CIFAR-10) explained by the model retrained on it (the reference row; RoarTorch's protocol). With its own
data, PruneGrad's threshold rules are measured on that reference model, and (``reference_benchmarks``) (a) and (b)
run on it too (``reference: {pixel_images, sanity_images}``).

The retrainings run at the end of the test epoch on global rank zero (each is itself a Lightning run and can use
GPUs through ``accelerator`` / ``devices``, or ``workers`` processes at once); under a multi-process test run the
other ranks wait at a barrier. ``roar: {}`` skips ROAR."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.tasks.roar_benchmark import RoarBenchmarkConfig, cache_key, run_benchmark
from lightning_modules.utils import REPO_ROOT
from replications.khakzar2019.measures import DEFAULT_ROAR_METHODS, make_explainer, prunegrad_rules
from replications.khakzar2019.reference import reference_benchmarks


@dataclass
class RoarSection(RoarBenchmarkConfig):
    """c. One ROAR benchmark (:class:`~lightning_modules.tasks.roar_benchmark.RoarBenchmarkConfig`), plus
    ``reference_benchmarks``: run (a) and (b) on its reference model (own data only)."""

    methods: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_ROAR_METHODS.items()})
    reference_benchmarks: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.data is not None and self.downsample != 1:
            raise ValueError("a ROAR benchmark with its own data needs downsample 1: the reference model explains the "
                             "images at full resolution")


@dataclass
class ReferenceConfig:
    """c. (a) and (b) on the reference models of the ROAR benchmarks with their own data: their first
    ``pixel_images`` / ``sanity_images`` test images (0: not run)."""

    pixel_images: int = 0
    sanity_images: int = 0


def roar_sections(roar: dict | None) -> dict[str, RoarSection]:
    """name -> typed section (None: the default ``scenes`` benchmark; ``{}``: no ROAR). Plain dicts (Python callers)
    are checked as the CLI checks them: an unknown key is refused, naming it."""
    if roar is None:
        return {"scenes": RoarSection()}
    out = {}
    for name, section in roar.items():
        if isinstance(section, RoarSection):
            out[name] = section
        elif isinstance(section, dict):
            try:
                out[name] = RoarSection.from_dict(section)
            except (TypeError, ValueError) as e:
                raise ValueError(f"roar.{name}: {e}") from None
        else:
            out[name] = RoarSection.from_dict(vars(section))  # a jsonargparse Namespace
    return out


class RoarExperiment(Experiment):
    """Reads no batch; at the end of the test epoch runs every benchmark on global rank zero (the other ranks wait)."""

    name = "c_roar"
    splits = ()

    def __init__(self, sections: dict[str, RoarSection], reference: ReferenceConfig, rep):
        super().__init__()
        self.sections = dict(sections)
        self.reference = reference
        object.__setattr__(self, "_rep", rep)  # not a submodule: the replication holds the classifier and the data

    def update(self, ctx: BatchContext) -> None:  # pragma: no cover - reads no batch
        pass

    def compute(self) -> dict:
        rep = self._rep
        out: dict = {"roar": {}, "roar_info": {}, "reference_benchmarks": {}}
        if rep.trainer.is_global_zero:
            for name, section in self.sections.items():
                self._run(rep, name, section, out)
        rep.trainer.strategy.barrier("roar")
        return out

    def _run(self, rep, name: str, section: RoarSection, out: dict) -> None:
        own = section.data is not None
        dm = rep.roar_datamodule(name)
        key = cache_key(section, dm, own, "" if own else rep.explained_id())
        root = Path(rep.work_dir) if rep.work_dir else REPO_ROOT / "data" / "roar"
        work = root / f"khakzar2019-{rep.profile}-{name}-{key}"
        num_classes = int(getattr(dm, "num_classes", 0) or rep.num_classes())
        ref, pixel, sanity = self.reference, rep.pixel_config, rep.sanity_config

        def on_explained(model, images, targets) -> dict:
            info = {}
            if own and "prunegrad" in section.methods:
                info["prunegrad_rules"] = prunegrad_rules(rep.pg_official, rep.pg_plain, model, images, targets,
                                                          section.attribution_batch, rep.device)
            if own and section.reference_benchmarks and (ref.pixel_images or ref.sanity_images):
                out["reference_benchmarks"][name] = reference_benchmarks(
                    model, images, targets, rep.explainers, pixel_images=ref.pixel_images,
                    sanity_images=ref.sanity_images, fractions=pixel.fractions, substrate=pixel.substrate,
                    sanity_init=sanity.init, sanity_std=sanity.std, batch=section.attribution_batch, device=rep.device)
            return info

        outcome = run_benchmark(section, dm, own, work, rep.model, make_explainer, rep.device, num_classes, on_explained)
        out["roar"][name], out["roar_info"][name] = outcome.results, outcome.info

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.khakzar2019.claims import build_claims

        return [c for c in build_claims(results, profile) if c.id.startswith("roar.")]


#: where it sees a batch among the experiments (``replication.Khakzar2019Replication`` runs them in this order)
ORDER = 30


def build(rep) -> list[Experiment]:
    return [RoarExperiment(rep.roar_sections, rep.reference_config, rep)]
