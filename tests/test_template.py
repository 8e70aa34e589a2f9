"""Bake tests: `cookiecutter` on this repository gives a renamed project that works on its own.

Template-only (hooks/pre_prompt.py removes this file from generated projects).
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.project import copy_tracked_files

pytestmark = pytest.mark.slow


def checkout_copy(tmp_path: Path) -> Path:
    """The working tree's tracked files in a fresh git repository, as a user's clone has them."""
    copy = copy_tracked_files(tmp_path / "checkout")
    (copy / "logs" / "train").mkdir(parents=True, exist_ok=True)
    (copy / "logs" / "train" / "stale-run.txt").write_text("run output must not be copied")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(copy)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "snapshot"], check=True)
    return copy


def cookiecutter(template: Path, out: Path, *answers: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            str(template),
            "--no-input",
            "-o",
            str(out),
            *answers,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bake")
    result = cookiecutter(checkout_copy(tmp), tmp / "out", "project_name=My Cool Project")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "out" / "my-cool-project"


def test_project_is_renamed_everywhere(baked: Path):
    assert (baked / "src" / "my_cool_project" / "models" / "linear.py").is_file()
    assert not (baked / "src" / "litplate").exists()
    traces = [
        str(path.relative_to(baked))
        for path in baked.rglob("*")
        if "litplate" in path.name.lower()
        or (path.is_file() and b"litplate" in path.read_bytes().lower())
    ]
    assert traces == []
    assert 'name = "my-cool-project"' in (baked / "pyproject.toml").read_text()
    assert (baked / "README.md").read_text().startswith("# My Cool Project\n")
    assert (
        "_target_: my_cool_project.models.LinearRegression"
        in (baked / "configs" / "model" / "linear.yaml").read_text()
    )


def test_template_only_and_ignored_files_are_left_out(baked: Path):
    for name in ("cookiecutter.json", "hooks", "tests/test_template.py", ".git", ".venv"):
        assert not (baked / name).exists(), name
    assert sorted(p.name for p in (baked / "logs").iterdir()) == [".gitkeep"]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["project_name=Ok", "package_name=class"], "package_name 'class' is a Python keyword"),
        (
            ["project_name=Ok", "package_name=my-pkg"],
            "package_name 'my-pkg' is not a Python identifier",
        ),
        (["project_name= "], "project_name is empty"),
    ],
)
def test_bad_answers_fail_with_a_clear_message(tmp_path: Path, baked: Path, answers, message):
    template = checkout_copy(tmp_path)
    result = cookiecutter(template, tmp_path / "out", *answers)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_generated_project_trains_and_passes_its_tests(baked: Path, tmp_path: Path):
    # A venv that sees this environment's packages (torch, lightning, ...) through a .pth file,
    # so the bake installs only the generated package itself.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "parent_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "-e", str(baked)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    run_dir = tmp_path / "run"
    train = subprocess.run(
        [python, "scripts/train.py", "experiment=linear", f"hydra.run.dir={run_dir}"],
        cwd=baked,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert abs(metrics["weight"] - 0.7) < 0.01 and abs(metrics["bias"] - 0.3) < 0.01

    tests = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=baked,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout.splitlines()[-1]
    output = train.stdout + train.stderr + tests.stdout + tests.stderr
    assert "litplate" not in output.lower()
