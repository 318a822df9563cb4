"""Our batched occlusion (issue 43) against Captum's ``Occlusion``, the implementation it replaced: the same windows
(Captum's count, the last one cut at the border where the stride does not divide), the same batches, the same map."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Occlusion

from lightning_modules.explainers import create_explainer
from lightning_modules.explainers.perturbation import _score_fn
from lightning_modules.models import load_model


def _captum(model, images, targets, window, stride, fill, output, per_eval):
    c = images.shape[1]
    with torch.no_grad():
        return Occlusion(_score_fn(model, output)).attribute(
            images, sliding_window_shapes=(c, window, window), strides=(c, stride, stride), baselines=fill,
            target=targets, perturbations_per_eval=per_eval)[:, :1]


def _bench_model(name):
    if not name.startswith("scenes_v2"):
        torch.manual_seed(0)
        return load_model(name)
    from lightning_modules.benchmarks.explainers import load_bench_model

    try:
        model, cfg, _ = load_bench_model(name)
    except Exception as e:  # the shipped weights are not in this checkout
        pytest.skip(f"{name}: {e}")
    return model, cfg


@pytest.mark.parametrize("name", ["scenes_v2_vgg", "scenes_v2_resnet", "scenes_cnn"])
@pytest.mark.parametrize("window,stride,fill,output,batch", [(16, 12, 0.5, "logit", 40), (16, 10, 0.2, "prob", 128),
                                                              (20, 9, 0.0, "logit", 7)])
def test_occlusion_equals_captum(name, window, stride, fill, output, batch):
    model, cfg = _bench_model(name)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, *cfg.input_size, generator=g)
    t = torch.randint(0, 10, (3,), generator=g)
    ours = create_explainer("occlusion", window=window, stride=stride, fill=fill, output=output, samples_batch_size=batch)
    got = ours(model, x, t)
    ref = _captum(model, x, t, window, stride, fill, output, max(1, batch // 3))
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6 * ref.abs().max().item())
    h = cfg.input_size[-1]
    assert ours.window_starts(h)[-1] + window >= h  # the border is covered (the last window cut there)


def test_window_starts_are_captums():
    occ = create_explainer("occlusion", window=6, stride=5)
    assert occ.window_starts(64) == list(range(0, 61, 5))  # ceil(58 / 5) + 1 = 13 positions, the last cut to 60..63
    assert create_explainer("occlusion", window=8, stride=4).window_starts(64) == list(range(0, 57, 4))
    assert create_explainer("occlusion", window=8, stride=4).n_windows(64, 64) == 15 * 15


def test_n_windows_counts_the_forward_passes_attribute_runs():
    """The benchmark's floor counts one forward per window: n_windows must be the number attribute scores, the
    windows cut at the border included (stride 3 does not divide 32 - 6)."""
    calls = []

    class Counting(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return x.mean((2, 3))

    images, targets = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    explainer = create_explainer("occlusion", window=6, stride=3, samples_batch_size=2)
    explainer.attribute(Counting(), images, targets)
    assert sum(calls) // 2 - 1 == explainer.n_windows(32, 32) == 10 * 10
