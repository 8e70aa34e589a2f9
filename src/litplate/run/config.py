"""Config helpers that must stay light: the entry scripts import this before torch is needed."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write


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
    root = Path(__file__).resolve().parents[3]
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


def outside_hydra(cfg: DictConfig) -> DictConfig:
    """The config a run uses: `cfg` itself in a Hydra job, a runnable copy outside one.

    A config from `hydra.compose()` (a notebook, a test) has no Hydra runtime, so the default
    `paths.output_dir: ${hydra:runtime.output_dir}` cannot resolve. Outside a job, the copy gets
    a new directory under `paths.log_dir`, named as a command-line run's
    (`<log_dir>/<task_name>/runs/<date>_<time>_<pid>`, with `_1`, `_2`... when that exists); a
    `paths.output_dir` that resolves to a path (set by the caller) is kept. The `hydra` node of a
    `return_hydra_config=True` config is left out, as Hydra leaves it out of a job's config: its
    runtime keys (`hydra.job.num`, ...) are only filled in by a Hydra run.
    """
    output_dir = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False)
    if "hydra" not in cfg and output_dir is not None:
        return cfg
    cfg = copy.deepcopy(cfg)
    with read_write(cfg), open_dict(cfg):
        cfg.pop("hydra", None)
        if output_dir is None:
            cfg.paths.output_dir = str(new_run_dir(Path(cfg.paths.log_dir) / cfg.task_name))
    return cfg


def new_run_dir(parent: Path) -> Path:
    """A directory made for this run only: `parent/runs/<date>_<time>_<pid>[_<n>]`.

    The name follows `hydra.run.dir` (configs/hydra/default.yaml); the suffix keeps apart two runs
    that one process starts in the same second.
    """
    name = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"
    (parent / "runs").mkdir(parents=True, exist_ok=True)
    for suffix in ["", *(f"_{n}" for n in range(1, 1000))]:
        path = parent / "runs" / f"{name}{suffix}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free run directory named {name}_<n> in {parent / 'runs'}")


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


register_resolvers()
