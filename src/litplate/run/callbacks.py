"""Lightning callbacks of the project's own (the rest come from lightning.pytorch.callbacks)."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from litplate.run.checkpoint import RUN_CONFIG_KEY, fit_checkpoints, non_finite_parameters


class RunRecord(L.Callback):
    """The run's config (to rebuild model and data from the file alone) and the global RNG states
    in every checkpoint: Lightning does not restore those, and a resumed run needs them to be
    bit-identical (dropout and noise draw from them)."""

    def __init__(self, run_config: dict[str, Any]) -> None:
        self.run_config = run_config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RUN_CONFIG_KEY] = self.run_config
        # Plain data and tensors, so checkpoints load with weights_only.
        kind, keys, *rest = np.random.get_state()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": [kind, keys.tolist(), *rest],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if (states := checkpoint.get("rng_states")) is None:
            return
        torch.set_rng_state(states["torch"])
        # int() and asarray also read the tensors that checkpoints of earlier versions hold.
        version, keys, gauss = states["python"]
        random.setstate((version, tuple(int(key) for key in keys), gauss))
        kind, keys, *rest = states["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


class NonFiniteLossError(RuntimeError):
    """Training produced a loss, or weights, that are NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raise at the first non-finite training loss (naming epoch and step) or weights, before the
    epoch's checkpoints are written. On a GPU the losses are checked after validation and at the
    epoch's end, not at every step (a wait for the device); `every_step` chooses."""

    def __init__(self, every_step: bool | None = None) -> None:
        self.every_step = every_step
        # The unchecked steps on a GPU: (loss still on the device, epoch, step, batch).
        self._deferred: list[tuple[torch.Tensor, int, int, int]] = []
        self._weights_checked_at = -1

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        step = (loss.detach(), trainer.current_epoch, trainer.global_step, batch_idx)
        every_step = loss.device.type == "cpu" if self.every_step is None else self.every_step
        if not every_step:
            self._deferred.append(step)
        elif not torch.isfinite(loss):
            raise _loss_error(trainer, *step)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Before the checkpoint callbacks' own on_validation_end (Lightning runs them last).
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning calls this before the checkpoint callbacks' own on_train_epoch_end.
        self._check(trainer, pl_module)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The deferred losses, then the weights: a finite loss can still leave them non-finite."""
        if self._deferred:
            steps, self._deferred = self._deferred, []
            finite = torch.isfinite(torch.stack([loss for loss, *_ in steps])).tolist()  # one wait
            if not all(finite):
                raise _loss_error(trainer, *steps[finite.index(False)])
        if trainer.global_step == self._weights_checked_at:  # validation already looked
            return
        self._weights_checked_at = trainer.global_step
        if bad := non_finite_parameters(pl_module.state_dict()):
            raise NonFiniteLossError(
                f"the weights became NaN or infinite at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step} ({', '.join(bad)}). Likely cause: a learning rate too "
                "high (try model.optimizer.lr 10x smaller). " + _last_good(trainer)
            )


def _loss_error(
    trainer: L.Trainer, loss: torch.Tensor, epoch: int, step: int, batch_idx: int
) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"the training loss became {loss.item()} at epoch {epoch}, step {step} (batch "
        f"{batch_idx}). Likely causes: a learning rate too high for this loss (try "
        "model.optimizer.lr 10x smaller), or NaN/inf values in the data. " + _last_good(trainer)
    )


def _last_good(trainer: L.Trainer) -> str:
    last = fit_checkpoints(trainer).get("last") or "(none yet: no epoch finished)"
    return f"The last good checkpoint is {last}"
