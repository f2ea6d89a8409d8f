"""Tasks that draw images (``stream="produce"``) written one PNG each with `--per-image`: any n, in blocks seeded
from --seed, resumable, sharded over processes with the same files; without --per-image they keep their picture.

Runs on the previous release's tiny ae_mnist run (tests/data/previous_release), whose `decode` draws codes from a
Gaussian fitted to the data's codes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo_core.streaming import STATE_DIR, StreamOptions, block_seed, produce_task
from zoo_core.testing import invoke

PREVIOUS = Path(__file__).parent / "data" / "previous_release"
BLOCK = StreamOptions().batch_size


@pytest.fixture(scope="module")
def run(runs: Path) -> Path:
    return runs / "ae_mnist"


@pytest.fixture(scope="module")
def ae(run: Path, cache: Path) -> zoo.Model:
    return zoo.load("ae_mnist", run=run, device="cpu")


def decode(run: Path, out: Path, *arguments: str):
    return invoke("generate", "ae_mnist", "decode", "--run", run, "--device", "cpu", "--out", out, *arguments)


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("decode_*.png"))}


def pixels(path: Path) -> np.ndarray:
    """HWC, as TaskResult.images holds them (a grey PNG decodes to HW)."""
    with Image.open(path) as image:
        array = np.asarray(image)
    return array[..., None] if array.ndim == 2 else array


def end_line(output: str) -> tuple[int, int, int]:
    found = re.search(r"wrote (\d+), skipped (\d+), failed (\d+)", output)
    assert found, output
    return tuple(int(g) for g in found.groups())  # type: ignore[return-value]


def test_per_image_writes_n_files_and_the_first_block_is_the_plain_task(ae: zoo.Model, run: Path, cache: Path,
                                                                        tmp_path: Path) -> None:
    count = 2 * BLOCK + 5
    result = decode(run, tmp_path / "many", "--n", str(count), "--per-image", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert end_line(result.output) == (count, 0, 0)
    files = sorted((tmp_path / "many").glob("decode_*.png"))
    assert [f.name for f in files] == [f"decode_{i:06d}.png" for i in range(count)]
    plain = ae.decode(n=BLOCK, seed=3)
    for index in range(BLOCK):  # block 0 draws with --seed itself: the images `--n BLOCK` gives
        assert np.array_equal(pixels(files[index]), plain.images[index]), index
    summary = tmp_path / "many" / plain.filename  # the summary picture shows the first block only
    assert np.array_equal(pixels(summary), plain.grid_array())
    later = ae.decode(n=BLOCK, seed=block_seed(3, 1))
    assert np.array_equal(pixels(files[BLOCK]), later.images[0])
    assert not np.array_equal(pixels(files[BLOCK]), pixels(files[0]))


def test_a_rerun_writes_only_what_is_missing_and_more_n_extends(run: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert decode(run, out, "--n", "40", "--per-image").exit_code == 0
    first = pngs(out)
    (out / "decode_000017.png").unlink()
    (out / "decode_000030.png").write_bytes(first["decode_000030.png"][:100])  # cut short, as by a lost write
    again = decode(run, out, "--n", "40", "--per-image")
    assert again.exit_code == 0, again.output
    assert end_line(again.output) == (2, 38, 0)
    assert pngs(out) == first
    more = decode(run, out, "--n", "45", "--per-image")  # image i depends on the seed, the block and i only
    assert end_line(more.output) == (5, 40, 0)
    fresh = decode(run, tmp_path / "fresh", "--n", "45", "--per-image")
    assert fresh.exit_code == 0 and pngs(out) == pngs(tmp_path / "fresh")
    other_seed = decode(run, out, "--n", "45", "--per-image", "--seed", "1")  # the fingerprint holds the seed
    assert end_line(other_seed.output) == (45, 0, 0)
    assert (out / STATE_DIR).is_dir()


def test_the_data_fit_runs_once_per_stream(ae: zoo.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo_ae_mnist.tasks as tasks

    fits = []
    real = tasks.fit_gaussian
    monkeypatch.setattr(tasks, "fit_gaussian", lambda ctx: fits.append(1) or real(ctx))
    report = produce_task(ae, "decode", 3 * BLOCK, {}, tmp_path / "out", StreamOptions(progress=False))
    assert report.written == 3 * BLOCK and len(fits) == 1


def test_nproc_2_writes_the_files_one_process_writes(run: Path, cache: Path, tmp_path: Path) -> None:
    one = decode(run, tmp_path / "one", "--n", "37", "--per-image", "--seed", "5")
    two = decode(run, tmp_path / "two", "--n", "37", "--per-image", "--seed", "5", "--nproc", "2")
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert "2 processes" in two.output and end_line(two.output) == (37, 0, 0)
    assert pngs(tmp_path / "one") == pngs(tmp_path / "two")


@pytest.mark.parametrize(("arguments", "message"), [
    (["--n", "5000"], "one picture holds at most 1024 images; add --per-image"),
    (["--n", "20", "--nproc", "2"], "--nproc: add --per-image"),
    (["--n", "20", "--per-image", "--engine", "ray"], "--engine ray runs tasks that map images"),
    (["--n", "0", "--per-image"], "--n"),
    (["--n", "2000000000", "--per-image"], "from 1 to 1,000,000,000"),
])
def test_bad_counts_and_options_are_one_line(run: Path, cache: Path, tmp_path: Path, arguments: list[str],
                                             message: str) -> None:
    result = decode(run, tmp_path / "out", *arguments)
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not list((tmp_path / "out").glob("*.png"))


def test_per_image_on_a_task_that_does_not_draw_is_refused(run: Path, cache: Path, tmp_path: Path) -> None:
    result = invoke("generate", "ae_mnist", "reconstruct", "--run", run, "--device", "cpu", "--per-image",
                    "--out", tmp_path / "out")
    assert result.exit_code != 0 and "--per-image: only for tasks" in result.output, result.output


def test_codes_from_a_file_cannot_be_drawn_per_image(run: Path, cache: Path, tmp_path: Path) -> None:
    result = decode(run, tmp_path / "out", "--z", str(PREVIOUS / "codes.npy"), "--per-image", "--n", "20")
    assert result.exit_code != 0 and "drop the parameters that give it images" in result.output, result.output


def test_block_seeds_are_distinct_and_in_range() -> None:
    seeds = {block_seed(7, block) for block in range(1000)}
    assert len(seeds) == 1000 and block_seed(7, 0) == 7 and all(0 <= s < 2**32 for s in seeds)
