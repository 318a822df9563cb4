"""The cost of mask learning (Fong & Vedaldi 2017, Sec. 3: the optimisation is iterative): the time of the run's own
mask optimisation over ``iterations`` x one forward + backward of the black box at the same batch, on the first
test batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from lightning_modules.benchmarks.clock import clock_name, cost_clock
from lightning_modules.experiment import BatchContext, Experiment
from lightning_modules.tasks.mask_learning import MaskConfig, learn_masks


@dataclass
class MaskBenchmarkConfig:
    """The mask-learning benchmark: iterations, the batch (None: the data's batch size) and repeats."""

    iterations: int = 20
    batch: int | None = None
    repeats: int = 3


def _synchronise(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize()


def benchmark_masks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: dict,
                    mask_config: MaskConfig) -> dict:
    """min over repeats of: mask learning time / (iterations x one forward+backward of the same batch).

    Both loops are timed alternately on :func:`~lightning_modules.benchmarks.clock.cost_clock` (on the CPU the
    process's CPU time with one torch thread: the machine is shared; the minimum is the least disturbed run); the
    mask run uses ``init='ones'`` so that only the optimisation loop is compared with the reference loop. The
    pipeline's own work is the same optimisation with the network replaced by one linear layer."""
    n = min(int(config["batch"]), images.shape[0])
    x, t = images[:n], labels[:n]
    it = int(config["iterations"])
    cfg = MaskConfig.from_dict({**asdict(mask_config), "iterations": it, "init": "ones"})

    def reference() -> float:
        xx = x.clone().requires_grad_(True)
        t0 = now()
        with torch.enable_grad():
            for _ in range(it):
                xx.grad = None
                model(xx).softmax(1).gather(1, t[:, None]).sum().backward()
        _synchronise(x)
        return now() - t0

    def timed_masks(net: nn.Module) -> float:
        t0 = now()
        learn_masks(net, x, t, cfg, record=False)
        _synchronise(x)
        return now() - t0

    with torch.no_grad():
        k = model(x[:1]).shape[1]
    linear = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), k)).to(x.device).eval()
    for p in linear.parameters():
        p.requires_grad_(False)

    with cost_clock(x.device) as now:
        reference(), timed_masks(model), timed_masks(linear)  # warm-up
        refs, ms, pipe = [], [], []
        for _ in range(int(config["repeats"])):
            refs.append(reference())
            ms.append(timed_masks(model))
            pipe.append(timed_masks(linear))
    return {"batch": n, "iterations": it, "mask_s": min(ms), "forward_backward_s": min(refs),
            "ratio": min(ms) / min(refs), "pipeline_s": min(pipe), "pipeline_share": min(pipe) / min(refs),
            "device": str(x.device), "clock": clock_name(x.device)}


class BenchmarkExperiment(Experiment):
    name = "benchmark"

    def __init__(self, config: dict, mask_config: MaskConfig):
        super().__init__()
        self.config = config
        self.mask_config = mask_config
        self.result: dict = {}

    def update(self, ctx: BatchContext) -> None:
        if ctx.batch_idx == 0 and not self.result:
            self.result = benchmark_masks(ctx.model, ctx.images, ctx.labels, self.config, self.mask_config)

    def compute(self) -> dict:
        return {"benchmark": self.result}

    def claims(self, results: dict, profile: str = "default") -> list:
        from replications.fong2017.claims import benchmark_claims

        return benchmark_claims(results, profile)


#: where it sees a batch among the experiments (``replication.FongReplication`` runs them in this order)
ORDER = 100


def build(rep) -> list[Experiment]:
    """This experiment, configured from the replication's sections (``rep``: the ``FongReplication``)."""
    return [BenchmarkExperiment(rep.bench_spec, rep.mask_config)]
