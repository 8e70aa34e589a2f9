"""What every model shares: loss, optimizer, steps, metrics, fine-tuning. A model subclasses
`LitModel` and writes `forward()`; a task's base class overrides the hooks (regression's here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection, R2Score
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from litplate.run.checkpoint import SafeLoading, load_state_dict, load_weights
from litplate.run.config import to_plain
from litplate.run.targets import check_stored
from litplate.run.validation import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from litplate.data.tensors import TensorDataModule


class LitModel(SafeLoading, L.LightningModule):
    """Steps, metrics and optimizer of a model that maps x to y. Its arguments stay plain data in
    the checkpoint: loss, optimizer (`_partial_`) and scheduler as config dicts, `init_from` (the
    weights to start from), `freeze` (parameters left alone); a subclass adds its `architecture`."""

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
        # They may come from a file (a checkpoint's hyper-parameters): each role's classes only.
        check_stored(dict(self.hparams), "model", f"{type(self).__name__} hyper-parameters")
        self.loss_fn = instantiate(self.hparams.loss)
        # Means over each epoch's samples, exact across DDP ranks; a NaN batch loss makes it NaN
        # (MeanMetric's default would drop that batch and report the mean of the rest).
        self.train_loss, self.val_loss, self.test_loss = (
            MeanMetric(nan_strategy=float("nan")) for _ in range(3)
        )
        metrics = self.configure_metrics()
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # The fit's loss per epoch, for the loss curves; kept in checkpoints.
        self.loss_history: dict[str, dict[int, float]] = {"train/loss": {}, "val/loss": {}}

    # --- Task hooks: regression defaults -------------------------------------------------------
    def configure_metrics(self) -> MetricCollection:
        """The metrics of `model_step()`'s outputs and targets (logged as `val/NAME`, ...)."""
        return MetricCollection(
            {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()}
        )

    def prediction_columns(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """predictions.csv's columns for the model's outputs (in the data's units)."""
        return {"prediction": outputs[:, 0]}

    def plot_predictions(
        self, datamodule: TensorDataModule, split: str, outputs: torch.Tensor
    ) -> Figure:
        """The course's figure: training data, `split`'s data and its predictions."""
        from litplate.plotting import plot_predictions

        inputs, targets = datamodule.raw_inputs, datamodule.raw_targets
        return plot_predictions(
            inputs("train"), targets("train"), inputs(split), targets(split), outputs
        )

    def reported_values(self, standardization: Any = None) -> dict[str, float]:
        """Values of the model's own for metrics.json (none here), also in the units of the
        data's `standardization` if it has one."""
        return {}

    # --- Fine-tuning ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # Here, not in __init__: the parameters exist by now, a resumed fit (ckpt_path) restores its
        # own weights after this, and eval/predict rebuild the model without re-reading init_from.
        if stage == "fit":
            self.prepare_fine_tuning()

    def prepare_fine_tuning(self) -> None:
        """Start from `init_from`'s weights and freeze the `freeze` parameters (if set)."""
        if path := self.hparams.init_from:
            load_weights(self, load_state_dict(path), path)
        parameters = dict(self.named_parameters())
        unknown = []
        for name in self.hparams.freeze:
            # A parameter's name, or a module's: each of its parameters.
            keys = [key for key in parameters if key == name or key.startswith(f"{name}.")]
            for key in keys:
                parameters[key].requires_grad_(False)
            if not keys:
                unknown.append(repr(name))
        if unknown:
            raise ConfigError(
                f"freeze: {type(self).__name__} has no parameter {', '.join(unknown)} "
                f"(its parameters: {', '.join(parameters)})"
            )

    # --- The steps -----------------------------------------------------------------------------
    def model_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss of a batch, with the outputs and targets it compared."""
        X, y = batch
        y_pred = self(X)  # forward pass
        loss = self.loss_fn(y_pred, y)  # how wrong the predictions are
        return loss, y_pred, y

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, _, y = self.model_step(batch)
        # Lightning then does optimizer.zero_grad(), loss.backward() and optimizer.step();
        # src/litplate/reference.py writes that loop out by hand.
        self.train_loss.update(loss.detach(), len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        # Lightning's pattern for a metric over an epoch: updated in the step, logged once here.
        self.log_epoch("train/loss", self.train_loss, prog_bar=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        # Lightning has already called model.eval() and entered torch.inference_mode().
        loss, y_pred, y = self.model_step(batch)
        self.val_loss.update(loss, len(y))
        self.val_metrics.update(y_pred, y)

    def on_validation_epoch_end(self) -> None:
        self.log_epoch("val/loss", self.val_loss, prog_bar=True)
        self.log_dict(self.val_metrics)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        loss, y_pred, y = self.model_step(batch)
        self.test_loss.update(loss, len(y))
        self.test_metrics.update(y_pred, y)

    def on_test_epoch_end(self) -> None:
        self.log("test/loss", self.test_loss)
        self.log_dict(self.test_metrics)

    def log_epoch(self, name: str, metric: MeanMetric, prog_bar: bool = False) -> None:
        """Log an epoch's mean loss and keep it in `loss_history` (the loss curves)."""
        value = metric.compute()  # summed across DDP ranks
        metric.reset()
        self.log(name, value, prog_bar=prog_bar, sync_dist=True)
        # The fit's epochs only: not its sanity check, nor a trainer.validate() after it.
        if self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking:
            self.loss_history[name][self.current_epoch] = float(value)

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["loss_history"] = {  # (epoch, loss) pairs
            name: sorted(values.items()) for name, values in self.loss_history.items()
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, pairs in checkpoint.get("loss_history", {}).items():
            self.loss_history[name] = dict(pairs)

    def loss_curve(self, name: str) -> tuple[list[int], list[float]]:
        """(epochs, losses) of `train/loss` or `val/loss`, in epoch order."""
        epochs = sorted(self.loss_history[name])
        return epochs, [self.loss_history[name][epoch] for epoch in epochs]

    def configure_optimizers(self) -> Any:
        # Frozen parameters are left out, so the optimizer never moves them.
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer)(params=trainable)
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        lr_scheduler = {"scheduler": scheduler, "monitor": "val/loss"}  # for ReduceLROnPlateau
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # val/loss exists only in the epochs that validate: Lightning stops in the others.
            lr_scheduler["frequency"] = self.trainer.check_val_every_n_epoch or 1
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}


class ClassificationModel(LitModel):
    """Outputs one logit per class (`n_classes` in its hyper-parameters): cross-entropy,
    accuracy and macro-F1, label and probabilities in predictions.csv, a confusion matrix."""

    def __init__(self, loss: dict[str, Any] | None = None, **common: Any) -> None:
        super().__init__(loss=to_plain(loss) or {"_target_": "torch.nn.CrossEntropyLoss"}, **common)

    def configure_metrics(self) -> MetricCollection:
        n = self.hparams.n_classes
        return MetricCollection(
            {"acc": MulticlassAccuracy(n, average="micro"), "f1": MulticlassF1Score(n)}
        )

    def model_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        X, y = batch
        return super().model_step((X, y.reshape(-1).long()))  # the labels as class indices

    def prediction_columns(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        probabilities = outputs.softmax(dim=-1)
        columns = {"label": outputs.argmax(dim=-1)}
        return columns | {f"prob_{i}": probabilities[:, i] for i in range(probabilities.shape[-1])}

    def plot_predictions(
        self, datamodule: TensorDataModule, split: str, outputs: torch.Tensor
    ) -> Figure:
        """The confusion matrix of `split`: true labels in rows, predicted ones in columns."""
        from litplate.plotting import plot_confusion_matrix

        targets = datamodule.raw_targets(split).reshape(-1).long()
        return plot_confusion_matrix(targets, outputs.argmax(dim=-1), self.hparams.n_classes)
