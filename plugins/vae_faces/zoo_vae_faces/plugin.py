"""The vae_faces model spec. Imported on every `zoo` start: no torch, numpy or networks here."""

from __future__ import annotations

from collections.abc import Callable

from zoo_core.api import (
    DataLayout,
    GraphSpec,
    ModelSpec,
    NetworkSpec,
    Param,
    Preset,
    TaskSpec,
    TensorSpec,
    WebTask,
    Weights,
    hookimpl,
)

# Bounds on what one task call may ask for, so a typo cannot allocate without limit: a grid of 4,096 faces is
# already a 500-megapixel picture at 256², and each group image is encoded (1,000 per term at most).
MAX_IMAGES = 4096
MAX_GROUP_SIZE = 1000
MAX_ROWS = 64

IMAGE = TensorSpec("image", ("N", 3, "image_size", "image_size"), value_range=(0.0, 1.0), layout="NCHW")
MU = TensorSpec("mu", ("N", "latent_dim"), layout="latent")
LOGVAR = TensorSpec("logvar", ("N", "latent_dim"), layout="NC")
Z = TensorSpec("z", ("N", "latent_dim"), layout="latent")

# The seed recipe (markhliu/DGAI ch07VariationalAutoencoders.ipynb), only with noise drawn on any device.
BOOK = {
    "image_size": 256, "latent_dim": 100, "epochs": 10, "batch_size": 16, "lr": 1e-4, "weight_decay": 1e-5,
    "recon_weight": 1.0, "kl_weight": 1.0, "lr_decay_fraction": 0.0, "portraits": 4500, "data_seed": 0,
    "val_split": 0.1, "amp": False,
}
# Same layers and loss at 64x64, sized to train on a laptop CPU in about five minutes. lr 1e-3 (5e-4 is still
# far from converged after 20 epochs), decayed to zero over the last third of the epochs to settle. KL weight (64/256)²:
# the summed squared error has 16x fewer pixels than at 256², and a KL at full weight then squeezes the code to
# ~25 nats, too little to keep glasses; 1/16 restores the book's balance per pixel.
QUICK = {**BOOK, "image_size": 64, "epochs": 24, "lr_decay_fraction": 1 / 3, "batch_size": 16, "lr": 1e-3,
         "kl_weight": 1 / 16, "portraits": 6000}

TASKS = "zoo_vae_faces.tasks:"


# The weights vae_faces ships (`--weights quick`), package data in weights/: made and measured by
# benchmarks/scripts/ship_weights.py (its figures are in benchmarks/results/weights_vae_faces.json).
QUICK_WEIGHTS = Weights(
    name="quick",
    summary="the quick preset (64², 100-d latent) after a short training on the embedded portraits",
    sha256="24c88006686560707d04e4ecb5e20ffdd29375420bb1c461f7e7e8971e92285a",
    size=7073198,
    preset="quick",
    data="6,000 embedded procedural portraits (the quick preset's), the last 10% held out",
    training="zoo train vae_faces --preset quick --epochs 6 --seed 0 (last checkpoint), stored in float16",
    file="zoo_vae_faces:weights/quick.safetensors",
    metrics={"val_mse": 0.01605, "val_loss": 204.24},
    measured_by="python benchmarks/scripts/ship_weights.py vae_faces --epochs 6 (the run's last held-out figures)",
    license="MIT",
    default=True,
)


SPEC = ModelSpec(
    name="vae_faces",
    summary="Convolutional VAE of faces: sampling, reconstruction, interpolation and encoding arithmetic",
    recipe="zoo_vae_faces.recipe:VaeFacesRecipe",
    networks=(
        NetworkSpec("encoder", "3 strided convs (8,16,32 ch, BN) → Linear 1024 → mu, log σ (100 each)",
                    params=31_702_136),
        NetworkSpec("decoder", "Linear 1024 → Linear 32·31·31 → 3 ConvTranspose (16,8,3 ch, BN) → sigmoid",
                    params=31_630_275),
    ),
    graphs=(
        GraphSpec("encoder", "image in [0,1] → mean and log-variance of q(z|x) (no sampling inside)",
                  inputs=(IMAGE,), outputs=(MU, LOGVAR), gflops_per_item=0.08876),
        GraphSpec("decoder", "latent z → image in [0,1]", inputs=(Z,), outputs=(IMAGE,),
                  gflops_per_item=0.08856),
    ),
    presets=(
        Preset("book", "the book's recipe: 256², Adam 1e-4 (wd 1e-5), batch 16, 10 epochs", BOOK),
        Preset("quick", "the same networks at 64², KL weight 1/16 (the book's balance per pixel), Adam 1e-3 "
                        "decayed over the last third of 24 epochs, 5,400 portraits (minutes on a CPU)", QUICK),
    ),
    tasks=(
        TaskSpec("sample", "a grid of new faces decoded from z ~ N(0, I)", ("decoder",), TASKS + "sample", (
            Param("n", "int", 18, "How many faces.", minimum=1, maximum=MAX_IMAGES),
            Param("columns", "int", 6, "Faces per grid row.", minimum=1, maximum=MAX_IMAGES),
        ), stream="produce",
            web=WebTask("sample", {"graph": "decoder", "prior": "normal", "count": "n", "columns": "columns"})),
        TaskSpec("reconstruct", "held-out faces above their reconstructions (encoder mu → decoder)",
                 ("encoder", "decoder"), TASKS + "reconstruct", (
            Param("n", "int", 8, "How many faces (drawn with --seed).", minimum=1, maximum=MAX_IMAGES),
            Param("columns", "int", 8, "Faces per row pair.", minimum=1, maximum=MAX_IMAGES),
        ), web=WebTask("image-to-image", {"graphs": ["encoder", "decoder"]})),
        TaskSpec("interpolate", "decode w·z_A + (1−w)·z_B between two faces (paths or data-set indices)",
                 ("encoder", "decoder"), TASKS + "interpolate", (
            Param("a", "image", help="Face A: an image (file) or a data-set index.", positional=True),
            Param("b", "image", help="Face B: an image (file) or a data-set index.", positional=True),
            Param("steps", "int", 6, "Decoded images from A to B.", minimum=2, maximum=MAX_IMAGES),
        ), web=WebTask("interpolate", {"encoder": "encoder", "decoder": "decoder", "steps": "steps"})),
        TaskSpec("arithmetic", "mean encodings of labelled groups (or listed image files) added and "
                 'subtracted, e.g. "glasses&male - glasses&~male + ~glasses&~male"',
                 ("encoder", "decoder"), TASKS + "arithmetic", (
            Param("expression", "text", help="Terms of attribute groups or [image files] joined by + and -.",
                  positional=True),
            Param("group_size", "int", 3, "Images drawn at random (with --seed) per attribute group.", minimum=1,
                  maximum=MAX_GROUP_SIZE),
            Param("rows", "int", 1, "Independent draws of the groups, one grid row each.", minimum=1,
                  maximum=MAX_ROWS),
        ), web=WebTask("arithmetic", {"encoder": "encoder", "decoder": "decoder",
                                      "example": "glasses&male - glasses&~male + ~glasses&~male"})),
    ),
    data_layouts=(
        DataLayout("glasses", "the book's glasses faces: G/ and NoG/ folders, or faces-spring-2020/face-N.png "
                              "with train.csv (label glasses)"),
        DataLayout("celeba", "img_align_celeba/ with list_attr_celeba.txt or .csv; Eyeglasses and Male become "
                             "labels glasses and male; centre-cropped and resized"),
        DataLayout("image-folder", "any folder of images; sub-folder names become attributes"),
        DataLayout("embedded", "without --data: procedurally drawn portraits labelled glasses, male and blond"),
    ),
    source="Learn Generative AI with PyTorch (Liu), ch. 7; markhliu/DGAI ch07VariationalAutoencoders.ipynb",
    tags=("vae", "faces", "book"),
    weights=(QUICK_WEIGHTS,),
)


@hookimpl
def zoo_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)
