"""The gallery in real headless Chromium (Selenium + chromium-driver): every form runs and shows a picture of the
expected size that is not blank. Screenshots land in the test's tmp dir; ``ZOO_GALLERY_SCREENSHOT=PATH`` also
copies the full-page one there (how docs/gallery.png is made, see benchmarks/scripts/gallery_screenshot.py).

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
from zoo_serve_live import LiveServer

CHROMIUM = Path(os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ZOO_CHROMEDRIVER", "/usr/bin/chromedriver"))
WAIT_S = 90
SIZE = 32  # the tiny exports' image side
SCALE = 128 // SIZE  # the tasks enlarge small faces to about 128 pixels
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
def gallery(browser: Any, live: LiveServer) -> Any:
    browser.get(f"{live.url}/")
    WebDriverWait(browser, WAIT_S).until(lambda d: "served" in d.find_element(By.ID, "status").text)
    return browser


def shown(driver: Any, element: str, box: tuple[int, int, int, int] | None = None) -> tuple[int, int, float]:
    """Wait until the image or canvas ``element`` holds a picture; its width, height and pixel spread."""
    stats = WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(STATS_JS, element, box))
    return int(stats[0]), int(stats[1]), float(stats[2])


def tile(index: int = 0) -> tuple[int, int, int, int]:
    """The pixel box of tile ``index`` in the first row of a task's grid (2-pixel padding, enlarged)."""
    return ((2 + index * (SIZE + 2)) * SCALE, 2 * SCALE, SIZE * SCALE, SIZE * SCALE)


def grid_side(count: int) -> int:
    return (2 + count * (SIZE + 2)) * SCALE


def click(driver: Any, element: str) -> None:
    button = driver.find_element(By.ID, element)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def test_model_cards(gallery: Any) -> None:
    for model in ("ae_mnist", "vae_faces", "cyclegan_hair"):
        section = gallery.find_element(By.ID, f"model-{model}")
        assert "parameters" in section.text and f"{model}." in section.text


def test_vae_samples_with_a_seed(gallery: Any) -> None:
    gallery.find_element(By.ID, "vae-seed").clear()
    gallery.find_element(By.ID, "vae-seed").send_keys("5")
    click(gallery, "vae-sample-run")
    width, height, _ = shown(gallery, "vae-sample-img")
    assert (width, height) == (grid_side(6), (2 + 2 * (SIZE + 2)) * SCALE)  # 12 faces, 6 per row
    assert shown(gallery, "vae-sample-img", tile(0))[2] > BLANK


def test_interpolation_slider(gallery: Any) -> None:
    click(gallery, "interp-run")
    WebDriverWait(gallery, WAIT_S).until(lambda d: d.find_element(By.ID, "interp-slider").is_enabled())
    assert shown(gallery, "interp-strip")[:2] == (grid_side(10), (SIZE + 4) * SCALE)  # A, 8 steps, B
    first = shown(gallery, "interp-canvas")
    assert first[:2] == (SIZE * SCALE, SIZE * SCALE) and first[2] > BLANK
    pixels = []
    for position in ("0", "9"):
        gallery.execute_script("const s = document.getElementById('interp-slider'); s.value = arguments[0];"
                               "s.dispatchEvent(new Event('input'));", position)
        pixels.append(gallery.execute_script("return document.getElementById('interp-canvas').toDataURL();"))
    assert pixels[0] != pixels[1], "the slider does not change the face"


def test_arithmetic_shows_the_grid_and_the_parsers_error(gallery: Any) -> None:
    click(gallery, "arith-run")
    width, height, _ = shown(gallery, "arith-img")
    assert width == grid_side(4) and height >= (SIZE + 4) * SCALE  # three terms and the result
    assert shown(gallery, "arith-img", tile(3))[2] > BLANK
    box = gallery.find_element(By.ID, "arith-expr")
    box.clear()
    box.send_keys("glasses & & male")
    click(gallery, "arith-run")
    WebDriverWait(gallery, WAIT_S).until(lambda d: "position" in d.find_element(By.ID, "arith-error").text)


def test_hair_photo_upload_and_round_trip(gallery: Any, tmp_path: Path) -> None:
    photo = tmp_path / "me.png"
    rng = np.random.default_rng(3)
    face = np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # 64², blocky
    Image.fromarray(face).save(photo)
    gallery.find_element(By.ID, "hair-file").send_keys(str(photo))
    click(gallery, "hair-run")
    for element in ("hair-original", "hair-translated", "hair-roundtrip"):
        width, height, spread = shown(gallery, element)
        assert (width, height) == ((64, 64) if element == "hair-original" else (SIZE, SIZE))
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
    assert width > SIZE and height > SIZE and spread > BLANK


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
