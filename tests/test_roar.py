"""ROAR (Hooker et al. 2019): pixel removal, the random baseline, and a resumable retraining pipeline."""

import json

import pytest
import torch

from lightning_modules.tasks.roar import random_attributions, remove_top_fraction, summarize


def test_remove_top_fraction_replaces_exactly_the_top_pixels():
    images = torch.rand(2, 3, 4, 4)
    attr = torch.arange(16.0).view(1, 1, 4, 4).repeat(2, 1, 1, 1)
    attr[1] = attr[1].flip(-1)  # second image ranks the other way round per row
    fill = torch.tensor([0.1, 0.2, 0.3])
    out = remove_top_fraction(images, attr, 0.25, fill)  # 4 of 16 pixels
    removed = (out != images).any(1)
    assert removed.sum(dim=(1, 2)).tolist() == [4, 4]
    assert removed[0].flatten()[-4:].all()  # the last row has the largest squared scores in image 0
    assert torch.equal(out[0, :, 3, 0], fill)
    assert removed[1, 3].tolist() == [True, True, True, True]
    assert torch.equal(out[:, :, :3], images[:, :, :3])  # untouched elsewhere


def test_squared_estimator_ranks_negative_attributions_high_and_kar_is_the_complement():
    images = torch.rand(1, 1, 1, 4)
    attr = torch.tensor([[[[0.1, -5.0, 0.2, 0.3]]]])
    fill = torch.tensor([9.0])
    out = remove_top_fraction(images, attr, 0.25, fill)
    assert out[0, 0, 0, 1] == 9.0 and (out[0, 0, 0, [0, 2, 3]] == images[0, 0, 0, [0, 2, 3]]).all()
    out_raw = remove_top_fraction(images, attr, 0.25, fill, estimator="raw")
    assert out_raw[0, 0, 0, 3] == 9.0
    kar = remove_top_fraction(images, attr, 0.25, fill, keep=True)
    assert kar[0, 0, 0, 0] == 9.0  # the least important pixel goes first in KAR


def test_fraction_edges_and_bad_input():
    images = torch.rand(2, 3, 4, 4)
    attr = torch.rand(2, 1, 4, 4)
    fill = torch.zeros(3)
    assert torch.equal(remove_top_fraction(images, attr, 0.0, fill), images)
    assert torch.equal(remove_top_fraction(images, attr, 1.0, fill), torch.zeros_like(images))
    with pytest.raises(ValueError, match="fraction"):
        remove_top_fraction(images, attr, 1.5, fill)
    with pytest.raises(ValueError, match="do not match"):
        remove_top_fraction(images, attr[:1], 0.5, fill)
    with pytest.raises(ValueError, match="estimator"):
        remove_top_fraction(images, attr, 0.5, fill, estimator="cubed")


def test_random_baseline_is_seeded():
    assert torch.equal(random_attributions((2, 1, 4, 4), 3), random_attributions((2, 1, 4, 4), 3))
    assert not torch.equal(random_attributions((2, 1, 4, 4), 3), random_attributions((2, 1, 4, 4), 4))


def test_summarize_averages_over_seeds():
    rows = [
        {"method": "g", "fraction": 0.1, "seed": 0, "test_accuracy": 0.8},
        {"method": "g", "fraction": 0.1, "seed": 1, "test_accuracy": 0.6},
        {"method": "g", "fraction": 0.5, "seed": 0, "test_accuracy": 0.5},
    ]
    assert summarize(rows) == {"g": {0.1: pytest.approx(0.7), 0.5: 0.5}}
