"""CIFAR-10 (Krizhevsky 2009) from the python-pickle format (``cifar-10-batches-py``) in a local root.

Used by the paper profile of the ROAR replication (Khakzar 2019 retrain ResNet8 on CIFAR-10). The files
are not available offline; nothing is downloaded unless ``download=True`` (torchvision fetches the
archive into the root). The batches are read with a restricted unpickler that only builds numpy arrays
and plain containers, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from lightning_modules.data.mnist import md5sum
from lightning_modules.data.schema import ArrayDataset, SplitsDataModule, stratified_split
from lightning_modules.validation import missing_data_error, portable_data_path, resolve_data_path

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
}
TEST_BATCHES = {"test_batch": "40351d587109b95175f43aff81a1287e"}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Allows exactly what the CIFAR batches contain: numpy arrays (and their dtypes) in plain dicts/lists."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR-10 batch file")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> images uint8 (N, 3, 32, 32), labels int64 (N,)."""
    path = Path(path)
    try:
        entry = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {e}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{path} is not a CIFAR-10 python batch (holds a {type(entry).__name__})")
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data, labels = entry.get("data"), entry.get("labels", entry.get("fine_labels"))
    if data is None or labels is None:
        raise ValueError(f"{path} lacks 'data' / 'labels' (keys: {sorted(entry)})")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(labels):
        raise ValueError(f"{path}: data has shape {data.shape} for {len(labels)} labels, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


class CIFAR10DataModule(SplitsDataModule):
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (root default ``data/cifar10``). Batches: image, label, id.

    ``val_size`` images (stratified, seeded) are held out of the 50,000 training images for validation; 0
    makes ``val_dataloader`` serve the test set.
    """

    num_classes = 10
    classes = CLASSES

    def __init__(self, root: str | None = None, batch_size: int = 128, eval_batch_size: int | None = None,
                 seed: int = 0, val_size: int = 0, verify_md5: bool = True, download: bool = False,
                 num_workers: int = 0):
        super().__init__(batch_size, eval_batch_size, seed, val_size=val_size, verify_md5=verify_md5,
                         download=download, num_workers=num_workers)
        self.root = resolve_data_path(root, "cifar10")
        self.split_info: dict = {}

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    def prepare_data(self) -> None:
        if self.download:
            import torchvision

            torchvision.datasets.CIFAR10(str(self.root), train=True, download=True)

    def _read(self, batches: dict[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [n for n in batches if not (self.folder / n).is_file()]
        if missing:
            raise missing_data_error(
                f"the CIFAR-10 batches {', '.join(missing)} in {FOLDER}/", self.root,
                f"  <root>/{FOLDER}/data_batch_1 ... data_batch_5, test_batch   (extract cifar-10-python.tar.gz from "
                "https://www.cs.toronto.edu/~kriz/cifar.html into <root>, or download=True on a connected machine)",
            )
        xs, ys = [], []
        for name, md5 in batches.items():
            path = self.folder / name
            if self.verify_md5 and md5sum(path) != md5:
                raise ValueError(f"{path} fails its MD5 check (published {md5}): corrupt or not the official file; "
                                 "replace it (or verify_md5=False for your own files)")
            x, y = read_batch(path)
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        train_x, train_y = self._read(TRAIN_BATCHES)
        test_x, test_y = self._read(TEST_BATCHES)
        for part, y in (("train", train_y), ("test", test_y)):
            if y.numel() and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(f"CIFAR-10 {part} labels outside 0..9: is this CIFAR-100? use its own loader")
        val = None
        if self.val_size:
            keep, val_idx = stratified_split(train_y, train_y.numel() - self.val_size, self.seed)
            val = ArrayDataset(train_x[val_idx], train_y[val_idx])
            train_x, train_y = train_x[keep], train_y[keep]
        self.datasets = {"train": ArrayDataset(train_x, train_y), "test": ArrayDataset(test_x, test_y)}
        self.datasets["val"] = val if val is not None else self.datasets["test"]
        self.split_info = {"dataset": "cifar10", "root": portable_data_path(self.root), "train_images": int(train_y.numel()),
                           "val_images": self.val_size, "test_images": int(test_y.numel()), "seed": self.seed}

