"""The clock of a cost measured inside a paper's run (fong2017's mask-learning overhead, petsiuk2018's RISE
overhead): the same on every machine state the runs meet.

On the CPU a run shares its cores with other jobs. Wall time then measures the load, and so does the CPU time of a
multi-threaded call (an oversubscribed intra-op thread pool spin-waits, and a spin is CPU time): petsiuk2018's RISE
ratio read 1.108 and 1.065 in two runs of the same code. With one torch thread the process's CPU time is the
compute the call needs, as in ``python -m replications bench explainers --threads 1 --clock process``. On CUDA the
kernels run asynchronously: wall time after a synchronise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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


#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the heap, never from a fresh ``mmap`` (glibc's ceiling for the dynamic threshold)
MMAP_THRESHOLD = 32 * 1024 * 1024


def steady_allocator() -> str:
    """Fix glibc's ``malloc`` thresholds for the rest of the process and say so (a phrase for a report).

    glibc serves a block above its mmap threshold with a fresh ``mmap`` (zeroed pages, page faults on first touch,
    ``munmap`` on free) and raises that threshold, up to 32 MiB, each time such a block is freed. A benchmark's
    time per call then depends on the blocks the calls before it happened to free: a batch-32 forward pass that
    records its graph on ``scenes_v2_resnet`` took 22.5 ms per call in a fresh process and 17.5 ms after a method
    with larger tensors had run, while excitation backprop (no graph below its layer) moved from 21.8 to 20.3 ms,
    so its ratio to that floor read 0.97 or 1.16 depending on the methods measured before it. Fixing the mmap
    threshold at its ceiling (and the trim threshold above it) puts every measurement in the state a long run
    settles in. Blocks above 32 MiB (a 224-px VGG's activations at batch 24) are still mapped afresh each time, the
    same for a method and its floor. Elsewhere (no glibc ``mallopt``) nothing changes."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return "the platform's default allocator (no glibc mallopt)"
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD) != 1:
        return "the default glibc malloc thresholds (mallopt refused the fixed ones)"
    return (f"glibc malloc with its mmap threshold fixed at {MMAP_THRESHOLD >> 20} MiB (blocks below it reuse the heap "
            "whatever ran before; `clock.steady_allocator`)")
