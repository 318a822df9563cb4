"""Run a function on several CPU processes joined by a gloo process group (torch.multiprocessing spawn).

    results = run_ddp(fn, world_size=2, args=(x,))   # -> [fn(0, 2, x), fn(1, 2, x)]

``fn(rank, world_size, *args)`` must be a module-level (picklable) function; its return value is moved to the CPU
(tensors inside lists/tuples/dicts too) and handed back in rank order. Each process uses one intra-op thread so
two of them fit the 2-core CI machine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _worker(rank: int, world_size: int, fn: Callable, args: Sequence, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        torch.save(_to_cpu(result), Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ddp(fn: Callable, world_size: int = 2, args: Sequence = (), timeout_s: float = 120.0) -> list:
    """``[fn(rank, world_size, *args) for rank in range(world_size)]``, each rank in its own gloo process."""
    with tempfile.TemporaryDirectory(prefix="run_ddp_") as tmp:
        init_file = os.path.join(tmp, "init")
        ctx = mp.start_processes(_worker, args=(world_size, fn, tuple(args), init_file, tmp), nprocs=world_size,
                                 join=False, start_method="spawn")
        import time

        deadline = time.monotonic() + timeout_s
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    if p.is_alive():
                        p.terminate()
                raise TimeoutError(f"run_ddp: {fn.__name__} did not finish within {timeout_s} s")
        return [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=True) for r in range(world_size)]


def assert_same_report_numbers(a: dict, b: dict, abs_tol: float, nan_ok: bool = False) -> None:
    """Two runs' report numbers (``{"tables": {name: rows}, "claims": {id: measured}}``) agree: the same tables,
    rows, columns and claims; floats within ``abs_tol`` (NaN equal to NaN only with ``nan_ok``), everything else exactly."""
    import pytest

    assert a["tables"].keys() == b["tables"].keys() and a["claims"].keys() == b["claims"].keys()
    for name in a["tables"]:
        for ra, rb in zip(a["tables"][name], b["tables"][name], strict=True):
            assert ra.keys() == rb.keys()
            for k in ra:
                if isinstance(ra[k], float):
                    assert ra[k] == pytest.approx(rb[k], abs=abs_tol, nan_ok=nan_ok), (name, ra.get("method"), k)
                else:
                    assert ra[k] == rb[k], (name, k)
    for cid in a["claims"]:
        assert a["claims"][cid] == pytest.approx(b["claims"][cid], abs=abs_tol, nan_ok=nan_ok), cid
