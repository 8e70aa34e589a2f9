"""What a stored config may build: files are data, never code.

A checkpoint holds its run's config and the model's hyper-parameters, some of them `_target_`s
that Hydra would import and call. Only two parts of a stored config are ever built, the data module
and the model, and in them each `_target_` must be one of the exact classes that
`allowed_targets.yaml` lists for its role (the key it sits at: `data`, `model`, `model.loss`,
`model.optimizer`, ...). The name is compared as text before anything is imported, so a listed
name is all that can ever be imported. Strings that OmegaConf would interpolate (`${...}`) are
refused too, so no resolver runs on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from litplate.run.errors import UserInputError

ALLOWLIST_FILE = Path(__file__).with_name("allowed_targets.yaml")
ROLES = ("data", "model")  # the parts of a run's config that eval, predict and export build


class UnsafeConfigError(UserInputError):
    """A stored config names a class its role does not allow, or holds an interpolation."""


@cache
def allowlist() -> dict[str, frozenset[str]]:
    """{role: the exact class names allowed there} of `allowed_targets.yaml`."""
    data = yaml.safe_load(ALLOWLIST_FILE.read_text()) or {}
    return {role: frozenset(map(str, names or ())) for role, names in data.items()}


_ALLOWED_HERE: dict[str, set[str]] = {}


def allow(role: str, *names: str) -> None:
    """Allow more exact class names for `role` in this process (e.g. in a notebook); for every
    run, add them to `allowed_targets.yaml`."""
    _ALLOWED_HERE.setdefault(role, set()).update(names)


def allowed(role: str) -> frozenset[str]:
    return allowlist().get(role, frozenset()) | _ALLOWED_HERE.get(role, set())


def _leaves(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(key path, value) of every `_target_` (whatever its type) and every other leaf."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            yield from [(where, value)] if key == "_target_" else _leaves(value, where)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def check_stored(config: Any, role: str, source: str, stored: bool = True) -> None:
    """Raise UnsafeConfigError naming `source`, the key and the class of the first `_target_` in
    `config` (the node at `role`) that its role does not allow.

    `stored=False` checks a config of the user's own (the one a run starts with, whose checkpoints
    must reload) for its targets only: interpolations are theirs to use there.
    """
    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=False)
    for path, value in _leaves(config, role):
        key = path.rsplit(".", 1)[-1]
        if key == "_target_":
            node = path.rsplit(".", 1)[0]
            if not isinstance(value, str) or value not in allowed(node):
                names = sorted(allowed(node))
                raise UnsafeConfigError(
                    f"{source}: refused {path}={value!r}: "
                    + (f"{node} may be one of {', '.join(names)}" if names else
                       f"a stored config builds nothing at {node}")
                    + f" ({ALLOWLIST_FILE.name}, see docs/safety.md). Nothing was run."
                )  # fmt: skip
        elif stored and isinstance(value, str) and "${" in value:
            raise UnsafeConfigError(
                f"{source}: refused {path}={value!r}: a stored value is data, and interpolations "
                "(${...}) are not resolved from a file. Nothing was run."
            )


def check_run_config(config: Any, source: str, stored: bool = True) -> None:
    """Check the parts of a run's config that are built from it: `data` and `model`."""
    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=False)
    if not isinstance(config, dict):
        raise UnsafeConfigError(f"{source}: a run config is a mapping, got {type(config).__name__}")
    for role in ROLES:
        if role in config:
            check_stored(config[role], role, source, stored)


def check_model_hparams(hparams: dict[str, Any], source: str) -> None:
    """A model's hyper-parameters: its loss, optimizer, scheduler... each at its `model.` role."""
    check_stored(hparams, "model", source)


def build(config: dict[str, Any], role: str, source: str, **kwargs: Any) -> Any:
    """Instantiate a stored `config` at `role` once every `_target_` in it is allowed there."""
    from hydra.utils import instantiate

    check_stored(config, role, source)
    return instantiate(config, **kwargs)
