"""Config helpers that must stay light: the entry scripts import this before torch is needed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def register_resolvers() -> None:
    """`${pid:}` makes run directories unique even for two runs started in the same second.

    `${required:HOW}` marks a value the command line must give (an error saying HOW when it is used
    unset): unlike `???`, it also replaces a value set by a config merged before it.
    """
    # Cached, so every interpolation in one process sees the same value.
    OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("required", _required, replace=True)
    OmegaConf.register_new_resolver("project_root", project_root, use_cache=True, replace=True)


def _required(how: str) -> Any:
    raise ValueError(f"this run needs a value: {how}")


def project_root() -> str:
    """`${project_root:}`: the checkout this package is installed from (`pip install -e .`).

    `paths.root_dir` defaults to it, so `configs/` and `data/` are found from any launch directory.
    """
    root = Path(__file__).resolve().parents[2]
    if not (root / "configs").is_dir():
        raise ValueError(
            f"paths.root_dir: {root} holds no configs/ (is the package not installed with "
            "`pip install -e .` from the project?); set paths.root_dir=/path/to/the/project"
        )
    return str(root)


def to_plain(config: Any) -> Any:
    """A DictConfig/ListConfig as plain dicts and lists (resolved); anything else unchanged."""
    if OmegaConf.is_config(config):
        return OmegaConf.to_container(config, resolve=True)
    return config


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """A run's hyper-parameters as one flat dict: TensorBoard's HParams, MLflow params, W&B config.

    The seed, `trainer/max_epochs`, the run's `tags` (comma-separated) and every key of `model` and
    `data`; a `_target_` becomes the class name under its node's own key, e.g.
    `model/optimizer: Adam`, `model/optimizer/lr: 0.01`.
    """
    params = {"seed": cfg.get("seed"), "trainer/max_epochs": cfg.trainer.get("max_epochs")}
    # One string, which every tracker shows and filters on: "course,linear".
    params["tags"] = ",".join(cfg.get("tags") or [])
    for section in ("model", "data"):
        _flatten(to_plain(cfg.get(section)), section, params)
    return params


def _flatten(node: Any, name: str, out: dict[str, Any]) -> None:
    if not isinstance(node, dict):
        out[name] = node
        return
    for key, value in node.items():
        if key == "_target_":
            out[name] = str(value).rsplit(".", 1)[-1]
        elif not key.startswith("_"):
            _flatten(value, f"{name}/{key}", out)


def print_config_tree(cfg: DictConfig) -> None:
    """The resolved config as a rich tree, one branch per top-level key (`extras.print_config`)."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    style = {"theme": "ansi_dark", "background_color": "default", "word_wrap": True}
    texts = []
    for key in cfg:
        node = cfg[key]
        if OmegaConf.is_config(node) and node:
            texts.append(OmegaConf.to_yaml(node, resolve=True).rstrip())
            tree.add(str(key)).add(Syntax(texts[-1], "yaml", **style))
        else:  # a plain value, or an empty dict or list, on one line
            texts.append(OmegaConf.to_yaml({key: node}, resolve=True).rstrip())
            tree.add(Syntax(texts[-1], "yaml", **style))
    console = Console()
    if not console.is_terminal:  # a pipe or log file: wide enough that no line is cut or wrapped
        longest = max((len(line) for text in texts for line in text.splitlines()), default=0)
        console.width = max(console.width, longest + 8)  # + the tree's indentation
    console.print(tree)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every non-null `_target_` entry of a group such as `callbacks` or `logger`."""
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


register_resolvers()
