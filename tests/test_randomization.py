"""Model randomisation machinery (Adebayo et al. 2018 Sec. 3): stages, deep copies, re-initialisation, runner."""

import copy

import pytest
import torch
import torch.nn as nn
import torchmetrics

from lightning_modules.models import load_model
from lightning_modules.tasks.randomization import (
    ModelRandomizationTest,
    cascading_randomization,
    independent_randomization,
    layer_seed,
    randomizable_layers,
    reinitialize_,
    resolve_order,
)

MNIST_ORDER = ["net.classifier", "net.fc1", "net.features.3", "net.features.0"]


@pytest.fixture(scope="module")
def mnist_cnn():
    torch.manual_seed(0)
    model, _ = load_model("mnist_cnn")
    return model


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _changed_layers(model, reference, order):
    out = []
    for name in order:
        a = dict(model.get_submodule(name).named_parameters())
        b = dict(reference.get_submodule(name).named_parameters())
        if any(not torch.equal(a[k], b[k]) for k in a):
            out.append(name)
    return out


def test_order_is_from_the_logits_down(mnist_cnn):
    assert randomizable_layers(mnist_cnn) == MNIST_ORDER
    # Traced forward order gives the same for a sequential net.
    assert randomizable_layers(mnist_cnn, torch.rand(2, 1, 28, 28)) == MNIST_ORDER


def test_traced_order_follows_forward_not_registration():
    class Swapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(3, 2)  # registered first, runs last
            self.body = nn.Linear(4, 3)

        def forward(self, x):
            return self.head(self.body(x))

    m = Swapped()
    assert randomizable_layers(m) == ["body", "head"]
    assert randomizable_layers(m, torch.rand(1, 4)) == ["head", "body"]


def test_cascading_stages_randomise_cumulatively_top_down(mnist_cnn):
    ref = _state(mnist_cnn)
    stages = list(cascading_randomization(mnist_cnn, seed=1))
    assert [s.stage for s in stages] == MNIST_ORDER
    for k, s in enumerate(stages):
        assert s.mode == "cascading" and s.index == k
        assert s.layers == tuple(MNIST_ORDER[: k + 1])
        assert _changed_layers(s.model, mnist_cnn, MNIST_ORDER) == MNIST_ORDER[: k + 1]
        assert s.model is not mnist_cnn
    # The black box itself is never modified.
    for k, v in mnist_cnn.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_independent_stages_randomise_one_layer(mnist_cnn):
    ref = _state(mnist_cnn)
    stages = list(independent_randomization(mnist_cnn, seed=1))
    assert [s.layers for s in stages] == [(n,) for n in MNIST_ORDER]
    for s in stages:
        assert _changed_layers(s.model, mnist_cnn, MNIST_ORDER) == [s.stage]
    for k, v in mnist_cnn.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_stages_are_independent_deep_copies(mnist_cnn):
    gen = cascading_randomization(mnist_cnn, seed=0)
    first = next(gen)
    with torch.no_grad():
        for p in first.model.parameters():
            p.zero_()  # a caller vandalising one stage ...
    second = next(gen)
    # ... changes neither the next stage's untouched layers nor the original.
    assert torch.equal(second.model.get_submodule("net.features.0").weight, mnist_cnn.get_submodule("net.features.0").weight)
    assert mnist_cnn.get_submodule("net.classifier").weight.abs().sum() > 0


def test_same_layer_gets_same_random_weights_in_both_modes_and_runs(mnist_cnn):
    casc = list(cascading_randomization(mnist_cnn, seed=3))
    indep = list(independent_randomization(mnist_cnn, seed=3))
    again = list(cascading_randomization(mnist_cnn, seed=3))
    other_seed = list(cascading_randomization(mnist_cnn, seed=4))
    for k, name in enumerate(MNIST_ORDER):
        w_c = casc[-1].model.get_submodule(name).weight
        assert torch.equal(w_c, indep[k].model.get_submodule(name).weight)
        assert torch.equal(w_c, again[-1].model.get_submodule(name).weight)
        assert not torch.equal(w_c, other_seed[-1].model.get_submodule(name).weight)


def test_default_init_is_the_layers_own_initialiser():
    """Known answer: resetting under the layer seed equals constructing a fresh layer under that seed."""
    layer = nn.Linear(20, 7)
    with torch.no_grad():
        layer.weight.fill_(5.0)
        layer.bias.fill_(5.0)
    reinitialize_(layer, "default", seed=123)
    torch.manual_seed(123)
    fresh = nn.Linear(20, 7)  # the constructor calls reset_parameters()
    assert torch.equal(layer.weight, fresh.weight) and torch.equal(layer.bias, fresh.bias)
    bound = 1 / 20**0.5  # PyTorch's kaiming-uniform(a=sqrt(5)) bound for fan_in 20
    assert layer.weight.abs().max() <= bound + 1e-7


def test_reinitialisation_leaves_global_rng_alone():
    a, b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)  # built before seeding: construction draws from the RNG
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    reinitialize_(a, "default", seed=1)
    reinitialize_(b, "normal", seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_normal_init_has_the_given_distribution():
    layer = nn.Linear(400, 300)
    reinitialize_(layer, "normal", seed=0, mean=0.0, std=0.1)
    w = layer.weight.detach()
    assert abs(float(w.mean())) < 0.002
    assert abs(float(w.std()) - 0.1) < 0.002
    assert float(layer.bias.detach().std()) == pytest.approx(0.1, abs=0.02)


def test_batchnorm_running_stats_are_reset():
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(9.0)
        bn.weight.fill_(2.0)
    reinitialize_(bn, "default", seed=0)
    assert torch.equal(bn.running_mean, torch.zeros(4)) and torch.equal(bn.running_var, torch.ones(4))
    assert torch.equal(bn.weight, torch.ones(4))


def test_block_order_and_names_relative_to_bare_net(mnist_cnn):
    # A block (container) can be one stage; bare-net names are accepted on the Normalized wrapper.
    stages = list(cascading_randomization(mnist_cnn, order=["classifier", "features"], seed=0))
    assert _changed_layers(stages[0].model, mnist_cnn, MNIST_ORDER) == ["net.classifier"]
    assert _changed_layers(stages[1].model, mnist_cnn, MNIST_ORDER) == ["net.classifier", "net.features.3", "net.features.0"]


def test_frozen_black_box_stays_frozen_in_copies(mnist_cnn):
    assert not any(p.requires_grad for p in mnist_cnn.parameters())
    s = next(cascading_randomization(mnist_cnn))
    assert not any(p.requires_grad for p in s.model.parameters())
    assert not s.model.training

def test_a_stage_may_join_layers_into_one_block(mnist_cnn):
    order = ["net.classifier+net.fc1", "features.3+features.0"]  # the second relative to the bare network
    assert resolve_order(mnist_cnn, order) == order
    casc = list(cascading_randomization(mnist_cnn, order, seed=3))
    assert [s.layers for s in casc] == [tuple(order[:1]), tuple(order)]
    assert _changed_layers(casc[0].model, mnist_cnn, MNIST_ORDER) == ["net.classifier", "net.fc1"]
    assert _changed_layers(casc[1].model, mnist_cnn, MNIST_ORDER) == MNIST_ORDER
    indep = list(independent_randomization(mnist_cnn, order, seed=3))
    assert _changed_layers(indep[1].model, mnist_cnn, MNIST_ORDER) == ["net.features.3", "net.features.0"]
    # each layer of a block gets the weights it gets when randomised alone
    alone = list(cascading_randomization(mnist_cnn, seed=3))[-1].model
    for name in MNIST_ORDER:
        assert torch.equal(casc[1].model.get_submodule(name).weight, alone.get_submodule(name).weight), name


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"order": ["net.nope"]}, "not found"),
        ({"order": []}, "empty"),
        ({"order": ["net.classifier", "net.classifier"]}, "twice"),
        ({"order": ["net.features.1"]}, "no parameters"),
        ({"order": ["features.1"]}, "no parameters"),
        ({"order": ["net.classifier+net.fc1", "net.fc1"]}, "twice"),
        ({"order": ["net.classifier+"]}, "empty layer name"),
        ({"order": ["net.classifier+net.nope"]}, "not found"),
        ({"init": "xavier"}, "unknown init"),
    ],
)
def test_bad_input_fails_early(mnist_cnn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        next(cascading_randomization(mnist_cnn, **kwargs))


def test_bad_std_and_mode():
    with pytest.raises(ValueError, match="std"):
        reinitialize_(nn.Linear(2, 2), "normal", std=0.0)
    with pytest.raises(ValueError, match="mode"):
        ModelRandomizationTest({"g": lambda m, x, t: x}, ["a"], modes=["cascade"])
    with pytest.raises(ValueError, match="no explainers"):
        ModelRandomizationTest({}, ["a"])


def test_layer_seed_depends_on_name_and_seed():
    assert layer_seed(0, "a") != layer_seed(0, "b")
    assert layer_seed(0, "a") != layer_seed(1, "a")
    assert layer_seed(2, "x") == layer_seed(2, "x")


# --------------------------------------------------------------------------------------------- runner
class PearsonSimilarity(torchmetrics.Metric):
    """Stand-in similarity for the runner tests: per-sample Pearson correlation of the flattened maps."""

    def __init__(self):
        super().__init__()
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def update(self, a, b):
        a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
        b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
        self.values.append((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12))

    def compute(self):
        v = torchmetrics.utilities.dim_zero_cat(self.values)
        return {"pearson": v.mean(), "n": torch.tensor(float(v.numel()))}


def gradient(model, images, targets):
    x = images.clone().requires_grad_(True)
    out = model(x).gather(1, targets[:, None]).sum()
    (g,) = torch.autograd.grad(out, x)
    return g.abs().amax(1, keepdim=True)


def edge_like(model, images, targets):
    """Model-independent by construction (like the Sobel baseline)."""
    diff = (images[..., 1:, :] - images[..., :-1, :]).abs()
    return torch.nn.functional.pad(diff, (0, 0, 0, 1)).mean(1, keepdim=True)


def test_runner_similarities(mnist_cnn):
    torch.manual_seed(0)
    images = torch.rand(6, 1, 28, 28)
    targets = torch.arange(6) % 10
    ref = _state(mnist_cnn)
    runner = ModelRandomizationTest.for_model(
        mnist_cnn, {"gradient": gradient, "edge": edge_like}, similarity=PearsonSimilarity, keep_examples=2, seed=0
    )
    original = runner.update(mnist_cnn, images[:3], targets[:3])
    runner.update(mnist_cnn, images[3:], targets[3:])
    res = runner.compute()
    assert set(res) == {"cascading", "independent"}
    assert list(res["cascading"]) == MNIST_ORDER
    for mode in res:
        for stage in MNIST_ORDER:
            assert float(res[mode][stage]["edge"]["n"]) == 6  # every image counted once
            assert float(res[mode][stage]["edge"]["pearson"]) == pytest.approx(1.0, abs=1e-6)
    # A fully re-initialised network's gradient is not the trained one's.
    assert float(res["cascading"][MNIST_ORDER[-1]]["gradient"]["pearson"]) < 0.9
    # Cross-check one number by hand: stage maps recomputed directly from the generator.
    last = list(cascading_randomization(mnist_cnn, seed=0))[-1].model
    manual = PearsonSimilarity()
    manual.update(gradient(mnist_cnn, images, targets), gradient(last, images, targets))
    assert float(manual.compute()["pearson"]) == pytest.approx(float(res["cascading"][MNIST_ORDER[-1]]["gradient"]["pearson"]), abs=1e-5)
    assert torch.equal(original["gradient"], gradient(mnist_cnn, images[:3], targets[:3]))
    # Examples kept for the figure: first batch only, first 2 images, every stage.
    ex = runner.examples
    assert ex["images"].shape == (2, 1, 28, 28)
    assert set(ex["stages"]["cascading"]) == set(MNIST_ORDER)
    assert ex["stages"]["independent"]["net.fc1"]["gradient"].shape == (2, 1, 28, 28)
    for k, v in mnist_cnn.state_dict().items():
        assert torch.equal(v, ref[k]), k
    runner.reset()
    assert runner.examples["images"] is None


def test_runner_with_shared_similarity_and_explainers(mnist_cnn):
    """The real pieces: registry explainers and the shared MapSimilarity (per-sample, de-duplicated by id)."""
    from lightning_modules.explainers import create_explainer

    torch.manual_seed(1)
    images = torch.rand(4, 1, 28, 28)
    targets = torch.tensor([1, 2, 3, 4])
    runner = ModelRandomizationTest.for_model(
        mnist_cnn, {"sobel": create_explainer("sobel"), "gradient": create_explainer("gradient")},
        modes=["cascading"], keep_examples=0)
    runner.update(mnist_cnn, images[:2], targets[:2], ids=torch.tensor([0, 1]))
    runner.update(mnist_cnn, images[2:], targets[2:], ids=torch.tensor([2, 3]))
    runner.update(mnist_cnn, images[2:], targets[2:], ids=torch.tensor([2, 3]))  # a padded repeat: counted once
    per = runner.compute(per_sample=True)["cascading"]
    for stage in MNIST_ORDER:
        sob = per[stage]["sobel"]
        assert sob["ids"].tolist() == [0, 1, 2, 3]
        for measure in ("spearman_abs", "spearman_no_abs", "ssim", "hog"):
            assert torch.allclose(sob[measure], torch.ones(4), atol=1e-5), (stage, measure)
    full = per[MNIST_ORDER[-1]]["gradient"]["spearman_abs"]
    assert full.shape == (4,) and float(full.mean()) < 0.9
    assert runner.examples["images"] is None
