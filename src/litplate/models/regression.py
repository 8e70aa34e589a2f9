"""What every regression model of litplate shares: loss, optimizer, metrics, the steps, fine-tuning.

A model subclasses `RegressionModel`, creates its parameters and writes `forward()`; the training,
testing and prediction steps, the optimizer and starting from pre-trained weights are here. A
model with values of its own to watch logs them in `on_train_epoch_end` and reports them for
metrics.json in `reported_values` (see LinearRegression).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from hydra.utils import instantiate
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from litplate.checkpoint import load_state_dict, load_weights
from litplate.config import to_plain
from litplate.metrics import SampleMean
from litplate.targets import check_config

if TYPE_CHECKING:
    from litplate.data.standardize import Standardization


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
        # They may come from a file (a checkpoint's hyper-parameters): allowlisted classes only.
        check_config(dict(self.hparams), f"{type(self).__name__} hyper-parameters")
        self.loss_fn = instantiate(self.hparams.loss)
        # Means over each epoch's samples, computed and reset by Lightning at the epoch's end;
        # torchmetrics sums their states across DDP ranks exactly, whatever each rank's share.
        self.train_loss = SampleMean()
        self.val_loss, self.test_loss = SampleMean(), SampleMean()
        metrics = MetricCollection(
            {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()}
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

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

    def reported_values(self, standardization: Standardization | None = None) -> dict[str, float]:
        """Values of this model's own that a run writes into metrics.json (none here).

        `standardization`: the data's (a CSV's), to report values in the data's own units too.
        """
        return {}

    def model_step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss of a batch, with the predictions and targets it compared."""
        X, y = batch
        y_pred = self(X)  # forward pass
        loss = self.loss_fn(y_pred, y)  # how wrong the predictions are
        return loss, y_pred, y

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, _, y = self.model_step(batch)
        # Lightning then does optimizer.zero_grad(), loss.backward() and optimizer.step();
        # src/litplate/reference.py writes that loop out by hand.
        self.train_loss.update(loss, weight=len(y))
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        # Lightning has already called model.eval() and entered torch.inference_mode().
        loss, y_pred, y = self.model_step(batch)
        self.val_loss.update(loss, weight=len(y))
        self.val_metrics.update(y_pred.squeeze(-1), y.squeeze(-1))
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(self.val_metrics, on_step=False, on_epoch=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, y_pred, y = self.model_step(batch)
        self.test_loss.update(loss, weight=len(y))
        self.test_metrics.update(y_pred.squeeze(-1), y.squeeze(-1))
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log_dict(self.test_metrics, on_step=False, on_epoch=True)

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
