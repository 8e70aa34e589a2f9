"""The README's "Make it yours" guide, run block by block on a copy of the project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_tracked_files

pytestmark = pytest.mark.slow

BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def guide_blocks() -> list[tuple[str, str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Make it yours", 1)[1].split("\n## ", 1)[0]
    return BLOCK.findall(section)


def test_guide_has_files_commands_and_the_removal():
    kinds = [kind for kind, _ in guide_blocks()]
    assert kinds.count("bash") == 2 and kinds.count("python") == 3 and kinds.count("yaml") == 3


def test_every_guide_block_runs_as_written(tmp_path: Path):
    project = copy_tracked_files(tmp_path / "project")
    # The copy's own package, not the installed one; `python` is this interpreter.
    env = {
        **os.environ,
        "PYTHONPATH": str(project / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for kind, body in guide_blocks():
        first, _, rest = body.partition("\n")
        if first.startswith("# file: "):
            path = project / first.removeprefix("# file: ").strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(rest)
            continue
        assert kind == "bash", f"a {kind} block without a '# file:' line"
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", body],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, (body, result.stdout[-3000:], result.stderr[-3000:])
        assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]

    runs = sorted((project / "logs" / "train" / "runs").glob("*/metrics.json"))
    assert len(runs) == 2  # experiment=quadratic, then the new default
    assert not (project / "src" / "litplate" / "models" / "linear.py").exists()
    assert (project / "configs" / "train.yaml").read_text().count("quadratic") == 2
