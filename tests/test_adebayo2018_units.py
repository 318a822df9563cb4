"""Units of the adebayo2018 replication: label permutation, memorisation subset, similarity summary, configs."""

from pathlib import Path

import pytest
import torch
import yaml

from lightning_modules.tasks.data_randomization import TrainingConfig, accuracy, permuted_labels, stratified_subset

REPO = Path(__file__).resolve().parents[1]


def test_permuted_labels_keep_histogram_and_break_pairing():
    y = torch.arange(1000) % 10
    p = permuted_labels(y, seed=0)
    assert torch.equal(torch.bincount(p, minlength=10), torch.bincount(y, minlength=10))
    agreement = float((p == y).float().mean())
    assert agreement < 0.2  # a random pairing agrees ~1/10 of the time
    assert torch.equal(p, permuted_labels(y, seed=0))
    assert not torch.equal(p, permuted_labels(y, seed=1))


def test_stratified_subset_known_answer():
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    idx = stratified_subset(y, 10, seed=0)
    assert idx.numel() == 10 and torch.equal(idx, idx.sort().values) and idx.unique().numel() == 10
    assert torch.bincount(y[idx], minlength=3).tolist() == [6, 3, 1]
    assert torch.equal(idx, stratified_subset(y, 10, seed=0))
    # Remainders go to the largest fractional parts: 7 of (60, 30, 10) -> 4.2, 2.1, 0.7 -> 4, 2, 1.
    assert torch.bincount(y[stratified_subset(y, 7, seed=0)], minlength=3).tolist() == [4, 2, 1]
    assert torch.equal(stratified_subset(y, 100, seed=3), torch.arange(100))


@pytest.mark.parametrize("n", [0, 101])
def test_stratified_subset_bad_size(n):
    with pytest.raises(ValueError, match="subset size"):
        stratified_subset(torch.zeros(100, dtype=torch.long), n, seed=0)


def test_permuted_labels_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        permuted_labels(torch.zeros(3, 2, dtype=torch.long), 0)


@pytest.mark.parametrize("kw, match", [({"max_epochs": 0}, "max_epochs"), ({"lr": 0}, "lr"), ({"subset": 0}, "subset")])
def test_training_config_validates(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**kw)


def test_accuracy_known_answer():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.eye(2))

        def forward(self, x):
            return x.flatten(1)[:, :2] @ self.w

    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]).view(4, 1, 1, 2)
    y = torch.tensor([0, 1, 1, 1])
    assert accuracy(Fixed(), x, y, batch_size=3) == 0.75


def test_similarity_summary_per_sample_and_scalar():
    from replications.adebayo2018.maps import summarize_similarity

    s = summarize_similarity({"a": torch.tensor([1.0, 3.0]), "b": torch.tensor(0.5), "c": torch.tensor([float("nan"), 2.0])})
    assert s["a"] == {"mean": 2.0, "std": 1.0, "n": 2, "undefined": 0}
    assert s["b"] == {"mean": 0.5, "std": 0.0, "n": 1, "undefined": 0}
    # A constant map's similarity is undefined: left out of the mean (not counted as 0) and counted.
    assert s["c"] == {"mean": 2.0, "std": 0.0, "n": 1, "undefined": 1}
    none = summarize_similarity({"d": torch.tensor([float("nan")])})["d"]
    assert none["n"] == 0 and none["undefined"] == 1 and none["mean"] != none["mean"]
    assert "ids" not in summarize_similarity({"ids": torch.arange(2), "a": torch.ones(2)})


def test_hog_similarity_is_a_rank_correlation_as_the_official_code():
    from lightning_modules.metrics.similarity import MapSimilarity, hog_similarity

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 28, 28, generator=g)
    # a monotone transform of the HOG features' ranks cannot change a rank correlation: the same map gives exactly 1
    assert torch.allclose(hog_similarity(a, a, correlation="spearman"), torch.ones(3))
    b = torch.rand(3, 1, 28, 28, generator=g)
    sp, pe = hog_similarity(a, b, correlation="spearman"), hog_similarity(a, b, correlation="pearson")
    assert not torch.allclose(sp, pe)
    with pytest.raises(ValueError, match="hog_correlation"):
        MapSimilarity(hog_correlation="kendall")
    # a constant map has no ranks: undefined, never 0
    m = MapSimilarity(ssim_gaussian=True, ssim_kernel_size=11, hog_correlation="spearman")
    m.update(torch.zeros(1, 1, 28, 28), a[:1])
    v = m.per_sample()
    assert torch.isnan(v["spearman_abs"]).all() and torch.isnan(v["hog"]).all()


def test_retaken_targets_follow_each_randomised_model():
    """``retaken``: a randomised stage explains its own predicted class; ``original`` keeps the trained model's."""
    from lightning_modules.tasks.randomization import ModelRandomizationTest

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3))
    seen = []

    def explainer(model, images, targets):
        seen.append(targets.clone())
        return images.clone()

    x = torch.rand(5, 1, 28, 28)
    t = ModelRandomizationTest({"e": explainer}, ["1"], modes=["cascading"], conventions=("original", "retaken"),
                               keep_examples=0, similarity=None)
    original_targets = net(x).argmax(1)
    t.update(net, x, original_targets)
    # calls: the trained model, the stage with the original class, the stage with its re-taken class
    assert len(seen) == 3 and torch.equal(seen[0], original_targets) and torch.equal(seen[1], original_targets)
    stage = next(iter(t.stages(net, "cascading"))).model
    assert torch.equal(seen[2], stage(x).argmax(1))
    agreement = t.compute_agreement()["cascading"]["1"]
    assert agreement == pytest.approx(float((stage(x).argmax(1) == original_targets).float().mean()))
    with pytest.raises(ValueError, match="conventions"):
        ModelRandomizationTest({"e": explainer}, ["1"], conventions=("fixed",))


def test_claims_are_a_pure_function_of_the_results_and_skip_undefined_images():
    from replications.adebayo2018.claims import _claim, _paired

    samples, dropped = _paired({"a": [0.1, None, 0.3], "b": [0.2, 0.5, None]})
    assert samples == {"a": [0.1], "b": [0.2]} and dropped == 2
    from lightning_modules.reporting import Relation

    c = _claim("x", "e", "a below b", Relation.lt("a", "b"), {"a": [0.1, 0.2, None, 0.1], "b": [0.5, 0.6, 0.7, 0.55]}, {})
    assert c.measured["images_undefined"] == 1.0 and len(c.samples["a"]) == 3
    assert c.measured["a"] == pytest.approx(0.4 / 3)


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_configs_have_seed_and_trainer(profile):
    cfg = yaml.safe_load((REPO / "configs" / "adebayo2018" / f"{profile}.yaml").read_text())
    assert "seed_everything" in cfg
    assert "trainer" in cfg and "accelerator" in cfg["trainer"]
    from replications.adebayo2018.experiments.c_data_randomisation import DataRandomisationConfig

    exps = [DataRandomisationConfig.parse(n, e) for n, e in cfg["model"]["data_randomisation"].items()]
    assert exps and all(isinstance(e.random, TrainingConfig) for e in exps)
    assert set(cfg["model"]["model_randomisation"]) <= {e.name for e in exps if e.true is not None}


def test_paper_inception_block_order_is_valid():
    """The paper's 17 blocks (PAPERS.md §3), logits first, exist in torchvision's Inception v3 and cover it."""
    from lightning_modules.models import load_model
    from lightning_modules.tasks.randomization import cascading_randomization, resolve_order

    cfg = yaml.safe_load((REPO / "configs" / "adebayo2018" / "paper.yaml").read_text())
    order = cfg["model"]["blackbox_order"]
    assert len(order) == 17 and order[0] == "fc" and order[-1] == "Conv2d_1a_3x3"
    model, _ = load_model("inception_v3")
    assert resolve_order(model, order) == order
    covered = {n for n, _ in model.named_parameters() if any(n.startswith(f"net.{b}.") for b in order)}
    assert covered == {n for n, _ in model.named_parameters()}
    first = next(cascading_randomization(model, order=order))
    assert not torch.equal(first.model.net.fc.weight, model.net.fc.weight)
    assert torch.equal(first.model.net.Mixed_7c.branch1x1.conv.weight, model.net.Mixed_7c.branch1x1.conv.weight)


def test_random_label_model_memorises_a_fixed_permuted_subset():
    """train_random_label_model: the subset is class-stratified and fixed, its labels permuted (histogram kept), and
    a small MLP memorises them; test accuracy is measured against the true labels."""
    from lightning_modules.tasks.data_randomization import train_random_label_model

    torch.manual_seed(0)
    x = torch.rand(200, 1, 28, 28)
    y = torch.arange(200) % 10
    cfg = TrainingConfig(model_name="mnist_mlp", max_epochs=15, lr=1e-3, batch_size=20, subset=40, scheduler="none")
    model, m = train_random_label_model((x, y), (x[:50], y[:50]), cfg, 10, seed=0)
    assert m["train_images"] == 40 and m["epochs"] == 15
    idx = stratified_subset(y, 40, 0)
    y_perm = permuted_labels(y[idx], 0)
    assert m["label_agreement"] == pytest.approx(float((y_perm == y[idx]).float().mean()))
    assert m["train_accuracy"] == accuracy(model, x[idx], y_perm) >= 0.95  # fits the permuted labels
    assert m["test_accuracy"] == accuracy(model, x[:50], y[:50])


def test_relu_modules_keep_inception_forward_and_enable_guided_backprop():
    import torchvision

    from lightning_modules.explainers import create_explainer
    from lightning_modules.models import Normalized
    from replications.adebayo2018.relu import add_relu_modules_

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).eval()
    model = Normalized(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).eval()
    x = torch.rand(1, 3, 75, 75)
    with torch.no_grad():
        before = model(x)
    gbp = create_explainer("guided_backprop")
    with pytest.raises(ValueError, match="nn.ReLU"):
        gbp(model, x, torch.tensor([0]))
    assert add_relu_modules_(model) == 94 and add_relu_modules_(model) == 0  # every BasicConv2d, once
    with torch.no_grad():
        assert torch.equal(model(x), before)
    maps = gbp(model, x, torch.tensor([0]))
    assert maps.shape == (1, 1, 75, 75) and torch.isfinite(maps).all()
