"""`zoo generate testplugin_tiny reconstruct`: written against the graphs, so it runs on any runtime."""

from __future__ import annotations

from zoo_core.images import save_png, stack_rows
from zoo_core.tasks import TaskContext
from zoo_testplugin.recipe import rectangles


def reconstruct(ctx: TaskContext, count: int) -> None:
    images = rectangles(count, int(ctx.config["image_size"]), seed=ctx.seed).float() / 255.0
    (codes,) = ctx.run("encode", images)
    (decoded,) = ctx.run("decode", codes)
    path = save_png(stack_rows([images, decoded]), ctx.output("reconstruct.png"))
    ctx.done(path, f"{count} reconstructions")
