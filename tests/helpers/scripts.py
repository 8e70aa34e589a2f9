"""The entry scripts in a fresh process, for what needs one (DDP re-launches, launchers, SLURM).

Everything else runs them in-process through the `entry_point` fixture of tests/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.project import ROOT


def run_script(
    script: str,
    *args: str,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`python scripts/<script> ARGS` as a user runs it, its output captured as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def with_path(bin_dir: Path) -> dict[str, str]:
    """This environment with `bin_dir` first on PATH (stand-in commands: sbatch, srun, ...)."""
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
