"""The README and docs/ stand alone: every link stays in the repository and lands (the
file exists, the #anchor is a heading of it), no page points at material outside the
repository, every repository path a page names exists (the test bed's packages under
testbed/), machines are named by what they are, and docs/README.md indexes every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEST_BED = ("vpcsim", "localcluster", "localnode", "localrun")

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
#: Pointers at material that is not part of the repository.
OUTSIDE = re.compile(r"\.\./shared|shared/(facts|seed)|\bfacts/|\bthe facts\b|/work/", re.I)
VAGUE_MACHINE = re.compile(r"\bthis VM\b|\bthe VM\b|\bquiet VM\b", re.I)


def slug(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's rule) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    in_fence = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def prose(page: Path) -> str:
    """The page without its fenced blocks (code and sample output)."""
    out, in_fence = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence:
            out.append(line)
    return "\n".join(out)


def rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_links_stay_in_the_repository_and_land(page: Path) -> None:
    bad = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            bad.append(f"{target}: leaves the repository")
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_relative_to(ROOT) or not dest.exists():
            bad.append(f"{target}: no such file in the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {rel(dest)}")
    assert not bad, f"{rel(page)}: {bad}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_no_pointer_outside_the_repository(page: Path) -> None:
    hits = [
        f"line {n}: {line.strip()}"
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, f"{rel(page)} points at material outside the repository: {hits}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_machines_are_named(page: Path) -> None:
    hits = [
        f"line {n}: {line.strip()}"
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if VAGUE_MACHINE.search(line)
    ]
    assert not hits, f"{rel(page)}: say which machine (e.g. '2 cores, 24 GiB'): {hits}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_repository_paths_exist(page: Path) -> None:
    """A code span that names a file or folder of the repository (its first part is a
    top-level folder, or a test-bed package) names one that exists."""
    tops = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    bad = []
    for span in CODE_SPAN.findall(prose(page)):
        for raw in span.split():
            word = raw.strip("(),;:'\"").split("::", 1)[0]
            if "/" not in word or re.search(r"[<>*{}$=\[\]]|\.\.\.|…", word):
                continue
            first = word.split("/", 1)[0]
            if first in TEST_BED:
                bad.append(f"{word}: the test bed lives under testbed/")
            elif first in tops and not (ROOT / word).exists():
                bad.append(f"{word}: not in the repository")
    assert not bad, f"{rel(page)}: {bad}"


def test_the_index_lists_every_page() -> None:
    index = (ROOT / "docs" / "README.md").read_text()
    linked = {t.partition("#")[0] for t in LINK.findall(index)}
    missing = [p.name for p in PAGES[1:] if p.name != "README.md" and p.name not in linked]
    assert not missing, f"docs/README.md does not link {missing}"
    readme = (ROOT / "README.md").read_text()
    assert "(docs/README.md)" in readme, "the README links the docs index"
