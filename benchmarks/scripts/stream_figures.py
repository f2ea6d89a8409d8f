"""Figures for streaming generation (docs/how-to/large-folders.md, BENCHMARKS.md "Streaming generation").

Trains a quick CycleGAN for a few steps, exports it to ONNX, writes folders of 1,000 and 20,000 64² PNGs, and runs
`zoo generate cyclegan_hair translate DIR --runtime onnxruntime` on them, measuring for each run the peak RSS
(os.wait4 of the child), images/s and wall time; compares with `zoo bench`'s items/s for the same graph, batch
and threads; kills a run with SIGKILL at a random point and reruns it (outputs rewritten, every file decoded,
bytes against an uninterrupted run); and runs --nproc 2 and --engine ray (2 CPUs) against one process.

Run it alone on the machine (the numbers are timings):

    flock -x /tmp/zoo-cpu.lock .venv/bin/python benchmarks/scripts/stream_figures.py

Writes benchmarks/results/stream_figures.json. The book-sized generator at 256² (9 residual blocks; a run of the
book preset, ``zoo train cyclegan_hair --preset book --max-steps 1``, so its weights are close to random), on
2,000 inputs, throughput and memory only:

    flock -x /tmp/zoo-cpu.lock .venv/bin/python benchmarks/scripts/stream_figures.py --run BOOK_RUN \
        --image-size 256 --sizes 2000 --only-throughput --out benchmarks/results/stream_figures_256.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
ZOO = [sys.executable, "-m", "zoo_core"]
BATCH = 16
THREADS = 2


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def make_folder(folder: Path, count: int, size: int = 64, seed: int = 0) -> Path:
    """``count`` smooth random pictures (8×8 colour fields enlarged, plus grain): PNGs that compress like photos."""
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        field = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
        grain = rng.integers(-6, 7, (size, size, 3))
        array = np.clip(np.asarray(field, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"face{index:06d}.png")
    return folder


def run(command: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    """The command with its peak RSS (MB), wall seconds and stderr."""
    started = time.monotonic()
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env=env or os.environ.copy())
    assert process.stderr is not None
    _, status, usage = os.wait4(process.pid, 0)
    stderr = process.stderr.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "wall_s": round(time.monotonic() - started, 2),
            "stderr": stderr}


def io_cost(folder: Path, count: int = 300) -> dict[str, float]:
    """CPU milliseconds per image that streaming spends besides the graph, on one thread: the decode translate does
    (``ImageInput.decode`` at the image's own size) and the encode of an output of that size (``encode_png``, the
    settings every zoo PNG is written with). With ``c`` cores and the graph at ``r`` images/s on all of them, the
    most a stream can reach is ``1 / (1/r + io/c)``."""
    from zoo_core.inputs import ImageInput
    from zoo_core.results import encode_png

    paths = sorted(folder.glob("*.png"))[:count]
    for path in paths[:10]:  # warm-up: the first decode and encode import Pillow's plugins and zlib
        encode_png(ImageInput(path.stem, path).decode(None))
    started = time.process_time()
    arrays = [ImageInput(p.stem, p).decode(None) for p in paths]
    decoded = time.process_time()
    for array in arrays:
        encode_png(array)
    encoded = time.process_time()
    return {"images": len(paths), "decode_ms": round(1e3 * (decoded - started) / len(paths), 3),
            "encode_ms": round(1e3 * (encoded - decoded) / len(paths), 3)}


def io_bound(folder: Path, bench_rate: float) -> dict[str, float]:
    """:func:`io_cost` and the most a stream can reach with it on ``THREADS`` cores beside the graph."""
    cost = io_cost(folder)
    bound = 1 / (1 / bench_rate + (cost["decode_ms"] + cost["encode_ms"]) / 1e3 / THREADS)
    return {**cost, "bound_images_per_s": round(bound, 1), "bound_vs_bench": round(bound / bench_rate, 3)}


def end_line(stderr: str) -> dict[str, float]:
    match = re.search(r"wrote (\d+), skipped (\d+), failed (\d+) into .* \(([\d.]+) images/s", stderr)
    if match is None:
        raise SystemExit(f"no end line in:\n{stderr[-2000:]}")
    written, skipped, failed, rate = match.groups()
    return {"written": int(written), "skipped": int(skipped), "failed": int(failed), "images_per_s": float(rate)}


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/zoo-stream-figures"))
    parser.add_argument("--sizes", default="1000,20000")
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stream_figures.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, help="a run to export instead of training the quick preset")
    parser.add_argument("--image-size", type=int, default=64, help="side of the generated input PNGs")
    parser.add_argument("--only-throughput", action="store_true", help="no kill -9, --nproc or Ray runs")
    parser.add_argument("--io-only", action="store_true",
                        help="measure the decode and encode cost again into the existing --out (its folders in --work)")
    args = parser.parse_args()
    if args.io_only:
        figures = json.loads(args.out.read_text())
        sizes = [int(s) for s in args.sizes.split(",")]
        figures["io_per_image"] = io_bound(args.work / f"in{sizes[0]}-{args.image_size}",
                                           float(figures["bench_items_per_s"]))
        figures["io_per_image"]["measured"] = {"command": " ".join(sys.argv), "uptime": uptime(),
                                               "date": datetime.datetime.now().isoformat(timespec="seconds")}
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
        print("io", figures["io_per_image"], file=sys.stderr)
        return
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ZOO_CACHE_DIR": str(work / "cache")}
    figures: dict[str, object] = {"cpu": cpu_model(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
                                  "command": " ".join(["python", *sys.argv]),
                                  "uptime_before": uptime(), "batch_size": BATCH, "threads": THREADS}
    run_dir, export = args.run or work / "run", work / "export"
    figures["run"], figures["image_size"] = str(run_dir), args.image_size
    if not (run_dir / "checkpoints" / "last.safetensors").is_file():
        shutil.rmtree(run_dir, ignore_errors=True)
        run([*ZOO, "train", "cyclegan_hair", "--max-steps", str(args.max_steps), "--out", str(run_dir),
             "--no-progress"], env)
    if not (export / "manifest.json").is_file():
        run([*ZOO, "export", "cyclegan_hair", "--run", str(run_dir), "--out", str(export), "--graphs",
             "black_to_blond", "--force"], env)
    bench_json = work / "bench.json"
    run([*ZOO, "bench", "cyclegan_hair", "--export", str(export), "--graphs", "black_to_blond", "--runtimes",
         "onnxruntime", "--batch-sizes", str(BATCH), "--threads", str(THREADS), "--json", str(bench_json)], env)
    bench = json.loads(bench_json.read_text())
    figures["bench"] = bench
    ort = [c for c in bench["cells"] if c["runtime"] == "onnxruntime" and c["batch"] == BATCH and c["status"] == "ok"]
    if not ort:
        raise SystemExit(f"zoo bench timed no onnxruntime cell at batch {BATCH}: {bench['cells']}")
    bench_rate = float(ort[0]["items_per_s"])
    figures["bench_items_per_s"] = bench_rate

    ort_env = {**env, "ZOO_ORT_THREADS": str(THREADS)}
    generate = [*ZOO, "generate", "cyclegan_hair", "translate", "--runtime", "onnxruntime", "--export", str(export),
                "--batch-size", str(BATCH), "--threads", str(THREADS)]
    sizes = [int(s) for s in args.sizes.split(",")]
    folders = {count: make_folder(work / f"in{count}-{args.image_size}", count, args.image_size) for count in sizes}
    runs: dict[str, object] = {}
    for count in sizes:
        out = work / f"out{count}"
        shutil.rmtree(out, ignore_errors=True)
        result = run([*generate, str(folders[count]), "--out", str(out)], ort_env)
        line = end_line(str(result["stderr"]))
        runs[str(count)] = {"peak_rss_mb": result["peak_rss_mb"], "wall_s": result["wall_s"], **line,
                            "vs_bench": round(line["images_per_s"] / bench_rate, 3) if bench_rate else None}
        print(count, runs[str(count)], file=sys.stderr)
    figures["runs"] = runs
    figures["io_per_image"] = io_bound(folders[sizes[0]], bench_rate)
    print("io", figures["io_per_image"], file=sys.stderr)
    small, large = str(sizes[0]), str(sizes[-1])
    figures["rss_ratio_large_to_small"] = round(runs[large]["peak_rss_mb"] / runs[small]["peak_rss_mb"], 3)
    if args.only_throughput:
        finish(figures, args.out)
        return

    # kill -9 at a random point of the small run, then rerun
    reference = pngs(work / f"out{sizes[0]}")
    killed = work / "killed"
    shutil.rmtree(killed, ignore_errors=True)
    rng = random.Random(args.seed)
    delay = rng.uniform(0.2, 0.8) * float(runs[small]["wall_s"])
    process = subprocess.Popen([*generate, str(folders[sizes[0]]), "--out", str(killed)], env=ort_env,
                               stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {p.name: p.stat().st_ino for p in killed.glob("*.png")}
    decodable = 0
    for path in killed.glob("*.png"):
        with Image.open(path) as image:
            image.load()
            decodable += 1
    rerun = run([*generate, str(folders[sizes[0]]), "--out", str(killed)], ort_env)
    after = pngs(killed)
    rewritten = [n for n, inode in before.items() if (killed / n).stat().st_ino != inode
                 and n != "translate_grid.png"]
    figures["kill"] = {"killed_after_s": round(delay, 2), "outputs_on_disk_at_kill": len(before),
                       "decodable_at_kill": decodable, "rerun": end_line(str(rerun["stderr"])),
                       "outputs_rewritten_by_rerun": len(rewritten), "batch_size": BATCH,
                       "identical_to_uninterrupted": after == reference}
    print("kill", figures["kill"], file=sys.stderr)

    # --nproc 2 and Ray with 2 CPUs, against one process
    nproc_env = {k: v for k, v in env.items() if k != "ZOO_ORT_THREADS"}
    common = [*ZOO, "generate", "cyclegan_hair", "translate", "--runtime", "onnxruntime", "--export", str(export),
              "--batch-size", str(BATCH), str(folders[sizes[0]])]
    for label, extra in (("nproc2", ["--nproc", "2"]), ("ray2", ["--engine", "ray"])):
        out = work / label
        shutil.rmtree(out, ignore_errors=True)
        result = run([*common, "--out", str(out), *extra], nproc_env)
        figures[label] = {"wall_s": result["wall_s"], **end_line(str(result["stderr"])),
                          "identical_to_one_process": pngs(out) == reference}
        print(label, figures[label], file=sys.stderr)
    finish(figures, args.out)


def finish(figures: dict[str, object], out: Path) -> None:
    figures["uptime_after"] = uptime()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "bench"}, indent=2))


if __name__ == "__main__":
    main()
