"""The clock of a cost measured inside a paper's run (fong2017's mask-learning overhead, petsiuk2018's RISE
overhead): the same on every machine state the runs meet.

On the CPU a run shares its cores with other jobs. Wall time then measures the load, and so does the CPU time of a
multi-threaded call (an oversubscribed intra-op thread pool spin-waits, and a spin is CPU time): petsiuk2018's RISE
ratio read 1.108 and 1.065 in two runs of the same code. With one torch thread the process's CPU time is the
compute the call needs, as in ``python -m replications bench explainers --threads 1 --clock process``. On CUDA the
kernels run asynchronously: wall time after a synchronise.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

#: how a result names the clock it was read on
CPU_CLOCK = "process CPU time, one torch thread"
CUDA_CLOCK = "wall time, synchronised"


@contextmanager
def cost_clock(device: torch.device | str) -> Iterator[Callable[[], float]]:
    """Yield the clock to read inside the block: on the CPU ``time.process_time`` with torch limited to one
    intra-op thread for the block (restored after it), on CUDA ``time.perf_counter`` (synchronise before reading)."""
    device = torch.device(device)
    if device.type != "cpu":
        yield time.perf_counter
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield time.process_time
    finally:
        torch.set_num_threads(threads)


def clock_name(device: torch.device | str) -> str:
    return CPU_CLOCK if torch.device(device).type == "cpu" else CUDA_CLOCK
