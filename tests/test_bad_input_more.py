"""The last bad inputs of issue 42 that got through: 0..255 pixels in ``TensorDataModule``, the similarity of a
constant map, a stored deviation without a diagnostic in ``check``, ``report --help`` and a missing report folder,
and ``python -m replications | head``. Each gives a message that names the argument (or the samples) and the fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import pytest
import torch

from lightning_modules.data import TensorDataModule
from lightning_modules.metrics import MapSimilarity, RankCorrelation, UndefinedSimilarityWarning
from lightning_modules.utils import REPO_ROOT
from lightning_modules.validation import DataRootError, InputError
from test_reporting import _check, _tamper, toy  # noqa: F401  (toy: the fixture of a toy paper's written report)


# ------------------------------------------------------------------------------------------ 1. TensorDataModule
def test_tensor_datamodule_refuses_0_255_pixels_and_names_the_fix():
    labels = torch.zeros(4, dtype=torch.long)
    pixels = torch.linspace(0, 255, 4 * 3 * 8 * 8).reshape(4, 3, 8, 8)
    with pytest.raises(InputError) as e:
        TensorDataModule(train=(pixels, labels))
    assert str(e.value) == ("train images: expected values in [0, 1] pixel space (docs/CONVENTIONS.md), got values in "
                            "[0, 255]. Fix: divide by 255 (pixel values look like 0..255): images / 255")
    with pytest.raises(InputError) as e:
        TensorDataModule(train=(pixels / 255, labels), test=(pixels.to(torch.uint8), labels))
    assert str(e.value) == ("test images: expected a float tensor in [0, 1], got torch.uint8. "
                            "Fix: images.float() / 255 (uint8 pixels to [0, 1])")
    dm = TensorDataModule(train=(pixels / 255, labels), val=(pixels / 255, labels))  # [0, 1]: served as given
    assert float(next(iter(dm.train_dataloader()))["image"].max()) == pytest.approx(1.0)
    heatmaps = torch.randn(4, 1, 8, 8) * 30  # not pixels: only shapes and finiteness are checked
    TensorDataModule(train=(heatmaps, labels), pixel_range=False)
    with pytest.raises(InputError) as e:
        TensorDataModule(train=(heatmaps.masked_fill(heatmaps > 0, float("nan")), labels), pixel_range=False)
    assert str(e.value) == ("train images: expected finite values, got NaN or Inf values. "
                            "Fix: check the data pipeline (a division by zero in normalisation)")


# ------------------------------------------------------------------------------------------ 2. constant maps
def _pair():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 1, 24, 24, generator=g)
    b = a + 0.5 * torch.randn(3, 1, 24, 24, generator=g)
    b[1] = 0.0  # a constant map (e.g. a Grad-CAM map the ReLU zeroes everywhere): no ranks, no HOG gradients
    return a, b


def test_constant_map_similarity_is_marked_undefined_and_left_out_of_the_means():
    a, b = _pair()
    m = MapSimilarity()
    m.update(a, b, torch.tensor([5, 6, 7]))
    with pytest.warns(UndefinedSimilarityWarning) as seen:
        out = m.compute()
    assert len(seen) == 1
    assert str(seen[0].message) == (
        "MapSimilarity: undefined (a constant map) for sample ids [6]: spearman_abs 1 of 3, spearman_no_abs 1 of 3, "
        "hog 1 of 3; left out of the means. per_sample() marks them NaN")
    per = m.per_sample()
    assert per["ids"].tolist() == [5, 6, 7]
    for k in ("spearman_abs", "spearman_no_abs", "hog"):
        assert torch.isnan(per[k][1]) and torch.isfinite(per[k][[0, 2]]).all()  # NaN marks the undefined sample
        assert float(out[k]) == pytest.approx(float(per[k][[0, 2]].mean()))  # the mean of the defined ones, not NaN
    assert torch.isfinite(per["ssim"]).all() and float(out["ssim"]) == pytest.approx(float(per["ssim"].mean()))
    assert m.undefined_counts() == {"spearman_abs": 1, "spearman_no_abs": 1, "ssim": 0, "hog": 1}

    off = MapSimilarity(hog=False)  # hog switched off: NaN, neither warned about nor counted
    off.update(a[[0, 2]], b[[0, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isnan(off.compute()["hog"]) and off.undefined_counts()["hog"] == 0

    rc = RankCorrelation()  # no sample defined: the mean is NaN, and says so
    rc.update(a[1:2], b[1:2])
    with pytest.warns(UndefinedSimilarityWarning) as seen:
        assert torch.isnan(rc.compute())
    assert str(seen[0].message) == (
        "RankCorrelation: undefined (a constant map) for rows [0] (no sample ids given): spearman 1 of 1 "
        "(mean NaN: none defined); left out of the means. per_sample() marks them NaN")
    rc.update(a[[0, 2]], b[[0, 2]])
    with pytest.warns(UndefinedSimilarityWarning):
        assert torch.isfinite(rc.compute())


# ------------------------------------------------------------------------------------------ 3. check
def test_check_reports_a_deviation_with_a_null_diagnostic_as_a_problem_line(toy):  # noqa: F811
    repo, out = toy

    def edit(r):
        claim = next(c for c in r["claims"] if c["id"] == "x_above_y")
        assert claim["status"] == "deviation"
        claim["deviation"]["diagnostic"] = None

    _tamper(out, edit)
    problems = _check(repo, out)  # what `python -m replications check` runs on every report: no TypeError
    assert ("toy/default: claim x_above_y is malformed: its deviation has no judged diagnostic (got diagnostic null); "
            "a stored deviation carries its diagnostic's verdict. Fix: re-render the report from its stored results "
            "with `python -m replications.<paper> report` (the diagnostic is registered in "
            "replications/<paper>/deviations.py)") in problems


# ------------------------------------------------------------------------------------------ 4. report --help / folder
def test_report_help_prints_usage_and_a_missing_folder_names_the_fix(tmp_path, monkeypatch, capsys):
    from test_cli import ToyReplication

    from replications.cli import run

    with pytest.raises(SystemExit) as e:
        run(ToyReplication, "toy", args=["report", "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m replications.toy report [-h] [folder]\n")

    missing = tmp_path / "nowhere"
    expected = (f"report folder: expected a report folder holding results.json, got {missing}, which does not exist. "
                "Fix: pass a folder written by `python -m replications.toy fit` (reports/toy/ for the default "
                "profile, outputs/reports/toy/<profile>/ for the others), or run the fit first")
    with pytest.raises(DataRootError) as err:  # from Python: the error propagates
        run(ToyReplication, "toy", args=["report", str(missing)])
    assert str(err.value) == expected
    monkeypatch.delenv("SALIENCY_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["toy", "report", str(missing)])
    with pytest.raises(SystemExit) as e:  # from the command line: the message and status 2, no traceback
        run(ToyReplication, "toy")
    assert e.value.code == 2
    assert capsys.readouterr().err == f"error: {expected}\n"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataRootError, match=re.escape(f"got {tmp_path / 'empty'}, which has no results.json. Fix:")):
        run(ToyReplication, "toy", args=["report", str(tmp_path / "empty")])


# ------------------------------------------------------------------------------------------ 5. | head
def _into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as `| head` after its lines
    try:
        return subprocess.run([sys.executable, *args], stdout=write_end, stderr=subprocess.PIPE, cwd=REPO_ROOT,
                              timeout=300)
    finally:
        os.close(write_end)


def test_listing_into_a_closed_pipe_exits_quietly():
    proc = _into_closed_pipe(["-m", "replications"])  # the pipe closed during rich's table
    assert (proc.returncode, proc.stderr.decode()) == (1, "")
    # closed during a plain print (`| head` after the table: the BrokenPipeError of the issue)
    proc = _into_closed_pipe(["-c", "import sys; import replications.__main__ as m; "
                                    "m.cmd_list = lambda: print('row\\n' * 20000) or 0; sys.exit(m.entry([]))"])
    assert (proc.returncode, proc.stderr.decode()) == (1, "")
