"""Step 2 of the workflow: the course's linear regression model, as a LightningModule."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from litplate.config import to_plain


class LinearRegression(L.LightningModule):
    """y = weights * x + bias, starting from random values and learning the ideal ones.

    The loss, the optimizer (a Hydra `_partial_`) and the optional LR scheduler arrive as config
    dicts and are instantiated here, so the checkpoint's hyper-parameters stay plain data.
    """

    def __init__(
        self,
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # 1. Start with random values (weights and bias); the order matters for reproducing the course.
        self.weights = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

        # Plain data only, so every checkpoint loads with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "loss": to_plain(loss) or {"_target_": "torch.nn.L1Loss"},
                "optimizer": to_plain(optimizer)
                or {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.01},
                "scheduler": to_plain(scheduler),
            }
        )
        self.loss_fn = instantiate(self.hparams.loss)
        metrics = MetricCollection(
            {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()}
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x + self.bias

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        X, y = batch
        y_pred = self(X)  # forward pass
        loss = self.loss_fn(y_pred, y)  # how wrong the predictions are
        # Lightning then does optimizer.zero_grad(), loss.backward() and optimizer.step().
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(X))
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        # Lightning has already called model.eval() and entered torch.inference_mode().
        X, y = batch
        y_pred = self(X)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(y_pred.squeeze(-1), y.squeeze(-1))
        self.log(f"{stage}/loss", self.loss_fn(y_pred, y), prog_bar=True, batch_size=len(X))
        self.log_dict(metrics, batch_size=len(X))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        X, _ = batch
        return self(X)

    def on_train_epoch_end(self) -> None:
        # The learned values, to watch them approach the ideal ones in TensorBoard.
        self.log_dict({"weight": self.weights[0].detach(), "bias": self.bias[0].detach()})

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        # "monitor" only matters to ReduceLROnPlateau; other schedulers ignore it.
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"},
        }
