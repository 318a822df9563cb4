"""MNIST and Fashion-MNIST from their original idx files (gzipped or not) in a local root.

The project ships the real MNIST *test* set (10,000 images) and the training labels in ``data/mnist``
(LeCun & Cortes, CC BY-SA 3.0; see data/mnist/README.md); the training images are not available offline.
With only the test set present the DataModule says so (once) and uses a fixed, seeded, class-stratified
split of it, 8,000 train / 2,000 test by default, recorded in ``datamodule.split_info`` for the reports.
With the official training images present in the same root it uses the official 60,000 / 10,000 split.

Known files are verified under both their ``.gz`` and their gunzipped names: the published MD5 of the gzipped
files, the MD5 of the gunzipped MNIST files (computed from the verified shipped ``.gz`` files; the training images
and Fashion-MNIST are not shipped, so those gunzipped files get the size check only) and the exact size an idx
file of the official shape has. A mismatch is an error naming the file; no download happens unless
``download=True`` (then torchvision fetches the files into the root).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from lightning_modules.data.schema import ArrayDataset, SplitsDataModule, stratified_split
from lightning_modules.validation import DataRootError, missing_data_error, portable_data_path, resolve_data_path

log = logging.getLogger(__name__)

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: published MD5 sums of the gzipped files (yann.lecun.com / torchvision; zalandoresearch/fashion-mnist)
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
#: MD5 of the gunzipped files, from the shipped .gz files that match the published sums above
RAW_MD5 = {
    "mnist": {
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    },
    "fashion_mnist": {},
}
#: bytes of the gunzipped official files: 16-byte (images) / 8-byte (labels) header + 28 * 28 or 1 byte per sample
RAW_SIZES = {
    "train-images-idx3-ubyte": 16 + 60000 * 784,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 784,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
               0x0E: np.dtype(">f8")}
_ANNOUNCED: set = set()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (``.gz`` or raw): magic ``0 0 <dtype> <ndim>``, big-endian int32 dims, then data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as e:
        raise DataRootError(str(path), "a readable idx file", f"a read error ({e})", _REPLACE) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataRootError(str(path), "an idx file (magic number 0 0 <dtype> <ndim>)",
                            f"magic number {raw[:4].hex() or 'none (empty file)'}: not an idx file", _REPLACE)
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataRootError(str(path), f"an idx header of {4 + 4 * ndim} bytes ({ndim} dimensions)",
                            f"a file of {len(raw)} bytes, cut inside its header", _REPLACE)
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DataRootError(str(path), f"{expected} bytes of data (the header says {tuple(dims)})",
                            f"{len(raw) - offset} bytes: the file is truncated or corrupt", _REPLACE)
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(tuple(dims)).astype(dtype.newbyteorder("="))


_REPLACE = "replace the file with the official one (or re-download it with download=True on a connected machine)"


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """The hex digest of the file at ``path`` under ``algorithm`` (a ``hashlib`` name: ``md5`` for the published
    dataset checksums, ``sha256`` for the shipped weights), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5sum(path: Path) -> str:
    """The MD5 hex digest of the file at ``path`` (the checksums torchvision and the dataset pages publish)."""
    return file_digest(path, "md5")


class IdxDataModule(SplitsDataModule):
    """Shared logic of MNIST-like datasets (idx files, 28x28 grey, 10 classes). Batches: image, label, id.

    ``val_size``: images held out of the training part for validation (stratified); 0 (default) makes
    ``val_dataloader`` serve the test split (the fixed-schedule trainings here do no model selection).
    """

    name = "mnist"
    num_classes = 10
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))

    @property
    def root(self) -> Path:
        """The folder read (resolved against ``$SALIENCY_DATA``); a property so that a DataModule's plain attributes,
        which cache keys hash, hold only the portable ``data_path``."""
        return self._root

    def __init__(self, root: str | None = None, batch_size: int = 128, eval_batch_size: int | None = None,
                 seed: int = 0, test_only_train_size: int = 8000, val_size: int = 0, verify_md5: bool = True,
                 download: bool = False, num_workers: int = 0):
        super().__init__(batch_size, eval_batch_size, seed, test_only_train_size=test_only_train_size,
                         val_size=val_size, verify_md5=verify_md5, download=download, num_workers=num_workers)
        self._root = resolve_data_path(root, self.name)
        self.data_path = portable_data_path(self._root)  # what results and cache keys record
        self.split_info: dict = {}

    # ---------------------------------------------------------------- files
    def _find(self, key: str) -> Path | None:
        for folder in (self.root, self.root / "raw", self.root / type(self).__name__.replace("DataModule", "") / "raw"):
            for name in (FILES[key] + ".gz", FILES[key]):
                if (folder / name).is_file():
                    return folder / name
        return None

    def _missing_error(self) -> FileNotFoundError:
        layout = (f"  <root>/{FILES['test_images']}(.gz) and <root>/{FILES['test_labels']}(.gz)\n"
                  f"  (+ {FILES['train_images']}(.gz) and {FILES['train_labels']}(.gz) for the official split; "
                  "download=True fetches them on a connected machine)")
        return missing_data_error(f"the {self.name} test files {FILES['test_images']}(.gz) and "
                                  f"{FILES['test_labels']}(.gz)", self.root, layout)

    def _verify(self, path: Path) -> None:
        """MD5 (and, gunzipped, the size) of a known file: under its ``.gz`` and its gunzipped name alike."""
        if not self.verify_md5:
            return
        fix = f"{_REPLACE}; or pass verify_md5=False for your own idx files"
        size = RAW_SIZES.get(path.name)
        if size is not None and path.stat().st_size != size:
            raise DataRootError(str(path), f"{size} bytes (the official {path.name})",
                                f"{path.stat().st_size} bytes: the file is corrupt, truncated or not the official one",
                                fix)
        known = MD5[self.name].get(path.name) or RAW_MD5[self.name].get(path.name)
        if known is None:
            return
        got = md5sum(path)
        if got != known:
            raise DataRootError(str(path), f"MD5 {known} (the official file)",
                                f"MD5 {got}: the file is corrupt or not the official one", fix)

    def _load(self, key: str) -> torch.Tensor:
        path = self._find(key)
        if path is None:
            raise self._missing_error()
        self._verify(path)
        return torch.from_numpy(read_idx(path).copy())

    def prepare_data(self) -> None:
        if self.download:
            import torchvision

            cls = torchvision.datasets.MNIST if self.name == "mnist" else torchvision.datasets.FashionMNIST
            for train in (True, False):
                cls(str(self.root), train=train, download=True)

    # ---------------------------------------------------------------- splits
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self._find("test_images") is None or self._find("test_labels") is None:
            raise self._missing_error()
        test_x, test_y = self._load("test_images"), self._load("test_labels")
        self._check(test_x, test_y, "test")
        official = self._find("train_images") is not None
        if official:
            train_x, train_y = self._load("train_images"), self._load("train_labels")
            self._check(train_x, train_y, "train")
            train_idx = torch.arange(train_y.numel())
            source = "official split"
        else:
            n = test_y.numel()
            if not 0 < self.test_only_train_size < n:
                raise ValueError(f"test_only_train_size must be in [1, {n - 1}], got {self.test_only_train_size}")
            if self.root not in _ANNOUNCED:
                _ANNOUNCED.add(self.root)
                log.warning("%s: only the test set is present in %s; using a fixed stratified split of its %d images "
                            "(%d train / %d test, seed %d)", self.name, self.root, n, self.test_only_train_size,
                            n - self.test_only_train_size, self.seed)
            train_idx, test_idx = stratified_split(test_y, self.test_only_train_size, self.seed)
            train_x, train_y = test_x[train_idx], test_y[train_idx]
            test_x, test_y = test_x[test_idx], test_y[test_idx]
            source = f"stratified split of the {n} official test images (training images not present)"
        val_idx = None
        if self.val_size:
            keep, val_idx = stratified_split(train_y, train_y.numel() - self.val_size, self.seed + 1)
            val_x, val_y = train_x[val_idx], train_y[val_idx]
            train_x, train_y = train_x[keep], train_y[keep]
        self.datasets["train"] = ArrayDataset(train_x.unsqueeze(1), train_y)
        self.datasets["test"] = ArrayDataset(test_x.unsqueeze(1), test_y)
        self.datasets["val"] = ArrayDataset(val_x.unsqueeze(1), val_y) if val_idx is not None else self.datasets["test"]
        self.split_info = {
            "dataset": self.name,
            "root": self.data_path,
            "official": official,
            "source": source,
            "seed": self.seed,
            "train_images": int(train_y.numel()),
            "val_images": int(val_idx.numel()) if val_idx is not None else 0,
            "test_images": int(test_y.numel()),
            "train_class_counts": torch.bincount(train_y, minlength=10).tolist(),
            "test_class_counts": torch.bincount(test_y, minlength=10).tolist(),
        }
        self.split_description = (f"{self.name}: {source}; {self.split_info['train_images']} train / "
                                  f"{self.split_info['test_images']} test (seed {self.seed})")

    def _check(self, x: torch.Tensor, y: torch.Tensor, part: str) -> None:
        if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{self.name} {part}: images {tuple(x.shape)} and labels {tuple(y.shape)} do not match "
                             "(expected (N, 28, 28) uint8 and (N,))")
        if y.numel() and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"{self.name} {part}: labels outside 0..{self.num_classes - 1}")

    # ---------------------------------------------------------------- loaders


class MNISTDataModule(IdxDataModule):
    """Real MNIST (LeCun & Cortes); default root ``data/mnist`` (shipped: the test set + training labels)."""

    name = "mnist"


class FashionMNISTDataModule(IdxDataModule):
    """Fashion-MNIST (Xiao et al. 2017, MIT licence); default root ``data/fashion_mnist`` (not shipped)."""

    name = "fashion_mnist"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
