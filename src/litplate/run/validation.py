"""Checks, at start-up, of the config keys that no constructor checks (the run's own, the
trainer's, the optimizer's), so a typo fails before any training with the key named."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from litplate.run.errors import UserInputError
from litplate.run.targets import check_run_config

_ABSENT = object()


class ConfigError(UserInputError):
    """One or more config values are of the wrong type or out of range."""


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return _int(value) or isinstance(value, float)


# key: (what a valid value passes, what the message asks for). Add a rule for a key of your own.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (lambda v: v is None or _int(v), "an integer (or null)"),
    "test_ckpt": (lambda v: v in ("best", "last"), "'best' or 'last'"),
    "trainer.max_epochs": (
        lambda v: _int(v) and (v >= 1 or v == -1),
        "an integer >= 1 (-1: no limit)",
    ),
    "trainer.min_epochs": (lambda v: v is None or (_int(v) and v >= 0), "an integer >= 0"),
    "trainer.accumulate_grad_batches": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "trainer.limit_train_batches": (
        lambda v: v is None or (_number(v) and v > 0),
        "a fraction in (0, 1] or a number of batches >= 1 (0 would train nothing)",
    ),
    "trainer.gradient_clip_val": (
        lambda v: v is None or (_number(v) and v >= 0),
        "a number >= 0 (or null)",
    ),
    "model.optimizer.lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "model.optimizer.weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "model.optimizer.momentum": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "model.scheduler.T_max": (
        lambda v: _int(v) and v >= 1,
        "an integer >= 1 (cosine's is trainer.max_epochs: with -1, set model.scheduler.T_max)",
    ),
    "tags": (
        lambda v: (
            isinstance(v, ListConfig | list) and all(isinstance(t, str) and t.strip() for t in v)
        ),
        "a list of names, e.g. 'tags=[course,linear]'",
    ),
}


def validate(cfg: DictConfig) -> None:
    """Raise one ConfigError listing every value that breaks a rule (absent keys are skipped)."""
    problems = []
    for key, (check, expected) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        if _number(value) and not math.isfinite(value):
            problems.append(f"{key}={value!r}: expected a finite number, {expected}")
        elif not check(value):
            problems.append(f"{key}={value!r}: expected {expected}")
    problems += _needs_validation(cfg)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    # A run's checkpoints hold its config, and are reloaded only if every target is allowed.
    check_run_config(cfg, "the run's config", stored=False)


def _needs_validation(cfg: DictConfig) -> list[str]:
    """What watches a val/ metric in a run that never validates (Lightning would stop with a
    traceback at the first epoch's end)."""
    limit = OmegaConf.select(cfg, "trainer.limit_val_batches", default=None)
    if not _number(limit) or limit != 0:
        return []
    watchers = [
        f"callbacks.{name} (monitor={node.get('monitor')})"
        for name, node in (OmegaConf.select(cfg, "callbacks", default=None) or {}).items()
        if node
        and str(node.get("_target_", "")).endswith("EarlyStopping")
        and str(node.get("monitor", "")).startswith("val/")
    ]
    scheduler = OmegaConf.select(cfg, "model.scheduler._target_", default=None)
    if str(scheduler).endswith("ReduceLROnPlateau"):
        watchers.append(f"model.scheduler ({scheduler}, which steps on val/loss)")
    return [
        f"trainer.limit_val_batches={limit!r} runs no validation, but {watcher} needs it"
        for watcher in watchers
    ]
