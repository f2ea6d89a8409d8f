"""Measured figures of the cyclegan_hair plugin: does the quick CycleGAN change the hair colour, and how well
does a round trip come back?

Trains the `quick` preset on the embedded portraits (or uses --run), then translates --held-out portraits
drawn with another seed (never seen in training) in both directions through the named graphs, and reports:

- the share of translated images whose hair reaches the target colour class. The class test
  (zoo_cyclegan_hair.haircolour) is the mean luma of the hair pixels (the portrait generator's hair mask of
  the source image) against 0.40, between the black palette (luma <= ~0.17) and the blond one (>= ~0.6);
  it is checked on the originals first, where it must sort 100% correctly;
- the round-trip mean absolute error in [0,1] pixel units, per direction, and how much the translation changed
  the picture outside the hair (the colour test alone is passed early in training by blurred faces);
- the training throughput of the run (pairs/s, from its metrics.jsonl).

Writes benchmarks/results/cyclegan_hair_figures.json and docs/cyclegan_hair_roundtrip.png.

    .venv/bin/python benchmarks/scripts/cyclegan_hair_figures.py            # trains quick, then measures
    .venv/bin/python benchmarks/scripts/cyclegan_hair_figures.py --run runs/cyclegan_hair/RUN
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from zoo_bench.machine import describe_machine
from zoo_cyclegan_hair.data import embedded_domains
from zoo_cyclegan_hair.haircolour import BLOND_LUMA_THRESHOLD, LUMA_WEIGHTS, hair_luma
from zoo_cyclegan_hair.recipe import VALUE_RANGE, roundtrip_rows
from zoo_cyclegan_hair.tasks import roundtrip_grid

from zoo_core import io as zio
from zoo_core.config import parse_assignment
from zoo_core.data.imageset import ImageSet, to_float
from zoo_core.engine import TrainOptions, train
from zoo_core.images import save_png
from zoo_core.registry import registered_model
from zoo_core.runtime import RuntimeSource, TorchRunner

ROOT = Path(__file__).resolve().parents[2]
HELD_OUT_SEED = 1  # the training set is drawn with seed 0
GRID_ROWS = 4
BATCH = 64


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="A trained cyclegan_hair run (default: train the quick preset).")
    parser.add_argument("--out-run", type=Path, default=None,
                        help="Run directory for the training (default: runs/cyclegan_hair/figures-DATE).")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a quick-preset value for the training.")
    parser.add_argument("--max-steps", type=int, default=None, help="Stop the training early (for trials).")
    parser.add_argument("--held-out", type=int, default=400, help="Held-out portraits (half of each colour).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "cyclegan_hair_figures.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    return parser.parse_args(argv)


def train_quick(args: argparse.Namespace) -> Path:
    out = args.out_run or Path("runs/cyclegan_hair") / time.strftime("figures-%Y%m%d-%H%M%S")
    overrides = dict(parse_assignment(a) for a in args.assignments)
    options = TrainOptions(preset="quick", overrides=overrides, device="cpu", out=out, seed=args.seed,
                           max_steps=args.max_steps)
    return train(registered_model("cyclegan_hair"), options)


def translate(runner: TorchRunner, graph: str, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([runner.run(graph, chunk)[0] for chunk in images.split(BATCH)])


def direction_figures(runner: TorchRunner, source: ImageSet, forward: str, backward: str,
                      to_blond: bool) -> dict[str, Any]:
    """Hair-colour hits and round-trip error of one direction on the held-out ``source`` images."""
    real = to_float(source.images, VALUE_RANGE)
    fake = translate(runner, forward, real)
    back = translate(runner, backward, fake)
    luma = hair_luma((fake + 1) / 2, source.masks)
    hits = luma > BLOND_LUMA_THRESHOLD if to_blond else luma <= BLOND_LUMA_THRESHOLD
    return {
        "images": len(source),
        "share_reaching_target_colour": float(hits.float().mean()),
        "hits": int(hits.sum()),
        "hair_luma_before": _summary(hair_luma((real + 1) / 2, source.masks)),
        "hair_luma_after": _summary(luma),
        "roundtrip_mae_01": float((back - real).abs().mean() / 2),  # [-1,1] → [0,1] units
        "non_hair_change_mae_01": non_hair_change(real, fake, source.masks),
    }


def non_hair_change(real: torch.Tensor, fake: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean absolute change outside the hair, in [0,1] units: how much of the rest of the picture moved too
    (the colour test alone would also pass a blurred face under a blob of the right colour)."""
    rest = (masks == 0).float()
    change = (fake - real).abs().mean(dim=1, keepdim=True) / 2
    return float((change * rest).sum() / rest.sum())


def _summary(values: torch.Tensor) -> dict[str, float]:
    return {"min": float(values.min()), "median": float(values.median()), "max": float(values.max())}


def originals_check(black: ImageSet, blond: ImageSet) -> dict[str, float]:
    """The colour test on the untouched held-out portraits: it must call every black one black, blond blond."""
    black_ok = hair_luma(to_float(black.images), black.masks) <= BLOND_LUMA_THRESHOLD
    blond_ok = hair_luma(to_float(blond.images), blond.masks) > BLOND_LUMA_THRESHOLD
    return {"black_classified_black": float(black_ok.float().mean()),
            "blond_classified_blond": float(blond_ok.float().mean())}


def training_figures(run: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    seconds = sum(row["seconds"] for row in rows)
    steps = rows[-1]["step"] if rows else 0
    pairs = round(sum(row["items_per_s"] * row["seconds"] for row in rows))  # the last batch of an epoch is short
    return {"epochs": len(rows), "steps": steps, "pairs": pairs, "seconds": round(seconds, 1),
            "pairs_per_s": pairs / seconds if seconds else None,
            "pairs_per_s_by_epoch": [row["items_per_s"] for row in rows],
            "last_train_metrics": rows[-1]["train"] if rows else {},
            "last_val_metrics": rows[-1]["val"] if rows else {}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    started = time.perf_counter()
    run = args.run if args.run is not None else train_quick(args)
    train_wall = time.perf_counter() - started
    model = registered_model("cyclegan_hair")
    runner = TorchRunner(model, RuntimeSource(run=run, device="cpu"))  # a GAN declares no best: its last checkpoint
    size = int(runner.config["image_size"])
    black, blond = embedded_domains(args.held_out, HELD_OUT_SEED, size)
    with torch.inference_mode():
        figures = {
            "black_to_blond": direction_figures(runner, black, "black_to_blond", "blond_to_black", to_blond=True),
            "blond_to_black": direction_figures(runner, blond, "blond_to_black", "black_to_blond", to_blond=False),
        }
        rows = roundtrip_rows(lambda graph, x: runner.run(graph, x)[0], to_float(black.images[:GRID_ROWS], VALUE_RANGE),
                              to_float(blond.images[:GRID_ROWS], VALUE_RANGE))
    grid = save_png(roundtrip_grid(rows), args.docs / "cyclegan_hair_roundtrip.png")
    arguments = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/scripts/cyclegan_hair_figures.py", *arguments])
    result = {
        "command": command, "machine": describe_machine("cpu"), "torch_threads": torch.get_num_threads(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "run": str(run), "checkpoint": str(runner.checkpoint), "preset": runner.config["preset"],
        "config": runner.config,
        "trained_here": args.run is None, "train_wall_seconds": round(train_wall, 1) if args.run is None else None,
        "held_out": {"seed": HELD_OUT_SEED, "black": len(black), "blond": len(blond), "size": size,
                     "note": "embedded portraits drawn with another seed than the training set (seed 0)"},
        "colour_test": {"rule": "blond when the mean luma of the source image's hair-mask pixels exceeds the "
                                "threshold, else black", "luma_weights": LUMA_WEIGHTS,
                        "threshold": BLOND_LUMA_THRESHOLD, "originals": originals_check(black, blond)},
        "translation": figures,
        "training": training_figures(run),
        "book_on_cuda": None,  # measured when a GPU run is done
        "figures": [str(grid.relative_to(ROOT)) if grid.is_relative_to(ROOT) else str(grid)],
    }
    zio.write_json(args.results, result)
    shares = ", ".join(f"{k} {v['share_reaching_target_colour']:.1%} (round trip MAE {v['roundtrip_mae_01']:.3f})"
                       for k, v in figures.items())
    speed = result["training"]["pairs_per_s"]
    print(f"cyclegan_hair: {shares}; training {f'{speed:.2f} pairs/s' if speed else 'speed unknown (no full epoch)'}; "
          f"wrote {args.results} and {grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
