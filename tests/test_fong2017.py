"""fong2017: end-to-end smoke run through the CLI, the adversarial detector, the paper profile's config (its data
and validate run: tests/test_fong2017_paper.py; DDP: tests/test_fong2017_ddp.py)."""

import json
import os

import pytest
import torch
import torch.nn as nn

from lightning_modules.tasks.detector import (
    HeatmapDetector,
    alexnet_for_heatmaps,
    detector_accuracy,
    iterative_fgsm,
    train_detector,
)


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    from replications.cli import run
    from replications.fong2017.experiments import FongReplication

    out = tmp_path_factory.mktemp("fong_smoke")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "disabled")
    mp.setenv("SALIENCY_REPORT_DIR", str(out))
    try:
        run(FongReplication, "fong2017", args=["fit", "--config", "configs/fong2017/smoke.yaml"])
    finally:
        mp.undo()
    return out


def test_smoke_run_writes_the_report_with_every_experiment(smoke_report):
    assert (smoke_report / "README.md").is_file()
    results = json.loads((smoke_report / "results.json").read_text())
    ids = {c["id"] for c in results["claims"]}
    for prefix in ("a_", "b_", "c_", "d_", "e_", "f_", "g_", "h_"):
        assert any(i.startswith(prefix) for i in ids), (prefix, sorted(ids))
    assert all(c["status"] in ("holds", "fails", "inconclusive", "deviation", "sanity", "not_valid")
               for c in results["claims"])
    by_id = {c["id"]: c for c in results["claims"]}
    # orderings are judged on per-image samples; the ground-truth clause of g is a sanity row, not part of the claim
    for cid in ("c_value_mask_best", "d_mask_smallest_box", "e_mask_best_detector", "h_mask_beats_center"):
        assert by_id[cid]["samples"] and by_id[cid]["intervals"], cid
    assert "ground_truth_head" not in by_id["g_mask_head_over_feet"]["measured"]
    assert by_id["g_ground_truth_head_over_feet"]["kind"] == "sanity"
    # benchmark v2: both ground truths, the reference maps, and every protocol judged in the run
    judged = results["results"]["protocol_validity"]
    assert {f"localisation_{gt}_{t}" for gt in ("object", "evidence") for t in ("value", "energy", "mean")} <= set(judged)
    assert {"suppression", "pointing_object_all", "pointing_evidence_all"} <= set(judged)
    for cid, protocol in (("c_value_mask_best", "localisation_object_value"),
                          ("c_mean_mask_beats_gradcam_occlusion_evidence", "localisation_evidence_mean"),
                          ("d_mask_smallest_box", "suppression"),
                          ("h_gradient_beats_center_evidence", "pointing_evidence_all")):
        assert by_id[cid]["protocols"][0] == protocol, cid
        assert (by_id[cid]["status"] == "not_valid") == (not all(v["valid"] for v in by_id[cid]["validity"].values())), cid
    # the pointing game: a separate pass on the multi-label scenes, the image as the claims' unit (F5: all and
    # difficult for the mask and the gradient)
    r = results["results"]
    assert len(set(r["pointing_image_index"])) == 6 and len(r["pointing_image_index"]) > 6
    assert by_id["h_gradient_beats_center"]["protocols"] == ["pointing_object_all", "pointing_object_difficult"]
    assert all(len(v) <= 6 for v in by_id["h_mask_beats_center"]["samples"].values())
    assert "blurred_circle_occlusion" not in r["pointing"] and "mask" in r["pointing"]
    oracle = results["results"]["localisation_evidence"]["oracle"]
    assert all(oracle[t]["test_error"] == 0.0 for t in ("value", "energy", "mean")), "the oracle finds the evidence box"
    # Table 1 on the coat classes against the object boxes: its own protocols, claims, and table
    assert {f"localisation_object_coat_{t}" for t in ("value", "energy", "mean")} <= set(judged)
    assert by_id["c_value_mask_best_coat"]["protocols"] == ["localisation_object_coat_value"]
    coat = results["results"]["localisation_coat_subset"]
    assert coat["n_test"] == len(by_id["c_value_mask_best_coat"]["samples"]["mask_value"]) > 0
    assert all(16 <= c <= 23 for c in coat["classes"])
    oracle = results["results"]["localisation_coat"]["oracle"]
    assert all(oracle[t]["test_error"] == 0.0 for t in ("value", "energy", "mean")), "coat evidence ~ the object"
    # judged over seeds x test maps: one row per detector
    assert [len(row) for row in by_id["e_mask_best_detector"]["samples"]["mask"]] == [
        results["results"]["adversarial"]["n_test"]] * 2
    # the smoke profile trains two detectors per method: a test map's outcome is the share of them correct
    adv = results["results"]["adversarial"]
    assert adv["seeds"] == [0, 1]
    for m, per_seed in adv["correct_by_seed"].items():
        assert len(per_seed) == 2 and all(len(row) == adv["n_test"] for row in per_seed)
        assert adv["correct"][m] == pytest.approx([(a + b) / 2 for a, b in zip(*per_seed)])
        assert adv["accuracy"][m] == pytest.approx(sum(adv["accuracy_by_seed"][m]) / 2)
    for fig in ("masks.png", "heatmap_grid.png", "artifacts.png"):
        assert (smoke_report / "figures" / fig).is_file()
    text = (smoke_report / "README.md").read_text()
    assert "weak_localisation" in text and "pointing_game" in text and "adversarial_detection" in text
    assert "weak_localisation_evidence" in text and "protocol_validity" in text
    assert "weak_localisation_coat" in text
    assert f"on the {coat['n_test']} test images whose label is a coat class" in text


def test_v1_scenes_stay_available(tmp_path, monkeypatch):
    """The v1 setting (cached black box, v1 scenes, head-mask evidence, eyes vs feet) runs from the same code."""
    from replications.cli import run
    from replications.fong2017.experiments import FongReplication

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path))
    run(FongReplication, "fong2017", args=[
        "fit", "--config", "configs/fong2017/smoke.yaml", "--model.model", "null", "--model.blackbox_profile", "smoke",
        "--model.data.kind", "scenes", "--model.keypoints.parts", "[eyes, feet]", "--model.adversarial.enabled", "false",
        "--model.data.test_images", "4", "--model.data.heldout_images", "4"])
    res = json.loads((tmp_path / "results.json").read_text())
    ids = {c["id"] for c in res["claims"]}
    assert {"g_mask_eyes_over_feet", "c_value_mask_best", "c_value_mask_best_evidence"} <= ids
    assert res["results"]["localisation_evidence"]["oracle"]["value"]["test_error"] == 0.0
    assert "protocol_validity" in res["results"]


def test_smoke_report_passes_the_contract_and_matches_its_snapshot(smoke_report):
    """The stored claims are what the code makes of the stored results (only smoke-noise ``fails`` remain), and
    the smoke numbers equal the committed snapshot."""
    from lightning_modules.reporting import check_results
    from replications.contract import claims_for, rebuild
    from replications.fong2017 import claims as C
    from replications.fong2017.deviations import DEVIATIONS
    from snapshots import assert_matches_snapshot

    res = json.loads((smoke_report / "results.json").read_text())
    problems = check_results(res, report_dir=smoke_report, rebuild=rebuild, check_freshness=False)
    assert all(" fails: " in p for p in problems), problems
    again = [c.to_dict() for c in claims_for("fong2017", json.loads(json.dumps(res["results"])), "smoke")]
    assert again == res["claims"]
    assert set(DEVIATIONS) <= {c.id for c in C.build_claims(res["results"], "default")}
    # the benchmark's timings are machine noise (VOLATILE skips *_s and ratio, not the pipeline share)
    res["results"]["benchmark"] = {}
    res["tables"].pop("benchmark", None)
    res["tables"].pop("explainer_time", None)
    assert_matches_snapshot("fong2017", res)


def test_high_frequency_content_known_answers():
    from replications.fong2017.experiments.e_adversarial_detection import high_frequency

    flat = torch.zeros(1, 1, 8, 8)
    flat[..., :, 4:] = 1.0  # one vertical edge: |dx| = 1 on 1 of the 7 column pairs, |dy| = 0
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]).remainder(2).float().view(1, 1, 8, 8)
    hf = high_frequency(torch.cat([flat, checker]))
    torch.testing.assert_close(hf, torch.tensor([1 / 7, 2.0]))


def test_alexnet_is_torchvision_sized_to_the_maps():
    net = alexnet_for_heatmaps(64)
    assert net(torch.rand(2, 1, 64, 64)).shape == (2, 2)
    assert net.features[0].in_channels == 1 and len([m for m in net.features if isinstance(m, nn.Conv2d)]) == 5
    big = alexnet_for_heatmaps(224)
    assert big.classifier[1].in_features == 256 * 6 * 6 and big.classifier[1].out_features == 4096
    with pytest.raises(ValueError, match="too small"):
        alexnet_for_heatmaps(32)
    assert HeatmapDetector(32, hidden=8)(torch.rand(3, 1, 32, 32)).shape == (3, 2)  # small maps are upsampled


def test_detector_learns_a_separable_task_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(40, 1, 32, 32, generator=g) * 0.2
    clean[..., 8:24, 8:24] += 0.8  # clean maps: one central blob
    adv = torch.rand(40, 1, 32, 32, generator=g)  # adversarial maps: scattered noise
    maps, y = torch.cat([clean, adv]), torch.cat([torch.zeros(40), torch.ones(40)]).long()
    tr = torch.arange(80) % 2 == 0
    det = train_detector(maps[tr], y[tr], epochs=15, lr=1e-3, hidden=64)
    assert isinstance(det, HeatmapDetector)
    assert detector_accuracy(det, maps[~tr], y[~tr]) >= 0.9
    det2 = train_detector(maps[tr], y[tr], epochs=15, lr=1e-3, hidden=64)
    for a, b in zip(det.parameters(), det2.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="maps must be"):
        train_detector(maps[:, 0], y)


def test_iterative_fgsm_respects_the_budget_and_fools_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).eval()
    x = torch.rand(6, 3, 8, 8)
    adv = iterative_fgsm(model, x, eps=0.1, eps_step=0.02, max_iter=10)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= 0.1 + 1e-6
    with torch.no_grad():
        fooled = (model(adv).argmax(1) != model(x).argmax(1)).float().mean()
    assert fooled > 0.5
    with pytest.raises(ValueError, match="eps"):
        iterative_fgsm(model, x, eps=0.0)


def test_paper_config_parses():
    from jsonargparse import ArgumentParser

    import yaml

    from replications.fong2017.experiments import FongReplication

    cfg = yaml.safe_load(open("configs/fong2017/paper.yaml"))
    assert cfg["trainer"]["strategy"] == "ddp" and cfg["model"]["model"]["name"] == "googlenet"
    parser = ArgumentParser()
    parser.add_class_arguments(FongReplication, "model")
    ns = parser.parse_object({"model": cfg["model"]})
    assert ns.model.mask.iterations == 300 and ns.model.data["kind"] == "imagenet"
    assert ns.model.adversarial.hidden == 4096 and ns.model.benchmark.batch == 32  # typed sections
    assert ns.model.pointing_data["kind"] == "coco" and ns.model.keypoints_data["kind"] == "animal_parts"
    # the module builds with it (explainers, metrics, the adversarial state); no weights or data are touched
    module = FongReplication(**{k: v for k, v in cfg["model"].items()})
    assert module.mask_config.mask_scale == 8 and "e_adversarial_detection" in module.experiments


def test_config_sections_are_typed(monkeypatch, capsys):
    """A wrong type in a section fails at parse time, naming the key; --print_config shows every default."""
    from replications.cli import run
    from replications.fong2017.experiments import FongReplication

    monkeypatch.setenv("WANDB_MODE", "disabled")
    with pytest.raises(SystemExit) as e:
        run(FongReplication, "fong2017", args=["fit", "--config", "configs/fong2017/smoke.yaml",
                                               "--model.mask.iterations", "abc"])
    assert e.value.code not in (0, None)
    assert 'model.mask.iterations' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(FongReplication, "fong2017", args=["fit", "--config", "configs/fong2017/smoke.yaml", "--print_config"])
    out = capsys.readouterr().out
    for line in ("init_tolerance: 0.05", "binarise_at: 0.5", "iou: 0.5", "alphas: null", "images: 1000000000",
                 "batch: null"):
        assert line in out, line


def test_bad_config_fails_early():
    from replications.fong2017.experiments import FongReplication

    with pytest.raises(ValueError, match="unknown mask settings"):
        FongReplication(mask={"lambda1": 1e-4})
    with pytest.raises(KeyError, match="unknown explainer"):
        FongReplication(methods=["gradiant"])


def _localisation_on_toy_scenes(coat_subset: bool = True):
    """c_weak_localisation on hand-made 16-px batches: the object box of every image is its top-left quarter; each
    map lights that box exactly on coat-class images (16-23) and the opposite corner on head-class images, so the
    object-box error is 0 on the coat classes and 1 on the others at every threshold."""
    from types import SimpleNamespace

    from replications.fong2017.experiments.c_weak_localisation import WeakLocalisationExperiment

    scored = ["gradient", "guided_backprop", "excitation_backprop", "gradcam", "blurred_circle_occlusion", "mask",
              "oracle", "random"]
    exp = WeakLocalisationExperiment({"iou": 0.5}, scored, coat_subset=coat_subset)
    splits = {"test": ([0, 16, 5, 17, 23, 9], 0), "heldout": ([3, 18, 12, 20], 100)}
    for split, (labels, first_id) in splits.items():
        n = len(labels)
        labels = torch.tensor(labels)
        coat = (labels >= 16)[:, None, None, None]
        on_box = torch.zeros(n, 1, 16, 16)
        on_box[..., :8, :8] = 1.0
        maps = torch.where(coat, on_box, on_box.flip(-1).flip(-2)) * torch.rand(n, 1, 16, 16).add(0.5)
        batch = {"boxes": torch.tensor([[0.0, 0.0, 8.0, 8.0]]).expand(n, 1, 4).clone(), "box_labels": labels[:, None]}
        ctx = SimpleNamespace(batch=batch, labels=labels, ids=torch.arange(first_id, first_id + n), split=split,
                              evidence=None, maps=lambda names, maps=maps: {m: maps for m in names})
        exp.update(ctx)
    return exp


def test_table1_on_the_coat_classes_selects_the_coat_images(monkeypatch):
    """The coat subset is the test images whose label is a coat class (16-23), scored against the object boxes;
    alpha is searched on all held-out images below MIN_COAT_HELDOUT coat images there, else on the coat ones."""
    import replications.fong2017.experiments.c_weak_localisation as C

    r = _localisation_on_toy_scenes().compute()
    sub = r["localisation_coat_subset"]
    assert sub == {"classes": [16, 17, 23], "n_test": 3, "n_heldout_coat": 2, "n_heldout": 4, "alpha_tuned_on": "all",
                   "min_coat_heldout": C.MIN_COAT_HELDOUT}
    for t in ("value", "energy", "mean"):
        assert r["localisation_coat_per_image"]["mask"][t] == [0.0, 0.0, 0.0]
        assert r["localisation_coat"]["mask"][t]["test_error"] == 0.0
        assert r["localisation_coat"]["mask"][t]["heldout_error"] == 0.5  # all held-out images: half are head classes
        assert r["localisation"]["mask"][t]["test_error"] == 0.5  # the all-class table is kept as it was
    monkeypatch.setattr(C, "MIN_COAT_HELDOUT", 2)
    r = _localisation_on_toy_scenes().compute()
    assert r["localisation_coat_subset"]["alpha_tuned_on"] == "coat"
    assert all(r["localisation_coat"]["mask"][t]["heldout_error"] == 0.0 for t in ("value", "energy", "mean"))
    # the v1 scenes and ImageNet have no coat classes
    assert "localisation_coat" not in _localisation_on_toy_scenes(coat_subset=False).compute()


def test_table1_claims_on_the_coat_classes_mirror_the_object_box_claims():
    """F4 is claimed on the coat subset with the same claims as on the object boxes of every class (suffix _coat),
    on the coat images' per-image errors."""
    from replications.fong2017.claims import localisation_claims
    from replications.fong2017.paper import PAPER_KEY

    exp = _localisation_on_toy_scenes()
    res = exp.compute()
    methods = [m for m in exp.scored if m not in ("mask", "oracle", "random")]
    res.update(methods=methods, paper_keys={m: PAPER_KEY.get(m, m) for m in methods + ["mask"]})
    claims = {c.id: c for c in localisation_claims(res) if c is not None}
    plain = {i for i in claims if not i.endswith("_coat")}
    assert plain and {f"{i}_coat" for i in plain} == {i for i in claims if i.endswith("_coat")}
    for cid, c in claims.items():
        if cid.endswith("_coat"):
            assert c.findings == ("F4",) and all(len(v) == 3 for v in c.samples.values()), cid
            assert "coat classes" in c.text, cid


def test_detector_seeds_name_the_fix_for_a_bad_count():
    from replications.fong2017.experiments.e_adversarial_detection import detector_seeds

    assert detector_seeds({"seed": 3, "seeds": 4}) == [3, 4, 5, 6]
    assert detector_seeds({"seed": 0}) == [0]
    with pytest.raises(ValueError, match="adversarial.seeds must be a positive number"):
        detector_seeds({"seed": 0, "seeds": 0})
