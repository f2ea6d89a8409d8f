"""`zoo export MODEL --format web` in real headless Chromium (Selenium + Debian's chromium-driver): the built site,
served from 127.0.0.1, runs every task of the three first-party models and of a third-party one (generic kinds, no
JavaScript of its own); each graph's in-browser output equals native onnxruntime's within the fp32 tolerance; no
request leaves 127.0.0.1; a damaged or missing .onnx shows a message; without COOP/COEP the page falls back to one
thread and says what a host must send.

Enable with the Debian packages: ``apt-get install chromium chromium-driver`` (.ci/run does it as root); the
onnxruntime-web files come from `make install` (npm ci).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zoo_web_tiny
from PIL import Image
from zoo_export_testing import assert_clean_exit, assert_one_line_error, make_host, train_tiny, zoo

from zoo_core.registry import registered_model
from zoo_core.testing import private_cache, torch_threads

CHROMIUM = Path(os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ZOO_CHROMEDRIVER", "/usr/bin/chromedriver"))
WAIT_S = 60
BLANK = 0.2  # pixel spread at or below which a picture counts as blank; two-step models are dull
# Tiny sizes: two training steps, so the fixture takes seconds; every graph and task is still the real one.
TINY = {
    "ae_mnist": {"embedded_items": 64, "epochs": 1, "batch_size": 16},
    "vae_faces": {"image_size": 32, "portraits": 48, "batch_size": 8, "epochs": 1},
    "cyclegan_hair": {"image_size": 32, "load_size": 32, "features": 4, "res_blocks": 1, "d_features": 4,
                      "portraits": 24, "batch_size": 2, "epochs": 1, "val_fraction": 0.2},
}
FIRST_PARTY = tuple(TINY)

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"no {CHROMIUM} or {CHROMEDRIVER}: install the Debian packages chromium and chromium-driver "
                "(or set ZOO_CHROMIUM / ZOO_CHROMEDRIVER) to run the web export's browser test",
                allow_module_level=True)
selenium = pytest.importorskip("selenium", reason="pip install selenium to run the web export's chromium test")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from zoo_export.web import site_bytes  # noqa: E402
from zoo_export.web.server import serve_in_thread  # noqa: E402

# Width, height and pixel spread of a canvas.
STATS_JS = """
const canvas = document.getElementById(arguments[0]);
if (!canvas || !canvas.width || !canvas.dataset.done) return null;
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let sum = 0, squares = 0;
for (let i = 0; i < data.length; i += 4) {
  const v = (data[i] + data[i + 1] + data[i + 2]) / 3; sum += v; squares += v * v;
}
const n = data.length / 4, mean = sum / n;
return [canvas.width, canvas.height, Math.sqrt(Math.max(0, squares / n - mean * mean)), canvas.dataset.done];
"""
RUN_JS = """
const done = arguments[arguments.length - 1];
window.zoo.run(...Array.from(arguments).slice(0, -1)).then(done, (e) => done({error: e.message}));
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The three first-party models (two training steps, tiny sizes) through `zoo export --format web` into one
    site, and the third-party tiny_web model added through the Python API."""
    from zoo_export.pipeline import ExportOptions, export_model
    from zoo_export.web import write_site

    root = tmp_path_factory.mktemp("web")
    out = root / "site"
    with private_cache(root / "cache"), torch_threads(1):
        for model in FIRST_PARTY:
            run = train_tiny(registered_model(model), root / "runs" / model, TINY[model])
            fp16 = ["--fp16"] if model == "ae_mnist" else []  # a second precision to choose per graph
            assert_clean_exit(zoo("export", model, "--run", run, "--out", out, "--format", "web", "--no-validate",
                                  *fp16))
        host = make_host((zoo_web_tiny, zoo_web_tiny.DISTRIBUTION, zoo_web_tiny.VERSION))
        tiny = host.models[zoo_web_tiny.MODEL]
        run = train_tiny(tiny, root / "runs" / "tiny_web")
        export_model(tiny, ExportOptions(run=run, out=out / "models" / tiny.name, validate=False, log=lambda _: None))
        write_site(tiny, out)
    yield out


@pytest.fixture(scope="module")
def url(site: Path) -> Iterator[str]:
    server, address = serve_in_thread(site)
    yield address
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,3000", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def open_site(driver: Any, address: str) -> Any:
    driver.get(address)
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script("return window.zoo && window.zoo.ready;"))
    return driver


@pytest.fixture(scope="module")
def page(browser: Any, url: str) -> Any:
    return open_site(browser, url)


def shown(driver: Any, element: str, after: int = 0) -> tuple[int, int, float]:
    """Wait until canvas ``element`` was drawn more than ``after`` times; its width, height and pixel spread."""
    def drawn(d: Any) -> Any:
        stats = d.execute_script(STATS_JS, element)
        return stats if stats and int(stats[3]) > after else None
    stats = WebDriverWait(driver, WAIT_S).until(drawn)
    return int(stats[0]), int(stats[1]), float(stats[2])


def click(driver: Any, element: str) -> None:
    button = driver.find_element(By.ID, element)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def no_error(driver: Any, base: str) -> None:
    assert driver.find_element(By.ID, f"{base}-error").text == ""


def test_the_page_loads_every_graph_on_wasm_threads(page: Any, site: Path) -> None:
    assert page.execute_script("return self.crossOriginIsolated;") is True
    runtime = page.execute_script("return window.zoo.runtime;")
    assert runtime["ep"] == "wasm" and runtime["threads"] >= 2 and runtime["version"] == "1.30.0"
    assert "WASM SIMD" in page.find_element(By.ID, "runtime").text
    for model in (*FIRST_PARTY, "tiny_web"):
        manifest = json.loads((site / "models" / model / "manifest.json").read_text())
        for graph in manifest["graphs"]:
            assert page.find_element(By.ID, f"graph-status-{model}-{graph}").text.startswith("ready"), (model, graph)
    assert site_bytes(site, "ae_mnist") < 20_000_000


def test_vae_samples_follow_the_seed(page: Any) -> None:
    base = "vae_faces-sample"
    count = page.find_element(By.ID, f"{base}-count")
    count.clear()
    count.send_keys("12")
    pictures = []
    for seed in ("5", "5", "6"):
        box = page.find_element(By.ID, f"{base}-seed")
        box.clear()
        box.send_keys(seed)
        click(page, f"{base}-run")
        width, height, spread = shown(page, f"{base}-out", len(pictures))
        assert (width, height) == ((2 + 6 * 34) * 4, (2 + 2 * 34) * 4) and spread > BLANK  # 12 faces of 32², 6 a row
        pictures.append(page.execute_script(f"return document.getElementById('{base}-out').toDataURL();"))
    assert pictures[0] == pictures[1] and pictures[1] != pictures[2]
    no_error(page, base)


def test_interpolation_slider(page: Any) -> None:
    base = "vae_faces-interpolate"
    click(page, f"{base}-run")
    width, _, _ = shown(page, f"{base}-strip")
    assert width == (2 + 8 * 34) * 4  # A, 6 steps, B
    frames = []
    for position in ("0", "7"):
        page.execute_script("const s = document.getElementById(arguments[0]); s.value = arguments[1];"
                            "s.dispatchEvent(new Event('input'));", f"{base}-slider", position)
        frames.append(page.execute_script(f"return document.getElementById('{base}-view').toDataURL();"))
    assert frames[0] != frames[1]
    assert page.find_element(By.ID, f"{base}-weight").text == "B"


def test_arithmetic_box_and_its_errors(page: Any) -> None:
    base = "vae_faces-arithmetic"
    click(page, f"{base}-run")
    width, _, spread = shown(page, f"{base}-out")
    assert width == (2 + 4 * 34) * 4 and spread > BLANK  # three terms and the result
    assert "= result" in page.find_element(By.ID, f"{base}-captions").text
    box = page.find_element(By.ID, f"{base}-expr")
    for expression, fragment in (("glasses & & male", "position 11"), ("glasses + hat", 'unknown attribute "hat"')):
        box.clear()
        box.send_keys(expression)
        click(page, f"{base}-run")
        WebDriverWait(page, WAIT_S).until(lambda d, f=fragment: f in d.find_element(By.ID, f"{base}-error").text)


def test_image_to_image_tasks_from_data_examples(page: Any) -> None:
    for base in ("vae_faces-reconstruct", "cyclegan_hair-roundtrip", "tiny_web-reconstruct"):
        click(page, f"{base}-run")
        for element in ("input", "output"):
            assert shown(page, f"{base}-{element}")[2] > BLANK, (base, element)
        no_error(page, base)


def test_a_photo_translated_and_back(page: Any, tmp_path: Path) -> None:
    from zoo_core.data.procedural import make_portraits

    portraits = make_portraits(8, seed=11, size=64)  # a drawn portrait with blond hair, as a user's photo
    blond = int((portraits.labels["blond"] == 1).nonzero()[0, 0])
    photo = tmp_path / "me.png"
    Image.fromarray(portraits.images[blond].permute(1, 2, 0).numpy()).save(photo)
    base = "cyclegan_hair-translate"
    page.find_element(By.ID, f"{base}-choice").send_keys("blond2black")
    page.find_element(By.ID, f"{base}-blond2black-input-file").send_keys(str(photo))
    # the file decodes asynchronously; once chosen, no data example is marked
    WebDriverWait(page, WAIT_S).until(lambda d: not d.find_element(
        By.ID, f"{base}-blond2black-input-example-0").get_attribute("class"))
    click(page, f"{base}-run")
    for element in ("input", "output", "back"):
        width, height, spread = shown(page, f"{base}-{element}")
        assert (width, height) == (128, 128) and spread > BLANK, element
    assert "black" in page.find_element(By.ID, f"task-{base}").text
    no_error(page, base)


def test_a_digit_drawn_for_the_autoencoder(page: Any) -> None:
    base = "ae_mnist-reconstruct"
    pad = page.find_element(By.ID, f"{base}-draw")
    page.execute_script("arguments[0].scrollIntoView({block: 'center'});", pad)
    strokes = ActionChains(page).move_to_element_with_offset(pad, -20, -90).click_and_hold()
    for dx, dy in ((10, 30), (10, 30), (10, 30), (10, 30), (0, 30)):
        strokes = strokes.move_by_offset(dx, dy)
    strokes.release().perform()
    click(page, f"{base}-run")
    width, height, spread = shown(page, f"{base}-input")
    assert (width, height) == (112, 112) and spread > 10, "the drawing is not the input"
    assert shown(page, f"{base}-output")[2] > BLANK


def test_samples_from_a_fitted_and_a_normal_prior(page: Any) -> None:
    for base in ("ae_mnist-decode", "tiny_web-sample"):
        click(page, f"{base}-run")
        width, _, spread = shown(page, f"{base}-out")
        assert width > 28 and spread > BLANK, base
        no_error(page, base)
    assert "fitted at export time" in page.find_element(By.ID, "task-ae_mnist-decode").text


def native(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs, strict=True)})


def test_every_graph_matches_native_onnxruntime(page: Any, site: Path) -> None:
    rng = np.random.default_rng(0)
    for model in (*FIRST_PARTY, "tiny_web"):
        manifest = json.loads((site / "models" / model / "manifest.json").read_text())
        for graph, entry in manifest["graphs"].items():
            inputs = []
            for spec in entry["inputs"]:
                shape = [3 if d == "N" else d for d in spec["shape"]]
                low, high = spec["value_range"] or (-2.0, 2.0)
                inputs.append(rng.uniform(low, high, shape).astype(np.float32))
            sent = [[base64.b64encode(x.tobytes()).decode(), list(x.shape)] for x in inputs]
            outputs = page.execute_async_script(RUN_JS, model, graph, sent)
            assert not isinstance(outputs, dict), outputs
            expected = native(site / "models" / model / entry["file"], inputs)
            limit = float(entry["tolerance"].get("fp32", 1e-4))
            for (data, dims), want in zip(outputs, expected, strict=True):
                got = np.frombuffer(base64.b64decode(data), dtype=np.float32).reshape(dims)
                relative = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12)
                assert relative <= limit, (model, graph, relative)


def test_an_fp16_graph_chosen_per_graph(page: Any, site: Path) -> None:
    entry = json.loads((site / "models" / "ae_mnist" / "manifest.json").read_text())["graphs"]["autoencoder"]
    choice = page.find_element(By.ID, "precision-ae_mnist-autoencoder")
    assert choice.is_enabled()
    choice.send_keys("fp16")
    WebDriverWait(page, WAIT_S).until(lambda d: d.find_element(
        By.ID, "graph-status-ae_mnist-autoencoder").text.startswith("ready (fp16"))
    image = np.random.default_rng(1).uniform(0, 1, (2, 1, 28, 28)).astype(np.float32)
    sent = [[base64.b64encode(image.tobytes()).decode(), list(image.shape)]]
    outputs = page.execute_async_script(RUN_JS, "ae_mnist", "autoencoder", sent, "fp16")
    assert not isinstance(outputs, dict), outputs
    got = np.frombuffer(base64.b64decode(outputs[0][0]), dtype=np.float32)
    want = native(site / "models" / "ae_mnist" / entry["fp16"]["file"], [image])[0].ravel()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-2
    page.find_element(By.ID, "precision-ae_mnist-autoencoder").send_keys("fp32")


def test_no_request_leaves_127_0_0_1(page: Any, url: str) -> None:
    """Runs after the tasks: every request the page made, from the browser's network log."""
    requested = []
    for entry in page.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert any(u.endswith(".wasm") for u in requested) and any(u.endswith(".onnx") for u in requested)
    leaving = [u for u in requested if not u.startswith((url, "data:", "blob:"))]
    assert leaving == []


def test_a_broken_or_missing_onnx_shows_a_message_on_one_thread(browser: Any, site: Path,
                                                               tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(site, broken, ignore=shutil.ignore_patterns("cyclegan_hair*", "vae_faces*", "tiny_web*"))
    (broken / "site.json").write_text(json.dumps({**json.loads((site / "site.json").read_text()),
                                                  "models": ["ae_mnist"]}))
    decoder = broken / "models" / "ae_mnist" / "decoder.onnx"
    decoder.write_bytes(decoder.read_bytes()[:1000])
    (broken / "models" / "ae_mnist" / "autoencoder.onnx").unlink()
    server, address = serve_in_thread(broken, isolated=False)  # a plain static host: no COOP/COEP
    try:
        page = open_site(browser, address)
        assert "damaged" in page.find_element(By.ID, "graph-status-ae_mnist-decoder").text
        assert "missing (HTTP 404)" in page.find_element(By.ID, "graph-status-ae_mnist-autoencoder").text
        assert page.find_element(By.ID, "graph-status-ae_mnist-encoder").text.startswith("ready")
        assert "did not load" in page.find_element(By.ID, "status").text
        click(page, "ae_mnist-decode-run")
        WebDriverWait(page, WAIT_S).until(lambda d: "damaged" in d.find_element(By.ID, "ae_mnist-decode-error").text)
        assert page.execute_script("return window.zoo.runtime.threads;") == 1
        assert "Cross-Origin-Embedder-Policy: require-corp" in page.find_element(By.ID, "isolation").text
    finally:
        server.shutdown()
        server.server_close()


def test_the_export_refuses_a_folder_that_is_not_a_site(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = zoo("export", "ae_mnist", "--out", tmp_path, "--format", "web")
    assert_one_line_error(result, 2, "not empty and holds no zoo web site")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_webgpu_build_detects_no_adapter_and_runs_wasm(browser: Any, site: Path, tmp_path: Path) -> None:
    from zoo_export.web import write_site

    only = tmp_path / "webgpu"
    shutil.copytree(site, only, ignore=shutil.ignore_patterns("cyclegan_hair*", "vae_faces*", "tiny_web*"))
    (only / "site.json").write_text(json.dumps({**json.loads((site / "site.json").read_text()), "models": []}))
    write_site(registered_model("ae_mnist"), only, webgpu=True)
    shipped = sorted(p.name for p in (only / "zoo-web" / "ort").iterdir())
    assert [name for name in shipped if name.endswith(".wasm")] == ["ort-wasm-simd-threaded.asyncify.wasm"]
    server, address = serve_in_thread(only)
    try:
        page = open_site(browser, address)
        assert page.execute_script("return window.zoo.runtime.ep;") == "wasm"  # headless Chromium: no GPU adapter
        assert "WebGPU not available" in page.find_element(By.ID, "runtime").text
        assert page.find_element(By.ID, "graph-status-ae_mnist-autoencoder").text.startswith("ready")
        click(page, "ae_mnist-decode-run")
        assert shown(page, "ae_mnist-decode-out")[2] > BLANK
    finally:
        server.shutdown()
        server.server_close()


def test_the_export_says_in_one_line_when_onnxruntime_web_is_missing(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo_export.web

    monkeypatch.setattr(zoo_export.web, "ORT_PACKAGE", tmp_path / "absent")
    result = zoo("export", "ae_mnist", "--out", tmp_path / "site", "--format", "web")
    assert_one_line_error(result, 1, "onnxruntime-web", "make install")
    assert not (tmp_path / "site").exists()
