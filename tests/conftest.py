"""Test-wide settings: W&B off unless a test turns it on, reports never written into the committed folder."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_torch_determinism():
    """``Trainer(deterministic=True)`` and ``set_num_threads`` change process-wide torch state; each test starts
    from the same state."""
    import torch

    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _report_dir_in_tmp(tmp_path, monkeypatch):
    """Any report a test writes goes to its own tmp folder, never to reports/."""
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    yield
