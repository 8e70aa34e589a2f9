"""The objects a run is made of, built from its config the same way by train, eval, predict and
the reference loop (eval and predict rebuild the model and data of a checkpoint's run)."""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from litplate.run.checkpoint import model_from_checkpoint, stored_part
from litplate.run.config import to_plain
from litplate.run.devices import check_devices, check_launch
from litplate.run.errors import UserInputError
from litplate.run.targets import check_stored
from litplate.run.validation import ConfigError


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every non-null `_target_` entry of a group such as `callbacks` or `logger`."""
    return [instantiate(node) for node in (group or {}).values() if node and "_target_" in node]


def build_trainer(
    cfg: DictConfig, callbacks: list[L.Callback] | None = None, resumed_step: int | None = None
) -> L.Trainer:
    """The Trainer of `cfg`, its devices checked first; resumed at `resumed_step`, TensorBoard drops
    what the stopped fit logged after it (`purge_step`), so each step keeps one point."""
    check_devices(cfg.trainer)
    purge = {} if resumed_step is None else {"purge_step": resumed_step}
    loggers = [
        # Plain lists and dicts (tags) for the trackers' own libraries.
        instantiate(node, _convert_="all", **(purge if _is_tensorboard(node, purge) else {}))
        for node in (cfg.get("logger") or {}).values()
        if node and "_target_" in node
    ]
    callbacks = instantiate_group(cfg.get("callbacks")) + (callbacks or [])
    # callbacks.progress_bar=null means no bar (Lightning would add its own default one).
    bar = (
        {} if any(isinstance(c, ProgressBar) for c in callbacks) else {"enable_progress_bar": False}
    )
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **bar)
    check_launch(trainer, cfg.trainer.get("strategy"))
    return trainer


def _is_tensorboard(node: DictConfig, purge: dict[str, int]) -> bool:
    return bool(purge) and issubclass(get_class(node["_target_"]), TensorBoardLogger)


def build_data_and_model(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """1. Get data ready.  2. Build the model; a null `model.n_features` (`n_classes`) takes the
    data's, written into `cfg` with what the data settled, so the run's checkpoints rebuild both."""
    # Plain lists, not ListConfigs: checkpoints stay loadable with weights_only.
    datamodule = checked(cfg.data, "data", _convert_="all")
    # e.g. a CSV's absolute path and training-split statistics
    settled = datamodule.settled_config() if hasattr(datamodule, "settled_config") else {}
    with open_dict(cfg.data):
        cfg.data.update(settled)
    for key in ("n_features", "n_classes"):
        if key in cfg.model and cfg.model[key] is None:
            cfg.model[key] = getattr(datamodule, key)
    return datamodule, checked(cfg.model, "model", _recursive_=False)


def checked(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """`instantiate(node)`; a constructor's ValueError or TypeError (its check of an argument)
    becomes one ConfigError naming the config key, without Hydra's wrapping and traceback."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserInputError):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(f"invalid config: {key}: {cause}") from None
        raise


def build_from_checkpoint(
    cfg: DictConfig,
) -> tuple[L.LightningModule, L.LightningDataModule, dict[str, Any]]:
    """The trained model of `cfg.ckpt_path` and the data module of its run, with `cfg.data`
    (empty by default) merged over the run's data config, e.g. `+data.noise_std=0.1`."""
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            "ckpt_path is required, e.g. ckpt_path=logs/train/runs/RUN/checkpoints/last.ckpt"
        )
    model, run_config = model_from_checkpoint(cfg.ckpt_path)
    stored = stored_part(run_config, "data", cfg.ckpt_path)
    data_config = {**stored, **(to_plain(cfg.get("data")) or {})}
    check_stored(data_config, "data", f"{cfg.ckpt_path} [data]")
    return model, checked(OmegaConf.create(data_config), "data"), run_config
