"""The fast mask-learning loop (issue 43) against a frozen copy of the autograd loop it replaced: the same masks.

The loop now runs only the black box under autograd and applies the rest of the chain by hand (the upsampler's
adjoint, the analytic L1 / TV gradient, Adam's update without the optimiser object), and blurs the substrate with
two matrix products. Every change is exact in real arithmetic, so in float64 the masks of the full schedule agree to
float rounding. (In float32 the learned masks themselves are chaotic at the ulp level: Adam divides each gradient by
its own running magnitude, so a rounding-level change of a near-zero gradient is a step of up to ``lr``; the old
loop alone moves its masks by about 5e-2 when its input moves by one ulp, reports/benchmarks/mask_learning.md.)
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.tasks import mask_learning as ml
from lightning_modules.tasks.mask_learning import (
    PAPER_MASK_CELLS,
    Adam,
    MaskConfig,
    MaskUpsampler,
    _blur,
    blur_images,
    circle_init,
    class_scores,
    compose,
    learn_masks,
    perturbation_substrate,
    regulariser_grad,
    tv_norm,
)
from lightning_modules.models import class_probabilities


# ------------------------------------------------------------------ frozen copy of the loop before issue 43
def _reference_learn(model, images, targets, cfg: MaskConfig, record: bool = True) -> dict:
    """``learn_masks`` as it was (commit e9d5829): autograd through the whole loss, ``torch.optim.Adam``, the
    substrate blurred by torchvision's 2-D convolution."""
    b, _, h, w = images.shape
    px = cfg.scaled(min(h, w))
    gen = torch.Generator().manual_seed(cfg.seed)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    mh, mw = max(1, h // cfg.mask_scale), max(1, w // cfg.mask_scale)
    if cfg.perturbation == "blur":
        substrate = _blur(images, px["blur_sigma"])
    else:
        substrate = perturbation_substrate(images, cfg.perturbation, px["blur_sigma"], cfg.noise_std, gen)
    with torch.no_grad():
        logits = model(images)
        classes = logits.topk(min(5, logits.shape[1]), dim=1).indices if cfg.objective == "top5" else targets[:, None]
        clean = class_probabilities(model, logits).gather(1, classes).sum(1)
        null = class_scores(model, substrate, classes)
    if cfg.init == "circle":
        full, _ = circle_init(model, images, substrate, classes, cfg.init_radii, px["init_circle_sigma"],
                              cfg.init_tolerance, clean, null)
        init = F.adaptive_avg_pool2d(full, (mh, mw))
        if cfg.game == "preservation":
            init = 1 - init
    else:
        value = {"ones": 1.0, "zeros": 0.0, "half": 0.5}[cfg.init]
        init = torch.full((b, 1, mh, mw), value, dtype=images.dtype)
    upsample = MaskUpsampler((mh, mw), (h, w), px["mask_blur_sigma"], images.device, images.dtype)
    mask = init.detach().clone().clamp_(0, 1).requires_grad_(True)
    opt = torch.optim.Adam([mask], lr=cfg.lr, betas=(0.9, 0.999))
    cell_scale = PAPER_MASK_CELLS / float(mh * mw)
    j = px["jitter"]
    diff = images - substrate
    if j > 0:
        mode = "reflect" if j < min(h, w) else "replicate"
        sub_pad, diff_pad = F.pad(substrate, (j, j, j, j), mode=mode), F.pad(diff, (j, j, j, j), mode=mode)
        shifts = torch.randint(0, 2 * j + 1, (max(cfg.iterations, 1), 2), generator=gen).tolist()
    losses = torch.zeros(cfg.iterations, b, dtype=torch.float64)
    scores = torch.zeros(cfg.iterations, b, dtype=torch.float64)
    with torch.enable_grad():
        for it in range(cfg.iterations):
            opt.zero_grad(set_to_none=True)
            up = upsample(mask)
            if j > 0:
                dy, dx = shifts[it]
                p0, d0 = sub_pad[..., dy:dy + h, dx:dx + w], diff_pad[..., dy:dy + h, dx:dx + w]
            else:
                p0, d0 = substrate, diff
            score = class_scores(model, torch.addcmul(p0, up, d0), classes)
            area = (1 - mask) if cfg.game == "deletion" else mask
            l1 = area.abs().sum(dim=(1, 2, 3)) * cell_scale
            tv = tv_norm(mask, cfg.tv_beta) * cell_scale
            objective = score if cfg.game == "deletion" else 1 - score
            loss = cfg.l1_coeff * l1 + cfg.tv_coeff * tv + objective
            loss.sum().backward()
            opt.step()
            with torch.no_grad():
                mask.clamp_(0, 1)
            losses[it] = loss.detach()
            scores[it] = score.detach()
    with torch.no_grad():
        mask = mask.detach()
        up = upsample(mask)
        final = class_scores(model, compose(images, substrate, up), classes)
        init_score = class_scores(model, compose(images, substrate, upsample(init.clamp(0, 1))), classes)
    return {"mask": up, "mask_lowres": mask, "loss_history": losses, "score_history": scores, "final_score": final,
            "clean_score": clean, "null_score": null, "init_score": init_score}


class ObjectNet(nn.Module):
    """A ReLU + max-pool network whose class 0 is the evidence of a bright square (the object of ``_images``), class
    1 constant, class 2 its negative: masks that move, through the nonlinearities the shipped VGG has."""

    def __init__(self, size=64, gain=8.0):
        super().__init__()
        self.gain = gain
        w = torch.zeros(1, 1, size // 2, size // 2)
        w[..., size // 8:size * 5 // 16, size * 5 // 32:size * 11 // 32] = 1.0
        self.register_buffer("weight", w / w.sum())
        self.scale = nn.Parameter(torch.tensor(1.0))  # a parameter, so requires_grad handling is exercised

    def forward(self, x):
        f = F.max_pool2d(F.relu(x.mean(dim=1, keepdim=True) - 0.3), 2)
        r = self.scale * (f * self.weight.to(x.dtype)).sum(dim=(1, 2, 3))
        e = self.gain * (r - 0.35)
        return torch.stack([e, torch.zeros_like(e), -e], dim=1)


def _images(b=3, size=64):
    g = torch.Generator().manual_seed(7)
    x = 0.2 * torch.rand(b, 3, size, size, generator=g)
    x[..., size // 4:size * 5 // 8, size * 5 // 16:size * 11 // 16] += 0.6 + 0.2 * torch.rand(b, 3, 1, 1, generator=g)
    return x.clamp(0, 1)


# the fong2017 default setting (configs/fong2017/default.yaml; a wider blur, so that blurring deletes the
# test object) and variants over every branch of the loop
FONG = dict(game="deletion", perturbation="blur", objective="target", iterations=80, lr=0.1, l1_coeff=1e-3,
            tv_coeff=1e-2, tv_beta=3.0, mask_scale=4, mask_blur_sigma=5.0, blur_sigma=40.0, jitter=4, init="circle",
            init_radii=12, reference_size=224, seed=0)
CASES = {
    "fong_default": {},
    "preservation_half": dict(game="preservation", init="half"),
    "noise_ones": dict(perturbation="noise", init="ones"),
    "constant_zeros_nojitter_beta2": dict(perturbation="constant", init="zeros", jitter=0, tv_beta=2.0),
    "artifacts_cells_half": dict(mask_scale=1, mask_blur_sigma=0.0, tv_coeff=0.0, jitter=0, iterations=30, init="half"),
    "beta_2_5": dict(tv_beta=2.5, iterations=40),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_loop_learns_the_masks_of_the_autograd_loop(case):
    """float64, the full schedule (32 px, so that it takes seconds): the same masks, losses and scores within 1e-5."""
    model = ObjectNet(32).double()
    x = _images(3, 32).double()
    t = torch.tensor([0, 0, 1])
    cfg = MaskConfig.from_dict(dict(FONG, **CASES[case]))
    ref = _reference_learn(model, x, t, cfg)
    new = learn_masks(model, x, t, cfg)
    for key in ("mask", "mask_lowres", "final_score", "clean_score", "null_score"):
        diff = (getattr(new, key) - ref[key]).abs().max().item()
        assert diff <= 1e-5, (case, key, diff)
    assert (new.extras["init_score"] - ref["init_score"]).abs().max().item() <= 1e-5
    # the recorded histories are float32 in both (rounding of float32 storage only)
    assert (new.loss_history.double() - ref["loss_history"]).abs().max().item() <= 1e-5
    assert (new.score_history.double() - ref["score_history"]).abs().max().item() <= 1e-5
    assert (ref["mask"].amax(dim=(1, 2, 3)) - ref["mask"].amin(dim=(1, 2, 3))).max() > 0.3  # the masks moved


def test_float32_fong_setting_on_a_smooth_model_matches_closely():
    """float32 where the optimisation is not chaotic (a linear model: the gradient never vanishes)."""
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4))
    x = _images(2, 32)
    cfg = MaskConfig.from_dict(dict(FONG, iterations=40, init="ones", reference_size=112))
    ref = _reference_learn(lin, x, torch.tensor([1, 2]), cfg)
    new = learn_masks(lin, x, torch.tensor([1, 2]), cfg)
    assert (new.mask - ref["mask"]).abs().max().item() <= 1e-5


def test_regulariser_grad_is_autograds():
    torch.manual_seed(0)
    for game in ("deletion", "preservation"):
        for beta in (3.0, 2.0, 1.5, 0.0):
            m = torch.rand(3, 1, 9, 7, dtype=torch.float64)
            m[0, 0, :2] = 1.0
            m[1, 0, 4] = 0.0
            leaf = m.clone().requires_grad_(True)
            area = (1 - leaf) if game == "deletion" else leaf
            (0.3 * area.abs().sum((1, 2, 3)) + 0.7 * tv_norm(leaf, beta)).sum().backward()
            got = regulariser_grad(m, game, 0.3, 0.7, beta)
            assert torch.allclose(got, leaf.grad, atol=1e-12, rtol=0), (game, beta)


def test_adam_is_torch_adam_bit_for_bit():
    torch.manual_seed(0)
    p_ref = torch.rand(4, 1, 6, 6).requires_grad_(True)
    p_new = p_ref.detach().clone()
    opt_ref, opt_new = torch.optim.Adam([p_ref], lr=0.1, betas=(0.9, 0.999)), Adam(p_new, lr=0.1)
    for _ in range(25):
        g = torch.randn(4, 1, 6, 6) * torch.rand(()) * 1e-3
        p_ref.grad = g.clone()
        opt_ref.step()
        opt_new.step(p_new, g)
    assert torch.equal(p_ref.detach(), p_new)


def test_upsampler_adjoint_is_the_gradient():
    up = MaskUpsampler((8, 6), (32, 24), 1.5, dtype=torch.float64)
    m = torch.rand(2, 1, 8, 6, dtype=torch.float64, requires_grad=True)
    g = torch.rand(2, 1, 32, 24, dtype=torch.float64)
    (up(m) * g).sum().backward()
    assert torch.allclose(up.adjoint(g), m.grad, atol=1e-12, rtol=0)


def test_channel_dot_and_blur_images():
    a, b = torch.rand(2, 3, 10, 12, dtype=torch.float64), torch.rand(2, 3, 10, 12, dtype=torch.float64)
    assert torch.allclose(ml._channel_dot(a, b), (a * b).sum(1, keepdim=True), atol=1e-14, rtol=0)
    for shape, sigma in (((2, 3, 64, 64), 2.857), ((1, 3, 32, 48), 10.0), ((1, 1, 7, 5), 1.0)):
        x = torch.rand(shape, dtype=torch.float64)
        assert torch.allclose(blur_images(x, sigma), _blur(x, sigma), atol=1e-12, rtol=0), (shape, sigma)
        assert torch.allclose(blur_images(x.float(), sigma), _blur(x.float(), sigma), atol=1e-5, rtol=0)
    x = torch.rand(1, 3, 16, 16)
    assert blur_images(x, 0.0) is x


def test_constant_init_scores_are_the_clean_and_null_scores():
    """init ones / zeros: Phi(x0; 1) = x0 and Phi(x0; 0) = P(x0), so the init score needs no forward."""
    model = ObjectNet().eval()
    x = _images(2)
    for init, key in (("ones", "clean_score"), ("zeros", "null_score")):
        res = learn_masks(model, x, torch.tensor([0, 2]), dict(FONG, iterations=2, init=init))
        up0 = torch.full_like(x[:, :1], 1.0 if init == "ones" else 0.0)
        direct = class_scores(model, compose(x, res.extras["substrate"], up0), res.extras["classes"])
        assert torch.allclose(res.extras["init_score"], direct, atol=1e-6)
        assert torch.equal(res.extras["init_score"], getattr(res, key))
