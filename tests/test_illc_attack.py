"""Known-answer tests of the iterative least-likely-class attack (ILLC, Kurakin et al.; Fong & Vedaldi 2017, Sec. 5):
lightning_modules/tasks/detector.py ``iterative_least_likely``, ``kurakin_steps`` and the F7 budget assignment."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from lightning_modules.tasks.detector import HeatmapDetector, iterative_least_likely, kurakin_steps


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).eval()


def test_kurakin_steps_follow_min_eps_plus_4_and_1_25_eps():
    eps = torch.tensor([1, 2, 4, 8, 12, 16], dtype=torch.float32) / 255
    assert kurakin_steps(eps).tolist() == [1, 2, 5, 10, 15, 20]


def test_illc_moves_the_prediction_toward_the_least_likely_class_within_eps():
    model = linear_model()
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.6 + 0.2
    with torch.no_grad():
        logp = model(x).log_softmax(1)
    ll = logp.argmin(1)
    eps = torch.tensor([4, 8, 16, 32] * 2, dtype=torch.float32) / 255  # one budget per image
    adv = iterative_least_likely(model, x, eps, eps_step=1 / 255)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    # L-inf: each image within its own budget
    assert ((adv - x).abs().flatten(1).max(1).values <= eps + 1e-6).all()
    with torch.no_grad():
        logp_adv = model(adv).log_softmax(1)
    gain = logp_adv.gather(1, ll[:, None]) - logp.gather(1, ll[:, None])
    assert (gain > 0).all()  # every image's least-likely class gains probability
    rank = (logp_adv > logp_adv.gather(1, ll[:, None])).sum(1)  # 0 = the least-likely class is now the prediction
    rank0 = (logp > logp.gather(1, ll[:, None])).sum(1)
    assert (rank <= rank0).all() and (rank[eps * 255 >= 16] < rank0[eps * 255 >= 16]).all()
    # a larger budget moves further: the 32-level images reach the least-likely class on this linear model
    assert (logp_adv.argmax(1)[eps * 255 > 31] == ll[eps * 255 > 31]).all()


def test_illc_step_counts_and_errors():
    model = linear_model()
    x = torch.rand(2, 3, 8, 8)
    one = iterative_least_likely(model, x, 8 / 255, eps_step=1 / 255, steps=1)
    assert ((one - x).abs().max() <= 1 / 255 + 1e-6)  # one step moves at most eps_step
    with pytest.raises(ValueError, match="eps"):
        iterative_least_likely(model, x, 0.0)


def test_detector_resizes_maps_to_its_input_size():
    det = HeatmapDetector(64, hidden=16, input_size=112)
    assert det.input_size == 112 and det.net.avgpool.output_size == (2, 2)  # no 1x1 collapse
    assert det(torch.rand(3, 1, 64, 64)).shape == (3, 2)
    assert HeatmapDetector(64, hidden=16).net.avgpool.output_size == (1, 1)  # the 64-px maps' own size collapses


def test_attack_eps_cycles_pairs_of_ids_through_the_sweep():
    from replications.fong2017.experiments.e_adversarial_detection import attack_eps

    eps = attack_eps(torch.arange(12), {"eps_sweep": [1, 2, 4]}) * 255
    assert torch.allclose(eps, torch.tensor([1, 1, 2, 2, 4, 4, 1, 1, 2, 2, 4, 4], dtype=torch.float32))
    # even (training) and odd (test) ids both cover the whole sweep
    assert set(eps[0::2].round().tolist()) == set(eps[1::2].round().tolist()) == {1.0, 2.0, 4.0}
