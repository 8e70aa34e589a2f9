"""Turn the runnable repository into a cookiecutter template, in cookiecutter's temporary copy.

Cookiecutter (>= 2.4) runs this in a copy of the repository before it asks its questions. The
project files stay runnable at the root of the repository (no Jinja in them); here they move into
`{{cookiecutter.project_slug}}/`, which cookiecutter then copies without rendering
(`_copy_without_render: ["*"]`). Only files git tracks are kept, so run output, virtual
environments and caches never reach a generated project. What only concerns the template (its
benchmarks, its bake test, how to generate) stays behind: the files in TEMPLATE_ONLY, and in the
docs, the Makefile and pyproject.toml the blocks between a `template-only` marker line and its
`/template-only`.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

TEMPLATE_DIR = "{{cookiecutter.project_slug}}"
# Files and folders that exist to make, test or measure the template, not part of a project.
TEMPLATE_ONLY = {
    "cookiecutter.json",
    "BENCHMARKS.md",
    "benchmarks",
    "docs/template.md",
    "tests/test_benchmarks.py",
    "tests/test_template.py",
}
# `<!-- template-only -->` ... `<!-- /template-only -->` in markdown, `# template-only` ... in the
# Makefile and pyproject.toml: the lines between (markers included) are cut from the project.
TEMPLATE_ONLY_BLOCK = re.compile(
    r"^[ \t]*(?:<!-- |# )template-only(?: -->)?\n.*?^[ \t]*(?:<!-- |# )/template-only(?: -->)?\n",
    re.M | re.S,
)
MARKED_FILES = {"Makefile", "pyproject.toml"}
KEEP_AT_ROOT = {"cookiecutter.json", "hooks"}
# Used only when the copy is not a git checkout (e.g. an unpacked archive).
IGNORED_PARTS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", "build"}


def project_files(root: Path) -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
        ).stdout.decode()
        files = [Path(name) for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        files = [
            path.relative_to(root)
            for path in root.rglob("*")
            if path.is_file() and not IGNORED_PARTS & set(path.relative_to(root).parts)
        ]
        files = [f for f in files if f.parts[0] != "logs" or f.name == ".gitkeep"]
    return [
        f
        for f in files
        if f.parts[0] != "hooks" and not is_template_only(f) and (root / f).is_file()
    ]


def is_template_only(relative: Path) -> bool:
    return any(
        relative.as_posix() == name or relative.as_posix().startswith(name + "/")
        for name in TEMPLATE_ONLY
    )


def cut_template_only_blocks(path: Path) -> None:
    if path.suffix == ".md" or path.name in MARKED_FILES:
        text = path.read_text(encoding="utf-8")
        cut = TEMPLATE_ONLY_BLOCK.sub("", text)
        if cut != text:
            path.write_text(cut, encoding="utf-8")


def main() -> None:
    root = Path.cwd()
    target = root / TEMPLATE_DIR
    files = project_files(root)
    if not files:
        sys.exit("litplate template: found no project files to copy")
    for relative in files:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(root / relative), destination)
        cut_template_only_blocks(destination)
    for entry in root.iterdir():  # whatever was not a project file: ignored output, .git, ...
        if entry.name not in KEEP_AT_ROOT and entry != target:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


if __name__ == "__main__":
    main()
