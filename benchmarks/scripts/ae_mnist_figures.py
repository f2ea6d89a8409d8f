"""ae_mnist figures: engine overhead against a bare PyTorch loop, held-out quality on real MNIST, a reconstruction grid.

Run from the repository root (a few minutes on two CPU cores):

    .venv/bin/python benchmarks/scripts/ae_mnist_figures.py --data ../shared/data/mnist-t10k

1. Throughput: the `book` recipe (784-200-20, Adam 2.5e-4, batch 32) trained through the engine
   (`zoo_core.engine.train`, live progress bar drawn to a null stream) and by a bare loop over the same
   in-memory tensors, in alternating order so that load drift hits both alike. Each side's items/s is the
   training loop alone (the engine's own per-epoch figure in metrics.jsonl; validation, sample grids and
   checkpoints at epoch ends are reported separately as the whole-call rate).
2. Quality: `zoo train ae_mnist --preset book --data DIR --val-split 0.1` (the first 9,000 test digits train,
   the last 1,000 are held out); the held-out mean squared error per pixel after 10 epochs comes from the
   run's metrics.jsonl. A bare loop with the same seed gives the reference.
3. The run's reconstruction grid, `zoo generate ae_mnist reconstruct`, goes to docs/ae_mnist_reconstruction.png
   and its loss curve to docs/ae_mnist_loss.png.

Results go to benchmarks/results/ae_mnist_figures.json with the machine, its load and the versions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from zoo_core import io as zio
from zoo_core.data.imageset import ImageSet, to_float
from zoo_core.engine import TrainOptions, train
from zoo_core.recipe import DataSource
from zoo_core.registry import registered_model

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist-t10k"
QUALITY_LIMIT = 0.021  # held-out MSE per pixel after the book's 10 epochs
OVERHEAD_FLOOR = 0.85  # engine throughput as a fraction of the bare loop's


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MNIST IDX folder (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating bare/engine pairs (default: %(default)s)")
    parser.add_argument("--epochs-per-trial", type=int, default=2, help="epochs each timed trial trains")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ae_mnist_figures.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    return parser.parse_args()


def machine(threads: int, device: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    info: dict[str, Any] = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch_threads": threads,
                            "torch": torch.__version__, "python": platform.python_version(), "device": device}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def book_split(data_dir: Path) -> tuple[ImageSet, ImageSet, dict[str, Any]]:
    """The exact train and held-out images the engine's book run uses."""
    from zoo_core.config import resolve_config
    from zoo_core.models import build_recipe

    model = registered_model("ae_mnist")
    config = resolve_config(model.spec, "book", {})
    data = build_recipe(model, config).load_data(DataSource(data=data_dir, val_split=0.1))
    return data.train, data.val, config


# -- the bare loop -----------------------------------------------------------------------------------------------
def bare_loop(train_images: ImageSet, config: dict[str, Any], epochs: int, seed: int,
              device: torch.device) -> tuple[float, torch.nn.Module, torch.nn.Module]:
    """The book's loop at its plainest: in-memory float tensors, randperm batches, no logging. Returns items/s."""
    from zoo_ae_mnist.networks import Decoder, Encoder

    torch.manual_seed(seed)
    encoder = Encoder(h_dim=config["h_dim"], z_dim=config["z_dim"]).to(device)
    decoder = Decoder(h_dim=config["h_dim"], z_dim=config["z_dim"]).to(device)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=config["lr"])
    images = to_float(train_images.images.to(device)).flatten(1)
    count, batch_size = len(images), int(config["batch_size"])
    shuffle = torch.Generator().manual_seed(seed)
    total = torch.zeros((), device=device)
    sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(count, generator=shuffle).to(device)
        for start in range(0, count, batch_size):
            batch = images.index_select(0, order[start:start + batch_size])
            loss = ((decoder(encoder(batch)) - batch) ** 2).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
    float(total)
    sync(device)
    return count * epochs / (time.perf_counter() - started), encoder, decoder


@contextlib.contextmanager
def live_progress_to_null() -> Iterator[None]:
    """The engine's rich progress bar drawn as on a terminal, into a null stream (its cost is part of the engine)."""
    saved_stderr, saved_env = sys.stderr, os.environ.get("TTY_COMPATIBLE")
    os.environ["TTY_COMPATIBLE"] = "1"
    with open(os.devnull, "w") as null:
        sys.stderr = null
        try:
            yield
        finally:
            sys.stderr = saved_stderr
            if saved_env is None:
                os.environ.pop("TTY_COMPATIBLE", None)
            else:
                os.environ["TTY_COMPATIBLE"] = saved_env


def engine_trial(data_dir: Path, epochs: int, seed: int, device: str, folder: Path) -> dict[str, float]:
    """One engine run of the book preset; the loop's items/s as the engine records it, and the whole call's."""
    out = folder / f"engine-{time.perf_counter_ns()}"
    options = TrainOptions(preset="book", overrides={"epochs": epochs}, device=device, out=out, seed=seed,
                           source=DataSource(data=data_dir, val_split=0.1))
    started = time.perf_counter()
    with live_progress_to_null():
        train(registered_model("ae_mnist"), options)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    items = sum(r["items_per_s"] * r["seconds"] for r in rows)
    shutil.rmtree(out, ignore_errors=True)
    return {"loop_items_per_s": items / sum(r["seconds"] for r in rows), "call_items_per_s": items / wall}


def throughput(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    train_images, _, config = book_split(args.data)
    device = torch.device(args.device)
    bare_loop(train_images, config, 1, 0, device)  # warm-up: allocator, kernels, lazy imports
    engine_trial(args.data, 1, 0, args.device, folder)
    rounds = []
    load_before = load_average()
    for index in range(args.rounds):
        order = ("bare", "engine") if index % 2 == 0 else ("engine", "bare")
        result: dict[str, Any] = {"order": list(order)}
        for side in order:
            if side == "bare":
                result["bare_items_per_s"] = bare_loop(train_images, config, args.epochs_per_trial, index, device)[0]
            else:
                result.update(engine_trial(args.data, args.epochs_per_trial, index, args.device, folder))
        result["ratio"] = result["loop_items_per_s"] / result["bare_items_per_s"]
        result["call_ratio"] = result["call_items_per_s"] / result["bare_items_per_s"]
        rounds.append(result)
        print(f"  round {index + 1}: bare {result['bare_items_per_s']:,.0f}  engine {result['loop_items_per_s']:,.0f} "
              f"items/s  ratio {result['ratio']:.3f}  (whole call {result['call_ratio']:.3f})", flush=True)
    ratio = statistics.median(r["ratio"] for r in rounds)
    return {
        "rounds": rounds, "items_per_trial": len(train_images) * args.epochs_per_trial,
        "bare_items_per_s_median": statistics.median(r["bare_items_per_s"] for r in rounds),
        "engine_items_per_s_median": statistics.median(r["loop_items_per_s"] for r in rounds),
        "ratio_median": ratio, "call_ratio_median": statistics.median(r["call_ratio"] for r in rounds),
        "floor": OVERHEAD_FLOOR, "passed": ratio >= OVERHEAD_FLOOR,
        "load_average_before": load_before, "load_average_after": load_average(),
    }


# -- quality -----------------------------------------------------------------------------------------------------
def zoo(*args: str | Path, env: dict[str, str]) -> None:
    command = [sys.executable, str(Path(sys.executable).parent / "zoo"), *map(str, args)]
    print("  $ zoo " + " ".join(map(str, args)), flush=True)
    subprocess.run(command, check=True, env=env)


def held_out_mse(encoder: torch.nn.Module, decoder: torch.nn.Module, val: ImageSet, device: torch.device) -> float:
    images = to_float(val.images.to(device)).flatten(1)
    with torch.no_grad():
        return float(((decoder(encoder(images)) - images) ** 2).mean())


def quality(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    run = folder / "book-run"
    started = time.perf_counter()
    zoo("train", "ae_mnist", "--preset", "book", "--data", args.data, "--val-split", "0.1", "--device", args.device,
        "--out", run, env=env)
    seconds = time.perf_counter() - started
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    args.docs.mkdir(parents=True, exist_ok=True)
    grid = args.docs / "ae_mnist_reconstruction.png"
    zoo("generate", "ae_mnist", "reconstruct", "--run", run, "--data", args.data, "--n", "16", "--device", args.device,
        "--out", grid, env=env)
    zio.write_bytes(args.docs / "ae_mnist_loss.png", (run / "loss.png").read_bytes())
    train_images, val_images, config = book_split(args.data)
    device = torch.device(args.device)
    _, encoder, decoder = bare_loop(train_images, config, int(config["epochs"]), 0, device)
    final = rows[-1]["val"]["mse_per_pixel"]
    return {
        "command": f"zoo train ae_mnist --preset book --data {args.data} --val-split 0.1",
        "train_items": len(train_images), "held_out_items": len(val_images), "epochs": len(rows),
        "held_out_mse_per_pixel": [r["val"]["mse_per_pixel"] for r in rows],
        "train_loss_per_image": [r["train"]["loss"] for r in rows],
        "final_mse_per_pixel": final, "limit": QUALITY_LIMIT, "passed": final <= QUALITY_LIMIT,
        "bare_loop_mse_per_pixel": held_out_mse(encoder.eval(), decoder.eval(), val_images, device),
        "train_seconds": seconds, "reconstruction": str(grid.relative_to(ROOT) if grid.is_relative_to(ROOT) else grid),
    }


def main() -> None:
    args = parse_args()
    args.data = args.data.resolve()
    if not args.data.is_dir():
        sys.exit(f"ae_mnist_figures: no MNIST at {args.data}; pass --data DIR")
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "script": "benchmarks/scripts/ae_mnist_figures.py", "argv": sys.argv[1:],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(torch.get_num_threads(), args.device),
    }
    with tempfile.TemporaryDirectory(prefix="ae-mnist-figures-") as temp:
        if not args.skip_throughput:
            print("engine overhead: book recipe, engine vs bare loop, alternating", flush=True)
            report["throughput"] = throughput(args, Path(temp))
        if not args.skip_quality:
            print("quality: book preset on real MNIST, last 1,000 held out", flush=True)
            report["quality"] = quality(args, Path(temp))
    zio.write_json(args.json, report)
    print(f"\nwrote {args.json}")
    if "throughput" in report:
        t = report["throughput"]
        print(f"engine / bare loop: {t['ratio_median']:.3f} (median of {len(t['rounds'])}; floor {OVERHEAD_FLOOR}) "
              f"- bare {t['bare_items_per_s_median']:,.0f}, engine {t['engine_items_per_s_median']:,.0f} items/s; "
              f"whole call incl. epoch-end work {t['call_ratio_median']:.3f}; load {t['load_average_before']}")
    if "quality" in report:
        q = report["quality"]
        print(f"held-out MSE/pixel after {q['epochs']} epochs: {q['final_mse_per_pixel']:.5f} (limit {QUALITY_LIMIT}; "
              f"bare loop {q['bare_loop_mse_per_pixel']:.5f}); grid {q['reconstruction']}")


if __name__ == "__main__":
    main()
