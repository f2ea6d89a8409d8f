"""Train, measure and write the first-party weights that ship inside the plugins' distributions.

Run from the repository root (about a minute for ae_mnist, a few for the quick VAE, on two CPU cores):

    .venv/bin/python benchmarks/scripts/ship_weights.py ae_mnist --data ../shared/data/mnist-t10k
    .venv/bin/python benchmarks/scripts/ship_weights.py vae_faces
    .venv/bin/python benchmarks/scripts/ship_weights.py cyclegan_hair

- ae_mnist "mnist": the book preset trained on the first 9,000 digits of MNIST t10k
  (`zoo train ae_mnist --preset book --data DIR --limit 9000 --val-split 0 --seed 0`, last checkpoint), its
  held-out mean squared error per pixel measured on the last 1,000 digits through the shipped file
  (`--measure-only` reruns the measurement alone).
- vae_faces / cyclegan_hair "quick": the quick preset trained on the embedded portraits, seed 0; the figures are
  the run's held-out validation metrics of its last epoch.

The network weights only (no optimizer state) go to plugins/MODEL/zoo_MODEL/weights/NAME.safetensors in fp16;
sha256, size and figures are printed and written to benchmarks/results/weights_MODEL.json, from which the
plugin's Weights declaration (zoo_MODEL/weights.py) is copied by hand. Training is deterministic on one machine;
another CPU may give other bytes (and so another sha256) with figures alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist-t10k"
MNIST_TRAIN_ITEMS = 9000  # the first 9,000 t10k digits train; the last 1,000 are held out
MSE_LIMIT = 0.021

PLANS: dict[str, dict[str, Any]] = {
    "ae_mnist": {"name": "mnist", "preset": "book"},
    "vae_faces": {"name": "quick", "preset": "quick"},
    "cyclegan_hair": {"name": "quick", "preset": "quick"},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(PLANS))
    parser.add_argument("--data", type=Path, default=DEFAULT_MNIST, help="MNIST t10k folder (ae_mnist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--measure-only", action="store_true", help="measure the shipped file, train nothing")
    parser.add_argument("--runs", type=Path, default=Path(tempfile.gettempdir()) / "zoo-ship-runs",
                        help="where the training run is kept (a finished one is reused)")
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    return parser.parse_args()


def weights_file(model: str, name: str) -> Path:
    return ROOT / "plugins" / model / f"zoo_{model}" / "weights" / f"{name}.safetensors"


def train_command(args: argparse.Namespace, run: Path) -> list[str]:
    plan = PLANS[args.model]
    command = ["zoo", "train", args.model, "--preset", plan["preset"], "--seed", str(args.seed), "--device", "cpu",
               "--no-progress", "--out", str(run)]
    if args.model == "ae_mnist":
        command += ["--data", str(args.data.resolve()), "--limit", str(MNIST_TRAIN_ITEMS), "--val-split", "0"]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    return command


def heldout_mse(shipped: Path, data: Path) -> float:
    """Mean squared error per pixel of the last 1,000 t10k digits reconstructed through the shipped weights."""
    import torch

    from zoo_core.data.imageset import to_float
    from zoo_core.data.mnist import load_mnist
    from zoo_core.models import load_model
    from zoo_core.registry import registered_model

    loaded = load_model(registered_model("ae_mnist"), checkpoint=shipped, device="cpu", log=None)
    images = to_float(load_mnist(data, split="test").images[MNIST_TRAIN_ITEMS:])
    with torch.inference_mode():
        reconstruction = loaded.graph_module("autoencoder")(images)
    return float(((reconstruction - images) ** 2).mean())


def last_val_metrics(run: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {f"val_{k}": float(v) for k, v in rows[-1]["val"].items()}


def main() -> None:
    args = parse_args()
    plan = PLANS[args.model]
    shipped = weights_file(args.model, plan["name"])
    zoo = str(Path(sys.executable).parent / "zoo")
    record: dict[str, Any] = {"script": "benchmarks/scripts/ship_weights.py", "argv": sys.argv[1:],
                              "model": args.model, "weights": plan["name"], "preset": plan["preset"],
                              "date": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": platform.processor() or platform.machine(), "cpu": cpu_model(),
                              "python": platform.python_version()}
    metrics: dict[str, float] = {}
    if not args.measure_only:
        from zoo_core.registry import registered_model
        from zoo_core.weights import write_inference_weights

        # the run is kept (a finished one is reused): a failure after training does not cost the training
        run = args.runs / f"{args.model}-{plan['name']}-seed{args.seed}-epochs{args.epochs or 'preset'}"
        command = train_command(args, run)
        if not (run / "checkpoints" / "last.safetensors").is_file() or \
                json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] < _epochs(args):
            shutil.rmtree(run, ignore_errors=True)
            subprocess.run([zoo, *command[1:]], check=True)
        shown = ["RUN" if part == str(run) else part for part in command]
        record["train_command"] = " ".join(shown).replace(str(args.data.resolve()), "../shared/data/mnist-t10k")
        if args.model != "ae_mnist":
            metrics.update(last_val_metrics(run))
        provenance = {"name": plan["name"], "trained_by": record["train_command"]}
        write_inference_weights(registered_model(args.model), run / "checkpoints" / "last.safetensors", shipped,
                                dtype=args.dtype, provenance=provenance)
    if args.model == "ae_mnist":
        metrics["heldout_mse_per_pixel"] = heldout_mse(shipped, args.data)
        record["passed"] = metrics["heldout_mse_per_pixel"] <= MSE_LIMIT
        record["limit"] = MSE_LIMIT
    from zoo_core.download import file_sha256

    record.update({"file": str(shipped.relative_to(ROOT)), "size": shipped.stat().st_size,
                   "sha256": file_sha256(shipped), "metrics": metrics})
    out = ROOT / "benchmarks" / "results" / f"weights_{args.model}.json"
    from zoo_core import io as zio

    if args.measure_only and out.is_file():  # the training record stays; the new measurement is added beside it
        previous = json.loads(out.read_text())
        if previous.get("sha256") != record["sha256"]:
            raise SystemExit(f"{shipped} is not the file {out} describes; train it again without --measure-only")
        record = {**previous, "remeasured": {k: record[k] for k in ("date", "cpu", "metrics")}}
    zio.write_json(out, record)
    print(json.dumps(record, indent=2))


def _epochs(args: argparse.Namespace) -> int:
    from zoo_core.registry import registered_model

    return args.epochs or int(registered_model(args.model).spec.preset(PLANS[args.model]["preset"]).values["epochs"])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
