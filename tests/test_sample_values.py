"""``SampleValues``: an experiment's own per-image numbers as a torchmetrics state keyed by sample id."""

import pytest
import torch

from lightning_modules.metrics import SampleValues


def test_rows_are_sorted_by_id_and_padding_repeats_count_once():
    m = SampleValues("hits", "area")
    m.update(torch.tensor([3, 1]), hits=torch.tensor([True, False]), area=torch.tensor([0.3, 0.1]))
    m.update(torch.tensor([0, 3]), hits=torch.tensor([True, True]), area=torch.tensor([0.0, 0.3]))  # id 3: padding
    out = m.compute()
    assert out["sample_ids"].tolist() == [0, 1, 3]
    assert out["hits"].tolist() == [1.0, 0.0, 1.0] and out["area"].tolist() == pytest.approx([0.0, 0.1, 0.3])
    assert m.count() == 3 and float(m.mean("hits")) == pytest.approx(2 / 3)
    assert m.values("area").tolist() == pytest.approx([0.0, 0.1, 0.3])


def test_unknown_names_and_no_names_fail_clearly():
    with pytest.raises(ValueError, match="needs the names"):
        SampleValues()
    m = SampleValues("hits")
    with pytest.raises(ValueError, match=r"unknown values \['hit'\]"):
        m.update(torch.tensor([0]), hit=torch.tensor([1.0]))
    with pytest.raises(RuntimeError, match="before any update"):
        m.compute()
