"""Turn the runnable repository into a cookiecutter template, in cookiecutter's temporary copy.

Cookiecutter (>= 2.4) runs this in a copy of the repository before it asks its questions. The
project files stay runnable at the root of the repository (no Jinja in them); here they move into
`{{cookiecutter.project_slug}}/`, which cookiecutter then copies without rendering
(`_copy_without_render: ["*"]`). Only files git tracks are kept, so run output, virtual
environments and caches never reach a generated project.
"""

import shutil
import subprocess
import sys
from pathlib import Path

TEMPLATE_DIR = "{{cookiecutter.project_slug}}"
# Files that exist to make or test the template, not part of a generated project.
TEMPLATE_ONLY = {"cookiecutter.json", "copier.yml", "tests/test_template.py", "BENCHMARKS.md"}
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
        if f.parts[0] != "hooks" and f.as_posix() not in TEMPLATE_ONLY and (root / f).is_file()
    ]


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
    for entry in root.iterdir():  # whatever was not a project file: ignored output, .git, ...
        if entry.name not in KEEP_AT_ROOT and entry != target:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


if __name__ == "__main__":
    main()
