"""Measured figures of the vae_faces plugin: held-out reconstruction error and KL, and whether the encoding
arithmetic of the book works, judged by an attribute classifier.

Trains the `quick` VAE on the embedded portraits (or uses --run), trains a small CNN on a separate set of
portraits, sharp and blurred (decoded faces are soft), to read the labels glasses and male, then decodes

    glasses&male - glasses&~male + ~glasses&~male      (the book's "man without glasses")

for --draws random draws of the groups (the task's own code; groups of 3 images as in the book, then larger groups
from --group-sizes) and counts how often the classifier puts the result in the class "no glasses, male". Three more
combinations in the spirit of the book's exercise 7.1 are measured the same way. Writes
benchmarks/results/vae_faces_figures.json and docs/vae_faces_*.png (through the `zoo generate vae_faces` tasks).

    .venv/bin/python benchmarks/scripts/vae_faces_figures.py            # trains quick, then measures
    .venv/bin/python benchmarks/scripts/vae_faces_figures.py --run runs/vae_faces/RUN
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms.v2.functional import gaussian_blur
from zoo_bench.machine import describe_machine
from zoo_vae_faces import tasks
from zoo_vae_faces.arithmetic import arithmetic_images, gather_terms
from zoo_vae_faces.data import join
from zoo_vae_faces.expression import parse_expression

from zoo_core import io as zio
from zoo_core.config import parse_assignment
from zoo_core.data.imageset import ImageSet, to_float
from zoo_core.data.procedural import cached
from zoo_core.engine import TrainOptions, derive_seed, train
from zoo_core.models import select_device
from zoo_core.recipe import DataSource
from zoo_core.registry import registered_model
from zoo_core.runtime import RuntimeSource, TorchRunner
from zoo_core.tasks import TaskContext

ROOT = Path(__file__).resolve().parents[2]
ATTRIBUTES = ("glasses", "male")
HEADLINE = "glasses&male - glasses&~male + ~glasses&~male"
# Each expression with the (glasses, male) class its result should land in.
EXPRESSIONS = {
    HEADLINE: (0, 1),
    "glasses&male - ~glasses&male + ~glasses&~male": (1, 0),
    "~glasses&male - ~glasses&~male + glasses&~male": (1, 1),
    "glasses&~male - glasses&male + ~glasses&male": (0, 0),
}
CLASSIFIER_DATA_SEED = 1000  # portraits the VAE never saw (it trains on data_seed 0)


class AttributeClassifier(nn.Module):
    """Three strided convolutions and a linear layer: one logit per attribute."""

    def __init__(self, image_size: int, attributes: int = len(ATTRIBUTES)) -> None:
        super().__init__()
        side = image_size // 8
        self.layers = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * side * side, attributes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def blur_like_a_decoder(images: torch.Tensor, generator: torch.Generator, max_sigma: float) -> torch.Tensor:
    """Gaussian blur of a random strength per batch (none for a quarter of them): a VAE decodes soft images,
    and a judge trained only on sharp drawings would read softness itself as an attribute."""
    if max_sigma <= 0 or float(torch.rand((), generator=generator)) < 0.25:
        return images
    sigma = float(torch.empty(()).uniform_(0.3, max_sigma, generator=generator))
    kernel = 2 * math.ceil(2 * sigma) + 1
    return gaussian_blur(images, [kernel, kernel], [sigma, sigma])


def train_classifier(faces: ImageSet, epochs: int, seed: int, device: torch.device,
                     max_blur: float) -> AttributeClassifier:
    """Adam on binary cross-entropy of the glasses and male labels, on sharp and blurred portraits."""
    torch.manual_seed(seed)
    model = AttributeClassifier(faces.images.shape[-1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    targets = torch.stack([faces.labels[a] for a in ATTRIBUTES], dim=1).float()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(faces), generator=generator).split(64):
            images = blur_like_a_decoder(to_float(faces.images[batch]), generator, max_blur)
            logits = model(images.to(device))
            loss = nn.functional.binary_cross_entropy_with_logits(logits, targets[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def classify(model: AttributeClassifier, images: torch.Tensor) -> torch.Tensor:
    """Predicted 0/1 per attribute, int64 [N, attributes]."""
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = torch.cat([model(chunk.to(device)).cpu() for chunk in images.split(256)])
    return (logits > 0).long()


def accuracy(predicted: torch.Tensor, faces: ImageSet) -> dict[str, float]:
    truth = torch.stack([faces.labels[a] for a in ATTRIBUTES], dim=1)
    per_attribute = {a: float((predicted[:, i] == truth[:, i]).float().mean()) for i, a in enumerate(ATTRIBUTES)}
    return {**per_attribute, "both": float((predicted == truth).all(dim=1).float().mean())}


def held_out_metrics(runner: TorchRunner, val: ImageSet, seed: int) -> dict[str, float]:
    """Per item: the training loss terms with sampled z (the recipe's validation_metrics), and the per-pixel
    MSE of the mean reconstruction decoder(mu) that `zoo generate vae_faces reconstruct` shows."""
    recipe, networks = runner.recipe, runner.networks
    generator = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = {}
    for batch in recipe.batches(val, 64, generator, train=False):
        prepared = recipe.prepare_batch(batch, runner.device)
        with torch.no_grad():
            for key, value in recipe.validation_metrics(prepared, networks, generator).items():
                sums[key] = sums.get(key, 0.0) + float(value)
    metrics = {key: value / len(val) for key, value in sums.items()}
    images = to_float(val.images)
    mu = torch.cat([runner.run("encoder", chunk)[0] for chunk in images.split(256)])
    decoded = torch.cat([runner.run("decoder", chunk)[0] for chunk in mu.split(256)])
    metrics["mse_of_mean_reconstruction"] = float((decoded - images).pow(2).mean())
    return metrics


def arithmetic_success(runner: TorchRunner, faces: ImageSet, classifier: AttributeClassifier, expression: str,
                       target: tuple[int, int], draws: int, group_size: int, seed: int) -> dict[str, Any]:
    """Decode the expression for ``draws`` random draws of its groups; how often is the result the target class?

    Also how often each term's decoded mean shows each attribute, which tells a weak edit from a weak judge.
    """
    parsed = parse_expression(expression)
    generator = torch.Generator().manual_seed(seed)
    size = int(runner.config["image_size"])
    decoded = []
    for _ in range(draws):
        terms = gather_terms(parsed, faces, size, group_size, generator)
        decoded.append(arithmetic_images(terms, lambda x: runner.run("encoder", x)[0],
                                         lambda z: runner.run("decoder", z)[0]))
    columns = len(parsed.terms) + 1
    predicted = classify(classifier, torch.cat(decoded)).view(draws, columns, len(ATTRIBUTES))
    results = predicted[:, -1]
    hits = (results == torch.tensor(target)).all(dim=1)
    counts: dict[str, int] = {}
    for row in results.tolist():
        name = "&".join(("" if v else "~") + a for a, v in zip(ATTRIBUTES, row, strict=True))
        counts[name] = counts.get(name, 0) + 1
    names = [str(term) for term in parsed.terms] + ["result"]
    rates = predicted.float().mean(dim=0)  # [columns, attributes]
    shown = {name: {a: float(rates[i, j]) for j, a in enumerate(ATTRIBUTES)} for i, name in enumerate(names)}
    # The edit starts from the last term: what the result shows beyond it is what the arithmetic changed.
    shift = {a: float(rates[-1, j] - rates[-2, j]) for j, a in enumerate(ATTRIBUTES)}
    return {"expression": expression, "target": dict(zip(ATTRIBUTES, target, strict=True)), "draws": draws,
            "group_size": group_size, "success": int(hits.sum()), "rate": float(hits.float().mean()),
            "predicted_classes": counts, "attribute_rate_per_column": shown, "result_minus_last_term": shift}


def run_history(run: Path) -> dict[str, Any]:
    """Epochs, summed epoch seconds and the last validation metrics from the run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"epochs": len(rows), "epoch_seconds": round(sum(r["seconds"] for r in rows), 1),
            "last_val": rows[-1]["val"] if rows else {}}


def write_figures(runner: TorchRunner, faces: ImageSet, docs: Path, seed: int, group_size: int) -> list[str]:
    """The docs PNGs, through the task functions exactly as `zoo generate vae_faces ...` runs them."""
    model = registered_model("vae_faces")

    def context(name: str) -> TaskContext:
        return TaskContext(model=model, runner=runner, recipe=runner.recipe, out=docs / name, seed=seed)

    tasks.sample(context("vae_faces_samples.png"), n=18, columns=6)
    tasks.arithmetic(context("vae_faces_arithmetic.png"), HEADLINE, group_size=group_size, rows=4)
    tasks.reconstruct(context("vae_faces_reconstructions.png"), n=8, columns=8)
    labels = faces.labels
    woman_glasses = int(((labels["glasses"] == 1) & (labels["male"] == 0)).nonzero()[0])
    woman_plain = int(((labels["glasses"] == 0) & (labels["male"] == 0)).nonzero()[0])
    tasks.interpolate(context("vae_faces_interpolation.png"), str(woman_plain), str(woman_glasses), steps=6)
    return [f"docs/vae_faces_{n}.png" for n in ("samples", "arithmetic", "reconstructions", "interpolation")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="A trained vae_faces run (default: train the quick preset).")
    parser.add_argument("--out-run", type=Path, default=Path("runs/vae_faces/figures-quick"),
                        help="Where to train when --run is absent.")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a quick-preset value for the training (e.g. epochs=2).")
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[3, 10, 30],
                        help="Images per group; the first (the book's 3) is the headline and the figure's.")
    parser.add_argument("--classifier-items", type=int, default=4000)
    parser.add_argument("--classifier-epochs", type=int, default=4)
    parser.add_argument("--classifier-blur", type=float, default=2.0,
                        help="Largest Gaussian blur sigma (pixels) of the classifier's training images; 0: sharp only.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "vae_faces_figures.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = select_device(args.device)
    model = registered_model("vae_faces")
    training: dict[str, Any] = {"trained_by_this_command": args.run is None}
    run = args.run
    if run is None:
        overrides = dict(parse_assignment(a) for a in args.assignments)
        started = time.perf_counter()
        run = train(model, TrainOptions(preset="quick", overrides=overrides, out=args.out_run, seed=args.seed,
                                        device=args.device, progress=False))
        training.update(wall_seconds=round(time.perf_counter() - started, 1), overrides=overrides)
    training.update(run_history(run))
    runner = TorchRunner(model, RuntimeSource(run=run, device=args.device))
    config: Mapping[str, Any] = runner.config
    data = runner.recipe.load_data(DataSource())
    faces = join(data)
    print(f"vae_faces figures: {run} ({config['preset']}, {config['image_size']}², {len(data.train)} train / "
          f"{len(data.val)} held-out portraits)", file=sys.stderr)

    metrics = held_out_metrics(runner, data.val, derive_seed(args.seed, 1 << 20))
    classifier_faces = cached("portraits", args.classifier_items, CLASSIFIER_DATA_SEED, int(config["image_size"]))
    started = time.perf_counter()
    classifier = train_classifier(classifier_faces, args.classifier_epochs, args.seed, device, args.classifier_blur)
    classifier_seconds = time.perf_counter() - started
    real = accuracy(classify(classifier, to_float(data.val.images)), data.val)
    mu = runner.run("encoder", to_float(data.val.images))[0]
    reconstructed = accuracy(classify(classifier, runner.run("decoder", mu)[0]), data.val)
    arithmetic = [arithmetic_success(runner, faces, classifier, expression, target, args.draws, group_size,
                                     args.seed + index)
                  for group_size in args.group_sizes
                  for index, (expression, target) in enumerate(EXPRESSIONS.items())]
    figures = write_figures(runner, faces, args.docs, args.seed, args.group_sizes[0])

    command = " ".join(["python benchmarks/scripts/vae_faces_figures.py", *(sys.argv[1:] if argv is None else argv)])
    result = {
        "command": command, "machine": describe_machine(device.type), "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "run": str(run), "config": dict(config), "training": training,
        "held_out": {"items": len(data.val), **metrics},
        "classifier": {"train_items": args.classifier_items, "data_seed": CLASSIFIER_DATA_SEED,
                       "epochs": args.classifier_epochs, "max_blur_sigma": args.classifier_blur,
                       "seconds": round(classifier_seconds, 1),
                       "accuracy_on_held_out_portraits": real, "accuracy_on_their_reconstructions": reconstructed},
        "arithmetic": arithmetic, "headline": arithmetic[0], "figures": figures,
    }
    zio.write_json(args.results, result)
    head = arithmetic[0]
    print(f"held-out per item: recon {metrics['recon']:.1f}, KL {metrics['kl']:.1f}, per-pixel MSE "
          f"{metrics['mse']:.4f}; classifier accuracy {real['both']:.3f} (real), {reconstructed['both']:.3f} "
          f"(reconstructions)", file=sys.stderr)
    for item in arithmetic:
        shift = ", ".join(f"{a} {v:+.2f}" for a, v in item["result_minus_last_term"].items())
        print(f"{item['expression']} (groups of {item['group_size']}): {item['success']}/{item['draws']} in the "
              f"target class; result minus last term: {shift}", file=sys.stderr)
    print(f"headline (groups of {head['group_size']}): {head['success']}/{head['draws']} = {head['rate']:.0%}; "
          f"wrote {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
