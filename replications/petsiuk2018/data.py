"""The evaluation data of the RISE replication.

``source="scenes_v2"`` (default, smoke): the first ``n_images`` test scenes of benchmark v2
(``lightning_modules.data.scenes_v2``, profile ``scenes_profile``): labels, object boxes, the class evidence
(``evidence_mask``, the oracle and the evidence ground truth of the pointing game) and the "difficult" flag (a
distractor object of another class, or a small object).
``source="scenes"``: the v1 scenes of the cached black box (kept for comparison; the oracle is the head mask).
With ``pointing_dataset="scenes_multilabel"`` the scenes get the paper's second pass: the pointing game on the
multi-label scenes (``lightning_modules.data.scenes_multilabel``: one trial per (image, present class), EBP's
difficult rule), the first ``pointing["n_images"]`` test images of profile ``pointing["profile"]`` (default: the
``scenes_profile``), as the paper runs it on VOC07 / COCO with a multi-label classifier.
``source="paper"``: ImageNet val (``imagenet`` kwargs of ``ImageNetValDataModule``) for deletion/insertion and
VOC07 test or COCO val2014 (``pointing`` kwargs, ``pointing_dataset``) for the pointing game.

``test_dataloader`` (and ``val_dataloader``, the same loaders) returns ``[causal, pointing]`` for the paper source
(two loaders, ``dataloader_idx`` 0 and 1); the scenes use one loader whose batches serve both experiments. ``train_dataloader`` yields one empty
batch: ``fit`` has nothing to learn but the RISE masks, which ``training_step`` generates on the device.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Subset

from lightning_modules.data.schema import collate_batch


#: the embedded sources: benchmark v2 and the v1 scenes
SCENE_SOURCES = ("scenes_v2", "scenes")
#: the pointing game's data: the paper's (VOC07 test, COCO val2014) and the embedded multi-label scenes
POINTING_DATASETS = ("voc07", "coco", "scenes_multilabel")


class _One(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return {"id": torch.tensor(i)}


class RiseData(pl.LightningDataModule):
    def __init__(
        self,
        source: str = "scenes_v2",
        scenes_profile: str = "default",
        n_images: int = 32,
        batch_size: int = 16,
        imagenet: dict | None = None,
        pointing_dataset: str = "voc07",
        pointing: dict | None = None,
        root: str | None = None,
    ):
        super().__init__()
        if source not in SCENE_SOURCES + ("paper",):
            raise ValueError(f"source must be 'scenes_v2' (benchmark v2), 'scenes' (v1) or 'paper' (ImageNet + "
                             f"VOC07/COCO), got {source!r}")
        if pointing_dataset not in POINTING_DATASETS:
            raise ValueError(f"pointing_dataset must be one of {POINTING_DATASETS}, got {pointing_dataset!r}")
        if pointing_dataset == "scenes_multilabel" and source != "scenes_v2":
            raise ValueError("pointing_dataset 'scenes_multilabel' is the pointing pass of source 'scenes_v2' (benchmark "
                             f"v2), got source {source!r}")
        if n_images < 1 or batch_size < 1:
            raise ValueError(f"n_images and batch_size must be >= 1, got {n_images}, {batch_size}")
        self.source = source
        self.scenes_profile = scenes_profile
        self.n_images = n_images
        self.batch_size = batch_size
        self.imagenet = dict(imagenet or {})
        self.pointing_dataset = pointing_dataset
        self.pointing = dict(pointing or {})
        self.root = root
        self._scenes = None
        self._pointing_scenes = None
        self._paper: dict = {}

    def setup(self, stage: str | None = None) -> None:
        if self.source in SCENE_SOURCES:
            if self._scenes is None:
                if self.source == "scenes_v2":
                    from lightning_modules.data.scenes_v2 import ScenesV2DataModule

                    dm = ScenesV2DataModule.from_profile(self.scenes_profile, root=self.root)
                else:
                    from lightning_modules.models import blackbox_datamodule

                    dm = blackbox_datamodule(self.scenes_profile, root=self.root)
                ds = dm.dataset("test")
                if self.n_images > len(ds):
                    raise ValueError(f"n_images={self.n_images} but the {self.scenes_profile} scenes test split has {len(ds)}")
                self._scenes = Subset(ds, range(self.n_images))
            if self.pointing_dataset == "scenes_multilabel" and self._pointing_scenes is None:
                from lightning_modules.data.scenes_multilabel import PROFILES, MultiLabelScenes

                kw = dict(self.pointing)
                profile = kw.pop("profile", self.scenes_profile)
                n = kw.pop("n_images", None)
                if kw:
                    raise ValueError(f"data.pointing for the multi-label scenes takes profile and n_images, got {sorted(kw)}")
                if profile not in PROFILES:
                    raise ValueError(f"data.pointing.profile must be one of {sorted(PROFILES)}, got {profile!r}")
                self._pointing_scenes = MultiLabelScenes("test", PROFILES[profile], root=self.root, trials=True, limit=n)
            return
        if not self._paper:
            from lightning_modules.data.coco import COCOPointingDataModule
            from lightning_modules.data.imagenet import ImageNetValDataModule
            from lightning_modules.data.voc import VOC2007DataModule

            imnet = ImageNetValDataModule(batch_size=self.batch_size, **{"limit": self.n_images, **self.imagenet})
            cls = VOC2007DataModule if self.pointing_dataset == "voc07" else COCOPointingDataModule
            point = cls(batch_size=self.batch_size, **{"limit": self.n_images, **self.pointing})
            imnet.setup("test")
            point.setup("test")
            self._paper = {"causal": imnet, "pointing": point}

    @property
    def num_classes(self) -> int | None:
        return None

    def train_dataloader(self):
        return DataLoader(_One(), batch_size=1, collate_fn=collate_batch)

    def val_dataloader(self):
        """The same images as ``test``: ``validate`` checks that the models read them (top-1 accuracy)."""
        return self.test_dataloader()

    @property
    def has_pointing_pass(self) -> bool:
        """A separate pointing-game pass: the paper's VOC07 / COCO, or the multi-label scenes."""
        return self.source == "paper" or self.pointing_dataset == "scenes_multilabel" and self.source == "scenes_v2"

    def test_dataloader(self):
        if self.source in SCENE_SOURCES:
            scenes = DataLoader(self._scenes, batch_size=self.batch_size, shuffle=False, collate_fn=collate_batch)
            if self._pointing_scenes is None:
                return scenes
            trials = DataLoader(self._pointing_scenes, batch_size=self.batch_size, shuffle=False, collate_fn=collate_batch)
            return [scenes, trials]
        return [self._paper["causal"].test_dataloader(), self._paper["pointing"].test_dataloader()]
