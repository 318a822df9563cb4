"""The experiment interface (lightning_modules/experiment.py): maps computed once per batch and shared, derived
contexts with their own cache, experiments updated only on their splits, results merged without overwriting."""

import pytest
import torch
import torch.nn as nn

from lightning_modules.experiment import BatchContext, Experiment, ExperimentReplication
from lightning_modules.metrics import SampleValues


def _batch(n=3):
    return {"image": torch.rand(n, 3, 8, 8), "label": torch.arange(n), "id": torch.arange(n)}


class _Counting:
    def __init__(self):
        self.calls = []

    def __call__(self, method, ctx):
        self.calls.append((ctx.split, method))
        return torch.full((ctx.images.shape[0], 1, 8, 8), float(len(self.calls)))


def test_each_map_is_computed_once_per_batch_and_shared():
    explain = _Counting()
    ctx = BatchContext(_batch(), "test", 0, nn.Identity(), ["a", "b"], explain)
    first = ctx.map("a")
    assert ctx.maps() == {"a": first, "b": ctx.map("b")}
    assert ctx.map("a") is first and explain.calls == [("test", "a"), ("test", "b")]
    with pytest.raises(KeyError, match="no map 'c'"):
        ctx.map("c")
    assert ctx.cached("k", lambda: 1) == 1 and ctx.cached("k", lambda: 2) == 1
    derived = ctx.derive({**_batch(2), "image": torch.zeros(2, 3, 8, 8)}, "adversarial")
    assert derived.map("a").shape[0] == 2 and explain.calls[-1] == ("adversarial", "a")


class _Rows(Experiment):
    def __init__(self, name, key, splits=("test",)):
        super().__init__()
        self.name, self.key, self.splits = name, key, splits
        self.rows = SampleValues("v")

    def update(self, ctx):
        self.rows.update(ctx.ids, v=ctx.map("a").flatten(1).mean(1))

    def compute(self):
        return {"shared": {self.name: self.rows.compute()["v"].tolist()}, self.key: self.rows.count()}


class _Toy(ExperimentReplication):
    def __init__(self, experiments):
        super().__init__()
        self.add_experiments(experiments)
        self.test_splits = ["test", "heldout"]
        self.explained = _Counting()

    def explain(self, method, ctx):
        return self.explained(method, ctx)

    def model_for(self, split):
        return nn.Identity()

    def methods_for(self, split):
        return ["a"]


def test_the_loop_updates_each_experiment_on_its_splits_and_merges_results():
    toy = _Toy([_Rows("x", "n_x"), _Rows("y", "n_y", splits=("test", "heldout"))])
    toy.test_step(_batch(), 0, dataloader_idx=0)
    toy.test_step(_batch(), 0, dataloader_idx=1)
    assert toy.explained.calls == [("test", "a"), ("heldout", "a")]  # one map per batch for both experiments
    toy.on_test_epoch_end()
    assert toy.results["n_x"] == 3 and toy.results["n_y"] == 3  # heldout ids repeat the test ids (de-duplicated)
    assert set(toy.results["shared"]) == {"x", "y"}


def test_experiments_may_not_report_a_number_twice():
    with pytest.raises(ValueError, match="unique name"):
        _Toy([_Rows("x", "n"), _Rows("x", "m")])
    toy = _Toy([_Rows("x", "n"), _Rows("y", "n")])
    toy.test_step(_batch(), 0)
    with pytest.raises(ValueError, match="reports 'n' again"):
        toy.on_test_epoch_end()
