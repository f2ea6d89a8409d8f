"""Tasks return results: the Python API (`import zoo`), the saved PNGs, the --out rules, and API 0.1 plugins.

tests/data/previous_release holds tiny runs written by zoo 0.1.0 (the release before tasks returned results) and
the PNGs that release's `zoo generate` wrote from them: this release must write the same bytes.
"""

from __future__ import annotations

import inspect
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo_core.errors import UsageError
from zoo_core.results import TaskResult, to_uint8_images
from zoo_core.testing import invoke

PREVIOUS = Path(__file__).parent / "data" / "previous_release"


# -- the previous release's runs give the same bytes -----------------------------------------------------------------
@pytest.mark.parametrize(("expected", "arguments"), [
    ("ae_mnist_reconstruct.png", ["ae_mnist", "reconstruct", "--n", "12", "--seed", "1"]),
    ("ae_mnist_decode.png", ["ae_mnist", "decode", "--n", "10", "--seed", "3"]),
    ("ae_mnist_decode_z.png", ["ae_mnist", "decode", "--z", str(PREVIOUS / "codes.npy")]),
])
def test_previous_release_run_generates_the_same_bytes(expected: str, arguments: list[str], runs: Path, cache: Path,
                                                       tmp_path: Path) -> None:
    out = tmp_path / expected
    result = invoke("generate", *arguments, "--run", runs / arguments[0], "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (PREVIOUS / "expected" / expected).read_bytes()


def test_previous_release_translations_are_the_same_bytes(runs: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "blond"
    result = invoke("generate", "cyclegan_hair", "translate", PREVIOUS / "photos", "--run", runs / "cyclegan_hair",
                    "--device", "cpu", "--size", "32", "--out", out)
    if result.exit_code != 0 and "--size" in result.output:  # before native-size translation existed
        result = invoke("generate", "cyclegan_hair", "translate", PREVIOUS / "photos", "--run",
                        runs / "cyclegan_hair", "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    for name in ("p0_blond.png", "p1_blond.png"):
        assert (out / name).read_bytes() == (PREVIOUS / "expected" / "translate" / name).read_bytes(), name


# -- the Python API --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ae(runs: Path, cache: Path) -> zoo.Model:
    return zoo.load("ae_mnist", run=runs / "ae_mnist", device="cpu")


def test_load_gives_each_task_a_method_with_its_signature_and_docstring(ae: zoo.Model) -> None:
    assert ae.tasks == ["reconstruct", "decode"] and "reconstruct" in dir(ae)
    signature = inspect.signature(ae.decode)
    assert list(signature.parameters) == ["z_file", "n", "seed"]
    assert signature.parameters["n"].default == 16 and signature.parameters["seed"].default == 0
    assert "How many codes to draw" in ae.decode.__doc__ and "Range [1, 1024]" in ae.decode.__doc__
    assert "ae_mnist" in repr(ae) and "reconstruct" in repr(ae)


def test_a_task_returns_images_and_writes_nothing(ae: zoo.Model, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = ae.reconstruct(n=5, seed=2)
    assert list(tmp_path.iterdir()) == []
    assert isinstance(result, TaskResult) and len(result) == 5
    assert all(image.dtype == np.uint8 and image.shape == (28, 28, 1) for image in result.images)
    expected = to_uint8_images(result.arrays["reconstructions"])
    assert all(np.array_equal(a, b) for a, b in zip(result.images, expected, strict=True))
    # each image is the tile the picture shows: second row (reconstructions), 2-pixel padding, enlarged 3x
    for index, image in enumerate(result.images):
        top, left = 3 * (2 + 30), 3 * (2 + 30 * index)
        tile = result.picture[top:top + 84:3, left:left + 84:3]
        assert np.array_equal(tile, np.repeat(image, 3, axis=2)), index
    assert [p.size for p in result.to_pil()] == [(28, 28)] * 5
    picture = Image.open(io.BytesIO(result._repr_png_()))
    assert picture.size == result.grid().size == (result.picture.shape[1], result.picture.shape[0])


def test_the_same_call_gives_the_same_pictures(ae: zoo.Model) -> None:
    first, second = ae.decode(n=6, seed=9), ae.decode(n=6, seed=9)
    assert all(np.array_equal(a, b) for a, b in zip(first.images, second.images, strict=True))
    assert not np.array_equal(first.arrays["codes"], ae.decode(n=6, seed=10).arrays["codes"])


def test_result_save_writes_the_picture_zoo_generate_writes(ae: zoo.Model, runs: Path, tmp_path: Path) -> None:
    saved = ae.reconstruct(n=12, seed=1).save(tmp_path / "r.png")
    assert saved == [tmp_path / "r.png"]
    assert saved[0].read_bytes() == (PREVIOUS / "expected" / "ae_mnist_reconstruct.png").read_bytes()
    assert ae.reconstruct(n=3).save(tmp_path) == [tmp_path / "reconstruction.png"]


def test_codes_come_from_a_path_or_bytes(ae: zoo.Model) -> None:
    from_path = ae.decode(z_file=PREVIOUS / "codes.npy")
    from_bytes = ae.decode(z_file=(PREVIOUS / "codes.npy").read_bytes())
    assert len(from_path) == 6 and all(np.array_equal(a, b) for a, b in zip(from_path.images, from_bytes.images,
                                                                                strict=True))


def test_a_header_promising_more_than_its_bytes_is_refused(ae: zoo.Model) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 8), np.float32))
    forged = buffer.getvalue().replace(b"'shape': (2, 8)", b"'shape': (99999999, 8)")
    assert forged != buffer.getvalue()
    with pytest.raises(zoo.ZooError, match=r"not a readable \.npy"):
        ae.decode(z_file=forged)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "n: 0 is outside"), ({"n": 2.5}, "n: a whole number"), ({"n": True}, "n: a number"),
    ({"z_file": 3}, "z_file: give a file path"), ({"z_file": "/no/such.npy"}, "no such file"),
])
def test_bad_arguments_are_one_usage_error(ae: zoo.Model, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ae.decode(**kwargs)
    with pytest.raises(UsageError, match="seed"):
        ae.decode(seed=-1)
    with pytest.raises(UsageError, match="has no task"):
        ae.run("sample")


def test_a_graph_is_callable_on_arrays_and_tensors(ae: zoo.Model) -> None:
    import torch

    images = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    codes = ae.graph("encoder")(images)
    assert isinstance(codes, np.ndarray) and codes.shape == (3, 8)
    assert isinstance(ae.graph("encoder")(torch.from_numpy(images)), torch.Tensor)
    assert "ae_mnist.encoder" in repr(ae.graph("encoder"))
    with pytest.raises(KeyError):
        ae.graph("nope")


def test_list_models_and_card() -> None:
    assert {"ae_mnist", "vae_faces", "cyclegan_hair"} <= set(zoo.list_models())
    assert zoo.card("ae_mnist")["tasks"][0]["name"] == "reconstruct"


def test_translate_takes_paths_pil_images_and_arrays(runs: Path, cache: Path) -> None:
    model = zoo.load("cyclegan_hair", run=runs / "cyclegan_hair", device="cpu")
    photo = PREVIOUS / "photos" / "p0.png"
    with Image.open(photo) as image:
        pil = image.convert("RGB")
    array = np.asarray(pil)
    result = model.translate([photo, pil, array, array.astype(np.float32) / 255], size=32) \
        if "size" in inspect.signature(model.translate).parameters else model.translate([photo, pil, array])
    assert result.names[0] == "p0_blond.png" and len(result.names) == len(set(result.names)) >= 3
    assert np.array_equal(result.images[0], result.images[1]) and np.array_equal(result.images[0], result.images[2])


# -- zoo generate --out ----------------------------------------------------------------------------------------------
@pytest.fixture
def ae_generate(runs: Path, cache: Path):
    def generate(*arguments: str | Path):
        return invoke("generate", "ae_mnist", "decode", "--n", "2", "--run", runs / "ae_mnist", "--device", "cpu",
                      *arguments)
    return generate


def test_out_refuses_to_replace_a_file_that_is_not_a_png(ae_generate, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    result = ae_generate("--out", notes)
    assert result.exit_code != 0 and "ending in .png" in result.output
    disguised = tmp_path / "notes.png"
    disguised.write_text("precious")
    result = ae_generate("--out", disguised)
    assert result.exit_code != 0 and "is not a PNG picture" in result.output and "--force" in result.output
    assert disguised.read_text() == "precious" and notes.read_text() == "precious"
    assert ae_generate("--out", disguised, "--force").exit_code == 0
    assert disguised.read_bytes().startswith(b"\x89PNG")


def test_out_replacing_a_png_says_so(ae_generate, tmp_path: Path) -> None:
    target = tmp_path / "d.png"
    assert ae_generate("--out", target).exit_code == 0
    result = ae_generate("--out", target)
    assert result.exit_code == 0 and f"replaced {target}" in result.output


@pytest.mark.parametrize("name", ["results8", "devnull", "x" * 256 + ".png"])
def test_out_names_that_cannot_be_written_are_one_line(ae_generate, tmp_path: Path, name: str) -> None:
    target = Path("/dev/null") if name == "devnull" else tmp_path / name
    if name == "results8":
        target.write_text("data")
    result = ae_generate("--out", target)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("zoo: ") and "loaded" not in line]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    if name == "results8":
        assert target.read_text() == "data"


# -- plugins written against API 0.1 ---------------------------------------------------------------------------------
def test_zoo_plugins_says_once_that_a_plugin_uses_task_api_0_1(run_zoo, testplugin_site: Path) -> None:
    done = run_zoo("plugins", "--json", sites=(testplugin_site,), ZOO_LOAD_PLUGINS="zoo-testplugin")
    assert done.returncode == 0, done.stderr
    record = next(r for r in json.loads(done.stdout) if r["name"] == "zoo-testplugin")
    assert len(record["deprecations"]) == 1 and "task API 0.1" in record["deprecations"][0]
    assert record["errors"] == []


def test_an_api_0_1_task_runs_from_the_command_line_and_python(run_zoo, zoo_env, testplugin_site: Path,
                                                               tmp_path: Path) -> None:
    plugin = {"sites": (testplugin_site,), "ZOO_LOAD_PLUGINS": "zoo-testplugin"}
    run = tmp_path / "run"
    done = run_zoo("train", "testplugin_tiny", "--max-steps", "1", "--out", str(run), "--no-progress", **plugin)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "r.png"
    done = run_zoo("generate", "testplugin_tiny", "reconstruct", "--count", "3", "--run", str(run), "--out", str(out),
                   **plugin)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"\x89PNG") and "3 reconstructions" in done.stderr
    script = ("import sys, zoo; r = zoo.load('testplugin_tiny', run=sys.argv[1]).reconstruct(count=3); "
              "print(len(r.images), r.picture.shape[2], r.summary)")
    done = subprocess.run([sys.executable, "-c", script, str(run)], capture_output=True, text=True, timeout=120,
                          env=zoo_env(testplugin_site, ZOO_LOAD_PLUGINS="zoo-testplugin"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["1", "3"] and "3 reconstructions" in done.stdout


def test_spec_imports_no_click() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, zoo_core.spec, zoo_core.results, zoo; "
                           "print('click' in sys.modules, 'torch' in sys.modules)"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_load_takes_a_folder_zoo_card_wrote_without_a_model_name(runs: Path, cache: Path, tmp_path: Path) -> None:
    card = tmp_path / "hub-repo"
    assert invoke("card", runs / "ae_mnist", "--out", card).exit_code == 0
    model = zoo.load(str(card), device="cpu")
    assert model.name == "ae_mnist"
    reference = zoo.load("ae_mnist", run=runs / "ae_mnist", device="cpu").decode(n=4, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(model.decode(n=4, seed=5).images, reference.images, strict=True))
    with pytest.raises(UsageError, match="no such file or folder"):
        zoo.load(str(tmp_path / "missing" / "model.safetensors"))
