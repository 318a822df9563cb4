"""CIFAR-10 DataModule on tiny batch files written here in the real python-pickle format."""

import os
import pickle

import numpy as np
import pytest
import torch

from lightning_modules.data.cifar import CIFAR10DataModule, read_batch


def write_batch(path, n, offset, rng):
    data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    labels = [(offset + i) % 10 for i in range(n)]
    data[:, 0] = labels  # red channel, pixel (0, 0) carries the label: checks the channel/row-major layout
    entry = {b"batch_label": b"tiny", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}
    with open(path, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)
    return data, labels


def make_root(root, n=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        write_batch(folder / f"data_batch_{i}", n, i, rng)
    return write_batch(folder / "test_batch", n, 0, rng)


def test_reads_the_pickle_layout(tmp_path):
    data, labels = make_root(tmp_path)
    dm = CIFAR10DataModule(root=str(tmp_path), verify_md5=False, batch_size=8)
    dm.setup()
    x, y = dm.datasets["test"].tensors()
    assert x.shape == (20, 3, 32, 32) and y.tolist() == labels
    # 3072 bytes = 1024 red (row-major), 1024 green, 1024 blue
    assert torch.equal((x[:, 0, 0, 0] * 255).round().long(), y)
    assert torch.equal((x[:, 1, 0, 1] * 255).round().to(torch.uint8), torch.from_numpy(data[:, 1024 + 1]))
    assert len(dm.datasets["train"]) == 100
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (8, 3, 32, 32) and b["label"].dtype == torch.long and 0 <= b["image"].min() <= b["image"].max() <= 1


def test_validation_split_is_stratified(tmp_path):
    make_root(tmp_path)
    dm = CIFAR10DataModule(root=str(tmp_path), verify_md5=False, val_size=20)
    dm.setup()
    assert len(dm.datasets["train"]) == 80 and torch.bincount(dm.datasets["val"].labels, minlength=10).tolist() == [2] * 10


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1.*cifar-10-batches-py"):
        CIFAR10DataModule(root=str(tmp_path)).setup()


def test_md5_is_verified(tmp_path):
    make_root(tmp_path)
    with pytest.raises(ValueError, match="MD5"):
        CIFAR10DataModule(root=str(tmp_path)).setup()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_carrying_code_is_refused(tmp_path):
    p = tmp_path / "evil"
    with open(p, "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match="refusing to load"):
        read_batch(p)
