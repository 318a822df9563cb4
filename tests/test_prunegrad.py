"""PruneGrad (Khakzar et al. 2019): known answers on hand-built networks, batching, hooks removed."""

import pytest
import torch
import torch.nn as nn

from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.base import reduce_channels
from lightning_modules.explainers.prunegrad import PruneGrad


class TwoLayer(nn.Module):
    """y = W2 relu(W1 x): input 1x1x4 'image', 4 hidden neurons, 2 classes."""

    def __init__(self):
        super().__init__()
        self.num_classes = 2
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(4, 4, bias=False)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.eye(4))
            self.fc2.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0]]))

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


def test_known_answer_on_two_layer_net():
    model = TwoLayer().eval()
    x = torch.ones(1, 1, 1, 4)  # hidden activations all 1; scores |a * dy0/da| = [1, 2, 3, 4]
    # prune 50% -> neurons with scores 1 and 2 are zeroed; gradient of y0 = W2[0] * W1 restricted to kept neurons
    maps = PruneGrad(percentile=50)(model, x, torch.tensor([0]))
    assert torch.allclose(maps.flatten(), torch.tensor([0.0, 0.0, 3.0, 4.0]))
    # 0% pruned is the plain gradient
    maps0 = PruneGrad(percentile=0)(model, x, torch.tensor([0]))
    assert torch.allclose(maps0.flatten(), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # the target matters: class 1 only uses neuron 3, which survives any pruning below 100%
    maps1 = PruneGrad(percentile=75)(model, x, torch.tensor([1]))
    assert torch.allclose(maps1.flatten(), torch.tensor([0.0, 0.0, 0.0, 1.0]))


def test_zero_percentile_equals_captum_saliency():
    from captum.attr import Saliency

    torch.manual_seed(0)
    from lightning_modules.models import load_model

    model, _ = load_model("scenes_cnn", num_classes=10)
    x = torch.rand(3, 3, 32, 32)
    t = torch.tensor([1, 4, 7])
    ours = PruneGrad(percentile=0)(model, x, t)
    ref = reduce_channels(Saliency(model).attribute(x, target=t, abs=False), "max_abs_signed")
    assert torch.allclose(ours, ref, atol=1e-6)


def test_prunes_the_requested_share_per_image():
    torch.manual_seed(0)
    from lightning_modules.models import load_model

    model, _ = load_model("scenes_cnn", num_classes=10)
    x = torch.rand(2, 3, 32, 32)
    masks = PruneGrad(percentile=70).neuron_masks(model, x, torch.tensor([0, 3]))
    kept = torch.stack([m.flatten(1).float().sum(1) for m in masks]).sum(0)
    total = sum(m[0].numel() for m in masks)
    # at most 30% kept (ties at zero score -- dead ReLUs -- are pruned too)
    assert torch.all(kept <= 0.30 * total + 1) and torch.all(kept > 0)


def test_batched_equals_per_image_with_reused_relu():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5).eval()  # Bottleneck/BasicBlock reuse self.relu
    net.num_classes = 5
    x = torch.rand(3, 3, 32, 32)
    t = torch.tensor([0, 2, 4])
    e = create_explainer("prunegrad", percentile=80)
    batched = e(net, x, t)
    single = torch.cat([e(net, x[i : i + 1], t[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)
    assert not torch.allclose(batched, create_explainer("prunegrad", percentile=0)(net, x, t))


def test_hooks_removed_and_model_unchanged():
    model = TwoLayer().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    PruneGrad(percentile=50)(model, torch.ones(1, 1, 1, 4), torch.tensor([0]))
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_input():
    with pytest.raises(ValueError, match="percentile"):
        PruneGrad(percentile=100)
    no_relu = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    no_relu.num_classes = 2
    with pytest.raises(ValueError, match="no nn.ReLU"):
        PruneGrad()(no_relu, torch.ones(1, 1, 1, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match="out of range"):
        PruneGrad()(TwoLayer(), torch.ones(1, 1, 1, 4), torch.tensor([5]))


class SparseTwoLayer(nn.Module):
    """y = W2 relu(x - 1/2) on a 1x1x6 [0, 1] 'image': with x = [0, 0, 1, 1, 1, 1] two ReLUs are dead, the scores
    |a * dy0/da| are [0, 0, 1, 2, 3, 4] / 2: a third of the neurons score exactly zero (as dead ReLUs do in
    small CNNs); the input gradient is W2's row on the active neurons."""

    def __init__(self):
        super().__init__()
        self.num_classes = 2
        self.flatten = nn.Flatten()
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(6, 2, bias=False)
        with torch.no_grad():
            self.fc2.weight.copy_(torch.tensor([[5.0, 5.0, 1.0, 2.0, 3.0, 4.0], [1.0] * 6]))

    def forward(self, x):
        return self.fc2(self.relu(self.flatten(x) - 0.5))


def test_official_rule_equals_the_gradient_when_zero_scores_exceed_the_percentile_and_active_scope_prunes():
    model = SparseTwoLayer().eval()
    x = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 1.0]).view(1, 1, 1, 6)
    t = torch.tensor([0])
    gradient = torch.tensor([0.0, 0.0, 1.0, 2.0, 3.0, 4.0])
    assert PruneGrad().score_sparsity(model, x, t).tolist() == [pytest.approx(2 / 6)]
    # 30% of 6 neurons = 2 pruned: exactly the two zero scores -> the plain gradient (the official rule's blind spot)
    assert torch.allclose(PruneGrad(30, scope="all")(model, x, t).flatten(), gradient)
    # active: 30% of the 4 contributing neurons = 1 pruned (score 1) on top of the zero ones
    assert torch.allclose(PruneGrad(30, scope="active")(model, x, t).flatten(), torch.tensor([0.0, 0.0, 0.0, 2.0, 3.0, 4.0]))
    # 50%: all -> 3 of 6 pruned (scores 0, 0, 1); active -> 2 of the 4 contributing pruned (scores 1, 2)
    assert torch.allclose(PruneGrad(50, scope="all")(model, x, t).flatten(), torch.tensor([0.0, 0.0, 0.0, 2.0, 3.0, 4.0]))
    assert torch.allclose(PruneGrad(50, scope="active")(model, x, t).flatten(), torch.tensor([0.0, 0.0, 0.0, 0.0, 3.0, 4.0]))
    # 0%: both scopes give the plain gradient
    assert torch.allclose(PruneGrad(0, scope="active")(model, x, t).flatten(), gradient)


def test_active_scope_thresholds_per_image_in_a_batch():
    model = SparseTwoLayer().eval()
    x = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0] * 6]).view(3, 1, 1, 6)
    t = torch.tensor([0, 0, 0])
    e = PruneGrad(50, scope="active")
    assert torch.allclose(e.score_sparsity(model, x, t), torch.tensor([2 / 6, 0.0, 1.0]))
    maps = e(model, x, t).flatten(1)
    # image 0: 4 active -> 2 pruned; image 1: 6 active (scores 5, 5, 1, 2, 3, 4) -> 3 pruned (1, 2, 3);
    # image 2: nothing active -> an all-zero map, no error
    assert torch.allclose(maps[0], torch.tensor([0.0, 0.0, 0.0, 0.0, 3.0, 4.0]))
    assert torch.allclose(maps[1], torch.tensor([5.0, 5.0, 0.0, 0.0, 0.0, 4.0]))
    assert torch.equal(maps[2], torch.zeros(6))
    single = torch.cat([e(model, x[i : i + 1], t[i : i + 1]) for i in range(3)]).flatten(1)
    assert torch.equal(maps, single)


def test_active_scope_prunes_the_requested_share_of_the_contributing_neurons():
    torch.manual_seed(0)
    from lightning_modules.models import load_model

    model, _ = load_model("scenes_cnn", num_classes=10)
    x = torch.rand(2, 3, 32, 32)
    t = torch.tensor([0, 3])
    e = PruneGrad(percentile=70, scope="active")
    scores = torch.cat([s.flatten(1) for s in e.neuron_scores(model, x, t)], dim=1)
    kept = torch.stack([m.flatten(1).float().sum(1) for m in e.neuron_masks(model, x, t)]).sum(0)
    active = (scores > 0).float().sum(1)
    assert torch.all(active > 0)
    assert torch.all((kept - 0.30 * active).abs() <= 1)  # 30% of the nonzero-score neurons stay
    with pytest.raises(ValueError, match="scope"):
        PruneGrad(scope="global")
