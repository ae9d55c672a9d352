"""The documentation site's pages find the README sections and modules they show.

The user guide pages include README sections between two headings; renaming a heading in
the README must fail here (fast, no MkDocs needed) rather than only in ``nox -s docs``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INCLUDE = re.compile(r'\{%\s*include-markdown\s+"([^"]+)"(.*?)%\}')
OPTION = re.compile(r'(\w[\w-]*)="([^"]*)"')
AUTODOC = re.compile(r"^::: ([\w.]+)\s*$", re.MULTILINE)

PAGES = sorted(DOCS.rglob("*.md"))


def _includes(page: Path) -> list[tuple[Path, dict[str, str]]]:
    text = page.read_text()
    return [
        ((page.parent / m.group(1)).resolve(), dict(OPTION.findall(m.group(2))))
        for m in INCLUDE.finditer(text)
    ]


def test_site_has_pages():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"index.md", "development.md", "api/index.md", "guide/training.md"} <= names
    assert (DOCS / "tutorial.ipynb").resolve() == (ROOT / "notebooks/tutorial.ipynb").resolve()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_included_sections_exist(page):
    for source, options in _includes(page):
        assert source.is_file(), f"{page}: {source} does not exist"
        text = source.read_text()
        begin = 0
        if "start" in options:
            begin = text.find(options["start"])
            assert begin >= 0, f"{page}: start {options['start']!r} not in {source.name}"
            begin += len(options["start"])
            # the included text is more than the heading: the next heading is not right there
            assert text[begin:].strip(), f"{page}: nothing after {options['start']!r}"
        if "end" in options:
            end = text.find(options["end"], begin)
            assert end > begin, f"{page}: end {options['end']!r} not after the start"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_documented_modules_exist(page):
    for name in AUTODOC.findall(page.read_text()):
        if name.startswith("processors."):
            name = "hepae_coffea." + name
        assert importlib.util.find_spec(name) is not None, f"{page}: no module {name}"


def test_every_library_module_is_in_the_api_reference():
    documented = {n for p in PAGES for n in AUTODOC.findall(p.read_text())}
    modules = {
        "hepae_coffea." + p.relative_to(ROOT / "hepae_coffea").with_suffix("").as_posix()
        for p in (ROOT / "hepae_coffea").rglob("*.py")
    }
    modules = {m.removesuffix(".__init__").replace("/", ".") for m in modules}
    private = {m for m in modules if any(part.startswith("_") for part in m.split("."))}
    # the command line is documented by the user guide; submodules of documented packages
    # (hepae_coffea.codecs.*) appear on their package's page
    covered = {
        m
        for m in modules
        for d in documented
        if m == d or (d != "hepae_coffea" and m.startswith(d + "."))
    }
    cli = {m for m in modules if m == "hepae_coffea.cli" or m.startswith("hepae_coffea.cli.")}
    missing = modules - covered - private - cli
    assert not missing, f"modules missing from docs/api/: {sorted(missing)}"
