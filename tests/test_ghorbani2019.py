"""End-to-end and configuration tests of the ghorbani2019 replication package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from lightning_modules.utils import REPO_ROOT
from replications.ghorbani2019.data import FragilityData
from replications.ghorbani2019.experiments import FragilityReplication

CONFIGS = REPO_ROOT / "configs" / "ghorbani2019"


def _smoke(tmp_path, monkeypatch, sub: str) -> dict:
    from replications.cli import run

    out = tmp_path / sub
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(out))
    run(FragilityReplication, "ghorbani2019", datamodule_class=FragilityData,
        args=["fit", "--config", str(CONFIGS / "smoke.yaml")])
    assert (out / "README.md").is_file()
    assert {p.name for p in (out / "figures").iterdir()} >= {"metrics_vs_epsilon.png", "examples_gradient.png"}
    return json.loads((out / "results.json").read_text())


def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    """One CLI run (determinism of the attacks is tested in test_fragility_attacks.py, cheaper): the report, its
    plain results, the claims contract (check on the smoke report) and the committed smoke snapshot."""
    from lightning_modules.reporting import check_results
    from replications.contract import rebuild
    from snapshots import assert_matches_snapshot

    first = _smoke(tmp_path, monkeypatch, "a")
    claims = {c["id"]: c for c in first["claims"]}
    assert claims["label_preserved"]["kind"] == "sanity" and claims["label_preserved"]["status"] == "sanity"
    for method in ("gradient", "integrated_gradients", "deeplift"):
        c = claims[f"topk_attack_beats_random_{method}"]
        assert c["status"] in ("holds", "fails", "inconclusive", "deviation")
        # orderings carry per-image samples, one per attacked image, and their paired-bootstrap interval
        assert len(c["samples"]["topk_attack"]) == len(c["samples"]["random_sign"]) == 6 and c["intervals"]
    parts = first["results"]["parts"]
    scenes = parts["scenes_v2"]
    assert first["results"]["methods"] == ["gradient", "integrated_gradients", "deeplift"]
    cell = scenes["cells"]["gradient"]["topk"]["8.0"]
    assert 0 <= cell["topk_intersection"] <= 1 and cell["n"] == 6 and cell["label_kept_rate"] == 1.0
    assert len(cell["samples"]["center_shift_px"]) == 6 and len(scenes["ids"]) == 6
    setting = first["results"]["setting"]
    assert setting["beta"] == 5.0 and setting["measure"] == "notebook"
    assert setting["measures"] == {"gradient": "intersection", "integrated_gradients": "mass_center",
                                   "deeplift": "mass_center"}
    # the stated variant: the guided attacks at the claim budget through the official softplus(beta=1), and both
    # surrogates' agreement with the model; the grid the rule picks the beta from, and the rule's sanity row
    assert set(scenes["variant"]["deeplift"]) == {"topk", "center"}
    assert {v["beta"] for v in scenes["surrogate_maps"].values()} == {5.0, 1.0}
    assert sorted(float(b) for b in scenes["surrogate_grid"]) == [1.0, 2.0, 5.0, 10.0, 20.0]
    rule = claims["surrogate_beta_by_rule"]
    assert rule["kind"] == "sanity" and rule["status"] == "sanity" and rule["measured"]["rule_beta"] == 5.0
    assert "surrogate_beta_grid" in first["tables"] and "surrogate_beta_grid_mnist" in first["tables"]
    # the step study: the same attacks recorded after 2, 3 and 6 steps, on the first 2 scenes
    study = scenes["step_study"]["gradient"]
    assert set(study) == {"random", "topk", "center"} and set(study["topk"]) == {"2", "3", "6"}
    assert study["topk"]["6"]["n"] == 2 and study["topk"]["6"]["ids"] == [0, 1]
    assert parts["mnist"]["step_study"] == {} and "attack_steps" in first["tables"]
    assert "softplus_beta_variant" in first["tables"] and "run_cost" in first["tables"]
    # benchmark v2's ground truth: where the original and the attacked maps put their top-k pixels, per image
    ev = scenes["evidence"]["gradient"]["topk"]["8.0"]
    assert ev["n"] == 6 and len(ev["samples"]["original"]) == len(ev["samples"]["attacked"]) == 6
    assert 0 <= ev["original"] <= 1 and 0 <= ev["attacked"] <= 1 and "evidence_share" in first["tables"]
    assert first["metrics"]["models"]["scenes_v2"]["name"] == "scenes_v2_vgg"
    assert parts["mnist"]["evidence"] == {}
    # the real-MNIST part: its own model, budgets, step, table, claims and figures
    mnist = parts["mnist"]
    assert mnist["image_size"] == [28, 28] and mnist["k"] == round(1000 / 227**2 * 28 * 28)
    assert mnist["epsilons"] == [2.0, 8.0] and mnist["counts"]["images"] == 4 and mnist["alpha"] == 1.0
    assert first["metrics"]["models"]["mnist"]["model_name"] == "mnist_cnn"
    assert first["metrics"]["models"]["mnist"]["split"]["test_images"] == 2000
    cell = mnist["cells"]["integrated_gradients"]["center"]["8.0"]
    assert cell["n"] == 4 and cell["label_kept_rate"] == 1.0 and 0 <= cell["topk_intersection"] <= 1
    assert claims["label_preserved_mnist"]["status"] == "sanity"
    assert {f"{c}_mnist" for c in ("topk_attack_beats_random_gradient", "center_attack_moves_center_deeplift")} <= set(claims)
    assert "fragility_vs_epsilon_mnist" in first["tables"]
    out = tmp_path / "a" / "figures"
    assert {"metrics_vs_epsilon_mnist.png", "examples_deeplift_mnist.png"} <= {p.name for p in out.iterdir()}
    # the contract: the claims rebuild from the stored plain results; on smoke numbers (noise) only fails may remain
    problems = check_results(first, report_dir=tmp_path / "a", rebuild=rebuild, check_freshness=False)
    assert all(" fails: " in p for p in problems), problems
    assert_matches_snapshot("ghorbani2019", first)


def test_smoke_fit_v1_scenes(tmp_path, monkeypatch):
    """The v1 setting stays available as an override: the v1 smoke black box on the v1 smoke scenes (no evidence
    masks, so no evidence table); without the beta variant, to keep it short."""
    from replications.cli import run

    out = tmp_path / "v1"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(out))
    run(FragilityReplication, "ghorbani2019", datamodule_class=FragilityData,
        args=["fit", "--config", str(CONFIGS / "smoke.yaml"), "--model.model", "{blackbox: smoke}",
              "--data.source", "scenes", "--model.variant_beta", "null", "--data.n_images", "4"])
    results = json.loads((out / "results.json").read_text())
    part = results["results"]["parts"]["scenes"]
    assert part["counts"]["images"] == 4 and part["evidence"] == {} and "evidence_share" not in results["tables"]
    assert part["image_size"] == [32, 32]


def test_v2_model_and_data_must_agree():
    """The v2 model on the v1 scenes, the v1 black box on the v2 scenes, a v2 model on other v2 scenes, and extra
    keys beside embedded_v2 fail early, each naming the fix."""
    from dataclasses import replace
    from types import SimpleNamespace

    from lightning_modules.models import check_trained_on, load_model
    from lightning_modules.data.scenes_v2 import PROFILES

    with pytest.raises(ValueError, match="takes no other keys"):
        FragilityReplication(model={"embedded_v2": "scenes_v2_vgg", "pretrained": True})
    v2 = FragilityReplication()
    v2._trainer = SimpleNamespace(datamodule=FragilityData(source="scenes"))
    with pytest.raises(ValueError, match="data.source: scenes_v2"):
        v2._check_data()
    v1 = FragilityReplication(model={"blackbox": "smoke"})
    v1._trainer = SimpleNamespace(datamodule=FragilityData(source="scenes_v2"))
    with pytest.raises(ValueError, match="data.source: scenes"):
        v1._check_data()
    model, _ = load_model("scenes_v2_vgg", weights="embedded")
    check_trained_on(model, PROFILES["smoke"])  # fewer scenes per split, drawn the same way
    with pytest.raises(ValueError, match="other v2 scenes"):
        check_trained_on(model, replace(PROFILES["default"], seed=1))
    with pytest.raises(ValueError, match="load it with load_model"):
        check_trained_on(torch.nn.Linear(2, 2), PROFILES["default"])


def test_attack_cache_resumes_without_attacking(tmp_path, monkeypatch):
    """An interrupted run resumes from the cache: a second run with the same settings reads every attack from it
    (the attack itself is never called) and gives the same numbers; another setting misses the cache."""
    from replications.cli import run
    from lightning_modules.attacks import FragilityAttack

    monkeypatch.setenv("WANDB_MODE", "disabled")
    cache = tmp_path / "cache"
    args = ["fit", "--config", str(CONFIGS / "smoke.yaml"), "--model.cache_dir", str(cache), "--model.variant_beta",
            "null", "--model.methods", "[gradient]", "--data.n_images", "3", "--model.mnist", "null",
            "--data.mnist", "null", "--model.step_study", "null"]
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "a"))
    run(FragilityReplication, "ghorbani2019", datamodule_class=FragilityData, args=args)
    entries = sorted(cache.glob("*.pt"))
    assert len(entries) == 3 * 2  # attacks x budgets, one batch

    def refuse(*a, **k):
        raise AssertionError("a cached attack ran again")

    monkeypatch.setattr(FragilityAttack, "__call__", refuse)
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "b"))
    run(FragilityReplication, "ghorbani2019", datamodule_class=FragilityData, args=args)
    a, b = (json.loads((tmp_path / d / "results.json").read_text())["results"] for d in ("a", "b"))
    assert a["parts"]["scenes_v2"]["cells"] == b["parts"]["scenes_v2"]["cells"]
    with pytest.raises(AssertionError, match="ran again"):
        run(FragilityReplication, "ghorbani2019", datamodule_class=FragilityData, args=args + ["--model.steps", "2"])


def test_claims_are_a_pure_function_of_the_plain_results(tmp_path, monkeypatch):
    """build_claims reads only the results: the same results give the same claims, and a moved number moves them."""
    from replications.ghorbani2019.claims import build_claims

    results = json.loads((REPO_ROOT / "tests" / "snapshots" / "ghorbani2019_smoke.json").read_text())["results"]
    a = [c.to_dict() for c in build_claims(results, "smoke")]
    b = [c.to_dict() for c in build_claims(json.loads(json.dumps(results)), "smoke")]
    assert a == b
    # random sign keeping none of the top-k pixels: the top-k attack is then decisively, and by more than the minimum
    # effect, the weaker one
    cell = results["parts"]["scenes_v2"]["cells"]["gradient"]["random"]["8.0"]["samples"]
    cell["topk_intersection"] = [0.0] * len(cell["topk_intersection"])
    moved = {c.id: c for c in build_claims(results, "smoke")}["topk_attack_beats_random_gradient"]
    assert moved.measured["random_sign"] == 0.0 and moved.status == "fails"


def test_default_and_paper_configs_instantiate():
    for name in ("default", "paper", "smoke"):
        cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        module = FragilityReplication(**cfg["model"])
        assert module.epsilons == [float(e) for e in cfg["model"]["epsilons"]]
        data = FragilityData(**cfg["data"])
        assert data.source in ("scenes_v2", "imagenet")
    paper = yaml.safe_load((CONFIGS / "paper.yaml").read_text())
    assert paper["model"]["k"] == 1000 and paper["model"]["steps"] == 300 and paper["model"]["alpha"] == 0.5
    assert paper["trainer"]["accelerator"] == "gpu" and paper["data"]["imagenet"]["image_size"] == 227


def test_paper_config_parses_through_the_cli(capsys):
    from replications.cli import run

    with pytest.raises(SystemExit) as exc:
        run(FragilityReplication, "ghorbani2019", datamodule_class=FragilityData,
            args=["fit", "--config", str(CONFIGS / "paper.yaml"), "--print_config"])
    assert exc.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["model"] == {"name": "squeezenet1_1", "pretrained": True}
    assert printed["data"]["source"] == "imagenet"


def test_imagenet_source_reads_real_format_files(tmp_path):
    """The paper source on a tiny ImageNet val in the class-folder layout (2 classes, 3 JPEGs)."""
    from PIL import Image

    root = tmp_path / "imagenet"
    for wnid, colour in (("n01440764", (200, 10, 10)), ("n01443537", (10, 200, 10))):
        d = root / "val" / wnid
        d.mkdir(parents=True)
        for i in range(2 if wnid.endswith("764") else 1):
            Image.new("RGB", (40, 30), colour).save(d / f"ILSVRC2012_val_0000000{i}{wnid[-1]}.JPEG")
    dm = FragilityData(source="imagenet", n_images=3, batch_size=2, imagenet={"root": str(root), "image_size": 32})
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert sum(b["image"].shape[0] for b in batches) == 3
    assert batches[0]["image"].shape[1:] == (3, 32, 32)
    assert batches[0]["image"].min() >= 0 and batches[0]["image"].max() <= 1


def test_bad_settings_fail_early():
    with pytest.raises(ValueError, match="unknown methods"):
        FragilityReplication(methods=["lrp"])
    with pytest.raises(ValueError, match="random"):
        FragilityReplication(attacks=["topk"])
    with pytest.raises(ValueError, match="0-255"):
        FragilityReplication(epsilons=[0.03])
    with pytest.raises(ValueError, match="claim_epsilon"):
        FragilityReplication(epsilons=[1, 2], claim_epsilon=8)
    with pytest.raises(ValueError, match="targeted"):
        FragilityReplication(attacks=["random", "targeted"])
    with pytest.raises(ValueError, match="source"):
        FragilityData(source="svhn")
    with pytest.raises(ValueError, match="n_images"):
        FragilityData(n_images=0)
    with pytest.raises(ValueError, match="model.mnist keys"):
        FragilityReplication(mnist={"epsilon": [8]})
    with pytest.raises(ValueError, match="mnist: epsilons are in 0-255"):
        FragilityReplication(mnist={"epsilons": [0.03, 0.06]})
    with pytest.raises(ValueError, match="mnist: claim_epsilon"):
        FragilityReplication(mnist={"epsilons": [2, 4], "claim_epsilon": 16})
    with pytest.raises(ValueError, match="data.mnist.n_images"):
        FragilityData(mnist={"profile": "smoke"})
    with pytest.raises(ValueError, match="data.mnist keys"):
        FragilityData(mnist={"n_images": 4, "split": 3})


def test_mnist_part_and_data_must_agree():
    """model.mnist without data.mnist, a different MNIST profile in the data, or a second loader without a second
    part all fail with a message naming the fix."""
    from types import SimpleNamespace

    module = FragilityReplication(mnist={"model": "smoke"})
    for dm, match in ((FragilityData(), "data.mnist is not"),
                      (FragilityData(mnist={"n_images": 4, "profile": "default"}), "same profile")):
        module._trainer = SimpleNamespace(datamodule=dm)
        with pytest.raises(ValueError, match=match):
            module._check_data()
    module._trainer = SimpleNamespace(datamodule=FragilityData(mnist={"n_images": 4, "profile": "smoke"}))
    module._check_data()
    with pytest.raises(ValueError, match="set model.mnist"):
        FragilityReplication()._part(1)


def test_paper_values_are_the_notebook_example():
    from replications.ghorbani2019 import paper as P

    assert P.NOTEBOOK_TOPK_INTERSECTION.value == pytest.approx(0.01)
    assert P.NOTEBOOK_SPEARMAN.value == pytest.approx(0.25)
    assert P.NOTEBOOK_CENTER_SHIFT_PX.value == pytest.approx(86.3)
    assert not P.TARGETED_BEATS_RANDOM.confirmed


def _boundary_model():
    """logit_c = mean ReLU(channel c), c = 0, 1, on images with nearly equal red and green means: they sit on the
    decision boundary, so large random steps flip labels."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1, bias=False), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False)).double().eval()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[0, 0] = model[0].weight[1, 1] = 1.0
        model[4].weight.copy_(torch.eye(2))
    x = torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[:, 1] = (x[:, 0] + 0.002 * torch.tensor([1.0, -1.0] * 4).view(-1, 1, 1)).clamp(0, 1)
    return model, x


def test_official_attack_rule_iterates_past_label_flips():
    """Official ``iterative_attack``: a label-flipping iterate is never returned, but the attack continues from it
    (``on_flip="continue"``), so its trajectory differs from undoing the step (``"reject"``)."""
    from lightning_modules.attacks import FragilityAttack

    model, x = _boundary_model()
    kw = dict(epsilon=0.5, alpha=0.25, steps=12, k=20, seed=0)
    cont = FragilityAttack("random", "gradient", on_flip="continue", **kw)(model, x)
    rej = FragilityAttack("random", "gradient", on_flip="reject", **kw)(model, x)
    assert cont.rejected_steps.sum() > 0, "the test needs label-flipping iterates"
    assert cont.label_kept.all() and rej.label_kept.all()
    assert torch.equal(model(cont.images).argmax(1), model(x).argmax(1))
    assert not torch.equal(cont.accepted_steps, rej.accepted_steps)
    with pytest.raises(ValueError, match="on_flip"):
        FragilityAttack("random", "gradient", on_flip="undo")
    with pytest.raises(ValueError, match="measure"):
        FragilityAttack("center", "gradient", measure="shift")


@pytest.mark.parametrize("attack", ["topk", "center"])
def test_best_iterate_measures_pick_their_extremes_of_one_trajectory(attack):
    """The trajectory does not depend on the best-iterate measure, so per image the ``intersection`` rule returns
    at most the ``mass_center`` rule's intersection, the ``mass_center`` rule at least its centre shift, and the best
    iterate is at least as good as the last one."""
    from lightning_modules.attacks import FragilityAttack
    from lightning_modules.metrics.fragility import center_of_mass, topk_intersection

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(32, 4)).double().eval()
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kw = dict(epsilon=8 / 255, alpha=1 / 255, steps=10, k=20, beta=10.0)
    by_int = FragilityAttack(attack, "gradient", measure="intersection", **kw)(model, x)
    by_cen = FragilityAttack(attack, "gradient", measure="mass_center", **kw)(model, x)
    last = FragilityAttack(attack, "gradient", keep_best=False, **kw)(model, x)

    def inter(r):
        return topk_intersection(r.maps, r.attacked_maps, 20)

    def shift(r):
        return (center_of_mass(r.maps) - center_of_mass(r.attacked_maps)).norm(dim=1)

    assert (inter(by_int) <= inter(by_cen) + 1e-12).all() and (inter(by_int) <= inter(last) + 1e-12).all()
    assert (shift(by_cen) >= shift(by_int) - 1e-9).all() and (shift(by_cen) >= shift(last) - 1e-9).all()
    assert (inter(by_int) < 1).any()
