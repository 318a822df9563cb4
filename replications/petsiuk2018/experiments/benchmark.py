"""RISE's cost (Petsiuk et al. 2018: RISE is N masked forward passes), measured in the run: the time of one RISE call
over the time of the same forward passes at the same batch sizes on a pre-built input, and the call's peak extra
memory against the explainer's budget (``lightning_modules.benchmarks.rise.benchmark_rise``), on the first images of
the first batch, with a fresh explainer of the run's RISE settings. It runs once, on global rank zero, after every
batch has been explained (``compute``), so that the other experiments' work does not load the machine meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.explainers.rise import RISE
from replications.petsiuk2018.experiments.a_causal import top1


@dataclass
class BenchmarkConfig:
    """RISE's cost against its N masked forward passes, measured in the run."""

    n_images: int = 1
    repeats: int = 2
    enabled: bool = True


def _global_zero() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or torch.distributed.get_rank() == 0


class RiseBenchmarkExperiment(Experiment):
    name = "benchmark"
    splits = ("test", "causal")

    def __init__(self, config: dict, rise_kwargs: dict):
        super().__init__()
        self.config = dict(config)
        self.rise_kwargs = dict(rise_kwargs)
        self._inputs: tuple | None = None  # (model, images, targets) of the first batch: a tuple, not submodules
        self.result: dict | None = None
        self.seconds: dict[str, float] = {}

    def update(self, ctx: BatchContext) -> None:
        if ctx.batch_idx == 0 and self.config["enabled"]:
            n = int(self.config["n_images"])
            self._inputs = (ctx.model, ctx.images[:n], top1(ctx)[:n])

    def compute(self) -> dict:
        """``benchmark``: the measurement's plain numbers (time ratio, forward passes, peak and budget MB ...); empty
        where it is disabled or on the other ranks."""
        if self.result is None:
            self.result = {}
            if self._inputs is not None and _global_zero():
                from lightning_modules.benchmarks.rise import benchmark_rise

                t0 = time.time()
                model, images, targets = self._inputs
                bench = benchmark_rise(model, images, targets, explainer=RISE(**self.rise_kwargs),
                                       repeats=int(self.config["repeats"]))
                self.seconds["benchmark_s"] = time.time() - t0
                self.result = {k: v for k, v in bench.items() if isinstance(v, (int, float, str)) or v is None}
        return {"benchmark": self.result}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.petsiuk2018.claims import benchmark_claims

        return benchmark_claims(results, profile)


#: where it sees a batch among the experiments (``replication.RiseReplication`` runs them in this order)
ORDER = 100


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``RiseReplication``)."""
    return [RiseBenchmarkExperiment(rep.benchmark_cfg, rep.method_kwargs["rise"])]
