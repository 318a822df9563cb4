"""The renders of the synthetic generators and the hashes that name their cache files, pinned: the splits are cached by
config hash, so a change in what a generator draws (or in the hash) would silently change every cached split and every
report built on it. A refactoring must leave these digests as they are; a deliberate change of a generator bumps its
``GENERATOR_VERSION`` and updates them here. Small renders (about a second in all)."""

import hashlib

import pytest
import torch

from lightning_modules.data import scenes_multilabel, scenes_v2, synthetic


def digest(d) -> str:
    """SHA-256 (16 hex digits) of a dict of tensors: every key's dtype, shape and bytes, in key order."""
    h = hashlib.sha256()
    if isinstance(d, dict):
        for k in sorted(d):
            h.update(k.encode())
            h.update(digest(d[k]).encode())
    elif isinstance(d, torch.Tensor):
        h.update(str(d.dtype).encode())
        h.update(str(tuple(d.shape)).encode())
        h.update(d.detach().contiguous().numpy().tobytes())
    else:
        h.update(repr(d).encode())
    return h.hexdigest()[:16]


V1 = synthetic.ScenesConfig(image_size=32, train_size=60, val_size=40, test_size=30, heldout_size=20, max_objects=3,
                            multi_object_prob=0.5, spurious_rate=0.7)
V2 = scenes_v2.SyntheticScenesV2Config(train_size=60, val_size=40, test_size=30, heldout_size=20)
ML = scenes_multilabel.MultiLabelScenesConfig(train_size=60, val_size=40, test_size=30, heldout_size=20)


@pytest.mark.parametrize("omit, expected", [
    ((), "2dfe1abea4ef8160"), (("head",), "e7e8b11a84a1de10"), (("feet",), "a4dcbe6097bdc69e"),
    (("body", "eyes"), "4530d41ee98cbbb1"), (("distractors", "artifact"), "8ea8e2efcfc1c62c"),
])
def test_v1_renders(omit, expected):
    assert digest(synthetic.render_split(V1, "train", omit, size=40)) == expected


@pytest.mark.parametrize("omit, expected", [
    ((), "333646912521f062"), (("evidence",), "68cd75a252fe6c2f"), (("non_evidence",), "e9fa7062d410dbc0"),
    (("feet", "distractors", "clutter"), "4dfa8ce000c43cf1"),
])
def test_v2_renders(omit, expected):
    assert digest(scenes_v2.render_split(V2, "val", omit)) == expected


def test_multilabel_renders():
    assert digest(scenes_multilabel.render_split(ML, "test")) == "2c0553511d19c890"
    assert digest(scenes_multilabel.render_split(ML, "test", size=20, omit=("evidence",))) == "81eca0ff8e3ceb69"


@pytest.mark.parametrize("module, hashes", [
    (synthetic, {"train": "46d3a6b5dd2fc9f7", "val": "51c300207d8cdcf3", "test": "445bade9e1712f96",
                 "heldout": "5703f0e0330422f2"}),
    (scenes_v2, {"train": "38a468c3ef90751f", "val": "f0918fad03684eef", "test": "56433e8ed62743ac",
                 "heldout": "7f7524a5ff1428c9"}),
    (scenes_multilabel, {"train": "47f201ec904f8024", "val": "4b66da15850202f9", "test": "35b93ebe9980e70d",
                         "heldout": "df52b6da78ff2396"}),
])
def test_smoke_cache_hashes(module, hashes):
    assert {s: module.PROFILES["smoke"].content_hash(s) for s in hashes} == hashes
