"""The clock of the costs measured inside a run: one torch thread and the process's CPU time on the CPU, restored
afterwards; the in-run benchmarks record which clock they read."""

from __future__ import annotations

import time

import torch

from lightning_modules.benchmarks.clock import CPU_CLOCK, clock_name, cost_clock


def test_cpu_clock_is_process_time_on_one_thread_and_restores_the_pool():
    before = torch.get_num_threads()
    with cost_clock("cpu") as now:
        assert now is time.process_time and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    try:
        with cost_clock(torch.device("cpu")):
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before
    assert clock_name("cpu") == CPU_CLOCK


def test_a_sleep_costs_no_cpu_time():
    """What makes it robust to load: time the process does not run (waiting for the cores) is not counted."""
    with cost_clock("cpu") as now:
        t0 = now()
        time.sleep(0.2)
        assert now() - t0 < 0.05


def test_the_rise_benchmark_records_its_clock():
    from lightning_modules.benchmarks.rise import benchmark_rise

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    out = benchmark_rise(model, torch.rand(2, 3, 8, 8), 0, n_masks=16, repeats=1)
    assert out["clock"] == CPU_CLOCK and out["time_ratio"] > 0


def test_steady_allocator_fixes_glibc_thresholds_and_says_so():
    import ctypes.util
    import platform

    from lightning_modules.benchmarks.clock import MMAP_THRESHOLD, steady_allocator

    said = steady_allocator()
    assert said == steady_allocator()  # idempotent: a second benchmark in the process reads the same phrase
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c"):
        assert f"{MMAP_THRESHOLD >> 20} MiB" in said
    else:
        assert "default" in said
