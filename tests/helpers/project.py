"""The project under test: its root, its configs composed as the scripts compose them, copies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "configs"


def make_cfg(config_name: str, output_dir: Path, overrides: list[str] = ()) -> DictConfig:
    """Compose a config as the script would, writing into `output_dir`.

    The training config's tree is not printed (`extras.print_config`), unless `overrides` ask.
    """
    quiet = ["extras.print_config=false"] if config_name == "train" else []
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(
            config_name, overrides=[*quiet, *overrides, f"paths.output_dir={output_dir}"]
        )


def copy_tracked_files(destination: Path) -> Path:
    """The git-tracked files of the working tree (as edited) copied to `destination`."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, files.split("\0")):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination
