"""The gallery in real headless Chromium (Selenium + chromium-driver): every form runs and shows a picture of the
expected size that is not blank. Screenshots land in the test's tmp dir; ``ZOO_GALLERY_SCREENSHOT=PATH`` also
copies the full-page one there, and ``ZOO_GALLERY_EXPORTS=DIR`` serves the exports under DIR (e.g.
demo-output/exports after `make demo`) instead of the tiny ones. docs/gallery.png is made so::

    ZOO_GALLERY_EXPORTS=demo-output/exports ZOO_GALLERY_SCREENSHOT=docs/gallery.png \
        .venv/bin/python -m pytest serve/tests/test_browser.py

Enable with the Debian packages: ``apt-get install chromium chromium-driver`` (.ci/run does it as root).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from zoo_serve_live import LiveServer, start_server

CHROMIUM = Path(os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ZOO_CHROMEDRIVER", "/usr/bin/chromedriver"))
WAIT_S = 90
BLANK = 0.2  # pixel spread (standard deviation, 0-255) at or below which a face counts as blank; tiny models are dull

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"no {CHROMIUM} or {CHROMEDRIVER}: install the Debian packages chromium and chromium-driver "
                "(or set ZOO_CHROMIUM / ZOO_CHROMEDRIVER) to run the gallery browser test", allow_module_level=True)
selenium = pytest.importorskip("selenium", reason="pip install selenium to run the gallery browser test")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# Width, height and pixel spread of an <img> (once decoded) or a <canvas>, inside an optional box.
STATS_JS = """
const [id, box] = arguments;
const node = document.getElementById(id);
let canvas = node;
if (node.tagName === 'IMG') {
  if (!node.complete || !node.naturalWidth || !node.src) return null;
  canvas = document.createElement('canvas');
  canvas.width = node.naturalWidth; canvas.height = node.naturalHeight;
  canvas.getContext('2d').drawImage(node, 0, 0);
}
if (!canvas.width) return null;
const [x, y, w, h] = box || [0, 0, canvas.width, canvas.height];
const data = canvas.getContext('2d').getImageData(x, y, w, h).data;
let sum = 0, squares = 0;
for (let i = 0; i < data.length; i += 4) {
  const v = (data[i] + data[i + 1] + data[i + 2]) / 3; sum += v; squares += v * v;
}
const n = data.length / 4, mean = sum / n;
return [canvas.width, canvas.height, Math.sqrt(Math.max(0, squares / n - mean * mean))];
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,4000", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The session's server on the tiny exports, or one on ``ZOO_GALLERY_EXPORTS``."""
    folder = os.environ.get("ZOO_GALLERY_EXPORTS")
    if not folder:
        yield request.getfixturevalue("live")
        return
    exports = {p.name: p for p in sorted(Path(folder).iterdir()) if (p / "manifest.json").is_file()}
    server = start_server(exports, tmp_path_factory.mktemp("gallery"))
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def sizes(served: LiveServer) -> dict[str, int]:
    """The image side of each served model (the tiny exports: 32; demo exports: 64)."""
    import httpx

    models = httpx.get(f"{served.url}/api/models", timeout=30).json()["models"]
    return {m["card"]["name"]: int(m["config"].get("image_size", 28)) for m in models}


class Grid:
    """Where a task's grid puts its tiles: side ``size``, 2-pixel padding, enlarged to about 128 pixels."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.scale = max(1, 128 // size)

    def tile(self, index: int = 0) -> tuple[int, int, int, int]:
        """The pixel box of tile ``index`` in the first row."""
        return ((2 + index * (self.size + 2)) * self.scale, 2 * self.scale, self.size * self.scale,
                self.size * self.scale)

    def side(self, count: int) -> int:
        """The width of a row of ``count`` tiles."""
        return (2 + count * (self.size + 2)) * self.scale


@pytest.fixture(scope="module")
def faces(sizes: dict[str, int]) -> Grid:
    return Grid(sizes["vae_faces"])


@pytest.fixture(scope="module")
def gallery(browser: Any, served: LiveServer) -> Any:
    browser.get(f"{served.url}/")
    WebDriverWait(browser, WAIT_S).until(lambda d: "served" in d.find_element(By.ID, "status").text)
    return browser


def shown(driver: Any, element: str, box: tuple[int, int, int, int] | None = None) -> tuple[int, int, float]:
    """Wait until the image or canvas ``element`` holds a picture; its width, height and pixel spread."""
    stats = WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(STATS_JS, element, box))
    return int(stats[0]), int(stats[1]), float(stats[2])


def torch_nonzero(mask: Any) -> int:
    """The first index where ``mask`` holds."""
    return int(mask.nonzero()[0, 0])


def click(driver: Any, element: str) -> None:
    button = driver.find_element(By.ID, element)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def test_model_cards(gallery: Any) -> None:
    for model in ("ae_mnist", "vae_faces", "cyclegan_hair"):
        section = gallery.find_element(By.ID, f"model-{model}")
        assert "parameters" in section.text and f"{model}." in section.text


def test_vae_samples_with_a_seed(gallery: Any, faces: Grid) -> None:
    gallery.find_element(By.ID, "vae-seed").clear()
    gallery.find_element(By.ID, "vae-seed").send_keys("5")
    click(gallery, "vae-sample-run")
    width, height, _ = shown(gallery, "vae-sample-img")
    assert (width, height) == (faces.side(6), (2 + 2 * (faces.size + 2)) * faces.scale)  # 12 faces, 6 per row
    assert shown(gallery, "vae-sample-img", faces.tile(0))[2] > BLANK


def test_interpolation_slider(gallery: Any, faces: Grid) -> None:
    click(gallery, "interp-run")
    WebDriverWait(gallery, WAIT_S).until(lambda d: d.find_element(By.ID, "interp-slider").is_enabled())
    width, height, _ = shown(gallery, "interp-strip")
    assert width == faces.side(10) and height >= (faces.size + 4) * faces.scale  # A, 8 steps, B
    first = shown(gallery, "interp-canvas")
    assert first[:2] == (faces.size * faces.scale, faces.size * faces.scale) and first[2] > BLANK
    pixels = []
    for position in ("0", "9"):
        gallery.execute_script("const s = document.getElementById('interp-slider'); s.value = arguments[0];"
                               "s.dispatchEvent(new Event('input'));", position)
        pixels.append(gallery.execute_script("return document.getElementById('interp-canvas').toDataURL();"))
    assert pixels[0] != pixels[1], "the slider does not change the face"


def test_arithmetic_shows_the_grid_and_the_parsers_error(gallery: Any, faces: Grid) -> None:
    click(gallery, "arith-run")
    width, height, _ = shown(gallery, "arith-img")
    assert width == faces.side(4) and height >= (faces.size + 4) * faces.scale  # three terms and the result
    assert shown(gallery, "arith-img", faces.tile(3))[2] > BLANK
    box = gallery.find_element(By.ID, "arith-expr")
    box.clear()
    box.send_keys("glasses & & male")
    click(gallery, "arith-run")
    WebDriverWait(gallery, WAIT_S).until(lambda d: "position" in d.find_element(By.ID, "arith-error").text)


def test_hair_photo_upload_and_round_trip(gallery: Any, sizes: dict[str, int], tmp_path: Path) -> None:
    from zoo_core.data.procedural import make_portraits

    photo = tmp_path / "me.png"
    portraits = make_portraits(8, seed=11, size=64)  # a drawn portrait with black hair, as a user's photo
    black = int(torch_nonzero(portraits.labels["blond"] == 0))
    Image.fromarray(portraits.images[black].permute(1, 2, 0).numpy()).save(photo)
    gallery.find_element(By.ID, "hair-file").send_keys(str(photo))
    click(gallery, "hair-run")
    for element in ("hair-original", "hair-translated", "hair-roundtrip"):
        width, height, spread = shown(gallery, element)
        assert (width, height) == (64, 64)  # translate keeps an upload's own size (the export's axes are dynamic)
        assert spread > BLANK, element


def test_digit_drawn_for_the_autoencoder(gallery: Any) -> None:
    pad = gallery.find_element(By.ID, "digit-draw")
    gallery.execute_script("arguments[0].scrollIntoView({block: 'center'});", pad)
    strokes = ActionChains(gallery).move_to_element_with_offset(pad, -20, -90).click_and_hold()
    for dx, dy in ((10, 30), (10, 30), (10, 30), (10, 30), (0, 30)):
        strokes = strokes.move_by_offset(dx, dy)
    strokes.release().perform()
    assert shown(gallery, "digit-draw")[2] > 10.0, "the stroke did not land on the canvas"
    click(gallery, "digit-run")
    WebDriverWait(gallery, WAIT_S).until(
        lambda d: d.execute_script("return document.getElementById('digit-out').dataset.done === '1';"))
    width, height, spread = shown(gallery, "digit-out")
    assert (width, height) == (280, 280) and spread > BLANK


@pytest.mark.parametrize("task", ["ae_mnist-reconstruct", "ae_mnist-decode", "vae_faces-reconstruct",
                                  "cyclegan_hair-roundtrip"])
def test_every_other_task_form(gallery: Any, task: str) -> None:
    click(gallery, f"task-{task}-run")
    width, height, spread = shown(gallery, f"task-{task}-img")
    assert width > 28 and height > 28 and spread > BLANK


def test_screenshot(gallery: Any, tmp_path: Path) -> None:
    """Runs last in this file: the page with every form's result."""
    gallery.execute_script("window.scrollTo(0, 0);")
    height = gallery.execute_script("return document.body.scrollHeight;")
    gallery.set_window_size(1280, min(int(height) + 40, 6000))
    path = tmp_path / "gallery.png"
    assert gallery.save_screenshot(str(path))
    with Image.open(path) as image:
        assert image.width >= 1000 and float(np.asarray(image.convert("L")).std()) > 5
    target = os.environ.get("ZOO_GALLERY_SCREENSHOT")
    if target:
        shutil.copyfile(path, target)
