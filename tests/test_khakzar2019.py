"""khakzar2019 end to end on the smoke profile (benchmark v2's scenes_v2_vgg; the v1 black box as an override): the
three benchmarks run and the report holds their claims."""

import json
from dataclasses import replace

import pytest

from lightning_modules.reporting import check_results
from replications.contract import rebuild
from replications.khakzar2019.__main__ import main
from snapshots import assert_matches_snapshot


def test_smoke_fit_writes_report_with_all_three_benchmarks(tmp_path, monkeypatch):
    out = tmp_path / "report"
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(out))
    main(["fit", "--config", "configs/khakzar2019/smoke.yaml", "--model.work_dir", str(tmp_path / "roar")])
    results = json.loads((out / "results.json").read_text())
    experiments = {c["experiment"] for c in results["claims"]}
    assert experiments == {"sanity_checks", "pixel_perturbation", "roar"}
    assert all(c["status"] in ("holds", "fails", "inconclusive", "deviation", "not_valid") for c in results["claims"])
    assert results["results"]["classifier_test_accuracy"] > 0.9  # the shipped scenes_v2_vgg on v2 smoke scenes
    # three ROAR benchmarks: the v2 scenes of the test DataModule, real MNIST with Hooker's mean fill and the mask-only
    # control, and real MNIST with ROAD's noisy linear fill (the config's roar sections, in their order)
    rows = {"scenes": ["prunegrad", "gradient", "random", "oracle"], "mnist": ["prunegrad", "gradient", "random"],
            "mnist_road": ["prunegrad", "gradient", "random", "oracle"]}
    for name, methods in rows.items():
        roar = results["tables"][f"roar_{name}_test_accuracy"]["rows"]
        assert [r["method"] for r in roar] == ["none (unmodified data)", *methods]
        assert 0.0 <= roar[0]["0%"] <= 1.0 and roar[0]["90%"] is None  # the reference row: unmodified data only
        assert all(0.0 <= r["30%"] <= 1.0 and 0.0 <= r["90%"] <= 1.0 for r in roar[1:])
        assert all(0.0 <= r["mask-only accuracy 90%"] <= 1.0 for r in roar[1:])
        assert any(c.startswith(f"roar.{name}.") for c in (c["id"] for c in results["claims"]))
        plain = results["results"]["roar"][name]
        assert all(len(v) == len(plain["seeds"]) for acc in plain["accuracy"].values() for v in acc.values())
    assert all(0.0 <= r["mask-only retrained 90%"] <= 1.0 for r in results["tables"]["roar_mnist_test_accuracy"]["rows"][1:])
    assert "mask-only retrained 90%" not in results["tables"]["roar_scenes_test_accuracy"]["rows"][1]
    plain = results["results"]["roar"]
    assert plain["scenes"]["evidence"] == "evidence" and plain["mnist"]["evidence"] == "stroke"
    assert (plain["mnist"]["fill"], plain["mnist_road"]["fill"]) == ("mean", "noisy_linear")
    # the oracle ranking removes the evidence first: at 90% every evidence pixel of every image is gone
    assert plain["scenes"]["evidence_removed"]["oracle"] == 1.0 == plain["mnist_road"]["evidence_all_removed"]["oracle"]
    info = results["metrics"]["roar"]
    assert info["mnist"]["data"] == "MNISTDataModule" and info["mnist"]["image_size"] == [1, 28, 28]
    assert info["mnist"]["train_images"] == 256 and info["scenes"]["image_size"] == [3, 64, 64]
    methods = {"prunegrad", "prunegrad_active", "gradient", "guided_backprop", "gradcam"}
    sanity = {r["method"]: r for r in results["tables"]["sanity_cascading_spearman_abs"]["rows"]}
    assert set(sanity) == methods
    # (a) and (b) also on the MNIST reference model, with their claims; both pixel measures
    assert {r["method"] for r in results["tables"]["sanity_mnist_cascading_spearman_abs"]["rows"]} == methods
    for name in ("pixel_perturbation", "pixel_perturbation_mnist", "pixel_perturbation_official_measure",
                 "pixel_perturbation_mnist_official_measure"):
        assert {r["method"] for r in results["tables"][name]["rows"]} == methods | {"random", "oracle"}
    # the pixel-perturbation protocols are judged with the oracle and random maps, and every pixel claim names its own
    judged = set(results["results"]["protocol_validity"])
    assert judged == {f"pixel{m}_{o}_{k}" for m in ("", "_mnist") for o in ("morf", "lerf") for k in ("logit", "dp")}
    pixel_claims = [c for c in results["claims"] if c["experiment"] == "pixel_perturbation"]
    assert pixel_claims and all(len(c["protocols"]) == 1 and c["protocols"][0] in judged for c in pixel_claims)
    by_id = {c["id"]: c for c in pixel_claims}
    assert by_id["pixel.morf_prunegrad_best"]["protocols"] == ["pixel_morf_logit"]
    assert by_id["pixel.mnist.morf_official_measure_prunegrad_best"]["protocols"] == ["pixel_mnist_morf_dp"]
    dp = results["results"]["models"]["explained"]["pixel"]["curves"]["dp"]["morf"]
    assert all(c[0] == 0.0 and all(v >= 0 for v in c) for c in dp.values())  # |p0 - p| / p0 is 0 before any removal
    ids = {c["id"] for c in results["claims"]}
    assert {"sanity.mnist.prunegrad_passes", "pixel.mnist.lerf_prunegrad_beats_gradient", "pixel.morf_prunegrad_best",
            "pixel.lerf_official_measure_prunegrad_best", "roar.mnist.prunegrad_best"} <= ids
    # orderings carry per-image samples (per seed for ROAR with several seeds), the mean of which is the measured value
    best = next(c for c in results["claims"] if c["id"] == "pixel.lerf_prunegrad_best")
    assert set(best["samples"]) == {"prunegrad", "gradient", "guided_backprop", "gradcam"}
    assert len(best["samples"]["prunegrad"]) == results["results"]["test_images"] and best["intervals"]
    # PruneGrad's threshold rules measured on both explaining models
    rules = {r["model"]: r for r in results["tables"]["prunegrad_threshold_rules"]["rows"]}
    assert set(rules) == {"explained classifier (test passes)", "ROAR `mnist` reference model"}
    assert all(0.0 <= r["zero_score_share_min"] <= r["zero_score_share_mean"] <= r["zero_score_share_max"] <= 1.0 for r in rules.values())
    # ROAR results are cached per (method, fraction, seed): one folder per ROAR setting (hash) and benchmark
    for name, runs in (("scenes", 1 + 4 * 2), ("mnist", 1 + 2 * 3 * 2), ("mnist_road", 1 + 4 * 2)):
        (work,) = (tmp_path / "roar").glob(f"khakzar2019-smoke-{name}-*")
        # reference + methods x fractions (mnist: and the mask-only control of each)
        assert len(list((work / "results").glob("*.json"))) == runs
    for name in ("sanity_curves", "pixel_perturbation", "roar_scenes", "roar_mnist", "roar_mnist_road", "maps"):
        assert (out / "figures" / f"{name}.png").is_file()
    # the contract: the claims rebuilt from the stored results agree; only smoke-noise failures remain
    problems = check_results(results, report_dir=out, rebuild=rebuild, check_freshness=False)
    assert all(" fails" in p for p in problems), problems
    assert_matches_snapshot("khakzar2019", results)


def test_roar_sections_reject_unknown_keys_and_bad_values():
    from replications.khakzar2019.experiments import Khakzar2019Replication

    with pytest.raises(ValueError, match=r"roar.mnist: .*unknown keys \['epoch'\]"):
        Khakzar2019Replication(blackbox_profile="smoke", roar={"mnist": {"epoch": 3}})
    with pytest.raises(ValueError, match="workers"):
        Khakzar2019Replication(blackbox_profile="smoke", roar={"mnist": {"workers": 0}})


@pytest.mark.parametrize("override, named", [
    (["--model.roar.mnist.epochs", "abc"], ["epochs", "abc"]),          # a wrong type inside a ROAR section
    (["--model.roar.mnist_road.epoch", "3"], ["epoch", "not accepted"]),  # a misspelt key inside a ROAR section
    (["--model.roar.scenes.workers", "two"], ["workers", "two"]),
    (["--model.sanity.images", "x"], ["model.sanity.images", "x"]),
    (["--model.classifier.epochs", "abc"], ["epochs"]),                 # issue #42: not a load_model setting
])
def test_cli_refuses_a_bad_config_value_at_parse_time_naming_the_key(override, named, tmp_path, monkeypatch, capsys):
    """Every setting is a typed section: a wrong type or an unknown key ends the command when the config is parsed
    (exit status 2, nothing run), with a message that names the key."""
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", "configs/khakzar2019/smoke.yaml", "--model.work_dir", str(tmp_path / "roar"), *override])
    assert exit_.value.code not in (0, None)
    err = capsys.readouterr().err
    assert all(word in err for word in named), err
    assert not (tmp_path / "roar").exists() and not (tmp_path / "report").exists()


def test_id_seeded_random_maps_depend_on_the_sample_only():
    """The random baseline of the test passes: a sample's map is the same in any batch (DDP shards), differs between
    samples and seeds, and is uniform on [0, 1) (mean 1/2, std 1/sqrt(12))."""
    import torch

    from lightning_modules.explainers.baselines import id_seeded_random_maps

    a = id_seeded_random_maps(torch.tensor([0, 1, 2, 5]), (8, 8))
    b = id_seeded_random_maps(torch.tensor([5, 0]), (8, 8))
    assert a.shape == (4, 1, 8, 8)
    assert torch.equal(a[3], b[0]) and torch.equal(a[0], b[1])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, id_seeded_random_maps(torch.tensor([0, 1, 2, 5]), (8, 8), seed=1))
    big = id_seeded_random_maps(torch.arange(64), (32, 32))
    assert 0.0 <= float(big.min()) and float(big.max()) < 1.0
    assert abs(float(big.mean()) - 0.5) < 0.01 and abs(float(big.std()) - 12 ** -0.5) < 0.01


def test_cascade_summary_leaves_constant_maps_undefined_and_counts_them():
    """A map that is constant (PruneGrad's all-zero map once every path of the randomised net is pruned) has an
    undefined Spearman: it is left out of the means (a stage where every map is constant has none), counted per
    stage, and its per-image final value is None; other maps keep the metric's mean."""
    import torch
    import torch.nn as nn

    from lightning_modules.explainers import create_explainer
    from lightning_modules.tasks.randomization import ModelRandomizationTest, resolve_order
    from replications.khakzar2019.measures import cascade_summary

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
    summary = cascade_summary(test)
    raw = test.compute()["cascading"]
    assert summary["order"] == list(test.order) and summary["images"] == 5
    for stage in test.order:
        assert summary["constant"][stage] == {"gradient": 0, "pruned": 5}
        assert summary["means"][stage]["pruned"]["spearman_abs"] is None
        assert summary["means"][stage]["gradient"]["spearman_abs"] == pytest.approx(float(raw[stage]["gradient"]["spearman_abs"]))
    assert summary["final_spearman_abs"]["pruned"] == [None] * 5
    assert all(v is not None for v in summary["final_spearman_abs"]["gradient"])


def test_sanity_claim_counts_undefined_maps_as_undefined_not_a_pass():
    """All-zero maps after randomisation: the claim has no defined value and fails, it does not pass with Spearman 0;
    with a minority undefined it is judged on the defined maps."""
    from replications.khakzar2019.claims import sanity_claims

    def block(pg):
        # a two-stage cascade: the first stage as stored means, the final stage per image
        return {"order": ["fc", "conv"], "means": {"fc": {"prunegrad": {"spearman_abs": 0.5}, "guided_backprop": {"spearman_abs": 0.95}}},
                "final_spearman_abs": {"prunegrad": pg, "guided_backprop": [0.9] * len(pg)}}

    (c,) = [c for c in sanity_claims(block([None] * 8), "", "", 0.5) if c.id == "sanity.prunegrad_passes"]
    assert c.status == "fails" and c.measured["defined_share"] == 0.0
    cs = {c.id: c for c in sanity_claims(block([0.1, 0.12, 0.08, 0.11, 0.09, 0.1, None, None]), "", "", 0.5)}
    assert cs["sanity.prunegrad_passes"].status == "holds"
    assert cs["sanity.prunegrad_passes"].measured["defined_share"] == 0.75
    # the comparison with guided backprop reads the whole cascade; its final stage pairs the 6 defined maps
    cascade = cs["sanity.prunegrad_more_sensitive_than_guided_backprop"]
    assert cascade.relation.kind == "every" and len(cascade.relation.args) == 2
    assert len(cascade.samples["prunegrad@conv"]) == 6 and cascade.status == "holds"


def test_evidence_precision_and_official_pixel_measure():
    """Known answers: a map that ranks the evidence first has precision 1, the reverse 0; |p0 - p| / p0 per fraction."""
    import torch

    from replications.khakzar2019.measures import evidence_precision, pixel_block

    ev = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    ev[:, 0, 0, 0] = True
    good = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 1.0], [1.0, 1.0]]]])
    assert evidence_precision(good, ev).tolist() == [1.0, 0.0]
    curves = {"m": {o: {"logit": torch.tensor([[2.0, 1.0, 0.0]]), "prob": torch.tensor([[0.5, 0.25, 0.75]])} for o in ("morf", "lerf")}}
    b = pixel_block([0.0, 0.5, 0.9], curves)
    assert b["curves"]["dp"]["morf"]["m"] == pytest.approx([0.0, 0.5, 0.5])
    assert b["per_image"]["dp"]["lerf"]["m"] == pytest.approx([0.5])
    assert b["per_image"]["logit"]["morf"]["m"] == pytest.approx([0.5])


def test_smoke_fit_v1_scenes(tmp_path, monkeypatch):
    """The v1 setting stays available: the shipped v1 black box on the v1 scenes (the head as the evidence)."""
    import yaml

    cfg = yaml.safe_load(open("configs/khakzar2019/smoke.yaml"))
    model = cfg["model"]
    model.pop("embedded_v2")
    model.update(blackbox_profile="smoke", sanity={"images": 4, "stages": 3}, roar={"scenes": model["roar"]["scenes"]},
                 reference={"pixel_images": 0, "sanity_images": 0})
    assert model["roar"]["scenes"]["methods"] == {"prunegrad": {"percentile": 70.0, "scope": "all"}, "gradient": {},
                                                  "random": {}, "oracle": {}}
    cfg["data"] = {"class_path": "lightning_modules.data.synthetic.SyntheticScenesDataModule",
                   "init_args": {"image_size": 32, "train_size": 600, "val_size": 200, "test_size": 200,
                                 "heldout_size": 100, "max_distractors": 2, "eval_batch_size": 8}}
    path = tmp_path / "v1.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "report"
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(out))
    main(["fit", "--config", str(path), "--model.work_dir", str(tmp_path / "roar")])
    results = json.loads((out / "results.json").read_text())
    assert results["results"]["roar"]["scenes"]["evidence"] == "head"
    assert results["metrics"]["roar"]["scenes"]["image_size"] == [3, 32, 32]
    assert {r["method"] for r in results["tables"]["pixel_perturbation"]["rows"]} >= {"prunegrad", "random", "oracle"}
    assert "pixel_morf_logit" in results["results"]["protocol_validity"]


def test_explained_model_and_data_must_match():
    from lightning_modules.data.scenes_v2 import PROFILES, ScenesV2DataModule
    from lightning_modules.data.synthetic import SyntheticScenesDataModule
    from replications.khakzar2019.experiments import Khakzar2019Replication

    with pytest.raises(ValueError, match="either model.embedded_v2"):
        Khakzar2019Replication(embedded_v2="scenes_v2_vgg", classifier={"name": "resnet8"})
    v2 = Khakzar2019Replication(embedded_v2="scenes_v2_vgg", roar={})
    v2.check_data(ScenesV2DataModule(PROFILES["smoke"]))  # fewer scenes drawn as the model's: accepted
    with pytest.raises(ValueError, match="explained on the v2 scenes"):
        v2.check_data(SyntheticScenesDataModule(image_size=32))
    with pytest.raises(ValueError, match="other v2 scenes"):
        v2.check_data(ScenesV2DataModule(replace(PROFILES["smoke"], seed=5)))
    with pytest.raises(ValueError, match="cannot explain v2 scenes"):
        Khakzar2019Replication(blackbox_profile="smoke", roar={}).check_data(ScenesV2DataModule(PROFILES["smoke"]))


def test_pixel_protocols_are_judged_with_the_oracle_and_random_maps():
    from replications.contract import claims_for
    from replications.khakzar2019.claims import pixel_protocol, pixel_validity_specs

    n = 12
    good = [1.0 + 0.01 * i for i in range(n)]

    def curves(oracle, random_, methods):
        per = {"oracle": oracle, "random": random_, **methods}
        return {"morf": per, "lerf": {k: [-v for v in vals] for k, vals in per.items()}}

    # MoRF logit: lower is better; the oracle lowest, random highest, the methods apart
    morf = {"oracle": [0.0] * n, "random": [5.0] * n, "prunegrad": good, "gradient": [2.0 + x for x in good]}
    pixel = {"per_image": {"logit": curves(morf["oracle"], morf["random"], {k: morf[k] for k in ("prunegrad", "gradient")}),
                           "dp": curves([1.0] * n, [0.9] * n, {"prunegrad": [0.8] * n, "gradient": [0.5] * n})}}
    models = {"explained": {"pixel": pixel}, "mnist": {"pixel": {"per_image": {"logit": {"morf": {"prunegrad": good}}}}}}
    specs = pixel_validity_specs(models)
    assert set(specs) == {pixel_protocol("explained", o, k) for o in ("morf", "lerf") for k in ("logit", "dp")}
    assert specs["pixel_morf_logit"]["higher_is_better"] is False and specs["pixel_lerf_logit"]["higher_is_better"] is True
    assert pixel_protocol("mnist", "morf", "dp") == "pixel_mnist_morf_dp"
    claims = claims_for("khakzar2019", {"models": models | {"mnist": {}}, "roar": {}, "pass_threshold": 0.5,
                                        "pixel_output": "logit", "protocol_validity": specs}, "smoke")
    by_id = {c.id: c for c in claims}
    assert by_id["pixel.morf_prunegrad_beats_random"].protocols == ("pixel_morf_logit",)
    assert by_id["pixel.lerf_official_measure_prunegrad_best"].protocols == ("pixel_lerf_dp",)
    # the logit curves are valid (oracle best, random worst, methods apart): the claims are judged
    assert by_id["pixel.morf_prunegrad_beats_random"].status == "holds"
    assert by_id["pixel.morf_prunegrad_best"].status == "holds"
    # on the official measure random beats every real method: that protocol is not valid, its claims are not judged
    assert by_id["pixel.morf_official_measure_prunegrad_best"].status == "not_valid"
    assert by_id["pixel.lerf_official_measure_prunegrad_best"].status == "not_valid"
    # the oracle is a reference, never a compared method
    assert "oracle" not in by_id["pixel.morf_prunegrad_best"].measured
