"""Bake tests: `cookiecutter` on this repository gives a renamed project that works on its own.

Template-only (hooks/pre_prompt.py leaves this file out of generated projects). The project is
baked once, with a long name, the way docs/template.md recommends (`git+file://`, so only what
git tracks is read); it must lint clean, hold nothing of the template's, and follow its own
make-it-yours guide as written: train, swap the example, and pass the tests that are left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.markdown import broken_links, guide_blocks
from tests.helpers.project import copy_tracked_files

pytestmark = pytest.mark.slow

NAME = "Protein Folding Research Toolkit For Graduate Students"
SLUG = "protein-folding-research-toolkit-for-graduate-students"
PACKAGE = SLUG.replace("-", "_")
# What names an example: the tests that outlive them (`make remove-examples`) hold none of it.
EXAMPLE_WORDS = re.compile(r"(?<![a-z])(linear|mlp|sine|digits)", re.IGNORECASE)  # not cosine
TEMPLATE_ONLY = [
    "cookiecutter.json",
    "hooks",
    "BENCHMARKS.md",
    "benchmarks",
    "docs/template.md",
    "tests/test_benchmarks.py",
    "tests/test_template.py",
]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree's tracked files in a fresh git repository, as a user's clone has them,
    with what a used checkout also holds: run output and a virtual environment (ignored)."""
    copy = copy_tracked_files(tmp_path_factory.mktemp("template") / "checkout")
    (copy / "logs" / "train").mkdir(parents=True, exist_ok=True)
    (copy / "logs" / "train" / "stale-run.txt").write_text("run output must not be copied")
    (copy / ".venv").mkdir()
    (copy / ".venv" / "pyvenv.cfg").write_text("a virtual environment must not be copied")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(copy)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "snapshot"], check=True)
    return copy


def cookiecutter(checkout: Path, tmp: Path, *answers: str) -> subprocess.CompletedProcess:
    """`cookiecutter git+file://CHECKOUT`, its clone kept under `tmp` (not ~/.cookiecutters)."""
    config = tmp / "cookiecutter.yaml"
    config.write_text(f'cookiecutters_dir: "{tmp}/clones"\nreplay_dir: "{tmp}/replay"\n')
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", f"git+file://{checkout}", "--no-input",
         "--config-file", str(config), "-o", str(tmp / "out"), *answers],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def baked(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bake")
    result = cookiecutter(checkout, tmp, f"project_name={NAME}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ruff was not found" not in result.stdout  # the hook formatted the project
    return tmp / "out" / SLUG


def test_project_is_renamed_everywhere(baked: Path):
    assert (baked / "src" / PACKAGE / "models" / "linear.py").is_file()
    assert not (baked / "src" / "litplate").exists()
    traces = [
        str(path.relative_to(baked))
        for path in baked.rglob("*")
        if "litplate" in path.name.lower()
        or (path.is_file() and b"litplate" in path.read_bytes().lower())
    ]
    assert traces == []
    assert f'name = "{SLUG}"' in (baked / "pyproject.toml").read_text()
    readme = (baked / "README.md").read_text()
    assert readme.startswith(f"# {NAME}\n") and "template" not in readme.split("## ")[0].lower()
    assert (
        f"_target_: {PACKAGE}.models.LinearRegression"
        in (baked / "configs" / "model" / "linear.yaml").read_text()
    )


def test_template_only_and_ignored_files_are_left_out(baked: Path):
    for name in [*TEMPLATE_ONLY, ".git", ".venv"]:
        assert not (baked / name).exists(), name
    assert sorted(p.name for p in (baked / "logs").iterdir()) == [".gitkeep"]
    marked = [
        str(path.relative_to(baked))
        for path in [*baked.rglob("*.md"), baked / "Makefile", baked / "pyproject.toml"]
        if "template-only" in path.read_text()
    ]
    assert marked == []  # every block between the markers was cut, markers included
    assert "bench" not in (baked / "Makefile").read_text()
    assert "cookiecutter" not in (baked / "pyproject.toml").read_text()
    assert not re.search("benchmark", (baked / "README.md").read_text(), re.IGNORECASE)


def test_ruff_check_and_format_are_clean(baked: Path):
    def ruff(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache", "."],
            cwd=baked, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    check, format_check = ruff("check"), ruff("format", "--check")
    assert check.returncode == 0 and "All checks passed!" in check.stdout, check.stdout[-3000:]
    assert format_check.returncode == 0, format_check.stdout[-3000:]
    assert "files already formatted" in format_check.stdout


def test_every_relative_link_resolves(baked: Path):
    assert (baked / "docs" / "make-it-yours.md").is_file()
    assert broken_links(baked) == []


def make_list(makefile: Path, name: str) -> list[str]:
    """The words of a `NAME := ...` list of the Makefile (its lines continued with a backslash)."""
    text = makefile.read_text().replace("\\\n", " ")
    return re.search(rf"^{name} := (.*)$", text, re.MULTILINE).group(1).split()


def infrastructure_tests(project: Path) -> list[str]:
    """The test files that `make remove-examples` keeps."""
    examples = {f"test_{name}.py" for name in make_list(project / "Makefile", "EXAMPLE_TESTS")}
    tests = sorted(path.name for path in (project / "tests").glob("test_*.py"))
    assert examples <= set(tests), examples - set(tests)  # the list names files that exist
    return [name for name in tests if name not in examples]


def test_infrastructure_tests_name_no_example(baked: Path):
    kept = infrastructure_tests(baked)
    assert {"test_devices.py", "test_reliability.py", "test_run_directory.py"} <= set(kept)
    for name in kept:
        text = (baked / "tests" / name).read_text()
        assert not EXAMPLE_WORDS.search(text), (name, EXAMPLE_WORDS.search(text))
        assert re.search(r"^def test_", text, re.MULTILINE), name
    for path in make_list(baked / "Makefile", "EXAMPLES"):
        assert (baked / path).exists(), path


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
def test_bad_answers_fail_with_a_clear_message(checkout: Path, tmp_path: Path, answers, message):
    result = cookiecutter(checkout, tmp_path, *answers)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_generated_project_follows_its_guide_and_passes_its_tests(baked: Path, tmp_path: Path):
    """The generated project's docs/make-it-yours.md, every block as written (its package name
    in the paths): a classification task of its own on a CSV it writes, trained and tested, then
    `make remove-examples`, the new default trained, the default selection of the tests that are
    left and the lint."""
    project = tmp_path / "project"
    shutil.copytree(baked, project)  # the guide edits the project; the other tests read `baked`
    kept = infrastructure_tests(project)
    # A venv that sees this environment's packages (torch, lightning, ...) and the generated
    # project's src/ through a .pth file: no pip, no build, nothing of litplate's on its path.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run(
        [venv / "bin" / "python", "-c", where], capture_output=True, text=True, check=True
    ).stdout.strip()
    paths = [str(project / "src"), *site.getsitepackages()]
    Path(purelib, "generated_project.pth").write_text("\n".join(paths) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # `python` is the venv's; `ruff` is this environment's.
    env["PATH"] = os.pathsep.join(
        [str(venv / "bin"), str(Path(sys.executable).parent), env["PATH"]]
    )

    output, summary = "", ""
    for file, kind, body in guide_blocks(project / "docs" / "make-it-yours.md"):
        if file:
            path = project / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            continue
        assert kind == "bash", f"a {kind} block without a 'File `PATH`:' line above it"
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", body],
            cwd=project, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        # The inner suite's first failure, not only its summary, when one of its tests fails.
        failures = result.stdout.find("= FAILURES =")
        shown = result.stdout[failures:][:6000] if failures >= 0 else result.stdout[-3000:]
        assert result.returncode == 0, (body, shown, result.stderr[-3000:])
        output += result.stdout + result.stderr
        if "pytest" in body:
            summary = result.stdout.splitlines()[-1]
            assert re.search(r"\b\d+ passed", summary), summary
            assert not re.search(r"failed|error", summary), summary  # skipped: no GPU

    # The last pytest ran every test of the default selection, on the new task: as many passed
    # or skipped as pytest collects there (the slow ones run in the template's own suite).
    collected = subprocess.run(
        [venv / "bin" / "python", "-m", "pytest", "--collect-only", "-q"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    ).stdout.splitlines()[-1]  # fmt: skip
    selected = re.match(r"(\d+)(?:/\d+)? tests? collected", collected)
    assert selected, collected
    ran = sum(int(n) for n in re.findall(r"(\d+) (?:passed|skipped)", summary))
    assert ran == int(selected.group(1)) > 0, (summary, collected)

    # `make remove-examples` deleted exactly the examples and kept the tests of the machinery.
    for path in make_list(project / "Makefile", "EXAMPLES"):
        assert not (project / path).exists(), path
    left = sorted(path.name for path in (project / "tests").glob("test_*.py"))
    assert left == sorted([*kept, "test_flowers.py"])
    assert "All checks passed!" in output and "files already formatted" in output  # the lint
    runs = sorted((project / "logs" / "train" / "runs").glob("*/metrics.json"))
    assert len(runs) == 2  # experiment=flowers, then the new default
    first = json.loads(runs[0].read_text())
    assert first["test/acc"] == 1.0 and first["tags"] == []
    assert {"test/f1", "val/acc"} <= json.loads(runs[1].read_text()).keys()
    assert (project / "configs" / "train.yaml").read_text().count("  - data: flowers") == 1
    models = (project / "src" / PACKAGE / "models" / "__init__.py").read_text()
    assert not re.search(r"# example$", models, re.MULTILINE) and "MLP" not in models
    assert "litplate" not in output.lower()
