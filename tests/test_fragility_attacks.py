"""Known-answer tests of the fragility attacks (Ghorbani et al. 2019): lightning_modules/attacks/fragility.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from lightning_modules.attacks import (
    FragilityAttack,
    center_of_mass,
    linf_project,
    saliency,
    softplus_surrogate,
    topk_mask,
)
from lightning_modules.attacks.fragility import integrated_gradients_attribution


def tiny_cnn(seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    )
    return net.to(dtype).eval()


def images(n=4, size=12, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g, dtype=dtype)


# --------------------------------------------------------------------------------------------- surrogate
def test_surrogate_replaces_every_relu_and_leaves_the_original_untouched():
    model = tiny_cnn()
    x = images()
    before = model(x).detach().clone()
    relus = [id(m) for m in model.modules() if isinstance(m, nn.ReLU)]
    sur = softplus_surrogate(model, beta=5.0)
    assert [id(m) for m in model.modules() if isinstance(m, nn.ReLU)] == relus  # same modules, still ReLU
    assert not any(isinstance(m, nn.ReLU) for m in sur.modules())
    assert sum(isinstance(m, nn.Softplus) and m.beta == 5.0 for m in sur.modules()) == 2
    assert torch.equal(model(x), before)
    # the weights are copies: editing the surrogate does not touch the original
    with torch.no_grad():
        next(sur.parameters()).add_(1.0)
    assert torch.equal(model(x), before)


def test_surrogate_approaches_relu_as_beta_grows():
    model = tiny_cnn()
    x = images()
    ref = model(x)
    errs = [(softplus_surrogate(model, b)(x) - ref).abs().max().item() for b in (1.0, 10.0, 100.0, 1000.0)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-3
    # softplus_beta(z) - relu(z) <= log(2)/beta, so the bound shrinks like 1/beta: the first error is large
    assert errs[0] > 10 * errs[-1]


def test_surrogate_gives_a_nonzero_saliency_gradient_where_relu_gives_zero():
    """Why the trick exists: the gradient map of a piecewise-linear net has zero input-gradient (a.e.)."""
    model = tiny_cnn()
    x = images(2).requires_grad_(True)
    t = torch.tensor([0, 1])
    obj_relu = saliency(model, x, t, "gradient", create_graph=True)[..., :4, :4].sum()
    (g_relu,) = torch.autograd.grad(obj_relu, x, allow_unused=True)
    assert g_relu is None or g_relu.abs().max() < 1e-10
    sur = softplus_surrogate(model, 10.0)
    obj = saliency(sur, x, t, "gradient", create_graph=True)[..., :4, :4].sum()
    (g,) = torch.autograd.grad(obj, x)
    assert g.abs().max() > 1e-6


def test_surrogate_needs_relu_modules_and_a_positive_beta():
    with pytest.raises(ValueError, match="no nn.ReLU"):
        softplus_surrogate(nn.Sequential(nn.Linear(3, 2), nn.Tanh()))
    with pytest.raises(ValueError, match="beta"):
        softplus_surrogate(tiny_cnn(), beta=0.0)


# --------------------------------------------------------------------------------------------- pieces
def test_projection_keeps_the_budget_and_the_pixel_range():
    x0 = images(3)
    g = torch.Generator().manual_seed(3)
    x = x0 + 0.5 * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    eps = 8 / 255
    p = linf_project(x, x0, eps)
    assert (p - x0).abs().max() <= eps + 1e-12
    assert p.min() >= 0 and p.max() <= 1
    # known answer: the L-inf projection is a per-pixel clamp, then the pixel range
    assert torch.allclose(p, torch.max(torch.min(x, x0 + eps), x0 - eps).clamp(0, 1))
    inside = x0 + 0.5 * eps * torch.rand(x0.shape, generator=g, dtype=x0.dtype)
    assert torch.allclose(linf_project(inside, x0, eps), inside.clamp(0, 1))


def test_saliency_matches_captum_and_is_normalised():
    from captum.attr import IntegratedGradients, Saliency

    model = tiny_cnn()
    x = images()
    t = model(x).argmax(1)
    hw = x.shape[-1] * x.shape[-2]
    ours = saliency(model, x, t, "gradient")
    ref = Saliency(model).attribute(x, target=t, abs=True).sum(1, keepdim=True)
    assert torch.allclose(ours, ref / ref.flatten(1).sum(1).view(-1, 1, 1, 1) * hw)
    assert torch.allclose(ours.flatten(1).sum(1), torch.full((4,), float(hw), dtype=x.dtype))
    base = torch.full_like(x[:1], 0.5)
    ig = integrated_gradients_attribution(model, x, t, base, steps=10)
    ref_ig = IntegratedGradients(model).attribute(x, baselines=base.expand_as(x), target=t, n_steps=10,
                                                  method="riemann_right")
    assert torch.allclose(ig, ref_ig, atol=1e-10)


def test_deeplift_saliency_obeys_completeness():
    """DeepLIFT's summation-to-delta: sum of (signed) attributions = f(x) - f(baseline)."""
    from lightning_modules.attacks.fragility import deeplift_attribution

    model = tiny_cnn()
    x = images()
    t = model(x).argmax(1)
    base = torch.zeros_like(x[:1])
    attr = deeplift_attribution(model, x, t, base)
    delta = model(x).gather(1, t[:, None])[:, 0] - model(base.expand_as(x)).gather(1, t[:, None])[:, 0]
    assert torch.allclose(attr.flatten(1).sum(1), delta.detach(), atol=1e-8)


def test_center_of_mass_and_topk_known_answers():
    m = torch.zeros(2, 1, 5, 7)
    m[0, 0, 1, 2] = 1.0
    m[1, 0, 4, 0] = 1.0
    m[1, 0, 0, 6] = 1.0
    assert torch.allclose(center_of_mass(m), torch.tensor([[1.0, 2.0], [2.0, 3.0]]))
    mask = topk_mask(torch.arange(35.0).view(1, 1, 5, 7), 3)
    assert mask.sum() == 3 and mask.flatten()[-3:].all()
    with pytest.raises(ValueError, match="k must be"):
        topk_mask(m, 36)


# --------------------------------------------------------------------------------------------- the attack
def test_attack_keeps_the_label_and_the_budget_and_rejects_label_flips():
    # logit_c = mean ReLU(channel c), c = 0, 1: images with nearly equal red and green means sit on the
    # decision boundary, so random steps of a large budget flip labels and the rejection path is exercised
    model = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 2, bias=False)).double().eval()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[0, 0] = model[0].weight[1, 1] = 1.0
        model[4].weight.copy_(torch.eye(2))
    x = images(8)
    x[:, 1] = (x[:, 0] + 0.002 * torch.tensor([1.0, -1.0] * 4).view(-1, 1, 1)).clamp(0, 1)
    res = FragilityAttack("random", "gradient", epsilon=0.5, alpha=0.25, steps=12, k=20, seed=0)(model, x)
    assert res.label_kept.all()
    assert torch.equal(model(res.images).argmax(1), model(x).argmax(1))
    assert res.rejected_steps.sum() > 0, "the test needs label-flipping steps to check that they are rejected"
    assert torch.equal(res.accepted_steps + res.rejected_steps, torch.full((8,), 12))
    assert (res.images - x).abs().max() <= 0.5 + 1e-12
    assert res.images.min() >= 0 and res.images.max() <= 1


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients"])
def test_topk_attack_lowers_the_saliency_mass_on_the_original_topk(method):
    model = tiny_cnn()
    x = images(6)
    k = 20
    kw = dict(epsilon=8 / 255, steps=10, k=k, beta=10.0, ig_steps=8)
    res = FragilityAttack("topk", method, **kw)(model, x)
    top = topk_mask(res.maps, k)
    mass0 = (res.maps * top).flatten(1).sum(1)
    mass1 = (res.attacked_maps * top).flatten(1).sum(1)
    assert (mass1 < mass0).all(), (mass0, mass1)
    rnd = FragilityAttack("random", method, **kw)(model, x)
    mass_rnd = (rnd.attacked_maps * top).flatten(1).sum(1)
    assert mass1.mean() < mass_rnd.mean()


def test_center_attack_moves_the_center_of_mass():
    model = tiny_cnn()
    x = images(6)
    res = FragilityAttack("center", "gradient", epsilon=8 / 255, steps=10, k=20)(model, x)
    shift = (center_of_mass(res.maps) - center_of_mass(res.attacked_maps)).norm(dim=1)
    rnd = FragilityAttack("random", "gradient", epsilon=8 / 255, steps=10, k=20)(model, x)
    shift_rnd = (center_of_mass(rnd.maps) - center_of_mass(rnd.attacked_maps)).norm(dim=1)
    assert shift.mean() > shift_rnd.mean() and (shift > 0).all()


def test_targeted_attack_raises_the_mass_in_the_region():
    model = tiny_cnn()
    x = images(4)
    region = torch.zeros(4, 1, 12, 12, dtype=torch.bool)
    region[..., :4, :4] = True
    res = FragilityAttack("targeted", "gradient", epsilon=8 / 255, steps=10, k=20)(model, x, region=region)
    before = (res.maps * region).flatten(1).sum(1)
    after = (res.attacked_maps * region).flatten(1).sum(1)
    assert (after > before).all()
    with pytest.raises(ValueError, match="region"):
        FragilityAttack("targeted", "gradient")(model, x)


@pytest.mark.parametrize("attack", ["topk", "center"])
def test_batched_equals_per_image(attack):
    model = tiny_cnn()
    x = images(4)
    atk = FragilityAttack(attack, "gradient", epsilon=4 / 255, steps=6, k=20)
    batched = atk(model, x)
    for i in range(4):
        single = atk(model, x[i:i + 1])
        assert torch.allclose(single.images, batched.images[i:i + 1], atol=1e-12)
        assert torch.equal(single.accepted_steps, batched.accepted_steps[i:i + 1])
        assert torch.allclose(single.attacked_maps, batched.attacked_maps[i:i + 1], atol=1e-9)


def test_attack_is_deterministic_and_does_not_modify_the_model():
    model = tiny_cnn()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = images(3)
    a = FragilityAttack("random", "gradient", epsilon=4 / 255, steps=4, k=20, seed=5)(model, x)
    b = FragilityAttack("random", "gradient", epsilon=4 / 255, steps=4, k=20, seed=5)(model, x)
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(isinstance(m, (nn.ReLU, nn.Conv2d, nn.Linear, nn.Sequential, nn.AdaptiveAvgPool2d, nn.Flatten))
               for m in model.modules())


def test_bad_arguments_fail_early():
    with pytest.raises(ValueError, match="unknown attack"):
        FragilityAttack("pgd")
    with pytest.raises(ValueError, match="unknown saliency method"):
        FragilityAttack("topk", "lrp")
    with pytest.raises(ValueError, match="epsilon"):
        FragilityAttack("topk", epsilon=8)
    with pytest.raises(ValueError, match="alpha"):
        FragilityAttack("topk", alpha=0.0)
    with pytest.raises(ValueError, match="attack_ig_steps"):
        FragilityAttack("topk", "integrated_gradients", attack_ig_steps=0)
    with pytest.raises(ValueError):
        FragilityAttack("topk")(tiny_cnn(), torch.rand(2, 3, 8))


@pytest.mark.parametrize("attack", ["random", "topk"])
def test_recorded_steps_equal_shorter_runs(attack):
    """``record_steps``: the image recorded after t steps of a long run is what a run of t steps returns, so one
    run measures the effect of the step count."""
    model = tiny_cnn()
    x = images(3)
    long = FragilityAttack(attack, "gradient", epsilon=4 / 255, alpha=1 / 255, steps=8, k=20, seed=2,
                           record_steps=(2, 5, 8))(model, x)
    assert sorted(long.images_at_steps) == [2, 5, 8]
    assert torch.equal(long.images_at_steps[8], long.images)
    for t in (2, 5):
        short = FragilityAttack(attack, "gradient", epsilon=4 / 255, alpha=1 / 255, steps=t, k=20, seed=2)(model, x)
        assert torch.equal(long.images_at_steps[t], short.images)
    with pytest.raises(ValueError, match="record_steps"):
        FragilityAttack(attack, "gradient", steps=4, record_steps=(5,))


def test_notebook_measures_follow_the_official_notebooks():
    """Simple gradient: lowest top-k intersection; IG and DeepLIFT: largest centre-of-mass shift."""
    from lightning_modules.attacks import METHODS, NOTEBOOK_MEASURES

    assert set(NOTEBOOK_MEASURES) == set(METHODS)
    assert NOTEBOOK_MEASURES["gradient"] == "intersection"
    assert NOTEBOOK_MEASURES["integrated_gradients"] == NOTEBOOK_MEASURES["deeplift"] == "mass_center"
