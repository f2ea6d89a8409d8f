"""The core's streaming engine (zoo_core.streaming) on `zoo generate cyclegan_hair translate`: today's bytes for
small inputs, inputs of any size, bounded memory, resume after kill -9, --nproc and Ray byte-identical, unreadable
inputs."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_cyclegan_hair import testing as cyclegan_testing

from zoo_core.api import (
    RegisteredModel,
    RuntimeSource,
    TorchRunner,
)
from zoo_core.inputs import image_inputs, load_tensor
from zoo_core.library import Model
from zoo_core.results import encode_png, to_uint8_images
from zoo_core.spatial import any_size
from zoo_core.streaming import STATE_DIR, StreamOptions, complete_png, stream_task

BATCH = 8

# the cyclegan_hair plugin's own test fixtures (a private cache, one thread, its tiny run and CLI): this tests the
# core's streaming engine on that plugin
one_thread, zoo_cache, cyclegan_model, tiny_run, zoo = (cyclegan_testing.one_thread, cyclegan_testing.zoo_cache,
                                                        cyclegan_testing.cyclegan_model, cyclegan_testing.tiny_run,
                                                        cyclegan_testing.zoo)


def write_images(folder: Path, count: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> list[Path]:
    """``count`` noise PNGs of ``size`` (width, height) named img00000.png..."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"img{index:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, compress_level=1)
        paths.append(path)
    return paths


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def model(cyclegan_model: RegisteredModel, tiny_run: Path) -> Model:
    return Model(cyclegan_model, TorchRunner(cyclegan_model, RuntimeSource(run=tiny_run, device="cpu"), quiet=True))


def todays_bytes(model: Model, paths: list[Path], size: int) -> dict[str, bytes]:
    """What translate wrote before streaming: every input resized to ``size``, one batch, encode_png."""
    inputs = image_inputs(paths)
    originals = load_tensor(inputs, size) * 2 - 1
    translated = model.runner.run("black_to_blond", originals)[0].clamp(-1, 1)
    return {f"{i.name}_blond.png": encode_png(a) for i, a in zip(inputs, to_uint8_images(translated, (-1, 1)),
                                                                   strict=True)}


def test_small_inputs_keep_todays_bytes_and_size_resizes_as_before(zoo, model: Model, tiny_run: Path,
                                                                    tmp_path: Path) -> None:
    square = write_images(tmp_path / "square", 5)
    out = tmp_path / "out"
    result = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, tmp_path / "square", "--out", out)
    assert result.exit_code == 0, result.output
    written = pngs(out)
    assert {k: v for k, v in written.items() if k != "translate_grid.png"} == todays_bytes(model, square, 32)
    assert "wrote 5, skipped 0, failed 0" in result.stderr
    # --size 32 on other sizes gives what translate gave them before (resized to the preset's 32²)
    odd = write_images(tmp_path / "odd", 3, size=(40, 50), seed=1)
    result = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, tmp_path / "odd", "--size", "32",
                 "--out", tmp_path / "sized")
    assert result.exit_code == 0, result.output
    sized = pngs(tmp_path / "sized")
    assert {k: v for k, v in sized.items() if k != "translate_grid.png"} == todays_bytes(model, odd, 32)


def test_native_size_by_default_and_tiles_blend_back(zoo, tiny_run: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "odd", 2, size=(42, 50))  # neither side a multiple of 4: padded, cropped back
    out = tmp_path / "out"
    result = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, tmp_path / "odd", "--out", out)
    assert result.exit_code == 0, result.output
    with Image.open(out / "img00000_blond.png") as image:
        assert image.size == (42, 50)
    # tiles: an identity network comes back unchanged through overlapping, blended tiles
    image = torch.rand(1, 3, 70, 45)
    assert torch.allclose(any_size(lambda x: x, image, 4, tile=32, overlap=8), image, atol=1e-6)
    doubled = any_size(lambda x: 2 * x, image, 4, tile=32, overlap=8)
    assert torch.allclose(doubled, 2 * image, atol=1e-6)


def test_folders_globs_lists_and_tar_shards_give_the_same_files(zoo, tiny_run: Path, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "in" / "nested", 6, size=(16, 16))
    (tmp_path / "list.txt").write_text("# inputs\n" + "".join(f"in/nested/{p.name}\n" for p in paths))
    with tarfile.open(tmp_path / "shard-000.tar", "w") as shard:
        for path in paths:
            shard.add(path, arcname=path.name)
            info = tarfile.TarInfo(path.stem + ".json")  # WebDataset keeps other fields beside the image
            info.size = 2
            shard.addfile(info, io.BytesIO(b"{}"))
    results = {}
    for label, source in (("folder", tmp_path / "in"), ("glob", f"{tmp_path}/in/**/*.png"),
                          ("list", tmp_path / "list.txt"), ("tar", tmp_path / "shard-000.tar")):
        result = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, source, "--out", tmp_path / label)
        assert result.exit_code == 0, (label, result.output)
        results[label] = pngs(tmp_path / label)
    assert len(results["folder"]) == 7  # six translations and the grid
    assert results["folder"] == results["glob"] == results["list"] == results["tar"]


def test_memory_is_bounded_by_the_batch_not_the_inputs(model: Model, tmp_path: Path) -> None:
    """Peak traced memory (numpy and Python objects) at 2,000 inputs stays near that at 200; all at once, the
    decoded inputs and outputs alone would add about 2,000 × 16 KB."""
    peaks = {}
    for count in (200, 2000):
        folder = tmp_path / f"in{count}"
        write_images(folder, count, size=(16, 16))
        tracemalloc.start()
        report = stream_task(model, "translate", [folder], {"batch_size": 32}, tmp_path / f"out{count}",
                             StreamOptions(progress=False))
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.written == count
    growth = peaks[2000] - peaks[200]
    assert growth < 2 * 2**20, peaks  # ~1 KB per input of names and journal keys at most, not decoded images


def test_resume_after_kill_9_rewrites_less_than_a_batch(model: Model, tiny_run: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", 240, size=(16, 16))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "zoo_core", "generate", "cyclegan_hair", "translate", str(tmp_path / "in"),
               "--run", str(tiny_run), "--out", str(out), "--batch-size", str(BATCH), "--threads", "1"]
    env = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, env=env)
    journal = out / STATE_DIR / "journal-0.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 40:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {p.name: p.stat().st_ino for p in out.glob("*.png")}
    assert 0 < len(before) < 241, "the run finished before the kill; the test needs a slower machine or more inputs"
    assert all(complete_png(out / name) for name in before)  # atomic writes: every file on disk is whole
    for name in before:
        with Image.open(out / name) as image:
            image.load()
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    rewritten = [n for n, inode in before.items() if (out / n).stat().st_ino != inode and n != "translate_grid.png"]
    assert len(rewritten) < BATCH, rewritten
    assert len(list(out.glob("*_blond.png"))) == 240
    stream_task(model, "translate", [tmp_path / "in"], {"batch_size": BATCH}, tmp_path / "clean",
                StreamOptions(progress=False))
    assert pngs(out) == pngs(tmp_path / "clean")  # the same files as a run never killed


def test_nproc_2_writes_the_files_one_process_writes(zoo, tiny_run: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", 24, size=(16, 16))
    one = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, tmp_path / "in", "--out", tmp_path / "one",
              "--batch-size", str(BATCH))
    two = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, tmp_path / "in", "--out", tmp_path / "two",
              "--batch-size", str(BATCH), "--nproc", "2")
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert "2 processes" in two.stderr and "wrote 24, skipped 0, failed 0" in two.stderr
    assert pngs(tmp_path / "one") == pngs(tmp_path / "two")


def test_unreadable_inputs_are_skipped_and_listed_or_refused_with_strict(zoo, tiny_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_images(folder, 4, size=(16, 16))
    (folder / "broken.png").write_bytes(b"not a picture")
    good = (folder / "img00001.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    result = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, folder, "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote 4, skipped 0, failed 2" in result.stderr
    listed = (out / STATE_DIR / "failed.txt").read_text().splitlines()
    assert sorted(Path(p).name for p in listed) == ["broken.png", "truncated.png"]
    assert sorted(p.name for p in out.glob("img*_blond.png")) == [f"img0000{i}_blond.png" for i in range(4)]
    again = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, folder, "--out", out)
    assert "wrote 0, skipped 4, failed 2" in again.stderr  # done ones skipped, bad ones tried again
    strict = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, folder, "--out", tmp_path / "strict",
                 "--strict")
    assert strict.exit_code != 0
    last = strict.stderr.strip().splitlines()[-1]
    assert last.startswith("zoo: ") and "cannot read image broken" in last and "--strict" in last
    assert "Traceback" not in strict.stderr


def test_ray_engine_and_task_mapper_match_one_process(zoo, model: Model, tiny_run: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from zoo_core.ray_data import TaskMapper

    paths = write_images(tmp_path / "in", 20, size=(16, 16))
    stream_task(model, "translate", [tmp_path / "in"], {"batch_size": BATCH}, tmp_path / "one",
                StreamOptions(progress=False))
    ray.init(num_cpus=2, include_dashboard=False, address="local", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        on_ray = zoo("generate", "cyclegan_hair", "translate", "--run", tiny_run, tmp_path / "in", "--out",
                     tmp_path / "ray", "--batch-size", str(BATCH), "--engine", "ray")
        assert on_ray.exit_code == 0, on_ray.output
        assert "Ray, 2 CPUs" in on_ray.stderr
        assert pngs(tmp_path / "one") == pngs(tmp_path / "ray")
        dataset = ray.data.from_items([{"path": str(p)} for p in paths[:4]])
        mapped = dataset.map_batches(TaskMapper, batch_size=4, concurrency=1, num_cpus=1, fn_constructor_kwargs={
            "model": "cyclegan_hair", "task": "translate", "runtime": "torch", "run": str(tiny_run),
            "device": "cpu"}).take_all()
    finally:
        ray.shutdown()
    expected = pngs(tmp_path / "one")
    assert {row["name"]: row["png"] for row in mapped} == {n: expected[n] for n in
                                                            [f"{p.stem}_blond.png" for p in paths[:4]]}
