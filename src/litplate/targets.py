"""The allowlist of what a stored config may instantiate: files are data, never code.

A checkpoint holds its run's config and the model's hyper-parameters, some of them `_target_`s
that Hydra would import and call. Before anything from a file is instantiated, every `_target_` in
it (every depth, `_args_` included) is checked against `allowed_targets.yaml` beside this module,
and strings that OmegaConf would interpolate (`${...}`) are refused, so no resolver runs on them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from omegaconf import OmegaConf

from litplate.errors import UserInputError

ALLOWLIST_FILE = Path(__file__).with_name("allowed_targets.yaml")


class UnsafeConfigError(UserInputError):
    """A stored config names something outside the allowlist, or holds an interpolation."""


@cache
def allowlist() -> tuple[tuple[str, ...], frozenset[str]]:
    """The namespaces (each ending in ".") and exact names of `allowed_targets.yaml`."""
    data = yaml.safe_load(ALLOWLIST_FILE.read_text()) or {}
    namespaces = tuple(str(name) for name in data.get("namespaces") or ())
    if any(not name.endswith(".") for name in namespaces):
        raise ValueError(f"{ALLOWLIST_FILE}: a namespace ends with '.', e.g. 'my_package.'")
    return namespaces, frozenset(str(name) for name in data.get("exact") or ())


_ALLOWED_HERE: set[str] = set()


def allow(*names: str) -> None:
    """Allow more namespaces ("my_package.") or exact names in this process, e.g. in a notebook;
    for every run, add them to `allowed_targets.yaml`."""
    _ALLOWED_HERE.update(names)


def is_allowed_name(name: str) -> bool:
    namespaces, exact = allowlist()
    namespaces += tuple(n for n in _ALLOWED_HERE if n.endswith("."))
    return name in exact or name in _ALLOWED_HERE or name.startswith(namespaces)


def check_target(target: Any) -> str | None:
    """Why `target` may not be instantiated from a file, or None when it may.

    Only names on the allowlist are imported at all; the name must lead through modules to a class
    (no function, method or attribute of an imported module), and the class must be allowed where
    it is defined.
    """
    if not isinstance(target, str):
        return f"a _target_ must be a dotted name, got {type(target).__name__}"
    if not is_allowed_name(target):
        return "not on the allowlist"
    parts = target.split(".")
    obj: Any = None
    for i, part in enumerate(parts):
        if not part.isidentifier():
            return "not a dotted name"
        name = ".".join(parts[: i + 1])
        if obj is None or isinstance(obj, ModuleType):
            try:
                obj = importlib.import_module(name)
                continue
            except ImportError:
                if obj is None:
                    return "cannot be imported"
        if isinstance(obj, ModuleType) and isinstance(getattr(obj, part, None), ModuleType):
            return "leads through a module that is not imported by its own name"
        if not hasattr(obj, part):
            return "cannot be found"
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        return "not a class"
    defined = f"{obj.__module__}.{obj.__qualname__}"
    if not is_allowed_name(defined):
        return f"it is {defined}, which is not on the allowlist"
    return None


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
    else:
        yield path, node


def check_config(config: Any, source: str, stored: bool = True) -> None:
    """Raise UnsafeConfigError naming `source`, the key path and the value of the first problem.

    `stored=False` checks a config of the user's own (e.g. the one a run starts with, whose
    checkpoints must reload) for its targets only: interpolations are theirs to use there.
    """
    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=False)
    for path, value in _walk(config, ""):
        key = path.rsplit(".", 1)[-1]
        if key == "_target_":
            reason = check_target(value)
            if reason:
                raise UnsafeConfigError(
                    f"{source}: refused {path}={value!r} ({reason}; allowed: "
                    f"{ALLOWLIST_FILE.name}, see docs/safety.md). Nothing was run."
                )
        elif stored and isinstance(value, str) and "${" in value:
            raise UnsafeConfigError(
                f"{source}: refused {path}={value!r}: a stored value is data, and interpolations "
                "(${...}) are not resolved from a file. Nothing was run."
            )
