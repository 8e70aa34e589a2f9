"""docs/make-it-yours.md, the guide, run block by block on a copy of the project."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.project import ROOT, project_copy

# A block, with the file it belongs in when the line above it says "File `PATH`:".
BLOCK = re.compile(r"(?:^File `([^`]+)`:\n\n)?^```(\w+)\n(.*?)^```", re.S | re.M)


def guide_blocks() -> list[tuple[str, str, str]]:
    """(file path or "", language, body) for each block of the guide."""
    return BLOCK.findall((ROOT / "docs" / "make-it-yours.md").read_text())


def test_guide_has_files_commands_and_the_removal():
    blocks = guide_blocks()
    kinds = [kind for _, kind, _ in blocks]
    assert kinds.count("bash") == 2 and kinds.count("python") == 3 and kinds.count("yaml") == 3
    assert [path for path, _, _ in blocks if path] == [
        "src/litplate/data/quadratic.py",
        "configs/data/quadratic.yaml",
        "src/litplate/models/quadratic.py",
        "configs/model/quadratic.yaml",
        "configs/experiment/quadratic.yaml",
        "tests/test_quadratic.py",
    ]


def test_file_blocks_paste_whole():
    """A block is the whole file: nothing of the guide's (such as its path) sits inside it, so an
    experiment's `# @package _global_` stays the first line, where Hydra reads it."""
    for path, _, body in guide_blocks():
        assert "# file:" not in body, path
        if path.startswith("configs/experiment/"):
            assert body.startswith("# @package _global_\n"), path


@pytest.mark.slow
def test_every_guide_block_runs_as_written(tmp_path: Path):
    project, env = project_copy(tmp_path / "project")
    for file, kind, body in guide_blocks():
        if file:
            path = project / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            continue
        assert kind == "bash", f"a {kind} block without a 'File `PATH`:' line above it"
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

    # Step 5 keeps the infrastructure tests; its last command ran them on the new example.
    kept = {path.name for path in (project / "tests").glob("test_*.py")}
    assert {"test_devices.py", "test_reliability.py", "test_run_directory.py"} <= kept, kept
    runs = sorted((project / "logs" / "train" / "runs").glob("*/metrics.json"))
    assert len(runs) == 2  # experiment=quadratic, then the new default
    models = project / "src" / "litplate" / "models"
    assert not (models / "linear.py").exists()
    assert (project / "configs" / "train.yaml").read_text().count("quadratic") == 2
