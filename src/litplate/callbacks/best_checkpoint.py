"""checkpoints/best.ckpt: the best epoch kept in memory, written to disk on a throttle."""

from __future__ import annotations

import copy
import math
import time
from typing import Any
from weakref import proxy

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from litplate.callbacks.epoch_checkpoint import EpochEndCheckpoint


class BestCheckpoint(EpochEndCheckpoint):
    """A `ModelCheckpoint` that keeps each new best checkpoint in memory and writes it to disk at
    most every `min_interval_s`, before `last.ckpt` is written, at the end of the fit, and when
    the fit stops on an exception (SIGTERM, Ctrl-C, NaN loss).

    On the course's data the loss improves almost every epoch, and writing best.ckpt each time
    cost more than the epoch itself. The file written is exactly the checkpoint Lightning's
    ModelCheckpoint would have written at that epoch (it is dumped then, with its tensors cloned),
    and its state key is ModelCheckpoint's, so checkpoints of either resume with the other.
    After a kill (SIGKILL) best.ckpt is at most `min_interval_s` behind, and never behind what
    last.ckpt names as the best (`LastCheckpoint` writes it first). `min_interval_s=0` writes
    every new best at once, as ModelCheckpoint does.
    """

    def __init__(self, *args: Any, min_interval_s: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got min_interval_s={min_interval_s}")
        self.min_interval_s = min_interval_s
        self._pending: dict[str, dict[str, Any]] = {}  # path -> checkpoint, not yet on disk
        self._written_at = -math.inf  # time.monotonic() of the last write

    def _make_state_key(self) -> str:
        # ModelCheckpoint's key: a checkpoint written with either restores into the other.
        key = super()._make_state_key()
        return key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def _monitor_candidates(self, trainer: L.Trainer) -> dict[str, torch.Tensor]:
        """ModelCheckpoint's, with each logged value cloned instead of `deepcopy`-ed (the same
        copy, made several times faster: it runs every epoch)."""
        candidates = {
            key: value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
            for key, value in trainer.callback_metrics.items()
        }
        epoch, step = candidates.get("epoch"), candidates.get("step")
        # As ModelCheckpoint: `self.log("epoch", 123)` makes a float; anything else is replaced.
        candidates["epoch"] = (
            epoch.int() if isinstance(epoch, torch.Tensor) else torch.tensor(trainer.current_epoch)
        )
        candidates["step"] = (
            step.int() if isinstance(step, torch.Tensor) else torch.tensor(trainer.global_step)
        )
        return candidates

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """Dump the checkpoint as `trainer.save_checkpoint` would, but keep it in memory."""
        if self.min_interval_s == 0:
            return super()._save_checkpoint(trainer, filepath)
        if trainer.model is None:
            raise AttributeError("BestCheckpoint saves only during a fit, with a model attached")
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
        self._pending[filepath] = _cloned(checkpoint)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath

    def flush(self, trainer: L.Trainer, barrier: bool = True) -> None:
        """Write the best checkpoints kept in memory, if any. Every rank calls this (DDP) unless
        `barrier` is False, when only rank 0 writes, without waiting for the others."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        for filepath, checkpoint in pending.items():
            trainer.strategy.save_checkpoint(checkpoint, filepath)
        if barrier:
            trainer.strategy.barrier("BestCheckpoint.flush")
        self._written_at = time.monotonic()
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _flush_if_due(self, trainer: L.Trainer) -> None:
        if not self._pending:  # the same on every rank: ModelCheckpoint agrees on a new best
            return
        due = time.monotonic() - self._written_at >= self.min_interval_s
        # Rank 0 decides for all: saving has a barrier that every rank must reach.
        if trainer.strategy.broadcast(due):
            self.flush(trainer)

    def file_exists(self, filepath: Any, trainer: L.Trainer) -> bool:
        # A kept checkpoint counts as written: the version counter must not reuse its name.
        return str(filepath) in self._pending or super().file_exists(filepath, trainer)

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        # A checkpoint that left the top k (save_top_k > 1, or a filename with the epoch in it)
        # is not written at all.
        self._pending.pop(filepath, None)
        super()._remove_checkpoint(trainer, filepath)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._flush_if_due(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking:
            self._flush_if_due(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)  # may keep one more (save_last)
        self.flush(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        try:
            super().on_exception(trainer, pl_module, exception)  # may keep one (save_on_exception)
        finally:
            # The other ranks may never get here: no barrier.
            self.flush(trainer, barrier=False)


_SHARED = (str, int, float, bool, type(None), bytes)  # immutable: the copy may share them


def _cloned(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A copy of a dumped checkpoint that training no longer changes: tensors cloned, containers
    copied (with their attributes: a state_dict's `_metadata`), immutable values shared. An
    object found twice is copied once (as deepcopy does), so the file pickles the same."""
    kind = type(value)
    if kind in _SHARED:
        return value
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    if kind is dict:
        copied = {key: _cloned(item, memo) for key, item in value.items()}
    elif kind is list:
        copied = [_cloned(item, memo) for item in value]
    elif kind is tuple:
        copied = tuple(_cloned(item, memo) for item in value)
    elif isinstance(value, torch.Tensor):
        copied = value.clone()
    elif isinstance(value, dict):
        copied = copy.copy(value)
        for key, item in value.items():
            copied[key] = _cloned(item, memo)
    else:
        copied = copy.deepcopy(value, memo)
    memo[id(value)] = copied
    return copied
