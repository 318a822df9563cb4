"""adebayo2018 end to end: the smoke profile through the CLI, and the paper profile's config parsing."""

import json
from pathlib import Path

import pytest

from replications.adebayo2018.data import SanityChecksData
import yaml

from replications.adebayo2018.experiments import AdebayoReplication
from replications.cli import run

REPO = Path(__file__).resolve().parents[1]


def test_smoke_fit_writes_report(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    run(AdebayoReplication, "adebayo2018", datamodule_class=SanityChecksData,
        args=["fit", "--config", str(REPO / "configs/adebayo2018/smoke.yaml")])
    out = tmp_path / "report"
    res = json.loads((out / "results.json").read_text())
    assert (out / "README.md").is_file()
    for fig in res["figures"].values():
        assert (out / fig["path"]).is_file()
    ids = {c["id"] for c in res["claims"]}
    assert {"scenes_edge_detector_model_independent", "mnist_edge_detector_model_independent",
            "random_label_model_memorises", "data_edge_detector_model_independent"} <= ids
    for c in res["claims"]:
        assert c["status"] in ("holds", "fails", "deviation")
        assert all(v == v for v in c["measured"].values()), c["id"]  # no NaN
    # The edge detector does not depend on the model: exactly 1 at every stage, in both tests.
    by_id = {c["id"]: c for c in res["claims"]}
    assert by_id["scenes_edge_detector_model_independent"]["status"] == "holds"
    assert by_id["data_edge_detector_model_independent"]["status"] == "holds"
    # Every method at every stage of both models, both modes.
    methods = yaml.safe_load((REPO / "configs/adebayo2018/smoke.yaml").read_text())["model"]["methods"]
    mr = res["metrics"]["model_randomisation"]
    for model in ("scenes", "mnist"):
        for mode in ("cascading", "independent"):
            for stage, by_method in mr[model][mode].items():
                assert set(by_method) == set(methods), (model, mode, stage)
    tr = res["metrics"]["training"]
    assert 0.0 <= tr["random"]["train_accuracy"] <= 1.0 and tr["random"]["train_images"] == 64


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
