"""A clone stands on its own: nothing in the repository points at the workspace it was written
in, and every relative link of its Markdown leads to a file (and heading) of the repository."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {"node_modules", "build", "__pycache__"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".graphql", ".mako", ".mjs", ".json", ".sql", ".ini", ""}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL = ("http://", "https://", "mailto:")
# where this project's drafts and datasets live while it is developed; a user's clone has neither
OUTSIDE = ("../" + "shared", "/work/" + "shared", "/work/" + "wt")


def _kept(relative: Path) -> bool:
    hidden = relative.name.startswith(".") and relative.name != ".ci"
    generated = relative == Path("bench/data") or relative.name.endswith(".egg-info")
    return not (hidden or generated or relative.name in SKIPPED_DIRS)


def repository_files() -> Iterator[Path]:
    """The project's own files: no virtualenv, caches, installed packages or generated data."""
    for directory, subdirectories, files in os.walk(ROOT):
        here = Path(directory)
        subdirectories[:] = sorted(d for d in subdirectories if _kept((here / d).relative_to(ROOT)))
        yield from (here / name for name in sorted(files) if _kept(Path(name)))


def text_files() -> Iterator[Path]:
    return (path for path in repository_files() if path.suffix in TEXT_SUFFIXES)


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", markdown.read_text(encoding="utf-8"), re.MULTILINE)
    return {slug(heading) for heading in headings}


def broken_links(markdown: Path) -> Iterator[str]:
    for target in LINK.findall(markdown.read_text(encoding="utf-8")):
        if target.startswith(EXTERNAL):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (markdown.parent / path_part).resolve() if path_part else markdown
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            yield f"{target} (no such file in the repository)"
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            yield f"{target} (no such heading)"


def test_nothing_points_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {marker}"
        for path in text_files()
        if path != Path(__file__).resolve()
        for marker in OUTSIDE
        if marker in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert found == []


def test_markdown_links_resolve_inside_the_repository() -> None:
    markdown = [path for path in repository_files() if path.suffix == ".md"]
    assert {"README.md", "docs/metrics.md", "docs/architecture.md"} <= {
        str(path.relative_to(ROOT)) for path in markdown
    }
    broken = [
        f"{path.relative_to(ROOT)}: {link}" for path in markdown for link in broken_links(path)
    ]
    assert broken == []


def test_outside_sample_data_ships_with_its_licence_and_origin() -> None:
    for dataset in sorted((ROOT / "tests" / "data").iterdir()):
        licence = (dataset / "LICENSE").read_text(encoding="utf-8")
        assert "Copyright" in licence, dataset.name
        readme = (dataset / "README.md").read_text(encoding="utf-8")
        assert "https://github.com/" in readme, dataset.name
