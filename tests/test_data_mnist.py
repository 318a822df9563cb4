"""MNIST / Fashion-MNIST idx reader and DataModules (tiny idx files written here in the real format), the
shipped real MNIST test set (MD5, the stratified 8,000 / 2,000 split), and scikit-learn's digits."""

import gzip
import hashlib
import logging
import struct

import numpy as np
import pytest
import torch

from lightning_modules.data import mnist
from lightning_modules.data.digits import DigitsDataModule
from lightning_modules.data.mnist import FashionMNISTDataModule, MNISTDataModule, read_idx
from lightning_modules.utils import REPO_ROOT

SHIPPED = REPO_ROOT / "data" / "mnist"
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def write_idx(path, array: np.ndarray, gz: bool):
    """The idx format: 2 zero bytes, dtype code (0x08 = ubyte), ndim, big-endian int32 dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def make_root(root, n_test=60, n_train=None, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    y = np.arange(n_test) % 10
    x = rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8)
    x[:, 0, 0] = y  # the label is written into a pixel: lets the test check image/label pairing
    write_idx(root / f"t10k-images-idx3-ubyte{ext}", x, gz)
    write_idx(root / f"t10k-labels-idx1-ubyte{ext}", y, gz)
    if n_train:
        yt = np.arange(n_train) % 10
        xt = rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8)
        xt[:, 0, 0] = yt
        write_idx(root / f"train-images-idx3-ubyte{ext}", xt, gz)
        write_idx(root / f"train-labels-idx1-ubyte{ext}", yt, gz)
    return x, y


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    a = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    p = tmp_path / ("x.idx.gz" if gz else "x.idx")
    write_idx(p, a, gz)
    b = read_idx(p)
    assert b.dtype == np.uint8 and np.array_equal(a, b)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    write_idx(tmp_path / "y", labels, False)
    assert read_idx(tmp_path / "y").tolist() == [3, 1, 4, 1, 5]


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad")
    a = np.zeros((4, 28, 28), np.uint8)
    write_idx(tmp_path / "t", a, False)
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "t")


@pytest.mark.parametrize("gz", [True, False])
def test_test_only_root_gives_a_stratified_seeded_split_and_says_so_once(tmp_path, gz, caplog):
    x, y = make_root(tmp_path / "m", n_test=100, gz=gz)
    caplog.set_level(logging.WARNING, logger=mnist.__name__)
    dm = MNISTDataModule(root=str(tmp_path / "m"), test_only_train_size=80, verify_md5=False, batch_size=16)
    dm.setup()
    tr, te = dm.datasets["train"].tensors(), dm.datasets["test"].tensors()
    assert tr[0].shape == (80, 1, 28, 28) and te[0].shape == (20, 1, 28, 28)
    assert torch.bincount(tr[1], minlength=10).tolist() == [8] * 10
    assert torch.bincount(te[1], minlength=10).tolist() == [2] * 10
    # images stay paired with their labels, scaled to [0, 1]
    assert torch.equal((tr[0][:, 0, 0, 0] * 255).round().long(), tr[1])
    assert dm.split_info["official"] is False and dm.split_info["train_images"] == 80
    assert sum("only the test set" in r.message for r in caplog.records) == 1
    MNISTDataModule(root=str(tmp_path / "m"), test_only_train_size=80, verify_md5=False).setup()
    assert sum("only the test set" in r.message for r in caplog.records) == 1  # said once
    b = next(iter(dm.train_dataloader()))
    assert b["image"].dtype == torch.float32 and b["label"].dtype == torch.long and b["id"].shape == (16,)


def test_official_train_images_give_the_official_split(tmp_path):
    make_root(tmp_path / "m", n_test=30, n_train=50)
    dm = MNISTDataModule(root=str(tmp_path / "m"), verify_md5=False, val_size=10)
    dm.setup()
    assert dm.split_info["official"] is True
    assert len(dm.datasets["train"]) == 40 and len(dm.datasets["val"]) == 10 and len(dm.datasets["test"]) == 30


def test_fashion_mnist_uses_the_same_reader(tmp_path):
    make_root(tmp_path / "f", n_test=20, n_train=40, gz=False)
    dm = FashionMNISTDataModule(root=str(tmp_path / "f"), verify_md5=False)
    dm.setup()
    assert len(dm.datasets["train"]) == 40 and dm.classes[9] == "Ankle boot"


def test_missing_root_names_the_files_and_the_folder(tmp_path):
    dm = MNISTDataModule(root=str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=r"nothing.*t10k-images-idx3-ubyte"):
        dm.setup()


def test_md5_mismatch_is_a_clear_error(tmp_path):
    make_root(tmp_path / "m", n_test=20)  # tiny files under the official names: wrong MD5
    with pytest.raises(ValueError, match="MD5"):
        MNISTDataModule(root=str(tmp_path / "m")).setup()


def test_shipped_files_match_the_published_md5():
    for name, md5 in mnist.MD5["mnist"].items():
        path = SHIPPED / name
        if name.startswith("train-images"):
            assert not path.exists()  # not shipped: the test-only split is what the default profile uses
            continue
        assert mnist.md5sum(path) == md5, name



def test_file_digest_streams_any_hashlib_algorithm(tmp_path):
    """One streamed hash for the datasets' MD5 and the shipped weights' SHA-256; a file over one 1 MiB chunk."""
    data = bytes(range(256)) * 5000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert mnist.file_digest(path, "sha256") == hashlib.sha256(data).hexdigest()
    assert mnist.file_digest(path) == mnist.md5sum(path) == hashlib.md5(data).hexdigest()

def test_shipped_mnist_split_8000_2000():
    dm = MNISTDataModule(seed=0)  # default root: data/mnist, MD5 verified
    dm.setup()
    info = dm.split_info
    assert not info["official"] and info["train_images"] == 8000 and info["test_images"] == 2000
    total = [a + b for a, b in zip(info["train_class_counts"], info["test_class_counts"])]
    assert total == OFFICIAL_TEST_COUNTS
    for c, n in enumerate(OFFICIAL_TEST_COUNTS):
        assert abs(info["train_class_counts"][c] - 0.8 * n) <= 1
    x, y = dm.datasets["train"].tensors()
    assert x.shape == (8000, 1, 28, 28) and 0 <= x.min() and x.max() == 1
    # real digits: the mean image is bright in the centre, dark at the border
    mean = x.mean(0)[0]
    assert mean[10:18, 10:18].mean() > 0.3 and mean[:3].mean() < 0.01
    # fixed by the seed
    dm2 = MNISTDataModule(seed=0)
    dm2.setup()
    assert torch.equal(dm2.datasets["test"].labels, dm.datasets["test"].labels)
    dm3 = MNISTDataModule(seed=1)
    dm3.setup()
    assert not torch.equal(dm3.datasets["train"].images, dm.datasets["train"].images)


def test_sklearn_digits_tiny_real_dataset():
    dm = DigitsDataModule(seed=0)
    dm.setup()
    x, y = dm.datasets["train"].tensors()
    xt, yt = dm.datasets["test"].tensors()
    assert x.shape[1:] == (1, 28, 28) and x.shape[0] + xt.shape[0] == 1797
    assert 0 <= x.min() and x.max() <= 1
    frac = torch.bincount(y, minlength=10).double() / (torch.bincount(y, minlength=10) + torch.bincount(yt, minlength=10))
    assert (frac - 0.8).abs().max() < 0.02
    with pytest.raises(ValueError, match="train_fraction"):
        DigitsDataModule(train_fraction=1.0)
