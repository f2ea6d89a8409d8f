"""loss.png draws every metric a recipe logs (a GAN's d_loss and g_loss too), not only `loss`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from zoo_core.plots import COLOURS, metric_series, plot_metrics

GAN_ROWS = [
    {"epoch": 1, "train": {"d_loss": 0.7, "g_loss": 2.1}, "val": {}},
    {"epoch": 2, "train": {"d_loss": 0.6, "g_loss": 1.8, "g_cycle": 0.9}, "val": {"loss": 1.5}},
]


def test_every_logged_metric_becomes_a_series_in_first_seen_order() -> None:
    series = metric_series(GAN_ROWS)
    assert list(series) == ["train d_loss", "train g_loss", "train g_cycle", "val loss"]
    assert series["train d_loss"] == [0.7, 0.6]
    assert math.isnan(series["train g_cycle"][0]) and series["train g_cycle"][1] == 0.9
    assert math.isnan(series["val loss"][0])


def test_loss_png_shows_a_line_per_metric(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(row) + "\n" for row in GAN_ROWS))
    assert plot_metrics(metrics, tmp_path / "loss.png", title="gan (quick)")
    with Image.open(tmp_path / "loss.png") as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for colour in COLOURS[:4]:  # one legend swatch and points per series
        assert (pixels == colour).all(axis=1).sum() > 20, colour
    assert not (pixels == COLOURS[4]).all(axis=1).any()


def test_no_metrics_yet_draws_nothing(tmp_path: Path) -> None:
    assert not plot_metrics(tmp_path / "metrics.jsonl", tmp_path / "loss.png")
    (tmp_path / "metrics.jsonl").write_text("")
    assert not plot_metrics(tmp_path / "metrics.jsonl", tmp_path / "loss.png")
    assert not (tmp_path / "loss.png").exists()
