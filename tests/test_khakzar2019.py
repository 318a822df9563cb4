"""khakzar2019 end to end on the smoke profile: the three benchmarks run and the report holds their claims."""

import json

import pytest

from replications.khakzar2019.__main__ import main


def test_smoke_fit_writes_report_with_all_three_benchmarks(tmp_path, monkeypatch):
    out = tmp_path / "report"
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(out))
    main(["fit", "--config", "configs/khakzar2019/smoke.yaml", "--model.work_dir", str(tmp_path / "roar")])
    results = json.loads((out / "results.json").read_text())
    experiments = {c["experiment"] for c in results["claims"]}
    assert experiments == {"sanity_checks", "pixel_perturbation", "roar"}
    assert all(c["status"] in ("holds", "fails", "deviation") for c in results["claims"])
    # two ROAR benchmarks: the scenes of the test DataModule and real MNIST (roar_extra)
    for name in ("scenes", "mnist"):
        roar = results["tables"][f"roar_{name}_test_accuracy"]["rows"]
        assert [r["method"] for r in roar] == ["none (unmodified data)", "prunegrad", "gradient", "random"]
        assert 0.0 <= roar[0]["0%"] <= 1.0 and roar[0]["90%"] is None  # the reference row: unmodified data only
        assert all(0.0 <= r["30%"] <= 1.0 and 0.0 <= r["90%"] <= 1.0 for r in roar[1:])
        assert any(c.startswith(f"roar.{name}.") for c in (c["id"] for c in results["claims"]))
    info = results["metrics"]["roar"]
    assert info["mnist"]["data"] == "MNISTDataModule" and info["mnist"]["image_size"] == [1, 28, 28]
    assert info["mnist"]["train_images"] == 256 and info["scenes"]["image_size"] == [3, 32, 32]
    methods = {"prunegrad", "prunegrad_official", "gradient", "guided_backprop", "gradcam"}
    sanity = {r["method"]: r for r in results["tables"]["sanity_cascading_spearman_abs"]["rows"]}
    assert set(sanity) == methods
    # (a) and (b) also on the MNIST reference model, with their claims
    assert {r["method"] for r in results["tables"]["sanity_mnist_cascading_spearman_abs"]["rows"]} == methods
    assert {r["method"] for r in results["tables"]["pixel_perturbation_mnist"]["rows"]} == methods | {"random"}
    ids = {c["id"] for c in results["claims"]}
    assert {"sanity.mnist.prunegrad_passes", "pixel.mnist.lerf_prunegrad_beats_gradient"} <= ids
    # PruneGrad's threshold rules measured on both explaining models
    rules = {r["model"]: r for r in results["tables"]["prunegrad_threshold_rules"]["rows"]}
    assert set(rules) == {"explained classifier (test passes)", "ROAR `mnist` reference model"}
    assert all(0.0 <= r["zero_score_share_min"] <= r["zero_score_share_mean"] <= r["zero_score_share_max"] <= 1.0 for r in rules.values())
    # ROAR results are cached per (method, fraction, seed): one folder per ROAR setting (hash) and benchmark
    for name in ("scenes", "mnist"):
        (work,) = (tmp_path / "roar").glob(f"khakzar2019-smoke-{name}-*")
        assert len(list((work / "results").glob("*.json"))) == 1 + 3 * 2  # reference + methods x fractions
    for name in ("sanity_curves", "pixel_perturbation", "roar_scenes", "roar_mnist", "maps"):
        assert (out / "figures" / f"{name}.png").is_file()


def test_roar_extra_rejects_unknown_keys_and_repeated_names():
    import pytest

    from replications.khakzar2019.experiments import Khakzar2019Replication

    with pytest.raises(ValueError, match="unknown keys"):
        Khakzar2019Replication(blackbox_profile="smoke", roar_extra={"mnist": {"epoch": 3}})
    with pytest.raises(ValueError, match="repeats the name"):
        Khakzar2019Replication(blackbox_profile="smoke", roar_extra={"scenes": {"epochs": 3}})


def test_id_seeded_random_maps_depend_on_the_sample_only():
    """The random baseline of the test passes: a sample's map is the same in any batch (DDP shards), differs between
    samples and seeds, and is uniform on [0, 1) (mean 1/2, std 1/sqrt(12))."""
    import torch

    from replications.khakzar2019.experiments import id_seeded_random_maps

    a = id_seeded_random_maps(torch.tensor([0, 1, 2, 5]), (8, 8))
    b = id_seeded_random_maps(torch.tensor([5, 0]), (8, 8))
    assert a.shape == (4, 1, 8, 8)
    assert torch.equal(a[3], b[0]) and torch.equal(a[0], b[1])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, id_seeded_random_maps(torch.tensor([0, 1, 2, 5]), (8, 8), seed=1))
    big = id_seeded_random_maps(torch.arange(64), (32, 32))
    assert 0.0 <= float(big.min()) and float(big.max()) < 1.0
    assert abs(float(big.mean()) - 0.5) < 0.01 and abs(float(big.std()) - 12 ** -0.5) < 0.01


def test_cascade_summary_counts_constant_maps_as_zero_correlation_and_reports_them():
    """A map that is constant (PruneGrad's all-zero map once every path of the randomised net is pruned) has an
    undefined Spearman: it counts as 0 in the summary and is counted per stage; other maps keep their mean."""
    import torch
    import torch.nn as nn

    from lightning_modules.explainers import create_explainer
    from lightning_modules.tasks.randomization import ModelRandomizationTest, resolve_order
    from replications.khakzar2019.experiments import cascade_summary

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    net.num_classes = 3

    def zero_after_randomisation(model, images, targets):
        # the original model gives the gradient; any randomised copy an all-zero map
        maps = create_explainer("gradient")(model, images, targets)
        return maps if model is net else torch.zeros_like(maps)

    test = ModelRandomizationTest({"gradient": create_explainer("gradient"), "pruned": zero_after_randomisation},
                                  resolve_order(net), modes=("cascading",), seed=0, keep_examples=0)
    x = torch.rand(5, 1, 8, 8)
    test.update(net, x, torch.tensor([0, 1, 2, 0, 1]), torch.arange(5))
    summary, constant = cascade_summary(test)
    raw = test.compute()["cascading"]
    for stage in test.order:
        assert constant[stage] == {"gradient": 0, "pruned": 5}
        assert float(summary[stage]["pruned"]["spearman_abs"]) == 0.0
        assert torch.isnan(raw[stage]["pruned"]["spearman_abs"])  # the metric's own mean has no value
        assert float(summary[stage]["gradient"]["spearman_abs"]) == pytest.approx(float(raw[stage]["gradient"]["spearman_abs"]))
