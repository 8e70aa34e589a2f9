"""Checks of the config at start-up, so a typo fails before any training with the key named.

Hydra already refuses unknown groups and keys. Each value is checked in one place: the data
module's and the model's arguments by their own constructors (the builder names the key), and the
keys no class of litplate's takes — the run's own, the trainer's, the optimizer's — by the rules
here. Add a rule for a key of your own that no constructor of yours checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from litplate.run.errors import UserInputError
from litplate.run.targets import check_run_config

_ABSENT = object()


class ConfigError(UserInputError):
    """One or more config values are of the wrong type or out of range."""


@dataclass(frozen=True)
class Rule:
    kind: type  # int or float (an int is accepted for a float; a bool is neither), str or list
    check: Callable[[Any], bool]
    expected: str
    nullable: bool = False


def _number(kind: type, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind is int else isinstance(value, kind | int)


RULES: dict[str, Rule] = {
    "seed": Rule(int, lambda v: True, "an integer (or null)", nullable=True),
    "test_ckpt": Rule(str, lambda v: v in ("best", "last"), "'best' or 'last'"),
    "trainer.max_epochs": Rule(int, lambda v: v >= 1 or v == -1, "an integer >= 1 (-1: no limit)"),
    "trainer.min_epochs": Rule(int, lambda v: v >= 0, "an integer >= 0", nullable=True),
    "model.optimizer.lr": Rule(float, lambda v: v > 0, "a number > 0"),
    "model.optimizer.weight_decay": Rule(float, lambda v: v >= 0, "a number >= 0"),
    "model.optimizer.momentum": Rule(float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "tags": Rule(
        list,
        lambda v: all(isinstance(tag, str) and tag.strip() for tag in v),
        "a list of names, e.g. 'tags=[course,linear]'",
    ),
}


def validate(cfg: DictConfig, rules: dict[str, Rule] = RULES) -> None:
    """Raise one ConfigError listing every value that breaks a rule (absent keys are skipped)."""
    problems = []
    for key, rule in rules.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT or (value is None and rule.nullable):
            continue
        if rule.kind is list:
            ok_type = isinstance(value, ListConfig | list)
        else:
            ok_type = isinstance(value, str) if rule.kind is str else _number(rule.kind, value)
        if ok_type and rule.kind is float and not math.isfinite(value):
            problems.append(f"{key}={value!r}: expected a finite number, {rule.expected}")
        elif not ok_type or not rule.check(value):
            problems.append(f"{key}={value!r}: expected {rule.expected}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    # A run's checkpoints hold its config, and are reloaded only if every target is allowed.
    check_run_config(cfg, "the run's config", stored=False)
