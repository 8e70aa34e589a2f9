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
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from litplate.checkpoint import load_state_dict, load_weights
from litplate.config import to_plain
from litplate.metrics import SampleMean
from litplate.targets import check_config


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
        # Accumulated over the epoch's batches and logged once at its end: each self.log call
        # costs Lightning about 0.2 ms, an update here 0.02 ms, and a step of the course's model
        # 0.3 ms. torchmetrics also sums across DDP ranks exactly, whatever their shares of data.
        self.train_loss = SampleMean()
        metrics = MetricCollection(
            {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()}
        )
        self.val_metrics = MetricCollection(
            {"loss": SampleMean(), **metrics.clone()}, prefix="val/"
        )
        self.test_metrics = MetricCollection(
            {"loss": SampleMean(), **metrics.clone()}, prefix="test/"
        )
        # The last values of the epoch metrics that went straight to the loggers (see log_epoch).
        self.epoch_metrics: dict[str, float] = {}
        self._callback_keys: set[str] = set()

    def on_fit_start(self) -> None:
        # Keys that callbacks read from trainer.callback_metrics (the checkpoint's and early
        # stopping's monitor, the LR scheduler's) go through self.log; see log_epoch.
        monitors = [getattr(callback, "monitor", None) for callback in self.trainer.callbacks]
        self._callback_keys = {"train/loss", "val/loss"} | {m for m in monitors if m}

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
        self.train_loss.update(loss, weight=len(X))
        trainer = self._trainer  # None when the step is called by hand, outside a Trainer
        if trainer and (trainer.is_last_batch or trainer.global_step + 1 == trainer.max_steps):
            # The epoch's mean over all samples (and all DDP ranks, whose shares are equal in
            # training), logged here rather than in on_train_epoch_end, where callbacks (the
            # loss history) would only see it after their own hook.
            # batch_size=1: one value per epoch, nothing for Lightning to average or measure.
            mean = self.train_loss.compute()
            self.log("train/loss", mean, on_step=False, on_epoch=True, prog_bar=True,
                     batch_size=1, sync_dist=True)  # fmt: skip
            self.train_loss.reset()
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

    def log_epoch(self, values: dict[str, torch.Tensor]) -> None:
        """Log values of the whole epoch (the same on every DDP rank).

        While fitting, only the losses and the keys that callbacks monitor go through self.log
        (about 0.2 ms each per epoch in Lightning); the rest go straight to the loggers at the
        current step and into `epoch_metrics`, for metrics.json.
        """
        fitting = self.trainer.state.fn == "fit" and not self.trainer.sanity_checking
        direct = {}
        for key, value in values.items():
            if fitting and key not in self._callback_keys:
                direct[key] = value
            else:
                # sync_dist=True only tells Lightning that the value is the same on every rank;
                # it warns about every key of a distributed run otherwise.
                self.log(key, value, prog_bar=key.endswith("/loss"), sync_dist=True)
        if direct:
            # One device sync for all of them (Lightning's own logging syncs each value).
            direct = dict(zip(direct, torch.stack(list(direct.values())).tolist(), strict=True))
            self.epoch_metrics.update(direct)
            for logger in self.loggers:
                logger.log_metrics(direct, step=self.trainer.global_step)

    def _log_evaluation(self, stage: str) -> None:
        """The epoch's mean loss and metrics (over all its samples, on every rank)."""
        metrics = getattr(self, f"{stage}_metrics")
        values = metrics.compute()  # synced across DDP ranks
        metrics.reset()
        self.log_epoch(values)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

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
