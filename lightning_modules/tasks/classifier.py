"""Classifier training as a LightningModule: the embedded black box, the heatmap-based adversarial detector
(Ghorbani-style), ROAR retraining (Hooker et al. 2019, as used by Khakzar 2019) and the data-randomisation
test's models (Adebayo et al. 2018, Sec. 4) all train through this one module.

Cross-entropy (or, with ``multilabel=True``, a per-class sigmoid loss on the batch's ``multilabel`` multi-hot
targets, as the VOC / COCO classifiers of the pointing game), AdamW / Adam / SGD (Nesterov momentum), a per-step cosine schedule with optional linear
warm-up, torchmetrics accuracy for train / val / test (DDP-synced). The network is any
``lightning_modules.models.load_model`` name; it is built *wrapped in* ``Normalized``, so the module takes
[0, 1] images like the rest of the project and ``task.model`` is directly usable as a black box.

Label permutation for the data randomisation test is the DataModule's job (the labels are data):
``SyntheticScenesDataModule(label_permutation_seed=...)`` or ``tasks.data_randomization.permuted_labels``.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MultilabelAveragePrecision

from lightning_modules.data.schema import validate_batch

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "none")


class ClassifierTask(pl.LightningModule):
    """Train ``model_name`` (built by ``load_model``) on any DataModule following the batch schema.

    Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``; with
    ``multilabel=True`` the metric is the macro mean average precision over classes (``<stage>/map``) instead of
    the accuracy.
    ``checkpoint`` starts from saved weights (``weights_only=True``). ``validate_batches`` checks every
    batch against the schema (NaN, range, class count) and fails with a message naming the fix.
    """

    def __init__(
        self,
        model_name: str = "scenes_cnn",
        num_classes: int = 10,
        model_kwargs: dict | None = None,
        checkpoint: str | None = None,
        optimizer: str = "adamw",
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        momentum: float = 0.9,
        scheduler: str = "cosine",
        warmup_fraction: float = 0.0,
        max_epochs: int | None = None,
        label_smoothing: float = 0.0,
        hflip: bool = False,
        validate_batches: bool = True,
        multilabel: bool = False,
    ):
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; use one of {OPTIMIZERS}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; use one of {SCHEDULERS}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if multilabel and label_smoothing:
            raise ValueError("label_smoothing applies to the softmax loss; pass label_smoothing=0 with multilabel=True")
        if lr <= 0 or not 0 <= warmup_fraction < 1:
            raise ValueError(f"need lr > 0 and 0 <= warmup_fraction < 1, got lr={lr}, warmup_fraction={warmup_fraction}")
        self.save_hyperparameters()
        from lightning_modules.models import load_model

        self.model, self.data_config = load_model(model_name, num_classes=num_classes, checkpoint=checkpoint,
                                                  freeze=False, **dict(model_kwargs or {}))
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.metric_name = "map" if multilabel else "acc"

        def metric():
            if multilabel:
                return MultilabelAveragePrecision(num_classes, average="macro")
            return MulticlassAccuracy(num_classes, average="micro")

        self.train_acc, self.val_acc, self.test_acc = metric(), metric(), metric()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        n = getattr(dm, "num_classes", None)
        if isinstance(n, int) and n != self.num_classes:
            raise ValueError(
                f"the DataModule has {n} classes but ClassifierTask(num_classes={self.num_classes}); "
                f"pass num_classes={n}"
            )

    def _step(self, batch: dict, stage: str, metric: MulticlassAccuracy) -> torch.Tensor:
        if self.hparams.validate_batches:
            validate_batch(batch, self.num_classes, self.data_config.input_size[0])
        x, y = batch["image"], batch["label"]
        if stage == "train" and self.hparams.hflip:
            # a seeded per-sample flip (the global torch RNG is seeded by seed_everything)
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        logits = self.model(x)
        if self.multilabel:
            if "multilabel" not in batch:
                raise ValueError("multilabel=True needs batch['multilabel'] (B, K) multi-hot targets; use a multi-label "
                                 "DataModule (e.g. lightning_modules.data.scenes_multilabel)")
            targets = batch["multilabel"].to(logits.dtype)
            loss = F.binary_cross_entropy_with_logits(logits, targets)
            metric(logits.detach(), targets.long())
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing if stage == "train" else 0.0)
            metric(logits.detach(), y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=x.shape[0])
        self.log(f"{stage}/{self.metric_name}", metric, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", self.train_acc)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test", self.test_acc)

    def predict_step(self, batch, batch_idx):
        return self.model(batch["image"] if isinstance(batch, dict) else batch)

    def configure_optimizers(self):
        hp = self.hparams
        # no weight decay on biases and normalisation parameters (standard practice; keeps BN scales free)
        decay = [p for p in self.model.parameters() if p.requires_grad and p.dim() > 1]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.dim() <= 1]
        groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if hp.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=hp.lr)
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=hp.lr)
        else:
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
        if hp.scheduler == "none":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(hp.warmup_fraction * total)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
