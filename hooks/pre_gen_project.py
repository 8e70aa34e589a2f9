"""Refuse answers that would produce a broken project, before anything is written."""

import keyword
import sys

project_name = "{{ cookiecutter.project_name }}".strip()
slug = "{{ cookiecutter.project_slug }}"
package = "{{ cookiecutter.package_name }}"

problems = []
if not project_name:
    problems.append("project_name is empty")
if not slug:
    problems.append(f"project_slug {slug!r} is empty (project_name {project_name!r})")
if not package.isidentifier():
    problems.append(f"package_name {package!r} is not a Python identifier (letters, digits, _)")
elif keyword.iskeyword(package):
    problems.append(f"package_name {package!r} is a Python keyword")
elif package != package.lower():
    problems.append(f"package_name {package!r} must be lower case")
if problems:
    sys.exit("Cannot generate the project: " + "; ".join(problems))
