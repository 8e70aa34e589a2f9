"""Config helpers and resolvers; light, so the entry scripts import it before torch is needed."""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write


def _required(how: str) -> Any:
    raise ValueError(f"this run needs a value: {how}")


def project_root() -> str:
    """`${project_root:}` (the default `paths.root_dir`): the checkout the package comes from."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "configs").is_dir():
        raise ValueError(
            f"paths.root_dir: {root} holds no configs/ (is the package not installed with "
            "`pip install -e .` from the project?); set paths.root_dir=/path/to/the/project"
        )
    return str(root)


# `${pid:}` keeps apart run directories of the same second (cached: one value per process);
# `${required:HOW}` is a value the command line must give, which unlike `???` also replaces one
# set by a config merged before it.
OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True, replace=True)
OmegaConf.register_new_resolver("required", _required, replace=True)
OmegaConf.register_new_resolver("project_root", project_root, use_cache=True, replace=True)


def to_plain(config: Any) -> Any:
    """A DictConfig/ListConfig as plain dicts and lists (resolved); anything else unchanged."""
    return OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else config


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """A run's hyper-parameters as one flat dict for the trackers: the seed, max_epochs, the tags
    (comma-separated) and every key of `model` and `data`, a `_target_` as its class name."""
    params = {"seed": cfg.get("seed"), "trainer/max_epochs": cfg.trainer.get("max_epochs")}
    params["tags"] = ",".join(cfg.get("tags") or [])

    def flatten(node: Any, name: str) -> None:
        if not isinstance(node, dict):
            params[name] = node
            return
        for key, value in node.items():
            if key == "_target_":
                params[name] = str(value).rsplit(".", 1)[-1]  # model/optimizer: Adam
            elif not key.startswith("_"):
                flatten(value, f"{name}/{key}")

    for section in ("model", "data"):
        flatten(to_plain(cfg.get(section)), section)
    return params


def outside_hydra(cfg: DictConfig, resume: bool = False) -> DictConfig:
    """`cfg` itself in a Hydra job; outside one (`hydra.compose()`: a notebook, a test), a copy
    without its `hydra` node and, unless `paths.output_dir` resolves, with a new run directory.
    A given directory may not hold another run's results (a training run may `resume` its own)."""
    output_dir = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False)
    if output_dir is not None and not HydraConfig.initialized():
        # In a Hydra job, configs/hydra/default.yaml's callback has checked the directory.
        from litplate.run.run_directory import refuse_a_taken_output_dir

        refuse_a_taken_output_dir(Path(output_dir), cfg.get("ckpt_path") if resume else None)
    if "hydra" not in cfg and output_dir is not None:
        return cfg
    cfg = copy.deepcopy(cfg)
    with read_write(cfg), open_dict(cfg):
        cfg.pop("hydra", None)
        if output_dir is None:
            cfg.paths.output_dir = str(new_run_dir(Path(cfg.paths.log_dir) / cfg.task_name))
    return cfg


def new_run_dir(parent: Path) -> Path:
    """A directory made for this run only, named as `hydra.run.dir` names one:
    `parent/runs/<date>_<time>_<pid>`, with `_1`, `_2`... after a run of the same second."""
    name = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"
    (parent / "runs").mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        path = parent / "runs" / (f"{name}_{n}" if n else name)
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path


def print_config_tree(cfg: DictConfig) -> None:
    """The resolved config as a rich tree, one branch per top-level key (`extras.print_config`)."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    style = {"theme": "ansi_dark", "background_color": "default", "word_wrap": True}
    for key, node in cfg.items():
        branch = OmegaConf.is_config(node) and bool(node)  # else a plain or empty value, one line
        text = OmegaConf.to_yaml(node if branch else {key: node}, resolve=True).rstrip()
        (tree.add(str(key)) if branch else tree).add(Syntax(text, "yaml", **style))
    console = Console()
    if not console.is_terminal:  # a pipe or log file: wide enough that no line is cut or wrapped
        longest = max(map(len, OmegaConf.to_yaml(cfg, resolve=True).splitlines()), default=0)
        console.width = max(console.width, longest + 8)  # + the tree's indentation
    console.print(tree)
