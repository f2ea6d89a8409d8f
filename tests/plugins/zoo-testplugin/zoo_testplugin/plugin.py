"""Imported on every `zoo` start: declares the model spec and a command; imports no torch."""

from __future__ import annotations

from collections.abc import Callable

import click

from zoo_core import hookimpl
from zoo_core.spec import DataLayout, GraphSpec, ModelSpec, NetworkSpec, Preset, TaskSpec, TensorSpec

MODEL_NAME = "testplugin_tiny"
IMAGE = TensorSpec("image", ("N", 1, "image_size", "image_size"), value_range=(0.0, 1.0), layout="NCHW")
LATENT = TensorSpec("z", ("N", "latent_dim"), layout="NC")

SPEC = ModelSpec(
    name=MODEL_NAME,
    summary="Tiny conv autoencoder on random rectangles (test fixture)",
    recipe="zoo_testplugin.recipe:TinyRecipe",
    networks=(
        NetworkSpec("encoder", "2 strided convs and a linear layer to z", params=17_648),
        NetworkSpec("decoder", "a linear layer and 2 transposed convs to the image", params=19_593),
    ),
    graphs=(
        GraphSpec("encode", "image to latent code", inputs=(IMAGE,), outputs=(LATENT,), gflops_per_item=0.000217088),
        GraphSpec("decode", "latent code to image", inputs=(LATENT,), outputs=(IMAGE,), gflops_per_item=0.000360448),
    ),
    presets=(
        Preset("quick", "seconds on a CPU", {"image_size": 16, "channels": 4, "latent_dim": 8, "items": 32,
                                              "val_fraction": 0.25, "batch_size": 8, "epochs": 1, "lr": 1e-3}),
        Preset("book", "the card's size", {"image_size": 32, "channels": 8, "latent_dim": 16, "items": 256,
                                           "val_fraction": 0.125, "batch_size": 32, "epochs": 5, "lr": 1e-3}),
    ),
    tasks=(
        TaskSpec("reconstruct", "encode and decode random rectangles; writes a grid PNG", ("encode", "decode"),
                 function="zoo_testplugin.tasks:reconstruct",
                 params=(click.Option(["--count"], type=int, default=8, show_default=True),)),
    ),
    data_layouts=(DataLayout("embedded", "random rectangles generated in code (no --data)"),),
    source="zoo test suite",
    tags=("test", "autoencoder"),
)


@hookimpl
def zoo_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)


@hookimpl
def zoo_register_commands(cli: click.Group) -> None:
    @cli.command("testplugin-hello")
    @click.argument("who", default="zoo")
    def hello(who: str) -> None:
        """Say hello (proves zoo_register_commands works through an entry point)."""
        click.echo(f"hello {who} from zoo-testplugin")
