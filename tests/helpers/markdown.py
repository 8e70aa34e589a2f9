"""Links in the project's markdown: the README and the pages in docs/."""

from __future__ import annotations

import re
from pathlib import Path

LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def broken_links(root: Path) -> list[str]:
    """`page: target` for each relative link whose file is not there (web links are not checked)."""
    broken = []
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or not path:
                continue
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(root)}: {target}")
    return broken


# A block, with the file it belongs in when the line above it says "File `PATH`:".
BLOCK = re.compile(r"(?:^File `([^`]+)`:\n\n)?^```(\w+)\n(.*?)^```", re.S | re.M)


def guide_blocks(page: Path) -> list[tuple[str, str, str]]:
    """(file path or "", language, body) for each block of a guide such as make-it-yours.md."""
    return BLOCK.findall(page.read_text(encoding="utf-8"))
