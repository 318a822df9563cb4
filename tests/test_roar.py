"""ROAR (Hooker et al. 2019): pixel removal, the random baseline, and a resumable retraining pipeline."""

import json

import pytest
import torch

from lightning_modules.tasks.roar import random_attributions, remove_top_fraction, summarize


def test_remove_top_fraction_replaces_exactly_the_top_pixels():
    images = torch.rand(2, 3, 4, 4)
    attr = torch.arange(16.0).view(1, 1, 4, 4).repeat(2, 1, 1, 1)
    attr[1] = attr[1].flip(-1)  # second image ranks the other way round per row
    fill = torch.tensor([0.1, 0.2, 0.3])
    out = remove_top_fraction(images, attr, 0.25, fill)  # 4 of 16 pixels
    removed = (out != images).any(1)
    assert removed.sum(dim=(1, 2)).tolist() == [4, 4]
    assert removed[0].flatten()[-4:].all()  # the last row has the largest squared scores in image 0
    assert torch.equal(out[0, :, 3, 0], fill)
    assert removed[1, 3].tolist() == [True, True, True, True]
    assert torch.equal(out[:, :, :3], images[:, :, :3])  # untouched elsewhere


def test_squared_estimator_ranks_negative_attributions_high_and_kar_is_the_complement():
    images = torch.rand(1, 1, 1, 4)
    attr = torch.tensor([[[[0.1, -5.0, 0.2, 0.3]]]])
    fill = torch.tensor([9.0])
    out = remove_top_fraction(images, attr, 0.25, fill)
    assert out[0, 0, 0, 1] == 9.0 and (out[0, 0, 0, [0, 2, 3]] == images[0, 0, 0, [0, 2, 3]]).all()
    out_raw = remove_top_fraction(images, attr, 0.25, fill, estimator="raw")
    assert out_raw[0, 0, 0, 3] == 9.0
    kar = remove_top_fraction(images, attr, 0.25, fill, keep=True)
    assert kar[0, 0, 0, 0] == 9.0  # the least important pixel goes first in KAR


def test_fraction_edges_and_bad_input():
    images = torch.rand(2, 3, 4, 4)
    attr = torch.rand(2, 1, 4, 4)
    fill = torch.zeros(3)
    assert torch.equal(remove_top_fraction(images, attr, 0.0, fill), images)
    assert torch.equal(remove_top_fraction(images, attr, 1.0, fill), torch.zeros_like(images))
    with pytest.raises(ValueError, match="fraction"):
        remove_top_fraction(images, attr, 1.5, fill)
    with pytest.raises(ValueError, match="do not match"):
        remove_top_fraction(images, attr[:1], 0.5, fill)
    with pytest.raises(ValueError, match="estimator"):
        remove_top_fraction(images, attr, 0.5, fill, estimator="cubed")


def test_random_baseline_is_seeded():
    assert torch.equal(random_attributions((2, 1, 4, 4), 3), random_attributions((2, 1, 4, 4), 3))
    assert not torch.equal(random_attributions((2, 1, 4, 4), 3), random_attributions((2, 1, 4, 4), 4))


def test_summarize_averages_over_seeds():
    rows = [
        {"method": "g", "fraction": 0.1, "seed": 0, "test_accuracy": 0.8},
        {"method": "g", "fraction": 0.1, "seed": 1, "test_accuracy": 0.6},
        {"method": "g", "fraction": 0.5, "seed": 0, "test_accuracy": 0.5},
    ]
    assert summarize(rows) == {"g": {0.1: pytest.approx(0.7), 0.5: 0.5}}


class _KillAt:
    """A callback that 'kills' the run when the given job reaches the given epoch."""

    def __new__(cls, run_name: str, epoch: int):
        from lightning.pytorch.callbacks import Callback

        class Kill(Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if run_name in str(trainer.default_root_dir) and trainer.current_epoch == epoch:
                    raise RuntimeError("simulated kill")

        return Kill()


def _toy_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 3, 16, 16, generator=g)
    y = (x[:, :, :, :8].mean(dim=(1, 2, 3)) > x[:, :, :, 8:].mean(dim=(1, 2, 3))).long()
    attr = torch.rand(96, 1, 16, 16, generator=g)
    return (x[:64], y[:64]), (x[64:], y[64:]), {"a": (attr[:64], attr[64:])}


def test_pipeline_resumes_after_a_kill_and_ends_with_the_same_table(tmp_path):
    from lightning_modules.tasks.roar import RoarConfig, RoarPipeline

    train, test, attributions = _toy_problem()
    cfg = RoarConfig(model_name="scenes_cnn", model_kwargs={"width": 4}, fractions=(0.2, 0.6), seeds=(0,), max_epochs=2, batch_size=16)
    full = RoarPipeline(cfg, tmp_path / "full", num_classes=2).run(train, test, attributions)
    assert [(r["method"], r["fraction"]) for r in full] == [("none", 0.0), ("a", 0.2), ("a", 0.6)]

    work = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="simulated kill"):
        RoarPipeline(cfg, work, num_classes=2, callbacks=[_KillAt("a_0.60_0", 1)]).run(train, test, attributions)
    assert (work / "results" / "a_0.20_0.json").is_file()          # the first job finished and was kept
    assert not (work / "results" / "a_0.60_0.json").exists()       # the second was interrupted ...
    assert (work / "runs" / "a_0.60_0" / "last.ckpt").is_file()    # ... after its first epoch's checkpoint
    first = json.loads((work / "results" / "a_0.20_0.json").read_text())

    resumed = RoarPipeline(cfg, work, num_classes=2).run(train, test, attributions)
    assert json.loads((work / "results" / "a_0.20_0.json").read_text()) == first  # not retrained
    assert resumed == full


def test_worker_processes_give_the_same_table_and_costs_beside_it(tmp_path):
    """``RoarConfig.workers=2``: the retrainings run in two one-thread worker processes (the model's registering
    module imported there), with the same rows in the same order and each run's cost written beside it; callbacks
    (this process only) and a worker count below 1 are refused."""
    from lightning_modules.tasks.roar import RoarConfig, RoarPipeline

    train, test, attributions = _toy_problem()
    attributions["b"] = (attributions["a"][0].flip(-1), attributions["a"][1].flip(-1))
    kwargs = dict(model_name="scenes_cnn", model_kwargs={"width": 4}, fractions=(0.2, 0.6), seeds=(0, 1),
                  max_epochs=1, batch_size=16, mask_only_control=True)
    serial = RoarPipeline(RoarConfig(**kwargs), tmp_path / "serial", num_classes=2).run(train, test, attributions)
    pipe = RoarPipeline(RoarConfig(**kwargs, workers=2), tmp_path / "parallel", num_classes=2)
    parallel = pipe.run(train, test, attributions)
    assert parallel == serial and len(parallel) == 2 + 2 * 2 * 2 * 2
    assert all(pipe.timing(r)["cpu_s"] > 0 for r in parallel)
    with pytest.raises(ValueError, match="callbacks"):
        RoarPipeline(RoarConfig(**kwargs, workers=2), tmp_path / "cb", num_classes=2,
                     callbacks=[_KillAt("x", 0)]).run(train, test, attributions)
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        RoarConfig(workers=0)


def test_reference_row_is_the_unmodified_retraining_and_its_model_reproduces_its_accuracy(tmp_path):
    """The "none" row retrains on the unmodified data (= fraction 0 of any method); ``trained_model`` returns
    that network, whose accuracy on the test set is the row's accuracy."""
    from lightning_modules.tasks.roar import RoarConfig, RoarPipeline

    train, test, attributions = _toy_problem()
    cfg = RoarConfig(model_name="scenes_cnn", model_kwargs={"width": 4}, fractions=(0.0,), seeds=(0,), max_epochs=1, batch_size=16)
    pipe = RoarPipeline(cfg, tmp_path, num_classes=2)
    rows = pipe.run(train, test, attributions)
    assert rows[0]["method"] == "none" and rows[1]["method"] == "a"
    assert rows[0]["test_accuracy"] == rows[1]["test_accuracy"]  # removing 0% changes nothing
    model = pipe.trained_model("none", 0.0, 0)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        acc = (model(test[0]).argmax(1) == test[1]).float().mean().item()
    assert acc == pytest.approx(rows[0]["test_accuracy"], abs=1e-6)
    with pytest.raises(FileNotFoundError, match="run it first"):
        pipe.trained_model("a", 0.5, 0)
    with pytest.raises(ValueError, match="reference row"):
        pipe.run(train, test, {"none": attributions["a"]})


def test_downsample_retrains_on_pooled_copies_of_the_full_resolution_removal(tmp_path):
    """``downsample=2``: pixels are removed at full resolution, then the images are 2x2 average-pooled: the same
    table as removing first and pooling by hand with ``downsample=1``."""
    import torch.nn.functional as F

    from lightning_modules.tasks.roar import RoarConfig, RoarPipeline, remove_top_fraction

    train, test, attributions = _toy_problem()
    cfg = RoarConfig(model_name="scenes_cnn", model_kwargs={"width": 4}, fractions=(0.5,), seeds=(0,), max_epochs=1,
                     batch_size=16, reference=False, downsample=2)
    pooled = RoarPipeline(cfg, tmp_path / "a", num_classes=2).run(train, test, attributions)
    fill = train[0].mean(dim=(0, 2, 3))
    by_hand = {"a": (attributions["a"][0], attributions["a"][1])}
    x_tr = F.avg_pool2d(remove_top_fraction(train[0], by_hand["a"][0], 0.5, fill), 2)
    x_te = F.avg_pool2d(remove_top_fraction(test[0], by_hand["a"][1], 0.5, fill), 2)
    cfg1 = RoarConfig(**{**cfg.__dict__, "downsample": 1, "fractions": (0.0,)})
    ref = RoarPipeline(cfg1, tmp_path / "b", num_classes=2).run((x_tr, train[1]), (x_te, test[1]),
                                                                 {"a": (torch.zeros(64, 1, 8, 8), torch.zeros(32, 1, 8, 8))})
    assert pooled[0]["test_accuracy"] == ref[0]["test_accuracy"]
    with pytest.raises(ValueError, match="downsample"):
        RoarPipeline(RoarConfig(**{**cfg.__dict__, "downsample": 0}), tmp_path / "c", num_classes=2).run(train, test, attributions)


def test_retraining_runs_at_the_pinned_thread_count_and_restores_the_callers(tmp_path):
    """``RoarConfig.threads`` pins torch's CPU threads during each retraining (results depend on the count) and
    gives the caller's setting back afterwards."""
    from lightning.pytorch.callbacks import Callback

    from lightning_modules.tasks.roar import RoarConfig, RoarPipeline

    seen = []

    class Record(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            seen.append(torch.get_num_threads())

    train, test, attributions = _toy_problem()
    cfg = RoarConfig(model_name="scenes_cnn", model_kwargs={"width": 4}, fractions=(0.5,), seeds=(0,), max_epochs=1,
                     batch_size=16, reference=False, threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        RoarPipeline(cfg, tmp_path, num_classes=2, callbacks=[Record()]).run(train, test, attributions)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_timings_are_recorded_beside_results_and_attributions(tmp_path):
    """Each retraining's and each attribution computation's wall / CPU seconds are kept beside the cached result,
    so a run that reuses them can state the whole benchmark's cost; reused rows are listed."""
    from lightning_modules.tasks.roar import RoarConfig, RoarPipeline, attribution_timing, cached_attributions

    train, test, attributions = _toy_problem()
    cfg = RoarConfig(model_name="scenes_cnn", model_kwargs={"width": 4}, fractions=(0.5,), seeds=(0,), max_epochs=1,
                     batch_size=16)
    first = RoarPipeline(cfg, tmp_path, num_classes=2)
    first.run_reference(train, test)  # as RoarTorch's protocol does before the attributions: not a reuse
    rows = first.run(train, test, attributions)
    assert first.reused == [] and first.timing(rows[0])["wall_s"] > 0 and first.timing(rows[0])["cpu_s"] > 0
    again = RoarPipeline(cfg, tmp_path, num_classes=2)
    assert again.run(train, test, attributions) == rows and again.reused == rows
    maps = cached_attributions(tmp_path / "a.pt", lambda: torch.ones(2, 1, 4, 4))
    assert attribution_timing(tmp_path / "a.pt")["wall_s"] >= 0 and attribution_timing(tmp_path / "b.pt") == {}
    assert torch.equal(cached_attributions(tmp_path / "a.pt", lambda: torch.zeros(2, 1, 4, 4)), maps)  # cached, not recomputed
