"""Lightning callbacks of the project's own (the rest come from lightning.pytorch.callbacks)."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from litplate.run.checkpoint import RUN_CONFIG_KEY, fit_checkpoints, non_finite_parameters

RNG_KEY = "rng_states"


class RunRecord(L.Callback):
    """The run's config (to rebuild model and data from the file alone) and the global RNG states
    in every checkpoint: Lightning does not restore those, and a resumed run needs them to be
    bit-identical (dropout and noise draw from them)."""

    def __init__(self, run_config: dict[str, Any] | None = None) -> None:
        self.run_config = run_config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.run_config is not None:
            checkpoint[RUN_CONFIG_KEY] = self.run_config
        # As tensors and plain data, so checkpoints load with weights_only.
        kind, keys, position, has_gauss, cached = np.random.get_state()
        version, python_keys, gauss = random.getstate()
        checkpoint[RNG_KEY] = {
            "torch": torch.get_rng_state(),
            "python": [version, torch.tensor(python_keys, dtype=torch.int64), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            checkpoint[RNG_KEY]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if RNG_KEY not in checkpoint:
            return
        states = checkpoint[RNG_KEY]
        torch.set_rng_state(states["torch"])
        version, python_keys, gauss = states["python"]
        random.setstate((version, tuple(python_keys.tolist()), gauss))
        kind, keys, position, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


class NonFiniteLossError(RuntimeError):
    """Training produced a loss, or weights, that are NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raise at the first non-finite training loss (naming epoch and step) or weights, before the
    epoch's checkpoints are written. On a GPU the losses are checked before validation and at the
    epoch's end, not at every step (a wait for the device); `every_step` chooses."""

    def __init__(self, every_step: bool | None = None) -> None:
        self.every_step = every_step
        # The unchecked steps: (epoch, step, batch) and the loss, still on the device.
        self._unchecked: list[tuple[tuple[int, int, int], torch.Tensor]] = []
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
        self._unchecked.append(
            ((trainer.current_epoch, trainer.global_step, batch_idx), loss.detach().flatten()[0])
        )
        every_step = loss.device.type == "cpu" if self.every_step is None else self.every_step
        if every_step:
            self._check(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Before the checkpoint callbacks' own on_validation_end (Lightning runs them last).
        if not trainer.sanity_checking:
            self._check_weights(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning calls this before the checkpoint callbacks' own on_train_epoch_end.
        self._check(trainer)
        self._check_weights(trainer, pl_module)

    def _check(self, trainer: L.Trainer) -> None:
        if not self._unchecked:
            return
        where, losses = zip(*self._unchecked, strict=True)
        self._unchecked = []
        bad = (~torch.isfinite(torch.stack(losses))).nonzero()  # the one wait for the device
        if len(bad):
            epoch, step, batch_idx = where[int(bad[0])]
            raise NonFiniteLossError(
                f"the training loss became {losses[int(bad[0])].item()} at epoch {epoch}, step "
                f"{step} (batch {batch_idx}). Likely causes: a learning rate too high for this "
                "loss (try model.optimizer.lr 10x smaller), or NaN/inf values in the data. "
                + _last_good(trainer)
            )

    def _check_weights(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A finite loss can still leave non-finite weights after the step; never save those."""
        if trainer.global_step == self._weights_checked_at:  # validation already looked
            return
        self._weights_checked_at = trainer.global_step
        if bad := non_finite_parameters(pl_module.state_dict()):
            raise NonFiniteLossError(
                f"the weights became NaN or infinite at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step} ({', '.join(bad)}). Likely cause: a learning rate too "
                "high (try model.optimizer.lr 10x smaller). " + _last_good(trainer)
            )


def _last_good(trainer: L.Trainer) -> str:
    last = fit_checkpoints(trainer).get("last") or "(none yet: no epoch finished)"
    return f"The last good checkpoint is {last}"
