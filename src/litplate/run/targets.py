"""What a stored config may build: each `_target_` must be an exact class listed for its role in
`allowed_targets.yaml`, compared as text before anything is imported (docs/safety.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from litplate.run.errors import UserInputError

ALLOWLIST_FILE = Path(__file__).with_name("allowed_targets.yaml")
ALLOWED: dict[str, set[str]] = {
    role: set(map(str, names or ()))
    for role, names in (yaml.safe_load(ALLOWLIST_FILE.read_text()) or {}).items()
}

# Built later, given the model's parameters (the optimizer) or the optimizer (the scheduler).
PARTIAL_ROLES = ("model.optimizer", "model.scheduler")


class UnsafeConfigError(UserInputError):
    """A stored config names a class its role does not allow, or holds an interpolation."""


def allow(role: str, *names: str) -> None:
    """Allow more exact class names for `role` in this process (a notebook); for every run, list
    them in `allowed_targets.yaml`."""
    ALLOWED.setdefault(role, set()).update(names)


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
    """Refuse, naming `source` and the key, a `_target_` in `config` (the node at `role`) that is
    not allowed there, and (if `stored`, i.e. read from a file) any `${...}` interpolation."""
    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=False)
    for path, value in _leaves(config, role):
        node, _, key = path.rpartition(".")
        allowed = sorted(ALLOWED.get(node, ()))
        if key == "_target_" and (not isinstance(value, str) or value not in allowed):
            reason = (
                f"{node} may be one of {', '.join(allowed)}"
                if allowed
                else f"a stored config builds nothing at {node}"
            ) + f" ({ALLOWLIST_FILE.name}, see docs/safety.md)"
        elif stored and key == "_partial_" and value is not False and node not in PARTIAL_ROLES:
            reason = f"a stored config builds partials only at {', '.join(PARTIAL_ROLES)}"
        elif stored and key != "_target_" and isinstance(value, str) and "${" in value:
            reason = "a stored value is data: interpolations (${...}) are not resolved from a file"
        else:
            continue
        raise UnsafeConfigError(f"{source}: refused {path}={value!r}: {reason}. Nothing was run.")


def check_run_config(config: Any, source: str, stored: bool = True) -> None:
    """Check the parts of a run's config that are ever built from it: `data` and `model`."""
    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=False)
    if not isinstance(config, dict):
        raise UnsafeConfigError(f"{source}: a run config is a mapping, got {type(config).__name__}")
    for role in ("data", "model"):
        if role in config:
            check_stored(config[role], role, source, stored)


def build(config: dict[str, Any], role: str, source: str, **kwargs: Any) -> Any:
    """Instantiate a stored `config` at `role` once every `_target_` in it is allowed there."""
    check_stored(config, role, source)
    return instantiate(config, **kwargs)
