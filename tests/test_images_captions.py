"""Caption pixels: every glyph a caption uses is drawn by the shipped font, never as its missing-glyph box."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from zoo_core import images
from zoo_core.images import CAPTION_BAND, CAPTION_FONT, caption_grid

MISSING = "\ue000"  # a private-use code point: every font draws its glyph 0 (the box) for it
ROOT = Path(__file__).resolve().parents[1]


def band(text: str, width: int = 160) -> np.ndarray:
    """The caption band caption_grid draws above one white column, as a dark-ink mask [rows, columns]."""
    grid = np.full((8, width, 3), 255, np.uint8)
    captioned = caption_grid(grid, columns=[text])
    return captioned[:CAPTION_BAND].min(axis=2) < 230  # any visible ink: the glyphs are anti-aliased


def band_drawn_raw(text: str, width: int = 160) -> np.ndarray:
    """The same band drawn with the same font but no glyph check: what a missing glyph looks like there."""
    font = images._font()
    canvas = Image.new("RGB", (width, CAPTION_BAND), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text(((width - draw.textlength(text, font=font)) / 2, 3), text, fill="black", font=font)
    return np.asarray(canvas).min(axis=2) < 230  # any visible ink: the glyphs are anti-aliased


def first_glyph(ink: np.ndarray) -> np.ndarray:
    """The ink of the leftmost glyph: columns from the first inked one to the first blank column after it."""
    inked = ink.any(axis=0)
    start = int(np.argmax(inked))
    end = start
    while end < len(inked) and inked[end]:
        end += 1
    return ink[:, start:end]


def test_the_arrow_of_the_roundtrip_captions_is_an_arrow_not_the_missing_glyph_box() -> None:
    arrow = first_glyph(band("→ blond"))
    box = first_glyph(band_drawn_raw(MISSING + " blond"))
    assert arrow.shape != box.shape or not np.array_equal(arrow, box)
    # an arrow is a shaft: its first column holds one or two pixels of ink; a box's first column is its left side
    assert arrow[:, 0].sum() <= 2 < box[:, 0].sum(), (arrow.astype(int), box.astype(int))
    assert arrow.shape[1] >= 6 and (arrow.sum(axis=0) >= 1).all()  # one connected stroke, several pixels wide


def test_every_character_of_the_fixed_captions_has_a_glyph() -> None:
    for caption in ("black", "→ blond", "→ black again", "blond", "→ black", "→ blond again", "original", "face",
                    "decoded", "A", "B", "w=0.25", "glasses&male", "- glasses&~male", "+ [a.png,b.png]", "= result",
                    "…"):
        assert all(images._has_glyph(char) for char in caption), caption


def test_a_character_the_font_lacks_is_a_question_mark_not_a_box() -> None:
    assert not images._has_glyph(MISSING) and not images._has_glyph("漢")
    assert np.array_equal(band("漢.png"), band("?.png"))


def test_the_font_ships_inside_zoo_core_with_its_licence() -> None:
    font = resources.files("zoo_core").joinpath(CAPTION_FONT)
    assert font.is_file() and font.read_bytes()[:4] == b"\x00\x01\x00\x00"  # a TrueType file
    licence = resources.files("zoo_core").joinpath("fonts/OFL.txt").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE" in licence and "Liberation" in licence
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "fonts/*" in project["tool"]["setuptools"]["package-data"]["zoo_core"]
    assert "zoo_core/fonts/OFL.txt" in project["project"]["license-files"]


def test_a_grid_without_captions_is_left_as_it_was() -> None:
    grid = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(caption_grid(grid), grid)
