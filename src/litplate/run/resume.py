"""A fit that does not simply run from start to end: resumed from a checkpoint, stopped by SIGTERM,
already complete, or run in other processes (ddp_spawn)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from litplate.run import trackers
from litplate.run.checkpoint import (
    RUN_CONFIG_KEY,
    CheckpointError,
    fit_checkpoints,
    load_checkpoint,
    load_weights,
)
from litplate.run.errors import UserInputError
from litplate.run.files import to_float

log = logging.getLogger(__name__)


class RunInterrupted(UserInputError):
    """The run was stopped (SIGTERM) before it finished; it can be resumed from last.ckpt."""


# What a resumed fit may change about its data: where its file is and how it is loaded, not its
# rows and values (a file changed in place is not detected, unless its statistics change).
LOADER_KEYS = (
    "path",
    *("batch_size", "shuffle", "shuffle_seed", "num_workers", "on_device", "predict_split"),
)


def check_resumable(
    checkpoint: dict[str, Any], model: L.LightningModule, data: dict[str, Any], path: str
) -> None:
    """A fit resumes only as the run it continues: its weights (loaded here), the optimizer and
    scheduler whose state Lightning restores, and its data (else one metrics.json mixes two)."""
    load_weights(model, checkpoint["state_dict"], path)
    stored = checkpoint.get("hyper_parameters") or {}
    for key in ("optimizer", "scheduler"):
        before, now = stored.get(key) or {}, model.hparams.get(key) or {}
        if key in stored and before != now:
            classes = before.get("_target_"), now.get("_target_")
            used = (
                _changes(f"model.{key}", before, now)
                if classes[0] == classes[1]
                else f"model.{key} {classes[0]}, this run {classes[1]}"
            )
            raise _not_resumable(path, used, f"the {key} state of the checkpoint, its settings too")
    fitted_on = (checkpoint.get(RUN_CONFIG_KEY) or {}).get("data") or {}
    before, now = ({k: v for k, v in d.items() if k not in LOADER_KEYS} for d in (fitted_on, data))
    if fitted_on and before != now:
        kept = f"the data it was fitted on (only {', '.join(LOADER_KEYS)} may change)"
        raise _not_resumable(path, _changes("data", before, now), kept)


def _not_resumable(path: str, used: str, kept: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: its fit used {used}: a resumed fit goes on with {kept}. Resume with them as "
        f"they were, or start a new fit from its weights with model.init_from={path}"
    )


def _changes(prefix: str, before: dict[str, Any], now: dict[str, Any]) -> str:
    """`prefix.key=old, ..., this run new, ...` for the keys whose values differ."""
    changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
    was = ", ".join(f"{prefix}.{k}={before.get(k)!r}" for k in changed)
    return f"{was}, this run {', '.join(repr(now.get(k)) for k in changed)}"


def fit(
    cfg: DictConfig,
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    resumed: dict[str, Any] | None,
) -> tuple[dict[str, Any], int]:
    """`trainer.fit` (from `cfg.ckpt_path` if set); the fit's last metrics and its epochs."""
    if resumed is not None:
        trackers.keep_csv_rows(trainer)
    with sigterm_is_an_error(trainer, "fitting"):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_metrics = {key: to_float(value) for key, value in trainer.callback_metrics.items()}
    epochs = trainer.current_epoch
    if resumed is not None and trainer.global_step == resumed.get("global_step"):
        done = f"The fit of {cfg.ckpt_path} was already complete ({epochs} epochs)"
        log.info("%s: nothing to train, testing it again", done)
        # Its last epoch's losses (in the checkpoint's loss history), its validation measured again.
        losses = model.loss_history
        fit_metrics |= {key: curve[-1] for key in losses if (curve := model.loss_curve(key)[1])}
        with sigterm_is_an_error(trainer, "validating"):
            validated = trainer.validate(model, datamodule=datamodule, verbose=False)[0]
        fit_metrics |= {key: to_float(value) for key, value in validated.items()}
    last = fit_checkpoints(trainer).get("last")
    if last is not None and not model.loss_history["train/loss"]:
        # ddp_spawn fits in child processes and hands back only the weights and the logged
        # metrics: the loss history and the epochs come from the last checkpoint.
        state = load_checkpoint(last)
        model.on_load_checkpoint(state)
        epochs = state["epoch"] + 1
    return fit_metrics, epochs


@contextmanager
def sigterm_is_an_error(trainer: L.Trainer, stage: str) -> Iterator[None]:
    """Lightning ends a stage on SIGTERM with a SystemExit of code 0, which a scheduler reads as
    success: raise RunInterrupted (exit 1) instead, saying how to go on from last.ckpt."""
    try:
        yield
    except SIGTERMException:
        last = fit_checkpoints(trainer).get("last")
        during = f"SIGTERM received during epoch {trainer.current_epoch}"
        if stage != "fitting":
            then = f": {last} holds the fit, resume with ckpt_path={last} to test it"
            message = f"SIGTERM received while {stage}; nothing was written{then if last else ''}"
        elif last is None or not last.is_file():
            message = f"{during}; no epoch had been saved, so there is no checkpoint to resume from"
        else:  # Lightning stops after the current batch; last.ckpt holds the last epoch that ended
            saved = f"{last} holds the end of epoch {load_checkpoint(last)['epoch']}"
            message = f"{during}; {saved}: resume with ckpt_path={last}"
        raise RunInterrupted(message) from None
