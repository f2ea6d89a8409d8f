"""Registers the cyclegan_hair model: its spec only (this module is imported on every `zoo` start: no torch)."""

from __future__ import annotations

from collections.abc import Callable

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

NAME = "cyclegan_hair"


def generator_macs(size: int, features: int, blocks: int) -> int:
    """Multiply-adds of one generator pass on a size² image (convolutions only, as FlopCounterMode counts)."""
    f, half, quarter = features, size // 2, size // 4
    edges = 2 * size * size * 3 * f * 7 * 7                              # the two 7×7 convolutions
    resampling = 2 * (half * half * 2 * f * f + quarter * quarter * 4 * f * 2 * f) * 3 * 3  # down and up (mirrored)
    residual = blocks * 2 * quarter * quarter * (4 * f) ** 2 * 3 * 3
    return edges + resampling + residual


# Declared at the book preset (256², 64 features, 9 residual blocks); the tests recompute all three.
GENERATOR_PARAMS = 11_378_179
DISCRIMINATOR_PARAMS = 2_764_737
GENERATOR_GFLOPS = 2 * generator_macs(256, 64, 9) / 1e9  # 99.103 (ANCHORS: 99.1)

SHARED = {
    "flip": True,          # random horizontal flip, one decision per (A, B) pair
    "features": 64,        # generator width after the first convolution
    "res_blocks": 9,
    "d_features": 64,
    "cycle_weight": 10.0,
    "beta1": 0.5,
    "beta2": 0.999,
    "batch_size": 1,
    "portraits": 2000,     # size of the embedded portrait set (half black, half blond)
    "val_fraction": 0.02,  # last fraction of each domain held out
}

BOOK = {
    **SHARED,
    "image_size": 256, "load_size": 256, "d_sigmoid": True, "identity_weight": 0.0, "pool_size": 0,
    "lr": 1e-5, "d_first": True, "epochs": 1, "decay_epochs": 0, "amp": True, "init": "default",
}

REFERENCE = {
    **SHARED,
    "image_size": 256, "load_size": 286, "d_sigmoid": False, "identity_weight": 5.0, "pool_size": 50,
    "lr": 2e-4, "d_first": False, "epochs": 200, "decay_epochs": 100, "amp": False, "init": "normal",
}

# Tuned on the 2-core CPU (see benchmarks/scripts/cyclegan_hair_figures.py): batches of 8 learn faster per second
# than batch 1, the identity loss keeps the background colours, and lr 1e-3 beat 5e-4 and 2e-3 over 2,400 pairs.
QUICK = {
    **SHARED,
    "image_size": 64, "load_size": 64, "features": 16, "res_blocks": 2, "d_features": 16,
    "d_sigmoid": False, "identity_weight": 5.0, "pool_size": 0, "lr": 1e-3, "d_first": True, "batch_size": 8,
    "epochs": 8, "decay_epochs": 0, "amp": False, "init": "normal", "portraits": 1200, "val_fraction": 0.05,
}


# What an int8 generator must keep (zoo export --int8): 30 dB against fp32, and hair colour within 2 points.
INT8_QUALITY = (QualityBar("psnr", "at_least", 30.0),
                QualityBar("hair_success", "drop", 0.02, function="zoo_cyclegan_hair.haircolour:translation_success"))


def _image(name: str) -> TensorSpec:
    return TensorSpec(name, ("N", 3, "image_size", "image_size"), value_range=(-1.0, 1.0), layout="NCHW")


def _graph(name: str, summary: str) -> GraphSpec:
    return GraphSpec(name, summary, inputs=(_image("image"),), outputs=(_image("translated"),),
                     gflops_per_item=GENERATOR_GFLOPS, quality=INT8_QUALITY)


TASKS = "zoo_cyclegan_hair.tasks"
# In the browser (zoo export --format web): an image through the direction's generator, then back through the other.
TRANSLATE_WEB = WebTask("image-to-image", {
    "choice": "direction", "graphs": {"black2blond": ["black_to_blond"], "blond2black": ["blond_to_black"]},
    "inverse": {"black2blond": "blond2black", "blond2black": "black2blond"}})

# The weights cyclegan_hair ships (`--weights quick`), package data in weights/: made and measured by
# benchmarks/scripts/ship_weights.py (its figures are in benchmarks/results/weights_cyclegan_hair.json).
QUICK_WEIGHTS = Weights(
    name="quick",
    summary="the quick preset after a short training on the embedded portraits: a demo, not a good translator",
    sha256="e31ce76b8c1a4f2770d04fa056b4fd2eb6d335370e20ac88488d18a9250e145a",
    size=1501368,
    preset="quick",
    data="1,200 embedded procedural portraits (the quick preset's), 5% held out",
    training="zoo train cyclegan_hair --preset quick --epochs 4 --seed 0 (last checkpoint), stored in float16",
    file="zoo_cyclegan_hair:weights/quick.safetensors",
    metrics={"val_cycle_l1": 0.2342, "val_loss": 7.3544},
    measured_by="python benchmarks/scripts/ship_weights.py cyclegan_hair --epochs 4 (the run's last held-out "
                "figures)",
    license="MIT",
    default=True,
)


SPEC = ModelSpec(
    name=NAME,
    summary="CycleGAN: black ↔ blond hair translation with round trips",
    recipe="zoo_cyclegan_hair.recipe:CycleGANRecipe",
    networks=(
        NetworkSpec("G_AB", "generator black → blond: ResNet, 9 residual blocks, reflect padding, "
                            "InstanceNorm, tanh", GENERATOR_PARAMS),
        NetworkSpec("G_BA", "generator blond → black (same architecture)", GENERATOR_PARAMS),
        NetworkSpec("D_A", "PatchGAN discriminator of black-hair images (30×30 map at 256²)",
                    DISCRIMINATOR_PARAMS),
        NetworkSpec("D_B", "PatchGAN discriminator of blond-hair images", DISCRIMINATOR_PARAMS),
    ),
    graphs=(
        _graph("black_to_blond", "G_AB: black-hair image → blond-hair image, both in [-1,1]"),
        _graph("blond_to_black", "G_BA: blond-hair image → black-hair image, both in [-1,1]"),
    ),
    presets=(
        Preset("book", "the book's recipe: 256², sigmoid D with MSE, cycle 10, no identity loss or pool, "
                       "Adam 1e-5 (0.5, 0.999), D first, batch 1, AMP, 1 epoch", BOOK),
        Preset("reference", "the CycleGAN paper's recipe: LSGAN, identity 0.5×10, pool of 50, Adam 2e-4 "
                            "constant 100 epochs then linear decay over 100, N(0, 0.02) init, "
                            "load 286 and random crop 256", REFERENCE),
        Preset("quick", "64², 16 features, 2 residual blocks, LSGAN with identity loss, batch 8, Adam 1e-3, "
                        "8 epochs: a few minutes on a CPU with the embedded portraits", QUICK),
    ),
    tasks=(
        TaskSpec("translate", "translate image files (or folders) to the other hair colour; one PNG per "
                              "input plus a side-by-side grid",
                 ("black_to_blond", "blond_to_black"), f"{TASKS}:translate", (
                     Param("images", "images", help="Image files or folders (paths, PIL images or arrays from "
                                                    "Python).", positional=True),
                     Param("direction", "choice", "black2blond", "Translation direction.",
                           choices=("black2blond", "blond2black")),
                     Param("batch_size", "int", 16, "Images per graph call.", minimum=1, maximum=1024),
                     Param("size", "int", 0, "Resize every input to SIZE×SIZE first; 0 translates each image at "
                                             "its own size and aspect ratio.", minimum=0, maximum=8192),
                 ), web=TRANSLATE_WEB, stream="map-any-size"),
        TaskSpec("roundtrip", "original, translated and translated back, for both directions (the book's "
                              "round-trip figure), from the data",
                 ("black_to_blond", "blond_to_black"), f"{TASKS}:roundtrip", (
                     Param("n", "int", 4, "Rows per direction.", minimum=1, maximum=1024),
                 ), web=TRANSLATE_WEB),
    ),
    data_layouts=(
        DataLayout("celeba", "--data DIR: img_align_celeba/ and list_attr_celeba.txt or Kaggle's .csv; "
                             "A = Black_Hair, B = Blond_Hair (both → A), chosen from the table, no files moved"),
        DataLayout("two folders", "--data-a BLACK_DIR --data-b BLOND_DIR: any images, resized"),
        DataLayout("trainA/trainB", "--data DIR holding trainA/ (black) and trainB/ (blond), as the CycleGAN "
                                    "data sets are laid out"),
        DataLayout("embedded", "no --data: generated portraits split by hair colour, with hair masks"),
    ),
    card_preset="book",
    default_preset="quick",
    gpu_preset="book",
    source="Learn Generative AI with PyTorch (Liu), ch. 6; reference recipe: Zhu et al., ICCV 2017",
    license="MIT",
    tags=("gan", "cyclegan", "image-to-image", "faces"),
    weights=(QUICK_WEIGHTS,),
)


@hookimpl
def zoo_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)
