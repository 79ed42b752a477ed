"""The documentation holds together: the MkDocs site builds with ``--strict`` (every page in the
nav, no broken link between pages), the README stays a front door (at most 200 lines, opening
with the two set-up commands), and every relative link and image path of the README,
``results/README.md`` and the pages in ``docs/`` names a file that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from helpers import REPOSITORY, chromium, needs_chromium

ROOT = REPOSITORY
SETUP = (
    "    make demo    # train a Non-Syn VAE on rendered dSprites, score it, write "
    "runs/demo/report.html\n"
    "    make test    # run the test suite\n"
)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
IMAGE = re.compile(r"<img\s[^>]*?src\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`]*`")


def _nav_pages(nav) -> list[str]:
    """The Markdown files of a MkDocs nav (a list of pages, titled pages and sections)."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return [page for item in nav for page in _nav_pages(item)]


def _mkdocs_config() -> dict:
    import yaml  # PyYAML, a dependency of mkdocs (the dev extra)

    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once with ``mkdocs build --strict`` (a warning fails the build)."""
    folder = tmp_path_factory.mktemp("docs") / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return folder


def test_the_site_builds_strictly_with_every_page_of_the_nav(site):
    config = _mkdocs_config()
    pages = _nav_pages(config["nav"])
    docs = ROOT / config.get("docs_dir", "docs")
    assert sorted(pages) == sorted(path.name for path in docs.glob("*.md")), (
        "the nav lists exactly the pages in docs/"
    )
    directory_urls = config.get("use_directory_urls", True)
    for page in pages:
        stem = page.removesuffix(".md")
        if stem == "index":
            rendered = site / "index.html"
        else:
            rendered = site / stem / "index.html" if directory_urls else site / f"{stem}.html"
        assert rendered.is_file(), f"{page} was not rendered"
        assert "<h1" in rendered.read_text(encoding="utf-8"), f"{page} rendered without a title"


@needs_chromium
def test_the_api_page_of_the_metrics_renders_in_headless_chromium(site, tmp_path):
    dom = chromium("--dump-dom", (site / "api.html").as_uri(), profile=tmp_path / "profile").stdout
    # the reference generated from the docstrings: the verbs, the registries and a metric
    for name in (
        "nsvae.api",
        "nsvae.metrics.pid",
        "compute_unibound",
        "pid_bounds",
        "evaluate_functions",
        "Tokui",
    ):
        assert name in dom, name


def test_the_readme_is_short_and_opens_with_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert readme.startswith(SETUP)


def _targets(text: str) -> list[str]:
    """The link and image targets of Markdown ``text`` outside code: ``[text](path)``,
    ``![alt](path)`` and ``<img src="path">``."""
    kept, previous_blank, in_code = [], True, False
    for line in FENCE.sub("", text).splitlines():
        blank = not line.strip()
        # an indented code block opens with four spaces after a blank line and runs until a
        # line that is neither indented nor blank
        if line.startswith("    ") and (in_code or previous_blank):
            in_code = True
            kept.append("")
        else:
            in_code = in_code and blank
            kept.append(line)
        previous_blank = blank
    text = CODE.sub("", "\n".join(kept))
    return LINK.findall(text) + IMAGE.findall(text)


def _documents() -> list[Path]:
    return [
        ROOT / "README.md",
        ROOT / "results" / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]


@pytest.mark.parametrize("document", _documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_and_image_names_an_existing_file(document):
    missing = []
    for target in _targets(document.read_text(encoding="utf-8")):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not parts.path:  # a URL, mail, or a pure #anchor
            continue
        path = unquote(parts.path)
        # "/x" is the repository's x, as GitHub reads it; anything else is relative to the file.
        resolved = ROOT / path.lstrip("/") if path.startswith("/") else document.parent / path
        if not resolved.exists():
            missing.append(target)
    assert not missing, f"{document.relative_to(ROOT)} links to missing files: {missing}"


def test_the_link_check_sees_links_images_and_html_images_but_not_code():
    text = (
        '[a](docs/a.md) ![b](b.png \'title\') <img src="c.png" width="4">\n'
        "[multi\nline](d.md#part) `[not](code.md)` [web](https://example.org)\n"
        "\n    [indented](code_block.md)\n\n    [still code](code.md)\n"
        "```\n[fenced](fence.md)\n```\nlazy\n    [continued](e.md)\n"
    )
    assert sorted(_targets(text)) == [
        "b.png",
        "c.png",
        "d.md#part",
        "docs/a.md",
        "e.md",
        "https://example.org",
    ]
