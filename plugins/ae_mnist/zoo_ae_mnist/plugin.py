"""Registers ae_mnist and its `zoo data download mnist` command. Imported on every `zoo` start: plain data
only (no torch)."""

from __future__ import annotations

from collections.abc import Callable

import click

from zoo_core.api import (
    DataLayout,
    GraphSpec,
    ModelSpec,
    NetworkSpec,
    Param,
    Preset,
    QualityBar,
    TaskSpec,
    TensorSpec,
    WebTask,
    Weights,
    hookimpl,
)

# Shared by both presets: the book's network and data handling.
NETWORK = {"h_dim": 200, "z_dim": 20, "val_split": 0.1, "amp": False}

IMAGE_SIZE = 28  # MNIST's side; networks and recipe read it from here, so the recipe needs no network code
IMAGE = TensorSpec("image", ("N", 1, IMAGE_SIZE, IMAGE_SIZE), value_range=(0.0, 1.0), layout="NCHW")
RECONSTRUCTION = TensorSpec("reconstruction", ("N", 1, IMAGE_SIZE, IMAGE_SIZE), value_range=(0.0, 1.0),
                            layout="NCHW")
CODE = TensorSpec("z", ("N", "z_dim"), layout="latent")

# Card figures at the book preset: Linear layers only, 2 FLOPs per multiply-add.
ENCODER_GFLOPS = 2 * (784 * 200 + 200 * 20) / 1e9
DECODER_GFLOPS = 2 * (20 * 200 + 200 * 784) / 1e9

# What an int8 graph must keep (zoo export --int8): held-out reconstruction MSE within 5% of fp32's.
INT8_QUALITY = (QualityBar("reconstruction_mse", "relative_rise", 0.05,
                           function="zoo_ae_mnist.recipe:reconstruction_mse"),)

# The weights ae_mnist ships (`--weights mnist`), package data in weights/: made and measured by
# benchmarks/scripts/ship_weights.py (its figures are in benchmarks/results/weights_ae_mnist.json).
MNIST = Weights(
    name="mnist",
    summary="the book's autoencoder trained on real MNIST digits",
    sha256="c8fce2e3d9c529e8548ae25d922b7c48fff4ce50414026aa3b99aee057893f7f",
    size=646928,
    preset="book",
    data="MNIST t10k: its first 9,000 digits train; the last 1,000 are held out for the figure",
    training="zoo train ae_mnist --preset book --data ../shared/data/mnist-t10k --limit 9000 --val-split 0 "
             "--seed 0 (10 epochs, last checkpoint), stored in float16",
    file="zoo_ae_mnist:weights/mnist.safetensors",
    metrics={"heldout_mse_per_pixel": 0.018674},
    measured_by="python benchmarks/scripts/ship_weights.py ae_mnist --measure-only --data ../shared/data/mnist-t10k",
    license="MIT",
    default=True,
)


SPEC = ModelSpec(
    name="ae_mnist",
    summary="Fully connected MNIST autoencoder, 784-200-20 (Liu, Learn Generative AI with PyTorch, ch. 7)",
    recipe="zoo_ae_mnist.recipe:AutoencoderRecipe",
    networks=(
        NetworkSpec("encoder", "Linear 784→200, ReLU, Linear 200→20", params=784 * 200 + 200 + 200 * 20 + 20),
        NetworkSpec("decoder", "Linear 20→200, ReLU, Linear 200→784, sigmoid", params=20 * 200 + 200 + 200 * 784 + 784),
    ),
    graphs=(
        GraphSpec("encoder", "image → code", (IMAGE,), (CODE,), gflops_per_item=ENCODER_GFLOPS,
                  quality=INT8_QUALITY),
        GraphSpec("decoder", "code → image", (CODE,), (RECONSTRUCTION,), gflops_per_item=DECODER_GFLOPS,
                  quality=INT8_QUALITY),
        GraphSpec("autoencoder", "image → reconstruction", (IMAGE,), (RECONSTRUCTION,),
                  gflops_per_item=ENCODER_GFLOPS + DECODER_GFLOPS, quality=INT8_QUALITY),
    ),
    presets=(
        Preset("book", "the book's recipe: summed squared error, Adam 2.5e-4, batch 32, 10 epochs",
               {**NETWORK, "lr": 2.5e-4, "batch_size": 32, "epochs": 10, "embedded_items": 10000}),
        Preset("quick", "CPU-friendly: 6,000 embedded digits, batch 64, Adam 2e-3, 8 epochs (seconds)",
               {**NETWORK, "lr": 2e-3, "batch_size": 64, "epochs": 8, "embedded_items": 6000}),
    ),
    tasks=(
        TaskSpec("reconstruct", "originals (top row) above their reconstructions (bottom row)", ("autoencoder",),
                 "zoo_ae_mnist.tasks:reconstruct",
                 (Param("n", "int", 16, "How many images to reconstruct.", minimum=1, maximum=1024),),
                 web=WebTask("image-to-image", {"graphs": ["autoencoder"], "draw": True})),
        TaskSpec("decode", "decode codes from --z FILE.npy, or N codes drawn from a Gaussian fitted to the data's "
                 "codes", ("encoder", "decoder"), "zoo_ae_mnist.tasks:decode",
                 (Param("z_file", "file", None, "float array [N,z_dim] saved with numpy.save.", flag="--z"),
                  Param("n", "int", 16, "How many codes to draw when --z is absent.", minimum=1, maximum=1024)),
                 stream="produce",
                 web=WebTask("sample", {"graph": "decoder", "prior": "fitted", "encoder": "encoder", "count": "n",
                                        "columns": 16})),
    ),
    data_layouts=(
        DataLayout("mnist-idx", "MNIST IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]) in the folder "
                   "or in its MNIST/raw (torchvision's layout); `zoo data download mnist --dir DIR` fetches them"),
        DataLayout("embedded", "no --data: procedurally drawn digits (embedded_items of them), cached after the "
                   "first run"),
    ),
    card_preset="book",
    default_preset="quick",
    gpu_preset="book",
    source="Mark Liu, Learn Generative AI with PyTorch (Manning 2024), ch. 7; github.com/markhliu/DGAI",
    license="MIT",
    tags=("autoencoder", "mnist", "book"),
    weights=(MNIST,),
)


@hookimpl
def zoo_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)


@hookimpl
def zoo_register_commands(cli: click.Group) -> None:
    from zoo_ae_mnist.command import data_group  # click only; torchvision loads when a download runs

    cli.add_command(data_group)
