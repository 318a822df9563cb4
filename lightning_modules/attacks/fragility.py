"""Attacks on saliency maps that keep the predicted label (Ghorbani, Abid & Zou, "Interpretation of Neural
Networks is Fragile", AAAI 2019, Sec. 3 "Methods: Adversarial attacks on interpretation"; official code
``amiratag/InterpretationFragility``, ``utils.py``).

The attacker looks for ``x' = x + delta`` with ``||delta||_inf <= epsilon`` and ``x'`` in the pixel range, such
that the network's label is unchanged but the saliency map ``I(x')`` differs as much as possible from ``I(x)``.
Iterative, FGSM-like (Sec. 3, Algorithm 1): each step adds ``alpha * sign(direction)`` and projects back onto the
L-inf ball around ``x`` and onto [0, 1]. As in the official ``iterative_attack``, the returned image is the iterate
with the best success measure among those that keep the label; an iterate that changes the label is never returned,
but the attack keeps iterating from it (``on_flip="continue"``; ``"reject"`` instead keeps the image where it was).
The official notebooks choose the measure per saliency method: the simple-gradient notebook keeps the iterate with
the lowest top-k intersection (``measure="intersection"``), the Integrated-Gradients and DeepLIFT notebooks the one
with the largest centre-of-mass shift (``measure="mass_center"``): :data:`NOTEBOOK_MEASURES`.

Attacks (``direction``):

- ``random``: ``sign(N(0, 1))`` noise, the paper's baseline;
- ``topk``: decrease the total saliency of the original map's top-k pixels, ``D(x') = -sum_{i in top-k(x)} I_i(x')``;
- ``center``: move the saliency centre of mass, ``D(x') = ||C(x') - C(x)||_2^2``;
- ``targeted``: increase the saliency inside a given region (the paper's "targeted attack").

Saliency (Sec. 2 and the official code): ``|attribution|`` summed over channels, normalised to sum to 1 and
multiplied by H*W. Methods: ``gradient`` (simple gradient), ``integrated_gradients`` and ``deeplift``.

The gradient of a ReLU network's gradient map w.r.t. the input is zero almost everywhere (the Hessian of a
piecewise-linear network vanishes), so the attack direction is taken through a **surrogate** copy of the model
in which every ``nn.ReLU`` is replaced by ``nn.Softplus(beta)`` (Sec. 3, "for ReLU networks ... we replace ReLU
with softplus"); the attacked image is evaluated (label check, maps, metrics) on the original model, which is
never modified.

DeepLIFT: the maps are Captum's ``DeepLift`` (Rescale rule) on the original model. Captum computes them with
backward hooks that do not build a graph of the attribution, so the attack direction cannot come from
differentiating DeepLIFT itself; it comes from the differentiable Integrated-Gradients map of the softplus
surrogate (DeepLIFT-Rescale approximates the IG path integral, Ancona et al., ICLR 2018), i.e. a transfer attack.
The official code differentiates its own TensorFlow DeepLIFT graph instead.

Why not an ART attack: ART's evasion attacks (FGSM, PGD, ...) optimise a loss of the *label* (to flip it); this
attack optimises a function of the *saliency map* while forbidding label changes. ART's L-inf projection
(``ProjectedGradientDescentPyTorch._projection``, torch tensors on the device) is used for the projection step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from lightning_modules import progress

ATTACKS = ("random", "topk", "center", "targeted")
METHODS = ("gradient", "integrated_gradients", "deeplift")
MEASURES = ("intersection", "mass_center")
#: the best-iterate measure of each official notebook (``Simple_Gradient``: intersection; ``Integrated_Gradients``
#: and ``DeepLIFT``: mass_center)
NOTEBOOK_MEASURES = {"gradient": "intersection", "integrated_gradients": "mass_center", "deeplift": "mass_center"}
ON_FLIP = ("continue", "reject")


# --------------------------------------------------------------------------------------------- surrogate
def softplus_surrogate(model: nn.Module, beta: float = 10.0) -> nn.Module:
    """A deep copy of ``model`` with every ``nn.ReLU`` module replaced by ``nn.Softplus(beta)`` (Sec. 3).

    ``softplus_beta(z) = log(1 + exp(beta z)) / beta`` tends to ``ReLU(z)`` as ``beta`` grows and is twice
    differentiable, so the saliency map of the surrogate has a useful gradient. The original is untouched.
    Fails if the model has no ``nn.ReLU`` module (functional ReLUs cannot be replaced: make them modules).
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (softplus sharpness; larger = closer to ReLU), got {beta}")
    surrogate = copy.deepcopy(model)
    replaced = 0
    for parent in surrogate.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.Softplus(beta=float(beta)))
                replaced += 1
    if replaced == 0:
        raise ValueError("the model has no nn.ReLU modules to replace by softplus; the surrogate needs ReLU *modules* "
                         "(not torch.relu / F.relu calls) — build the network with nn.ReLU() layers")
    surrogate.eval()
    for p in surrogate.parameters():
        p.requires_grad_(False)
    return surrogate


# --------------------------------------------------------------------------------------------- saliency
def normalise_map(attr: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) attribution -> (B, 1, H, W) saliency: |a| summed over channels, scaled to sum to H*W
    (official code: ``saliency / sum(saliency) * w * h``)."""
    sal = attr.abs().sum(1, keepdim=True)
    hw = sal.shape[-1] * sal.shape[-2]
    return sal / sal.flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1, 1) * hw


def _target_logits(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return model(x).gather(1, targets.view(-1, 1)).sum()


def gradient_attribution(model, images, targets, create_graph: bool = False) -> torch.Tensor:
    """d logit_target / d x, (B, C, H, W); with ``create_graph`` the result is differentiable w.r.t. ``images``."""
    x = images if images.requires_grad else images.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(_target_logits(model, x, targets), x, create_graph=create_graph)
    return g


def integrated_gradients_attribution(model, images, targets, baseline: torch.Tensor, steps: int = 32,
                                     create_graph: bool = False) -> torch.Tensor:
    """IG with a right Riemann sum over ``steps`` points ``b + (i/steps)(x - b)``, i = 1..steps (the official
    code's ``create_counterfactuals``), all steps in one batch. (B, C, H, W)."""
    x = images if create_graph else images.detach()
    b = baseline.expand_as(x)
    alphas = torch.arange(1, steps + 1, device=x.device, dtype=x.dtype) / steps
    path = b.unsqueeze(0) + alphas.view(-1, 1, 1, 1, 1) * (x - b).unsqueeze(0)  # (S, B, C, H, W)
    flat = path.reshape(-1, *x.shape[1:])
    if not flat.requires_grad:
        flat.requires_grad_(True)
    # gradients w.r.t. the path points themselves; with create_graph they stay differentiable w.r.t. x
    (g,) = torch.autograd.grad(_target_logits(model, flat, targets.repeat(steps)), flat, create_graph=create_graph)
    return (x - b) * g.view(steps, *x.shape).mean(0)


def deeplift_attribution(model, images, targets, baseline: torch.Tensor) -> torch.Tensor:
    """Captum's DeepLift (Rescale rule) on ``model`` (not differentiable w.r.t. the input)."""
    import warnings

    from captum.attr import DeepLift

    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
        # Captum's DeepLift puts a forward pre-hook on the module it is given that passes the inputs on as a
        # tuple; wrapping keeps it off the model's own input-check hook.
        return DeepLift(_Forward(model)).attribute(x, baselines=baseline.expand_as(x), target=targets).detach()


class _Forward(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def saliency(model, images, targets, method: str, baseline: torch.Tensor | None = None, ig_steps: int = 32,
             create_graph: bool = False) -> torch.Tensor:
    """The normalised saliency map (B, 1, H, W) of ``method`` (see the module docstring)."""
    with torch.enable_grad():  # also inside Lightning's no-grad test loop
        return _saliency(model, images, targets, method, baseline, ig_steps, create_graph)


def _saliency(model, images, targets, method, baseline, ig_steps, create_graph) -> torch.Tensor:
    if baseline is None:
        baseline = torch.zeros_like(images[:1])
    if method == "gradient":
        attr = gradient_attribution(model, images, targets, create_graph)
    elif method == "integrated_gradients":
        attr = integrated_gradients_attribution(model, images, targets, baseline, ig_steps, create_graph)
    elif method == "deeplift":
        if create_graph:
            raise ValueError("DeepLIFT maps are not differentiable here; attack them through integrated_gradients")
        attr = deeplift_attribution(model, images, targets, baseline)
    else:
        raise ValueError(f"unknown saliency method {method!r}; use one of {METHODS}")
    sal = normalise_map(attr)
    return sal if create_graph else sal.detach()


def center_of_mass(maps: torch.Tensor) -> torch.Tensor:
    """(B, 2) centre of mass (y, x) in pixels of non-negative (B, 1, H, W) maps; differentiable."""
    mass = maps[:, 0]
    total = mass.sum((1, 2)).clamp_min(1e-12)
    ys = torch.arange(mass.shape[1], device=maps.device, dtype=maps.dtype)
    xs = torch.arange(mass.shape[2], device=maps.device, dtype=maps.dtype)
    return torch.stack([(mass.sum(2) * ys).sum(1) / total, (mass.sum(1) * xs).sum(1) / total], 1)


def topk_mask(maps: torch.Tensor, k: int) -> torch.Tensor:
    """(B, 1, H, W) bool: the k largest pixels of each map."""
    flat = maps.flatten(1)
    if not 1 <= k <= flat.shape[1]:
        raise ValueError(f"k must be in [1, {flat.shape[1]}] (pixels per map), got {k}")
    idx = torch.topk(flat, k, dim=1).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, idx, True).view_as(maps)


def linf_project(x: torch.Tensor, x0: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Project ``x`` onto ``{||x - x0||_inf <= epsilon} ∩ [0, 1]`` (ART's L-inf projection, then the pixel range)."""
    from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
        ProjectedGradientDescentPyTorch,
    )

    delta = ProjectedGradientDescentPyTorch._projection(x - x0, float(epsilon), "inf")
    return (x0 + delta.view_as(x0)).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------- the attack
@dataclass
class AttackResult:
    """What one attack run returns (tensors on the model's device, batch first).

    ``images``: the attacked images (the best label-keeping iterate per image; the original where no iterate
    improved on it); ``maps`` / ``attacked_maps``: original-model saliency of the clean / attacked images;
    ``labels``: the original predictions; ``attacked_labels``: the original model's predictions on ``images``;
    ``accepted_steps`` / ``rejected_steps``: per-image counts of iterates that keep / change the label;
    ``images_at_steps``: the image the attack would have returned had it stopped after each of the attack's
    ``record_steps`` (empty unless asked for; one run gives the effect of the step count).
    """

    images: torch.Tensor
    maps: torch.Tensor
    attacked_maps: torch.Tensor
    labels: torch.Tensor
    attacked_labels: torch.Tensor
    accepted_steps: torch.Tensor
    rejected_steps: torch.Tensor
    images_at_steps: dict = None

    @property
    def label_kept(self) -> torch.Tensor:
        return self.attacked_labels == self.labels


class FragilityAttack:
    """Iterative L-inf attack on a saliency map that keeps the label (Ghorbani et al. 2019, Algorithm 1).

    Args:
        attack: ``random`` | ``topk`` | ``center`` | ``targeted`` (see the module docstring).
        method: ``gradient`` | ``integrated_gradients`` | ``deeplift``.
        epsilon: L-inf budget in [0, 1] pixel units (paper: 8/255 in 0-255 units -> 8/255 here).
        alpha: step size in [0, 1] pixel units; None = ``epsilon / 4``.
        steps: iterations (paper notebooks: 300 at alpha 0.5/255).
        k: top-k size for the objective and the best-iterate criterion (paper: 1000 of 227^2 pixels).
        beta: softplus sharpness of the surrogate (official code: Keras softplus, beta = 1).
        ig_steps: Riemann steps of IG (paper: 100).
        attack_ig_steps: IG steps of the surrogate map the attack differentiates (None = ``ig_steps``); fewer
            makes the second-order pass cheaper (it costs ``attack_ig_steps`` double backward passes per step).
        baseline: IG / DeepLIFT reference image, a float (constant in [0, 1]) or a (1|B, C, H, W) tensor
            (paper: the mean image, i.e. zero after mean subtraction).
        seed: the random-sign generator's seed.
        keep_best: return the label-keeping iterate with the best ``measure``, as the official code does;
            False = the last label-keeping iterate.
        measure: the best-iterate criterion of the random / topk / center attacks: ``"intersection"`` (lowest
            top-k intersection; the official simple-gradient notebook) or ``"mass_center"`` (largest centre shift;
            the official IG and DeepLIFT notebooks), see :data:`NOTEBOOK_MEASURES`. The targeted attack keeps the
            iterate with the most region mass. An iterate is kept only if it beats the original image (official:
            intersection below 1).
        on_flip: ``"continue"`` (official: the next step starts from the label-flipping iterate, which is never
            returned) or ``"reject"`` (the step is undone for that image).
        record_steps: step counts (each in 1..steps) after which the returned image is also recorded
            (``AttackResult.images_at_steps``): the attack's result had it run that many steps.
    """

    def __init__(self, attack: str = "topk", method: str = "gradient", epsilon: float = 8 / 255,
                 alpha: float | None = None, steps: int = 20, k: int = 100, beta: float = 10.0, ig_steps: int = 16,
                 baseline: float | torch.Tensor = 0.0, seed: int = 0, keep_best: bool = True,
                 attack_ig_steps: int | None = None, measure: str = "intersection", on_flip: str = "continue",
                 record_steps: tuple[int, ...] = ()):
        if attack not in ATTACKS:
            raise ValueError(f"unknown attack {attack!r}; use one of {ATTACKS}")
        if method not in METHODS:
            raise ValueError(f"unknown saliency method {method!r}; use one of {METHODS}")
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon is an L-inf budget in [0, 1] pixel units (e.g. 8/255), got {epsilon}")
        if alpha is not None and not alpha > 0:
            raise ValueError(f"alpha (step size) must be > 0, got {alpha}")
        if steps < 1 or k < 1 or ig_steps < 1:
            raise ValueError(f"steps, k and ig_steps must be >= 1, got {steps}, {k}, {ig_steps}")
        self.attack, self.method = attack, method
        self.epsilon = float(epsilon)
        self.alpha = float(alpha) if alpha is not None else self.epsilon / 4
        self.steps, self.k, self.beta, self.ig_steps = int(steps), int(k), float(beta), int(ig_steps)
        self.baseline, self.seed, self.keep_best = baseline, int(seed), bool(keep_best)
        self.attack_ig_steps = int(attack_ig_steps) if attack_ig_steps is not None else self.ig_steps
        if self.attack_ig_steps < 1:
            raise ValueError(f"attack_ig_steps must be >= 1, got {attack_ig_steps}")
        if measure not in MEASURES:
            raise ValueError(f"unknown best-iterate measure {measure!r}; use one of {MEASURES}")
        if on_flip not in ON_FLIP:
            raise ValueError(f"on_flip must be one of {ON_FLIP}, got {on_flip!r}")
        self.measure, self.on_flip = measure, on_flip
        self.record_steps = tuple(int(t) for t in record_steps)
        if any(not 1 <= t <= self.steps for t in self.record_steps):
            raise ValueError(f"record_steps must lie in 1..steps={self.steps}, got {list(record_steps)}")

    # -- helpers
    def _baseline(self, images: torch.Tensor) -> torch.Tensor:
        b = self.baseline
        if isinstance(b, torch.Tensor):
            return b.to(images.device, images.dtype)
        return torch.full_like(images[:1], float(b))

    def maps(self, model, images, targets) -> torch.Tensor:
        """The evaluated saliency maps (original model, no graph)."""
        return saliency(model, images, targets, self.method, self._baseline(images), self.ig_steps)

    def _surrogate_map(self, surrogate, x, targets):
        # DeepLIFT is attacked through the surrogate's IG map (see the module docstring).
        method = "integrated_gradients" if self.method == "deeplift" else self.method
        return saliency(surrogate, x, targets, method, self._baseline(x), self.attack_ig_steps, create_graph=True)

    def _objective(self, maps, ref: dict) -> torch.Tensor:
        """Per-image quantity the attack *increases* (B,)."""
        if self.attack == "topk":
            return -(maps * ref["topk"]).flatten(1).sum(1)
        if self.attack == "center":
            return (center_of_mass(maps) - ref["center"]).pow(2).sum(1)
        return (maps * ref["region"]).flatten(1).sum(1)  # targeted

    def _criterion(self, maps, ref: dict) -> torch.Tensor:
        """Per-image score of an evaluated (original-model) map; higher = more successful attack."""
        if self.attack == "targeted":
            return self._objective(maps, ref)
        if self.measure == "intersection":
            return -(topk_mask(maps, self.k) & ref["topk"]).flatten(1).float().sum(1)
        return (center_of_mass(maps) - ref["center"]).pow(2).sum(1)

    def _direction(self, surrogate, x, targets, ref, gen) -> torch.Tensor:
        if self.attack == "random":
            return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype).sign()
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            obj = self._objective(self._surrogate_map(surrogate, x, targets), ref).sum()
            (g,) = torch.autograd.grad(obj, x)
        return g.sign()

    # -- the attack
    def __call__(self, model: nn.Module, images: torch.Tensor, region: torch.Tensor | None = None,
                 surrogate: nn.Module | None = None) -> AttackResult:
        """Attack ``images`` (B, C, H, W) in [0, 1] on ``model`` (its predictions are the labels kept).

        ``region`` (B, 1, H, W) bool is required by the targeted attack. ``surrogate``: a prebuilt
        ``softplus_surrogate(model, beta)`` (built here if None; pass one to reuse it across calls).
        """
        from lightning_modules.validation import check_images

        check_images(images, model=model)
        if self.attack == "targeted" and (region is None or region.shape[0] != images.shape[0] or region.shape[1] != 1):
            raise ValueError("the targeted attack needs region=(B, 1, H, W) bool: the pixels whose saliency to raise")
        was_training = model.training
        model.eval()
        try:
            return self._run(model, images, region, surrogate)
        finally:
            model.train(was_training)

    def _run(self, model, images, region, surrogate) -> AttackResult:
        x0 = images.detach()
        b = x0.shape[0]
        with torch.no_grad():
            labels = model(x0).argmax(1)
        if surrogate is None and self.attack != "random":
            surrogate = softplus_surrogate(model, self.beta)
        maps0 = self.maps(model, x0, labels)
        ref = {"topk": topk_mask(maps0, self.k), "center": center_of_mass(maps0)}
        if region is not None:
            ref["region"] = region.to(x0.device).float()
        gen = torch.Generator(device=x0.device).manual_seed(self.seed)
        x = x0.clone()
        # an iterate must beat the original image itself (official: criterion below that of x, intersection 1)
        best_x, best_crit = x0.clone(), self._criterion(maps0, ref)
        last_kept = x0.clone()
        accepted = torch.zeros(b, dtype=torch.long, device=x0.device)
        rejected = torch.zeros_like(accepted)
        at_steps = {}
        # progress only: an inner loop, shown on a terminal beside its stage (touches no generator or tensor)
        with progress.stage(f"attack {self.attack} on {self.method} (eps {255 * self.epsilon:.3g}/255, {b} images)",
                            total=self.steps, unit="steps", detail=True) as bar:
            for step in range(1, self.steps + 1):
                cand = linf_project(x + self.alpha * self._direction(surrogate, x, labels, ref, gen), x0, self.epsilon)
                with torch.no_grad():
                    keep = model(cand).argmax(1) == labels
                accepted += keep
                rejected += ~keep
                x = cand if self.on_flip == "continue" else torch.where(keep.view(-1, 1, 1, 1), cand, x)
                last_kept = torch.where(keep.view(-1, 1, 1, 1), cand, last_kept)
                if self.keep_best:
                    crit = self._criterion(self.maps(model, cand, labels), ref)
                    better = keep & (crit > best_crit)
                    best_crit = torch.where(better, crit, best_crit)
                    best_x = torch.where(better.view(-1, 1, 1, 1), cand, best_x)
                if step in self.record_steps:
                    at_steps[step] = (best_x if self.keep_best else last_kept).clone()
                bar.advance()
        final = best_x if self.keep_best else last_kept
        with torch.no_grad():
            final_labels = model(final).argmax(1)
        return AttackResult(final, maps0, self.maps(model, final, labels), labels, final_labels, accepted, rejected,
                            at_steps)
