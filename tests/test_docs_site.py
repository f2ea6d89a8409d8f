"""The documentation site builds with no warning, every internal link and anchor of the built HTML resolves, and
the home page and a reference page render in headless Chromium (Selenium + Debian's chromium-driver).

``ZOO_DOCS_SCREENSHOTS=docs/images`` keeps the screenshots there (docs/images/site-home.png is made so)::

    ZOO_DOCS_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/test_docs_site.py
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
MKDOCS = Path(sys.executable).parent / "mkdocs"
CHROMIUM = Path(os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ZOO_CHROMEDRIVER", "/usr/bin/chromedriver"))

pytestmark = pytest.mark.skipif(not MKDOCS.exists(), reason="mkdocs is not installed (make install installs it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mkdocs build --strict` into a temp folder: any warning (a broken link, a page outside the nav, a bad
    docstring) fails it."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert "WARNING" not in done.stderr, done.stderr
    return out


class Links(HTMLParser):
    """The ids of a page and the href/src values it points at."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.ids.add(values[key] or "")
        for key in ("href", "src"):
            if values.get(key):
                self.targets.append(values[key] or "")


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(errors="replace"))
    return links


def resolve(site: Path, page: Path, target: str) -> tuple[Path | None, str]:
    """The file an internal link points at (None for an external one) and its fragment."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith(("mailto:", "javascript:", "data:")):
        return None, ""
    path = unquote(parts.path)
    if not path:
        return page, parts.fragment
    file = (site / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
    file = file.resolve()
    if file.is_dir() or path.endswith("/"):
        file = file / "index.html"
    return file, parts.fragment


def test_site_builds_and_every_internal_link_and_anchor_resolves(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 20, [p.relative_to(site) for p in pages]
    parsed = {page.resolve(): parse(page) for page in pages}
    broken: list[str] = []
    for page, links in parsed.items():
        for target in links.targets:
            file, fragment = resolve(site, page, target)
            if file is None:
                continue
            where = f"{page.relative_to(site.resolve())}: {target}"
            if not file.is_file():
                broken.append(f"{where} (no such file)")
            elif fragment and file.suffix == ".html":
                ids = parsed[file].ids if file in parsed else parse(file).ids
                if unquote(fragment) not in ids:
                    broken.append(f"{where} (no anchor #{fragment})")
    assert not broken, "broken links in the built site:\n" + "\n".join(broken)


def test_generated_pages_are_in_the_site(site: Path) -> None:
    """The pages made at build time from the code: model cards, API references, CLI, plugin guide, benchmarks."""
    cards = (site / "reference" / "model-cards" / "index.html").read_text()
    for model in ("ae_mnist", "vae_faces", "cyclegan_hair"):
        assert f'id="{model}"' in cards, model
    api = (site / "reference" / "plugin-api" / "index.html").read_text()
    assert 'id="zoo_core.spec.ModelSpec"' in api and 'id="zoo_core.recipe.Recipe"' in api
    user_api = (site / "reference" / "python-api" / "index.html").read_text()
    assert 'id="zoo_core.library.load"' in user_api
    assert "zoo train" in (site / "reference" / "cli" / "index.html").read_text()
    assert "The Recipe contract" in (site / "reference" / "plugins-guide" / "index.html").read_text()
    assert list((site / "benchmarks" / "results").glob("*.png")), "the suite's plots are not beside its page"


@pytest.fixture(scope="module")
def served_site(site: Path) -> Iterator[str]:
    """The built site from a static file server on 127.0.0.1 (a free port), as a host would serve it."""
    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"no {CHROMIUM} or {CHROMEDRIVER}: install the Debian packages chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium for the browser test")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# Every <img> decoded with a size, the theme's stylesheet applied (the header is coloured, not a plain link list).
PAGE_STATE_JS = """
const images = Array.from(document.images);
const broken = images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
const header = document.querySelector('header.md-header');
return {broken: broken, images: images.length, title: document.title,
        h1: (document.querySelector('article h1') || {}).textContent || '',
        header: header ? getComputedStyle(header).backgroundColor : null,
        nav: document.querySelectorAll('nav.md-nav a').length};
"""


@pytest.mark.parametrize(("path", "name", "heading"), [("", "site-home", "zoo"),
                                                       ("reference/cli/", "site-reference-cli", "Command line")])
def test_page_renders_in_chromium(browser: Any, served_site: str, tmp_path: Path, path: str, name: str,
                                  heading: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served_site}/{path}")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    WebDriverWait(browser, 30).until(lambda d: all(d.execute_script(
        "return Array.from(document.images).map(i => i.complete)")))
    state = browser.execute_script(PAGE_STATE_JS)
    assert state["h1"].strip().startswith(heading), state
    assert not state["broken"], f"images that did not load: {state['broken']}"
    assert state["header"] not in (None, "rgba(0, 0, 0, 0)"), f"the theme's styles did not apply: {state}"
    assert state["nav"] >= 15, f"the navigation is missing: {state}"
    if path == "":
        assert state["images"] >= 1, "the home page shows no picture"
    shot = tmp_path / f"{name}.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    keep = os.environ.get("ZOO_DOCS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
