"""khakzar2019 end to end on the smoke profile: the three benchmarks run and the report holds their claims."""

import json

from replications.khakzar2019.__main__ import main


def test_smoke_fit_writes_report_with_all_three_benchmarks(tmp_path, monkeypatch):
    out = tmp_path / "report"
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(out))
    main(["fit", "--config", "configs/khakzar2019/smoke.yaml", "--model.work_dir", str(tmp_path / "roar")])
    results = json.loads((out / "results.json").read_text())
    experiments = {c["experiment"] for c in results["claims"]}
    assert experiments == {"sanity_checks", "pixel_perturbation", "roar"}
    assert all(c["status"] in ("holds", "fails", "deviation") for c in results["claims"])
    roar = results["tables"]["roar_test_accuracy"]["rows"]
    assert [r["method"] for r in roar] == ["none (unmodified data)", "prunegrad", "gradient", "random"]
    assert 0.0 <= roar[0]["0%"] <= 1.0 and roar[0]["90%"] is None  # the reference row: unmodified data only
    assert all(0.0 <= r["30%"] <= 1.0 and 0.0 <= r["90%"] <= 1.0 for r in roar[1:])
    sanity = {r["method"]: r for r in results["tables"]["sanity_cascading_spearman_abs"]["rows"]}
    assert set(sanity) == {"prunegrad", "gradient", "guided_backprop", "gradcam"}
    # ROAR results are cached per (method, fraction, seed): a second run reuses them.
    (work,) = (tmp_path / "roar").glob("khakzar2019-smoke-*")  # one folder per ROAR setting (hash)
    assert len(list((work / "results").glob("*.json"))) == 1 + 3 * 2  # reference + methods x fractions
    for name in ("sanity_curves", "pixel_perturbation", "roar", "maps"):
        assert (out / "figures" / f"{name}.png").is_file()


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
