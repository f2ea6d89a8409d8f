"""Deterministic generated data sets (digits, portraits) so every model trains with no download.

All randomness comes from numpy's PCG64 seeded by ``seed``; drawing is PIL at several times the
output size, then warped and box-filtered down, so the pixels are anti-aliased and the same
on every machine.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from zoo_core.data.cache import cache_root, read_image_set, write_image_set
from zoo_core.data.errors import DataError
from zoo_core.data.imageset import ImageSet

# Bump whenever drawing code changes, so stale caches are never served as the new data.
GENERATOR_VERSION = 3
PORTRAIT_LABELS = ("glasses", "male", "blond")

Stroke = list[tuple[float, float]]


# -- digits ------------------------------------------------------------------------------------------------------
def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 24) -> Stroke:
    """Points on an ellipse from angle ``start`` to ``end`` in degrees (y points down, 90 is the bottom)."""
    angles = np.radians(np.linspace(start, end, steps))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def _bezier(p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float], p3: tuple[float, float],
            steps: int = 16) -> Stroke:
    t = np.linspace(0.0, 1.0, steps)[:, None]
    pts = ((1 - t) ** 3 * np.array(p0) + 3 * (1 - t) ** 2 * t * np.array(p1) + 3 * (1 - t) * t ** 2 * np.array(p2)
           + t ** 3 * np.array(p3))
    return [(float(x), float(y)) for x, y in pts]


def _digit_strokes(digit: int, rng: np.random.Generator) -> list[Stroke]:
    """Strokes of one digit in a [-1,1] box (x right, y down), with jittered shape and style variants."""

    def j(value: float, spread: float = 0.06) -> float:
        return value + float(rng.normal(0.0, spread))

    variant = float(rng.random())
    if digit == 0:
        rx, ry = j(0.52, 0.08), j(0.9, 0.04)
        start = j(-100, 20)
        return [_arc(j(0, 0.03), 0, rx, ry, start, start + j(365, 8), 36)]
    if digit == 1:
        top, bottom = (j(0.12, 0.08), j(-0.9, 0.03)), (j(-0.08, 0.08), j(0.9, 0.03))
        strokes = [[top, bottom]]
        if variant < 0.45:  # the flag on a European 1
            strokes[0] = [(j(-0.35), j(-0.55)), *strokes[0]]
        if variant < 0.15:
            strokes.append([(bottom[0] - j(0.3), bottom[1]), (bottom[0] + j(0.3), bottom[1])])
        return strokes
    if digit == 2:
        cy, r = j(-0.42, 0.05), j(0.48, 0.05)
        hook = _arc(j(0, 0.04), cy, r, j(0.46, 0.05), j(195, 12), j(395, 10), 20)
        bottom_y = j(0.88, 0.03)
        if variant < 0.3:  # a loop where the diagonal meets the base
            base = [(j(-0.55), bottom_y), (j(-0.35), bottom_y - 0.15), (j(-0.45), bottom_y), (j(0.6), bottom_y)]
        else:
            base = [(j(-0.55), bottom_y), (j(0.62), bottom_y + j(0, 0.04))]
        return [[*hook, *base]]
    if digit == 3:
        top = _arc(j(0, 0.04), j(-0.45, 0.03), j(0.42, 0.05), j(0.43, 0.03), j(200, 12), 450, 20)
        mid = top[-1]
        lower_r = j(0.5, 0.05)
        bottom = _arc(mid[0] + j(0.02, 0.04), mid[1] + lower_r * 0.95, lower_r, lower_r * 0.95, 270, j(510, 12), 22)
        return [top + bottom]
    if digit == 4:
        bar_y, stem_x = j(0.3, 0.06), j(0.3, 0.06)
        if variant < 0.5:  # closed 4
            return [[(stem_x + j(-0.05), j(-0.9, 0.03)), (j(-0.6), bar_y), (j(0.6), bar_y)],
                    [(stem_x, j(-0.45, 0.1)), (stem_x + j(-0.05), j(0.9, 0.03))]]
        return [[(j(-0.45), j(-0.88, 0.03)), (j(-0.5), bar_y), (j(0.6), bar_y)],
                [(stem_x, j(-0.9, 0.03)), (stem_x + j(-0.05), j(0.9, 0.03))]]
    if digit == 5:
        r = j(0.5, 0.05)
        cy = j(0.35, 0.05)
        belly = _arc(j(0, 0.04), cy, r, j(0.48, 0.04), j(225, 10), j(505, 12), 22)
        top_y = j(-0.88, 0.03)
        return [[(j(-0.32), top_y + 0.02), *belly], [(j(-0.34), top_y), (j(0.5), top_y + j(0, 0.05))]]
    if digit == 6:
        loop_cy, lr = j(0.42, 0.04), j(0.46, 0.05)
        left = (-lr + j(0, 0.04), loop_cy)
        stem = _bezier((j(0.42), j(-0.9, 0.03)), (j(-0.05), j(-0.7)), (left[0] - 0.05, j(-0.15)), left, 14)
        loop = _arc(left[0] + lr, loop_cy, lr, j(0.44, 0.04), 180, j(-175, 10), 26)
        return [stem + loop]
    if digit == 7:
        top_y = j(-0.86, 0.03)
        corner = (j(0.55), top_y)
        strokes = [[(j(-0.55), top_y + j(0, 0.05)), corner, (j(-0.1, 0.12), j(0.9, 0.03))]]
        if variant < 0.25:  # the crossed 7
            strokes.append([(j(-0.25), j(0.05)), (j(0.45), j(0.0))])
        return strokes
    if digit == 8:
        top_r, bot_r = j(0.38, 0.04), j(0.46, 0.04)
        top = _arc(j(0.03, 0.03), -0.92 + top_r, top_r, top_r, 90, 450, 26)
        bottom = _arc(j(-0.02, 0.03), 0.9 - bot_r, bot_r, bot_r * j(1.0, 0.05), -90, 270, 28)
        return [top, bottom]
    # 9: a loop on top and a tail going down
    loop_cy, lr = j(-0.42, 0.04), j(0.45, 0.04)
    cx = j(0.0, 0.04)
    loop = _arc(cx, loop_cy, lr, j(0.44, 0.04), 5, 365, 26)
    right = loop[0]
    if variant < 0.5:
        tail = [(right[0], right[1]), (right[0] - j(0.15, 0.08), j(0.9, 0.03))]
    else:
        tail = _bezier(right, (right[0] + 0.05, 0.2), (right[0] - 0.1, 0.7), (j(-0.2, 0.1), j(0.9, 0.03)), 10)
    return [loop, tail]


def _draw_digit(digit: int, rng: np.random.Generator, canvas: int) -> np.ndarray:
    """One digit on a black canvas, white strokes of random width with round caps and joints."""
    image = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(image)
    # MNIST fits each digit in a 20x20 box inside 28x28: the [-1,1] box maps to the middle 20/28 of the canvas.
    half = canvas * 10.0 / 28.0
    centre = canvas / 2.0
    width = max(1, round(canvas / 28.0 * float(rng.uniform(1.8, 3.6))))
    for stroke in _digit_strokes(digit, rng):
        points = [(centre + x * half, centre + y * half) for x, y in stroke]
        draw.line(points, fill=255, width=width, joint="curve")
        radius = (width - 1) / 2.0
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(image)


def _warp_grids(rng: np.random.Generator, count: int, canvas: int) -> torch.Tensor:
    """Sampling grids [count, canvas, canvas, 2]: a random affine map plus a smooth elastic displacement."""
    angle = np.radians(rng.uniform(-14.0, 14.0, count))
    scale = rng.uniform(0.9, 1.15, count)
    aspect = rng.uniform(0.8, 1.1, count)
    shear = rng.uniform(-0.3, 0.3, count)
    shift = rng.uniform(-0.06, 0.06, (count, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
    stretch = np.zeros((count, 2, 2))
    stretch[:, 0, 0], stretch[:, 0, 1], stretch[:, 1, 1] = scale * aspect, scale * aspect * shear, scale
    # theta maps output to input coordinates, so it is the inverse of the forward (stretch, shear, rotate) map.
    forward = rotate @ stretch
    theta = np.concatenate([np.linalg.inv(forward), -shift[:, :, None]], axis=2)
    coarse = rng.normal(0.0, 0.035, (count, 2, 5, 5))
    theta_t = torch.from_numpy(theta.astype(np.float32))
    grid = F.affine_grid(theta_t, [count, 1, canvas, canvas], align_corners=False)
    elastic = F.interpolate(torch.from_numpy(coarse.astype(np.float32)), size=(canvas, canvas), mode="bicubic",
                            align_corners=True)
    return grid + elastic.permute(0, 2, 3, 1)


def make_digits(n: int, seed: int, size: int = 28) -> ImageSet:
    """``n`` handwritten-style digits, white on black like MNIST, uint8 [n,1,size,size], labels {"digit"}."""
    if n < 0 or size < 8:
        raise DataError(f"make_digits needs n >= 0 and size >= 8, got n={n}, size={size}")
    rng = np.random.Generator(np.random.PCG64(seed))
    # Balanced labels: each digit n//10 or n//10+1 times, in a seeded order.
    digits = rng.permutation(np.arange(n) % 10)
    factor = 3
    canvas = size * factor
    strokes_rng = np.random.Generator(np.random.PCG64([seed, 1]))
    warp_rng = np.random.Generator(np.random.PCG64([seed, 2]))
    out = torch.empty((n, 1, size, size), dtype=torch.uint8)
    chunk = 500
    for begin in range(0, n, chunk):
        end = min(n, begin + chunk)
        drawn = np.stack([_draw_digit(int(d), strokes_rng, canvas) for d in digits[begin:end]])
        batch = torch.from_numpy(drawn).unsqueeze(1).to(torch.float32)
        warped = F.grid_sample(batch, _warp_grids(warp_rng, end - begin, canvas), mode="bilinear",
                               padding_mode="zeros", align_corners=False)
        small = F.avg_pool2d(warped, factor)  # box filter: the anti-aliasing step
        out[begin:end] = small.round().clamp(0, 255).to(torch.uint8)
    return ImageSet(images=out, labels={"digit": torch.from_numpy(digits.astype(np.int64))},
                    classes={"digit": [str(d) for d in range(10)]})


# -- portraits ---------------------------------------------------------------------------------------------------
Colour = tuple[int, int, int]
Strands = list[tuple[tuple[float, ...], float, float]]
_SKIN = np.array([(246, 214, 192), (232, 190, 160), (205, 150, 112), (170, 112, 78), (120, 78, 52), (84, 54, 38)])
_BLOND = np.array([(246, 226, 150), (236, 204, 112), (222, 184, 96), (250, 234, 176), (214, 170, 80)])
_BLACK = np.array([(18, 16, 15), (30, 24, 21), (12, 12, 17), (42, 32, 27), (24, 22, 26)])
_FRAMES = np.array([(15, 15, 15), (50, 30, 20), (110, 20, 30), (20, 30, 80), (60, 60, 65)])
_LENS = np.array([(40, 40, 45), (70, 50, 35), (35, 55, 45), (45, 45, 75)])
_IRIS = np.array([(70, 45, 25), (40, 90, 140), (60, 110, 60), (110, 80, 40), (30, 25, 20)])


def _colour(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> Colour:
    """A random blend of two neighbouring palette entries plus a little noise."""
    position = rng.uniform(0, len(palette) - 1)
    low = int(position)
    high = min(low + 1, len(palette) - 1)
    blend = palette[low] + (palette[high] - palette[low]) * (position - low) + rng.normal(0, jitter, 3)
    return _clip(blend)


def _clip(value: np.ndarray) -> Colour:
    r, g, b = np.clip(np.round(value), 0, 255).astype(int).tolist()
    return (r, g, b)


def _shade(colour: Colour, factor: float) -> Colour:
    return _clip(np.array(colour, dtype=float) * factor)


class _Portrait:
    """One portrait drawn on a canvas, with the hair mask kept in step with every layer."""

    def __init__(self, canvas: int, rng: np.random.Generator, background: np.ndarray) -> None:
        self.w = canvas
        self.rng = rng
        self.image = Image.fromarray(background)
        self.draw = ImageDraw.Draw(self.image)
        self.mask = Image.new("L", (canvas, canvas), 0)
        self.mask_draw = ImageDraw.Draw(self.mask)

    def occlude(self, shape: str, box: tuple[float, ...] | list[tuple[float, float]], fill: Colour | None,
                outline: Colour | None = None, **kwargs: object) -> None:
        """Draw an opaque shape and clear the hair mask under it (it hides whatever hair is behind)."""
        extra = {} if outline is None else {"outline": outline}
        getattr(self.draw, shape)(box, fill=fill, **extra, **kwargs)
        extra = {} if outline is None else {"outline": 0}
        getattr(self.mask_draw, shape)(box, fill=None if fill is None else 0, **extra, **kwargs)

    def tint(self, shape: str, box: tuple[float, ...], colour: Colour, opacity: float, **kwargs: object) -> None:
        """Lay a translucent colour over a shape, as a tinted lens does, and clear the hair mask under it."""
        alpha = Image.new("L", (self.w, self.w), 0)
        getattr(ImageDraw.Draw(alpha), shape)(box, fill=round(255 * opacity), **kwargs)
        self.image.paste(Image.new("RGB", (self.w, self.w), colour), (0, 0), alpha)
        getattr(self.mask_draw, shape)(box, fill=0, **kwargs)

    def hair(self, shape: Image.Image, colour: Colour, strands: Strands,
             head: bool = True) -> None:
        """Paint hair where ``shape`` is set: the colour with darker and lighter strands; head hair joins the hair
        mask, other hair (a beard) hides the mask under it."""
        layer = Image.new("RGB", (self.w, self.w), colour)
        layer_draw = ImageDraw.Draw(layer)
        width = max(1, round(self.w / 96))
        for box, start, end in strands:
            tone = _shade(colour, float(self.rng.uniform(0.7, 1.25)))
            layer_draw.arc(box, start, end, fill=tone, width=width)
        self.image.paste(layer, (0, 0), shape)
        self.mask.paste(255 if head else 0, (0, 0), shape)


@dataclass
class _Face:
    """Where one portrait's parts go, filled in as the steps of :func:`_draw_portrait` draw them (each step draws
    from the random generator in a fixed order, so a seed gives the same portrait in every release)."""

    canvas: int
    male: bool
    cx: float
    cy: float
    fw: float  # half width of the face
    fh: float  # half height
    skin: Colour
    hair_colour: Colour
    line: int
    shoulder_top: float = 0.0
    style: int = 0  # 0 short, 1 long, 2 bob
    top: float = 0.0  # where the hair starts above the head
    ear_y: float = 0.0
    eye_y: float = 0.0
    eye_dx: float = 0.0
    ew: float = 0.0
    eh: float = 0.0
    brow_lift: float = 0.0
    mouth_y: float = 0.0
    mw: float = 0.0


def _strands(rng: np.random.Generator, x0: float, y0: float, x1: float, y1: float, count: int) -> Strands:
    """``count`` arcs in the box, the darker and lighter strands :meth:`_Portrait.hair` paints."""
    u = rng.uniform
    out = []
    for _ in range(count):
        rx, ry = u(0.3, 0.9) * (x1 - x0) / 2, u(0.4, 1.0) * (y1 - y0) / 2
        mx, my = u(x0 + rx * 0.5, x1 - rx * 0.5), u(y0, y1)
        start = u(180, 300)
        out.append(((mx - rx, my - ry, mx + rx, my + ry), start, start + u(40, 120)))
    return out


def _draw_portrait(canvas: int, rng: np.random.Generator, glasses: bool, male: bool, blond: bool,
                   background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One portrait and its hair mask, drawn back to front."""
    w = float(canvas)
    p = _Portrait(canvas, rng, background)
    u = rng.uniform
    cx, cy = w * (0.5 + rng.normal(0, 0.015)), w * u(0.5, 0.55)
    fw = w * (u(0.185, 0.215) if male else u(0.165, 0.195))
    fh = w * u(0.235, 0.265)
    skin = _colour(rng, _SKIN, 6)
    hair_colour = _colour(rng, _BLOND, 8) if blond else _colour(rng, _BLACK, 5)
    face = _Face(canvas, male, cx, cy, fw, fh, skin, hair_colour, max(1, round(w / 96)))
    _draw_clothes(p, face)
    _draw_back_hair(p, face)
    _draw_head(p, face)
    _draw_features(p, face)
    _draw_front_hair(p, face)
    if male:
        _draw_beard(p, face)
    if glasses:
        _draw_glasses(p, face)
    return np.asarray(p.image), np.asarray(p.mask)


def _draw_clothes(p: _Portrait, f: _Face) -> None:
    """Clothes and shoulders, below the head."""
    u = p.rng.uniform
    clothes = _clip(p.rng.uniform(30, 220, 3))
    f.shoulder_top = f.cy + f.fh * u(1.05, 1.25)
    w = float(f.canvas)
    p.draw.ellipse((f.cx - w * u(0.36, 0.46), f.shoulder_top, f.cx + w * u(0.36, 0.46), f.shoulder_top + w * 0.7),
                   fill=clothes)


def _draw_back_hair(p: _Portrait, f: _Face) -> None:
    """Hair behind the head: short, long or a bob, for men and women alike (the male attribute is the beard)."""
    u, cx, cy, fw, fh = p.rng.uniform, f.cx, f.cy, f.fw, f.fh
    f.style = int(p.rng.integers(0, 3))
    back = Image.new("L", (f.canvas, f.canvas), 0)
    back_draw = ImageDraw.Draw(back)
    f.top = cy - fh * u(1.12, 1.2)
    if f.style == 0:  # short: a close cap
        back_draw.ellipse((cx - fw * 1.08, f.top, cx + fw * 1.08, cy + fh * 0.25), fill=255)
    elif f.style == 1:  # long hair to the shoulders or past them
        reach = cy + fh * u(1.3, 2.0)
        side = fw * u(1.25, 1.45)
        back_draw.ellipse((cx - side, f.top, cx + side, cy + fh * 0.6), fill=255)
        back_draw.rounded_rectangle((cx - side, cy - fh * 0.2, cx + side, reach), radius=fw * 0.5, fill=255)
    else:  # bob: chin length, blunt cut
        side = fw * u(1.25, 1.4)
        back_draw.ellipse((cx - side, f.top, cx + side, cy + fh * 1.2), fill=255)
        back_draw.rectangle((0, cy + fh * u(0.55, 0.8), f.canvas, f.canvas), fill=0)
    p.hair(back, f.hair_colour, _strands(p.rng, cx - fw * 1.4, f.top, cx + fw * 1.4, cy + fh, 10))


def _draw_head(p: _Portrait, f: _Face) -> None:
    """Neck, ears and face; they hide the hair behind them."""
    u, cx, cy, fw, fh, skin = p.rng.uniform, f.cx, f.cy, f.fw, f.fh, f.skin
    p.occlude("rectangle", (cx - fw * 0.42, cy + fh * 0.3, cx + fw * 0.42, f.shoulder_top + fh * 0.15),
              _shade(skin, 0.9))
    f.ear_y = cy - fh * u(0.05, 0.12)
    for sign in (-1, 1):
        ex = cx + sign * fw * 0.97
        p.occlude("ellipse", (ex - fw * 0.13, f.ear_y - fh * 0.16, ex + fw * 0.13, f.ear_y + fh * 0.16),
                  _shade(skin, 0.95))
    p.occlude("ellipse", (cx - fw, cy - fh, cx + fw, cy + fh), skin)
    if f.male:  # a broader jaw
        p.occlude("rounded_rectangle", (cx - fw * 0.9, cy, cx + fw * 0.9, cy + fh * 0.93), skin, radius=fw * 0.55)


def _draw_features(p: _Portrait, f: _Face) -> None:
    """Eyes, brows, nose and mouth."""
    u, rng, cx, cy, fw, fh, line = p.rng.uniform, p.rng, f.cx, f.cy, f.fw, f.fh, f.line
    f.eye_y = eye_y = cy - fh * u(0.02, 0.12)
    f.eye_dx = fw * u(0.36, 0.44)
    f.ew, f.eh = ew, eh = fw * u(0.14, 0.19), fh * u(0.06, 0.08)
    iris = _colour(rng, _IRIS, 8)
    brow = _clip(np.array(f.hair_colour) * 0.55 + np.array(f.skin) * 0.15)
    f.brow_lift = fh * u(0.14, 0.2)
    for sign in (-1, 1):
        ex = cx + sign * f.eye_dx
        p.draw.ellipse((ex - ew, eye_y - eh, ex + ew, eye_y + eh), fill=(245, 245, 240))
        r = eh * 0.95
        p.draw.ellipse((ex - r, eye_y - r, ex + r, eye_y + r), fill=iris)
        p.draw.ellipse((ex - r * 0.45, eye_y - r * 0.45, ex + r * 0.45, eye_y + r * 0.45), fill=(10, 10, 10))
        if not f.male:  # lashes: a dark upper lid
            p.draw.arc((ex - ew, eye_y - eh, ex + ew, eye_y + eh), 190, 350, fill=(20, 15, 15), width=line * 2)
        by = eye_y - f.brow_lift
        p.draw.line([(ex - sign * ew * 0.9, by + fh * 0.02), (ex + sign * ew * 1.1, by - fh * 0.02)], fill=brow,
                    width=line * (3 if f.male else 2))
    nose_y = cy + fh * u(0.22, 0.32)
    p.draw.arc((cx - fw * 0.12, nose_y - fh * 0.08, cx + fw * 0.12, nose_y + fh * 0.04), 20, 160,
               fill=_shade(f.skin, 0.7), width=line * 2)
    f.mouth_y = cy + fh * u(0.5, 0.6)
    f.mw = mw = fw * u(0.28, 0.42)
    lips = _clip(np.array((200, 60, 70)) * 0.8 + np.array(f.skin) * 0.2) if not f.male else _shade(f.skin, 0.72)
    p.draw.chord((cx - mw, f.mouth_y - fh * 0.1, cx + mw, f.mouth_y + fh * u(0.06, 0.14)), 0, 180, fill=lips)


def _draw_front_hair(p: _Portrait, f: _Face) -> None:
    """Hair in front: a cap with a hairline over short hair, a frame round the face with a fringe or parting over
    long hair and bobs."""
    u, rng, cx, cy, fw, fh, top = p.rng.uniform, p.rng, f.cx, f.cy, f.fw, f.fh, f.top
    front = Image.new("L", (f.canvas, f.canvas), 0)
    front_draw = ImageDraw.Draw(front)
    if f.style == 0:
        cut = int(rng.integers(0, 3))
        height = u(1.15, 1.35) if cut == 1 else u(1.08, 1.16)  # cut 1: a quiff
        front_draw.ellipse((cx - fw * 1.1, cy - fh * height, cx + fw * 1.1, cy + fh * 0.3), fill=255)
        hairline = cy - fh * u(0.5, 0.65)
        front_draw.ellipse((cx - fw * 0.95, hairline, cx + fw * 0.95, cy + fh * 2.2), fill=0)
        if cut == 2:  # side parting swept across
            front_draw.polygon([(cx - fw * 0.95, hairline + fh * 0.1), (cx + fw * 0.7, hairline - fh * 0.05),
                                (cx + fw * 0.95, hairline + fh * 0.2)], fill=255)
    else:
        side = fw * u(1.12, 1.25)
        front_draw.ellipse((cx - side, top, cx + side, cy + fh * u(0.5, 0.9)), fill=255)
        fringe = f.eye_y - f.brow_lift - fh * u(0.08, 0.2)
        if rng.random() < 0.5:  # a straight fringe
            front_draw.rectangle((cx - fw * 0.82, fringe, cx + fw * 0.82, cy + fh * 2), fill=0)
        else:  # a side parting: a high forehead with a lock swept down to one side
            front_draw.ellipse((cx - fw * 0.85, fringe - fh * 0.35, cx + fw * 0.85, cy + fh * 2.2), fill=0)
            sweep = 1 if rng.random() < 0.5 else -1
            part = cx - sweep * fw * u(0.15, 0.4)
            front_draw.polygon([(part, top + fh * 0.1), (part + sweep * fw * 0.5, top + fh * 0.1),
                                (cx + sweep * fw * 0.95, fringe + fh * u(0.1, 0.3)),
                                (cx + sweep * fw * 0.6, fringe + fh * 0.05)], fill=255)
    p.hair(front, f.hair_colour, _strands(rng, cx - fw * 1.2, top, cx + fw * 1.2, cy, 8))


def _draw_beard(p: _Portrait, f: _Face) -> None:
    """A dark full beard and moustache: the male attribute's sign, on every man so that it survives the averaging
    of encodings (a mean of goatees, moustaches and bare chins reads as neither). Facial hair, not head hair: it
    stays out of the hair mask, so recolouring hair leaves it alone."""
    u, cx, cy, fw, fh, mw, mouth_y = p.rng.uniform, f.cx, f.cy, f.fw, f.fh, f.mw, f.mouth_y
    beard = Image.new("L", (f.canvas, f.canvas), 0)
    beard_draw = ImageDraw.Draw(beard)
    cheek = u(0.2, 0.6)  # how far up the cheeks it grows
    beard_draw.ellipse((cx - fw * 0.99, cy - fh * 0.9, cx + fw * 0.99, cy + fh * 1.08), fill=255)
    beard_draw.ellipse((cx - fw * 0.92, cy - fh * 1.6, cx + fw * 0.92, cy + fh * cheek), fill=0)
    beard_draw.ellipse((cx - mw * 1.1, mouth_y - fh * 0.1, cx + mw * 1.1, cy + fh * 1.06), fill=255)
    moustache = fh * u(0.07, 0.11)
    beard_draw.rounded_rectangle((cx - mw * 1.05, mouth_y - fh * 0.12 - moustache, cx + mw * 1.05,
                                  mouth_y - fh * 0.08), radius=moustache / 2, fill=255)
    beard_draw.chord((cx - mw * 0.85, mouth_y - fh * 0.06, cx + mw * 0.85, mouth_y + fh * 0.1), 0, 180, fill=0)
    beard_colour = _clip(np.array(f.hair_colour) * 0.3 + 12)
    p.hair(beard, beard_colour, _strands(p.rng, cx - fw, mouth_y - fh * 0.2, cx + fw, cy + fh, 6), head=False)


def _draw_glasses(p: _Portrait, f: _Face) -> None:
    """Tinted lenses in thick frames over both eyes, a bridge and the arms to the ears. Bold on purpose: frames a
    pixel wide at 64² are below what the quick VAE reconstructs, so no model could carry them."""
    u, rng, cx, fw, eye_y, eye_dx = p.rng.uniform, p.rng, f.cx, f.fw, f.eye_y, f.eye_dx
    frame = _colour(rng, _FRAMES, 6)
    thick = max(2, round(float(f.canvas) * u(0.028, 0.04)))
    lens_w, lens_h = f.ew * u(1.5, 1.75), f.eh * u(2.8, 3.4)
    lens, opacity = _colour(rng, _LENS, 6), u(0.4, 0.6)
    round_lens = rng.random() < 0.5
    for sign in (-1, 1):
        ex = cx + sign * eye_dx
        box = (ex - lens_w, eye_y - lens_h, ex + lens_w, eye_y + lens_h)
        if round_lens:
            p.tint("ellipse", box, lens, opacity)
            p.occlude("ellipse", box, None, outline=frame, width=thick)
        else:
            p.tint("rounded_rectangle", box, lens, opacity, radius=lens_h * 0.5)
            p.occlude("rounded_rectangle", box, None, radius=lens_h * 0.5, outline=frame, width=thick)
        p.occlude("line", [(ex + sign * lens_w, eye_y - lens_h * 0.3), (cx + sign * fw * 0.98, f.ear_y)], frame,
                  width=thick)
    p.occlude("line", [(cx - eye_dx + lens_w, eye_y - lens_h * 0.2), (cx + eye_dx - lens_w, eye_y - lens_h * 0.2)],
              frame, width=thick)


def _backgrounds(rng: np.random.Generator, canvas: int) -> Callable[[], np.ndarray]:
    ramp = np.linspace(0.0, 1.0, canvas, dtype=np.float32)[:, None, None]

    def make() -> np.ndarray:
        top, bottom = rng.uniform(40, 235, 3), rng.uniform(40, 235, 3)
        column = top * (1 - ramp) + bottom * ramp  # a vertical gradient
        return np.ascontiguousarray(np.broadcast_to(column, (canvas, canvas, 3)).round().astype(np.uint8))

    return make


def _portrait_factor(size: int) -> int:
    """Supersampling factor: enough for smooth edges, without drawing huge canvases at 256."""
    return 4 if size <= 48 else 3 if size <= 128 else 2


def make_portraits(n: int, seed: int, size: int = 64) -> ImageSet:
    """``n`` drawn portraits, RGB uint8 [n,3,size,size], labels glasses/male/blond (0/1), hair masks [n,1,size,size]."""
    if n < 0 or size < 16:
        raise DataError(f"make_portraits needs n >= 0 and size >= 16, got n={n}, size={size}")
    rng = np.random.Generator(np.random.PCG64(seed))
    # The 8 attribute combinations equally often: each attribute balanced and independent of the others.
    combos = rng.permutation(np.arange(n) % 8)
    attributes = {name: (combos >> bit) & 1 for bit, name in enumerate(PORTRAIT_LABELS)}
    factor = _portrait_factor(size)
    canvas = size * factor
    draw_rng = np.random.Generator(np.random.PCG64([seed, 3]))
    background = _backgrounds(draw_rng, canvas)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        rgb, mask = _draw_portrait(canvas, draw_rng, bool(attributes["glasses"][i]), bool(attributes["male"][i]),
                                   bool(attributes["blond"][i]), background())
        images[i] = np.asarray(Image.fromarray(rgb).reduce(factor))
        masks[i] = np.asarray(Image.fromarray(mask).reduce(factor)) >= 128
    return ImageSet(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        labels={name: torch.from_numpy(values.astype(np.int64)) for name, values in attributes.items()},
        masks=torch.from_numpy(masks).unsqueeze(1),
        classes={name: ["no", "yes"] for name in PORTRAIT_LABELS},
    )


# -- cache -------------------------------------------------------------------------------------------------------
GENERATORS: dict[str, Callable[[int, int, int], ImageSet]] = {"digits": make_digits, "portraits": make_portraits}


def cache_dir(kind: str, n: int, seed: int, size: int) -> Path:
    """The folder holding one generated set; the version in its name retires caches of older drawing code."""
    return cache_root() / "procedural" / f"{kind}-v{GENERATOR_VERSION}" / f"n{n}-seed{seed}-size{size}"


def cached(kind: str, n: int, seed: int, size: int) -> ImageSet:
    """make_digits / make_portraits(n, seed, size), generated once and then read from the user cache."""
    if kind not in GENERATORS:
        raise DataError(f"unknown procedural data set {kind!r}; choose one of: {', '.join(GENERATORS)}")
    folder = cache_dir(kind, n, seed, size)
    if (folder / "meta.json").is_file():
        try:
            return read_image_set(folder, GENERATOR_VERSION)
        except (OSError, ValueError, KeyError, TypeError, EOFError):  # a damaged cache is rebuilt, never fatal
            pass
    data = GENERATORS[kind](n, seed, size)
    try:
        write_image_set(folder, data, GENERATOR_VERSION)
    except OSError as error:  # a read-only or full cache disk only costs the next run a regeneration
        print(f"zoo: could not cache {kind} data in {folder} ({error}); continuing without the cache",
              file=sys.stderr)
    return data
