"""A fit that does not simply run from start to end: resumed from a checkpoint, stopped by SIGTERM,
already complete, or run in other processes (ddp_spawn)."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from litplate.run import trackers
from litplate.run.checkpoint import (
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


def check_resumable(checkpoint: dict[str, Any], model: L.LightningModule, path: str) -> None:
    """A fit resumes only with the model, optimizer and scheduler whose state the checkpoint
    holds."""
    # The weights the fit restores anyway, loaded here: another model (another model= or
    # architecture) is one error naming its keys, not Lightning's traceback.
    load_weights(model, checkpoint["state_dict"], path)
    stored = checkpoint.get("hyper_parameters") or {}
    for key in ("optimizer", "scheduler"):
        before = (stored.get(key) or {}).get("_target_")
        now = (model.hparams.get(key) or {}).get("_target_")
        if key in stored and before != now:
            raise CheckpointError(
                f"{path}: its fit used model.{key} {before}, this run {now}: a fit resumes only "
                f"with the same {key} (its state is in the checkpoint). Resume with "
                f"model/{key} as it was, or start a new fit from its weights with "
                f"model.init_from={path}"
            )
        if key in stored and stored.get(key) != model.hparams.get(key):
            # Lightning restores the optimizer's and scheduler's state, their settings with it
            # (an optimizer's lr, a cosine schedule's T_max): this run's would be silently ignored.
            before, now = stored.get(key) or {}, model.hparams.get(key) or {}
            changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
            raise CheckpointError(
                f"{path}: its fit used "
                + ", ".join(f"model.{key}.{k}={before.get(k)!r}" for k in changed)
                + ", this run "
                + ", ".join(f"{now.get(k)!r}" for k in changed)
                + f": a resumed fit goes on with the {key} state of the checkpoint, whose settings "
                f"would override these. Resume with them as they were, or start a new fit from "
                f"its weights with model.init_from={path}"
            )


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
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except SIGTERMException:
        raise interrupted(trainer) from None
    fit_metrics = {key: to_float(value) for key, value in trainer.callback_metrics.items()}
    epochs = trainer.current_epoch
    if resumed is not None and trainer.global_step == resumed.get("global_step"):
        log.info(
            "The fit of %s was already complete (%d epochs): nothing to train, testing it again",
            cfg.ckpt_path,
            epochs,
        )
        fit_metrics.update(finished_fit_metrics(trainer, model, datamodule))
    last = fit_checkpoints(trainer).get("last")
    if last is not None and not model.loss_history["train/loss"]:
        # ddp_spawn fits in child processes and hands back only the weights and the logged
        # metrics: the loss history and the epochs come from the last checkpoint.
        state = load_checkpoint(last)
        model.on_load_checkpoint(state)
        epochs = state["epoch"] + 1
    return fit_metrics, epochs


def interrupted(trainer: L.Trainer) -> RunInterrupted:
    """What to say after a SIGTERM: Lightning stops after the current batch; checkpoints are
    written at epoch ends only, so last.ckpt holds the last epoch it saved."""
    last = fit_checkpoints(trainer).get("last")
    if last is None or not last.is_file():
        return RunInterrupted(
            f"SIGTERM received during epoch {trainer.current_epoch}; no epoch had been saved, so "
            "there is no checkpoint to resume from"
        )
    saved = load_checkpoint(last)["epoch"]
    return RunInterrupted(
        f"SIGTERM received during epoch {trainer.current_epoch}; {last} holds the end of epoch "
        f"{saved}: resume with ckpt_path={last}"
    )


def finished_fit_metrics(
    trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule
) -> dict[str, Any]:
    """What the last epoch of a fit that ended before this run logged: its losses (kept in the
    checkpoint's loss history) and the validation metrics, measured again."""
    metrics = {key: curve[-1] for key in model.loss_history if (curve := model.loss_curve(key)[1])}
    validated = trainer.validate(model, datamodule=datamodule, verbose=False)[0]
    return {**metrics, **{key: to_float(value) for key, value in validated.items()}}
