"""adebayo2018 end to end: the smoke profile through the CLI, and the paper profile's config parsing."""

import json
from pathlib import Path

import pytest
import torch

from replications.adebayo2018.data import SanityChecksData
import yaml

from replications.adebayo2018.replication import AdebayoReplication
from replications.cli import run

REPO = Path(__file__).resolve().parents[1]


def test_smoke_fit_writes_report(tmp_path, monkeypatch):
    from lightning_modules.reporting import check_results
    from replications.contract import rebuild
    from snapshots import assert_matches_snapshot

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    cli = run(AdebayoReplication, "adebayo2018", datamodule_class=SanityChecksData,
              args=["fit", "--config", str(REPO / "configs/adebayo2018/smoke.yaml")])
    out = tmp_path / "report"
    res = json.loads((out / "results.json").read_text())
    assert (out / "README.md").is_file()
    for fig in res["figures"].values():
        assert (out / fig["path"]).is_file()
    # Figures: the stage grid and the similarity curves of every randomised model, the maps of every data test.
    assert {"scenes_v2_cascading_grid", "scenes_v2_cascading_curves", "scenes_v2_independent_curves",
            "digits_cascading_grid", "digits_independent_grid", "digits_data_randomisation_maps",
            "scenes_v2_data_randomisation_maps"} <= set(res["figures"])
    by_id = {c["id"]: c for c in res["claims"]}
    for exp in ("digits", "scenes_v2"):  # data randomisation on the digits and on the v2 scenes
        assert {f"{exp}_random_label_model_memorises", f"{exp}_data_gbp_more_invariant_than_gradient",
                f"{exp}_data_gradient_gradcam_change", f"{exp}_data_edge_detector_model_independent"} <= set(by_id)
    for model in ("scenes_v2", "digits"):  # model randomisation of the black box and of the digit CNN
        assert {f"{model}_gbp_more_invariant_than_gradient", f"{model}_guided_gradcam_more_invariant_than_gradcam",
                f"{model}_gradient_gradcam_change", f"{model}_edge_detector_model_independent",
                f"{model}_gbp_resembles_edge_detector"} <= set(by_id)  # + Fig. 1: failing methods look like an edge detector
    for c in res["claims"]:
        assert "known_deviation" not in c and c["status"] in ("holds", "fails", "inconclusive", "deviation", "sanity")
    # Orderings and thresholds on similarities are judged on per-image samples (paired bootstrap).
    for cid in ("scenes_v2_gbp_more_invariant_than_gradient", "digits_data_gradient_gradcam_change",
                "scenes_v2_gbp_resembles_edge_detector"):
        c = by_id[cid]
        assert c["samples"] and all(len(v) == len(next(iter(c["samples"].values()))) for v in c["samples"].values())
        assert c["intervals"]
    # The edge detector does not depend on the model: a sanity row (it holds by construction), never a claim.
    for cid in ("scenes_v2_edge_detector_model_independent", "digits_edge_detector_model_independent",
                "digits_data_edge_detector_model_independent", "scenes_v2_data_edge_detector_model_independent"):
        assert by_id[cid]["kind"] == "sanity" and by_id[cid]["status"] == "sanity", cid
    # Both class conventions, every method at every stage of both models, both modes.
    methods = yaml.safe_load((REPO / "configs/adebayo2018/smoke.yaml").read_text())["model"]["methods"]
    mr = res["results"]["model_randomisation"]
    assert set(mr) == {"scenes_v2", "digits"}
    # the VGG's stages: the classifier, then each conv layer with its BatchNorm as one block
    assert mr["scenes_v2"]["order"][:2] == ["classifier", "features.23+features.24"] and len(mr["scenes_v2"]["order"]) == 9
    for model in ("scenes_v2", "digits"):
        assert set(mr[model]["by_convention"]) == {"original", "retaken"}
        for conv in ("original", "retaken"):
            for mode in ("cascading", "independent"):
                for stage, by_method in mr[model]["by_convention"][conv][mode].items():
                    assert set(by_method) == set(methods), (model, mode, stage)
        for mode in ("cascading", "independent"):
            assert all(0.0 <= a <= 1.0 for a in mr[model]["agreement"][mode].values())
    # Signed maps: the signed column differs from the absolute one for the gradient (it used to equal it).
    g = mr["digits"]["by_convention"]["retaken"]["cascading"][mr["digits"]["order"][0]]["gradient"]["summary"]
    assert g["spearman_abs"]["mean"] != g["spearman_no_abs"]["mean"]
    edge = res["results"]["similarity_to_edge_detector"]
    assert set(edge) == {"scenes_v2", "digits"} and all(set(v) == set(methods) - {"sobel"} for v in edge.values())
    dr = res["results"]["data_randomisation"]
    assert set(dr) == {"digits", "scenes_v2"}
    for d in dr.values():  # the paper's comparison and the controls, both conventions, every method
        assert set(d["pairs"]) == {"random_vs_true", "control_vs_true", "random_vs_control", "control_seed_vs_control"}
        # both class conventions for the paper's comparison, the claims' (re-taken) one for the controls
        assert {p: set(by_conv) for p, by_conv in d["pairs"].items()} == {
            "random_vs_true": {"original", "retaken"}, "control_vs_true": {"retaken"}, "random_vs_control": {"retaken"},
            "control_seed_vs_control": {"retaken"}}
        assert all(set(v) == set(methods) for by_conv in d["pairs"].values() for v in by_conv.values())
    tr = {k: v["training"] for k, v in dr.items()}
    for kind in ("random", "control", "control_seed"):  # the controls see the random-label model's subset
        assert tr["digits"][kind]["train_images"] == 64 and tr["scenes_v2"][kind]["train_images"] == 32
    assert tr["digits"]["control_seed"]["seed"] == tr["digits"]["control"]["seed"] + 1
    assert tr["scenes_v2"]["true"]["train_images"] == 600
    for exp in tr.values():
        for kind in ("true", "random", "control", "control_seed"):
            assert 0.0 <= exp[kind]["train_accuracy"] <= 1.0 and 0.0 <= exp[kind]["test_accuracy"] <= 1.0
    # Randomisation acts on deep copies: the black box the replication explained (and reused as the scenes'
    # true-label model) still holds exactly the shipped weights.
    _assert_blackbox_untouched(cli.model, "scenes_v2", "scenes_v2_vgg")
    # The contract: `check` rebuilds the same claims from the stored results; smoke numbers are noise, so only
    # `fails` of claims may be reported.
    problems = check_results(res, report_dir=out, rebuild=rebuild, check_freshness=False)
    assert all("fails" in p for p in problems), problems
    assert_matches_snapshot("adebayo2018", res)


def _assert_blackbox_untouched(module, key: str, shipped: str) -> None:
    from lightning_modules.models import unwrap
    from lightning_modules.models.shipped import load_shipped

    cached, _ = load_shipped(shipped)
    state = unwrap(module.blackbox).state_dict()
    assert cached.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(v.cpu(), cached[k]), k
    assert module.trained[key]["true"] is module.blackbox
    assert module.trained[key]["random"] is not module.blackbox


def test_smoke_fit_v1_scenes(tmp_path, monkeypatch):
    # The v1 setting stays available: the v1 scenes CNN (layer by layer) on the v1 scenes.
    from lightning_modules.reporting import check_results
    from replications.contract import rebuild

    cfg = yaml.safe_load((REPO / "configs/adebayo2018/smoke.yaml").read_text())
    cfg["model"].update(embedded_v2=None, blackbox_order=None, blackbox_profile="smoke", methods=["gradient", "guided_backprop"],
                        explainer_kwargs={},
                        data_randomisation={"scenes": {
                            "dataset": "scenes", "true_labels": "blackbox", "controls": False,
                            "random_labels": {"model_name": "scenes_cnn", "model_kwargs": {"width": 8}, "max_epochs": 1,
                                              "lr": 0.002, "batch_size": 16, "subset": 32}},
                            "digits": cfg["model"]["data_randomisation"]["digits"]})
    cfg["data"]["scenes_source"] = "scenes"
    (tmp_path / "v1.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    cli = run(AdebayoReplication, "adebayo2018", datamodule_class=SanityChecksData,
              args=["fit", "--config", str(tmp_path / "v1.yaml")])
    res = json.loads((tmp_path / "report" / "results.json").read_text())
    mr = res["results"]["model_randomisation"]
    assert set(mr) == {"scenes", "digits"} and "+" not in "".join(mr["scenes"]["order"])
    assert {"scenes_gbp_more_invariant_than_gradient", "scenes_random_label_model_memorises"} <= {c["id"] for c in res["claims"]}
    assert "synthetic scenes (v1)" in (tmp_path / "report" / "README.md").read_text()
    _assert_blackbox_untouched(cli.model, "scenes", "blackbox_smoke")
    problems = check_results(res, report_dir=tmp_path / "report", rebuild=rebuild, check_freshness=False)
    assert all("fails" in p for p in problems), problems


def test_paper_config_parses():
    # The published setting's config is valid for the CLI (classes instantiate only with the data present).
    with pytest.raises(SystemExit) as e:
        run(AdebayoReplication, "adebayo2018", datamodule_class=SanityChecksData,
            args=["fit", "--config", str(REPO / "configs/adebayo2018/paper.yaml"), "--print_config"])
    assert e.value.code == 0


def test_bad_config_fails_early():
    with pytest.raises(ValueError, match="unknown mode"):
        AdebayoReplication(modes=["cascade"])
    with pytest.raises(ValueError, match="explainer_kwargs"):
        AdebayoReplication(methods=["gradient"], explainer_kwargs={"smoothgrad": {}})
    with pytest.raises(ValueError, match="digits source"):
        SanityChecksData(digits="fashion")
    with pytest.raises(ValueError, match="digits_roots names"):
        SanityChecksData(digits="mnist", digits_roots={"fashion_mnist": "x"})
    with pytest.raises(ValueError, match="same architecture"):
        AdebayoReplication(data_randomisation={"m": {"dataset": "mnist", "true_labels": {"model_name": "mnist_cnn"},
                                                     "random_labels": {"model_name": "mnist_mlp"}}})
    with pytest.raises(ValueError, match="needs dataset: one of"):
        AdebayoReplication(data_randomisation={"m": {"dataset": "mnist", "true_labels": "blackbox"}})
    with pytest.raises(ValueError, match="model_randomisation names"):
        AdebayoReplication(data_randomisation={"s": {"dataset": "scenes", "true_labels": "blackbox"}},
                           model_randomisation=["s"])
    with pytest.raises(ValueError, match="not both"):
        AdebayoReplication(embedded_v2="scenes_v2_vgg", blackbox_model="inception_v3")
    with pytest.raises(ValueError, match="scenes_source must be one of"):
        SanityChecksData(scenes_source="scenes_v3")
    with pytest.raises(ValueError, match="subset of methods"):
        AdebayoReplication(methods=["gradient"], data_randomisation={"m": {"dataset": "mnist", "methods": ["gradcam"]}})


def test_blackbox_and_scenes_must_match(monkeypatch):
    # The v2 model is explained on the v2 scenes, the v1 CNN on the v1 scenes; a mismatch names the setting to change.
    from types import SimpleNamespace

    for kwargs, source, match in (({"embedded_v2": "scenes_v2_vgg"}, "scenes", "scenes_source: scenes_v2"),
                                  ({}, "scenes_v2", "need model.embedded_v2")):
        module = AdebayoReplication(**kwargs)
        monkeypatch.setattr(AdebayoReplication, "trainer", SimpleNamespace(datamodule=SimpleNamespace(blackbox_data=source)),
                            raising=False)
        with pytest.raises(ValueError, match=match):
            module._load_blackbox()
