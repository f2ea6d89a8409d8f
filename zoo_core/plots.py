"""Loss curves drawn with PIL, so the core needs no plotting library."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from zoo_core.images import save_png

# matplotlib's tab10: ten colours that stay apart, enough for a GAN's train and validation terms.
COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def line_chart(series: Mapping[str, Sequence[float]], path: str | os.PathLike[str], title: str = "",
               x_label: str = "epoch", size: tuple[int, int] = (720, 420), log_y: bool = False) -> None:
    """Plot named series against 1..n with axes, ticks and a legend; written atomically as PNG."""
    width, height = size
    left, right, top, bottom = 70, 20, 36, 46
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = {k: [float(v) for v in vals] for k, vals in series.items() if len(vals)}
    values = [v for vals in points.values() for v in vals if np.isfinite(v) and (v > 0 or not log_y)]
    if not values:
        values = [0.0, 1.0]
    transform = np.log10 if log_y else (lambda v: v)
    low, high = float(transform(min(values))), float(transform(max(values)))
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    count = max(len(v) for v in points.values()) if points else 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def position(index: int, value: float) -> tuple[float, float]:
        x = left + (index / max(count - 1, 1)) * plot_w
        y = top + (1 - (float(transform(value)) - low) / (high - low)) * plot_h
        return x, y

    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=(80, 80, 80))
    for tick in range(5):
        fraction = tick / 4
        y = top + (1 - fraction) * plot_h
        value = low + fraction * (high - low)
        label = f"{10 ** value:.3g}" if log_y else f"{value:.4g}"
        draw.line([left - 4, y, left, y], fill=(80, 80, 80))
        draw.text((4, y - 6), label, fill="black")
    for tick in sorted({0, count - 1, (count - 1) // 2}):
        x = left + (tick / max(count - 1, 1)) * plot_w
        draw.line([x, top + plot_h, x, top + plot_h + 4], fill=(80, 80, 80))
        draw.text((x - 4, top + plot_h + 8), str(tick + 1), fill="black")
    draw.text((left + plot_w // 2 - 20, height - 18), x_label, fill="black")
    draw.text((left, 10), title, fill="black")
    for number, (name, vals) in enumerate(points.items()):
        colour = COLOURS[number % len(COLOURS)]
        coords = [position(i, v) for i, v in enumerate(vals) if np.isfinite(v) and (v > 0 or not log_y)]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=2)
        for x, y in coords:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        legend_y = top + 6 + 16 * number
        draw.line([left + plot_w - 150, legend_y + 6, left + plot_w - 130, legend_y + 6], fill=colour, width=3)
        draw.text((left + plot_w - 124, legend_y), name, fill="black")
    save_png(np.asarray(image), path)


def metric_series(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Every metric a recipe logged, per epoch, from metrics.jsonl rows: ``train loss``, ``train d_loss``,
    ``val loss`` ... in the order they first appear (a metric missing from an epoch is NaN there)."""
    rows = list(rows)
    names: list[str] = []
    for row in rows:
        for part in ("train", "val"):
            names += [f"{part} {k}" for k in (row.get(part) or {}) if f"{part} {k}" not in names]
    series: dict[str, list[float]] = {name: [] for name in names}
    for row in rows:
        for name in names:
            part, _, key = name.partition(" ")
            value = (row.get(part) or {}).get(key)
            series[name].append(float(value) if isinstance(value, int | float) else float("nan"))
    return series


def plot_metrics(metrics_file: str | os.PathLike[str], path: str | os.PathLike[str], title: str = "") -> bool:
    """Draw every metric of a run's metrics.jsonl into ``path`` (loss.png); False when there is nothing yet."""
    source = Path(metrics_file)
    if not source.exists():
        return False
    from zoo_core.validate import read_metrics

    series = metric_series(read_metrics(source))  # a torn last line (a crash mid-append) is skipped
    if not series:
        return False
    finite = [v for vals in series.values() for v in vals if np.isfinite(v)]
    line_chart(series, path, title=title, log_y=bool(finite) and all(v > 0 for v in finite))
    return True
