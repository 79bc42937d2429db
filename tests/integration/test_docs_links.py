"""The README and the pages in ``docs/`` link to each other and to ``results/``: every relative link and image
points to a file of the repository, and every ``#anchor`` to a heading of its target (GitHub's heading slugs),
so that moving a section cannot leave a dead link behind."""

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters of any script, digits, ``-``, ``_``
    kept), spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """Anchors of the headings of a Markdown page (outside code blocks); repeated headings get ``-1``, ``-2``, …"""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        out.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return frozenset(out)


def test_slug_follows_github() -> None:
    assert slug("Mach 5.5 shock") == "mach-55-shock"
    assert slug("Where the 64-cell deficit against NSF at ε = 1e-2 comes from") == (
        "where-the-64-cell-deficit-against-nsf-at-ε--1e-2-comes-from")
    assert slug("Numerical flux (`flux: ap`)") == "numerical-flux-flux-ap"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    links = [m.group(1) for m in LINK.finditer(text) if not re.match(r"[a-z]+:", m.group(1))]
    assert links or page.name == "README.md"
    for link in links:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_file(), f"{page.name}: {link} points to no file"
        if anchor:
            assert anchor in anchors(target), f"{page.name}: {link} names no heading of {target.name}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"(docs/{page.name}" in readme, f"docs/{page.name} is not linked from the README"
