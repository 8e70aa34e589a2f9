"""Rename the package `litplate` to the chosen name everywhere in the generated project, then
let ruff re-sort the imports and re-wrap the lines the new name made longer or shorter."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

OLD = "litplate"
NAME = "{{ cookiecutter.project_name }}".strip()
SLUG = "{{ cookiecutter.project_slug }}"
PACKAGE = "{{ cookiecutter.package_name }}"
AUTHOR = "{{ cookiecutter.author }}"
DESCRIPTION = "{{ cookiecutter.description }}"
PYTHON = "{{ cookiecutter.python_version }}"
CAMEL = "".join(part.capitalize() for part in PACKAGE.split("_"))  # class names: LitplateX


def rename_paths(root: Path) -> None:
    # Deepest first, so renaming a directory never invalidates a path still to visit.
    for path in sorted(root.rglob(f"*{OLD}*"), key=lambda p: len(p.parts), reverse=True):
        path.rename(path.with_name(path.name.replace(OLD, PACKAGE)))


def rewrite(path: Path, text: str) -> str:
    if path.name == "pyproject.toml":
        text = re.sub(r'(?m)^name = ".*"$', f'name = "{SLUG}"', text, count=1)
        text = re.sub(r'(?m)^description = ".*"$', f"description = {DESCRIPTION!r}", text, count=1)
        # (no f-string with doubled braces here: cookiecutter renders hooks with Jinja)
        authors = "authors = [" + "{ name = " + repr(AUTHOR) + " }]"
        text = re.sub(r"(?m)^authors = \[.*\]$", authors, text, count=1)
        text = re.sub(r'requires-python = ">=[0-9.]+"', f'requires-python = ">={PYTHON}"', text)
    if path.name == "README.md":
        text = re.sub(r"\A# .*", f"# {NAME}\n\n{DESCRIPTION}", text, count=1)
    if path.suffix in (".yml", ".yaml") and ".github" in path.parts:
        text = re.sub(r'python-version: "[0-9.]+"', f'python-version: "{PYTHON}"', text)
    text = text.replace(OLD, PACKAGE).replace(OLD.upper(), PACKAGE.upper())
    return text.replace(OLD.capitalize(), CAMEL)


# Imports sort by the package's name and lines change length with it: ruff re-sorts and re-wraps;
# a line the name made too long that no formatter can break (a name inside a string, comment or
# docstring) then gets a noqa comment for E501 alone, so `ruff check` stays clean for any name.
TIDY = [
    ["check", "--fix", "--select", "I", "--quiet", "."],
    ["format", "--quiet", "."],
    ["check", "--select", "E501", "--add-noqa", "--quiet", "."],
]


def ruff_command() -> list[str] | None:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    return [found] if found else None


def tidy(root: Path) -> bool:
    ruff = ruff_command()
    if ruff is None:
        return False
    codes = [
        subprocess.run([*ruff, *args], cwd=root, capture_output=True).returncode for args in TIDY
    ]
    return codes == [0] * len(TIDY)


def main() -> None:
    root = Path.cwd()
    rename_paths(root)
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary files (images) keep their bytes
        new = rewrite(path, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
    if not tidy(root):
        print(
            "ruff was not found (or failed): to sort the imports and wrap the renamed lines, run\n"
            f"  cd {SLUG} && ruff check --fix --select I . && ruff format ."
            " && ruff check --select E501 --add-noqa ."
        )
    print(f"Created {SLUG}/ with package {PACKAGE}. Next: cd {SLUG} && make train")


if __name__ == "__main__":
    main()
