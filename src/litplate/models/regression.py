"""What every regression model of litplate shares: loss, optimizer, metrics, the steps, fine-tuning.

A model subclasses `RegressionModel`, creates its parameters and writes `forward()`; the training,
testing and prediction steps, the optimizer and starting from pre-trained weights are here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torchmetrics import (
    MeanAbsoluteError,
    MeanMetric,
    MeanSquaredError,
    MetricCollection,
    R2Score,
)

from litplate.checkpoint import load_state_dict, load_weights
from litplate.config import to_plain


class RegressionModel(L.LightningModule):
    """Steps, metrics and optimizer of a model that maps x to y.

    The loss, the optimizer (a Hydra `_partial_`) and the optional LR scheduler arrive as config
    dicts and are instantiated here, so the checkpoint's hyper-parameters stay plain data, as do
    `init_from` (a `.ckpt` or `.safetensors` to start fitting from) and `freeze` (names of
    parameters, or of modules holding them, that the optimizer leaves as they are). Subclasses pass
    their own arguments as `architecture`, saved with the rest.
    """

    def __init__(
        self,
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        init_from: str | None = None,
        freeze: Sequence[str] = (),
        architecture: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # Plain data only, so every checkpoint loads with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                **(architecture or {}),
                "loss": to_plain(loss) or {"_target_": "torch.nn.L1Loss"},
                "optimizer": to_plain(optimizer)
                or {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.01},
                "scheduler": to_plain(scheduler),
                "init_from": str(init_from) if init_from else None,
                "freeze": list(to_plain(freeze) or []),
            }
        )
        self.loss_fn = instantiate(self.hparams.loss)
        # Accumulated over the epoch's batches and logged once at its end: logging a metric object
        # every step costs Lightning about a millisecond, more than a step of a small model.
        # torchmetrics also sums across DDP ranks exactly, whatever their shares of the data.
        metrics = MetricCollection(
            {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()}
        )
        self.val_metrics = MetricCollection(
            {"loss": MeanMetric(), **metrics.clone()}, prefix="val/"
        )
        self.test_metrics = MetricCollection(
            {"loss": MeanMetric(), **metrics.clone()}, prefix="test/"
        )

    def setup(self, stage: str) -> None:
        # Here, not in __init__: the parameters exist by now, a resumed fit (ckpt_path) restores its
        # own weights after this, and eval/predict rebuild the model without re-reading init_from.
        if stage == "fit":
            self.prepare_fine_tuning()

    def prepare_fine_tuning(self) -> None:
        """Start from `init_from`'s weights and freeze the `freeze` parameters (if set)."""
        if self.hparams.init_from:
            path = self.hparams.init_from
            load_weights(self, load_state_dict(path), path)
        parameters = dict(self.named_parameters())
        unknown = []
        for name in self.hparams.freeze:
            chosen = [
                p for key, p in parameters.items() if key == name or key.startswith(f"{name}.")
            ]
            if not chosen:
                unknown.append(name)
            for parameter in chosen:
                parameter.requires_grad_(False)
        if unknown:
            raise ValueError(
                f"freeze: {type(self).__name__} has no parameter {', '.join(map(repr, unknown))} "
                f"(its parameters: {', '.join(parameters)})"
            )

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        X, y = batch
        y_pred = self(X)  # forward pass
        loss = self.loss_fn(y_pred, y)  # how wrong the predictions are
        # Lightning then does optimizer.zero_grad(), loss.backward() and optimizer.step();
        # src/litplate/reference.py writes that loop out by hand.
        # The epoch's mean over all samples (and all DDP ranks, whose shares are equal in training).
        self.log(
            "train/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(X),
            sync_dist=True,
        )
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        # Lightning has already called model.eval() and entered torch.inference_mode().
        X, y = batch
        y_pred = self(X)
        metrics = getattr(self, f"{stage}_metrics")
        metrics["loss"].update(self.loss_fn(y_pred, y), weight=len(X))
        for name, metric in metrics.items():
            if not name.endswith("loss"):
                metric.update(y_pred.squeeze(-1), y.squeeze(-1))

    def _log_epoch(self, stage: str) -> None:
        """The epoch's mean loss and metrics (over all its samples, on every rank)."""
        metrics = getattr(self, f"{stage}_metrics")
        values = metrics.compute()
        metrics.reset()
        loss = values.pop(f"{stage}/loss")
        # Already the same on every DDP rank (compute() syncs the states); sync_dist=True only
        # tells Lightning so, which otherwise warns about every key of a distributed run.
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True)
        self.log_dict(values, sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        X, _ = batch
        return self(X)

    def configure_optimizers(self) -> Any:
        # Frozen parameters (requires_grad False) are left out, so the optimizer never moves them.
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer)(params=trainable)
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        # "monitor" only matters to ReduceLROnPlateau; other schedulers ignore it.
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"},
        }
