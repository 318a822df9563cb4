"""The scorecard's data randomisation test (issue #41, ``--with data_randomisation``): the CLI round trip in the smoke
setting, a model-ignoring map ranks last and the gradient above it, the reference against the true-label controls,
the cache key, and the message on a user's own model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lightning_modules.scorecard import PROFILES, load_explainer, run_scorecard, verify_scorecard, write_scorecard
from lightning_modules.scorecard.datarand import DATARAND_PROFILES, DataRandSetting
from lightning_modules.scorecard.protocols import BY_NAME

SMOKE = PROFILES["smoke"]
DR_SMOKE = DATARAND_PROFILES["smoke"]


def input_map(model, images, targets):
    """A map that ignores the model: the image's grey level."""
    return images.mean(1, keepdim=True)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scorecard_datarand_cache")


def test_the_smoke_setting_round_trips_with_data_randomisation(tmp_path, cache_dir):
    from replications.__main__ import main

    out = tmp_path / "card"
    rc = main(["scorecard", "--explainer", "gradient", "--name", "gradient_again", "--profile", "smoke",
               "--with", "data_randomisation", "--skip", "fragility_topk,fragility_centre,suppression",
               "--out", str(out), "--cache-dir", str(cache_dir)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert "data_randomisation" in results["protocols_run"] and "data_randomisation" not in results["not_run"]
    vals = results["values"]["data_randomisation"]
    assert set(vals) == {"oracle", "oracle__border_first", "random", "gradient", "gradcam", "gradient_again"}
    assert all(len(v) == DR_SMOKE.n_images for v in vals.values())
    # the same method, the same maps: the new gradient equals the cached built-in gradient
    assert vals["gradient_again"] == pytest.approx(vals["gradient"])
    dr = results["data_randomisation"]
    assert dr["models"]["random"]["weights"].endswith("adebayo2018_default_scenes_v2_random.safetensors")
    assert dr["models"]["random"]["accuracy_on_these_images"] < 0.3 < dr["models"]["control"]["accuracy_on_these_images"]
    assert results["timing"]["data_randomisation"]["data_randomisation_cpu_s"] >= 0
    md = (out / "README.md").read_text()
    assert "## Data randomisation (Adebayo): against two true-label models" in md and "Data randomisation (Adebayo):" in md
    assert verify_scorecard(out, example=None) == []
    assert any(cache_dir.glob("datarand_*.json"))
    # the references: the oracle depends on the labels only, random ignores the model
    d = results["derived"]["data_randomisation"]
    assert d["maps"]["random"]["value"] == pytest.approx(1.0) and abs(d["maps"]["oracle"]["value"]) < 0.1
    assert d["control"]["oracle"]["depends_on_labels"] and not d["control"]["random"]["depends_on_labels"]
    # the gradient's maps of the true-label model are further from the random-label model's than from the controls'
    assert d["control"]["gradient"]["depends_on_labels"]


@pytest.fixture(scope="module")
def ranked(cache_dir):
    """The input map scored on the data randomisation column alone, beside two built-in methods whose values are
    CI-separated (gradient and input x gradient; the smoke setting's Grad-CAM ties with the gradient there)."""
    setting = replace(SMOKE, builtins=(("gradient", ()), ("input_x_gradient", ())))
    _, explainer, _ = load_explainer(input_map, name="input_map")
    results = run_scorecard(explainer, "input_map", setting, skip=set(BY_NAME), with_={"data_randomisation"},
                            cache_dir=cache_dir, datarand_setting=DR_SMOKE, log=lambda *a: None)
    return results


def test_a_model_ignoring_map_ranks_last_and_the_gradient_above_it(ranked, tmp_path):
    out = write_scorecard(ranked, tmp_path / "card")
    d = out["derived"]["data_randomisation"]
    assert d["status"] == "valid", d.get("failed")
    assert d["maps"]["input_map"]["value"] == pytest.approx(1.0, abs=1e-6)  # the same map for every model
    assert d["maps"]["gradient"]["value"] < 0.9
    r = d["rank"]
    assert r["rank"] == r["of"] == 3 and r["range"][1] == 3 and set(r["ci_better"]) == {"gradient", "input_x_gradient"}
    assert not d["control"]["input_map"]["depends_on_labels"]
    md = (tmp_path / "card" / "README.md").read_text()
    assert "data_randomisation ↓" in md and "**3** of 3" in md
    assert verify_scorecard(tmp_path / "card", example=None) == []


def test_the_cache_key_changes_with_the_setting(ranked, cache_dir):
    before = set(cache_dir.glob("datarand_*.json"))
    setting = replace(SMOKE, builtins=(("gradient", ()), ("input_x_gradient", ())))
    _, explainer, _ = load_explainer(input_map, name="input_map")
    results = run_scorecard(explainer, "input_map", setting, skip=set(BY_NAME), with_={"data_randomisation"},
                            cache_dir=cache_dir, datarand_setting=DataRandSetting(n_images=12), log=lambda *a: None)
    assert len(results["values"]["data_randomisation"]["gradient"]) == 12
    assert set(cache_dir.glob("datarand_*.json")) - before  # a new cache file for the new setting


def test_a_users_own_model_gets_a_clear_message_and_is_skipped(tmp_path):
    from lightning_modules.data.scenes_v2 import ScenesV2
    from lightning_modules.models import load_model

    shipped, _ = load_model(SMOKE.model, weights="embedded")
    b = ScenesV2("test", shipped.scenes_config).__getitems__(range(8))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 24))
    data = {"image": b["image"], "label": b["label"], "evidence_mask": b["evidence_mask"]}
    _, explainer, _ = load_explainer("gradient")
    logged = []
    results = run_scorecard(explainer, "g", replace(SMOKE, n_images=8), model=model, data=data, cache_dir=None,
                            skip=set(BY_NAME) - {"deletion"}, with_={"data_randomisation"}, log=logged.append)
    why = results["not_run"]["data_randomisation"]
    assert "data_randomisation" not in results["protocols_run"]
    assert "trained on permuted labels" in why and "your own model" in why and "train_random_label_model" in why
    assert any("data randomisation skipped" in str(m) for m in logged)
    write_scorecard(results, tmp_path / "card")
    assert "trained on permuted labels" in (tmp_path / "card" / "README.md").read_text()
