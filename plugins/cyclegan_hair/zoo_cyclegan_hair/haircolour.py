"""The hair-colour test behind the figures: is the hair of an image black or blond?

An image's hair colour is the mean Rec. 601 luma of its hair pixels (the generator of the embedded portraits
knows the hair mask; a translated image is judged on its source's mask, since CycleGAN keeps the geometry).
The threshold lies between the two palettes the portraits are drawn from: black hair shades have luma at most
about 0.17 and blond ones at least about 0.6 (in [0,1] units, after shading and edge blending), so 0.40
separates them with a wide margin on both sides; the figure script checks it on the originals.
"""

from __future__ import annotations

from typing import Any

import torch

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
BLOND_LUMA_THRESHOLD = 0.40


def hair_luma(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean luma of the hair pixels per image: images float [N,3,H,W] in [0,1], masks [N,1,H,W] (nonzero = hair)."""
    if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and masks {tuple(masks.shape)} do not match")
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1)
    luma = (images.float().cpu() * weights).sum(dim=1, keepdim=True)
    hair = (masks.cpu() > 0).float()
    pixels = hair.sum(dim=(1, 2, 3))
    if bool((pixels == 0).any()):
        raise ValueError("an image has an empty hair mask; its hair colour is undefined")
    return (luma * hair).sum(dim=(1, 2, 3)) / pixels


def is_blond(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Bool [N]: the hair's mean luma is above the threshold between the black and blond palettes."""
    return hair_luma(images, masks) > BLOND_LUMA_THRESHOLD


def translation_success(graph: str, run: Any, data: Any, recipe: Any, limit: int = 64) -> float:
    """Share of held-out source images whose translation by ``graph`` reaches the target hair colour.

    The int8 quality bar of the generators (``zoo export --int8``): ``run(graph, images)`` runs the graph under
    test, ``data`` is the recipe's TrainingData (held-out part preferred), ``recipe`` crops like evaluation does.
    """
    from zoo_core.api import ZooError
    from zoo_cyclegan_hair.recipe import GRAPHS

    pair = data.held_out()
    source = pair.domain(GRAPHS[graph][1])
    if source.masks is None:
        raise ZooError(f"{graph}: the hair-colour test needs hair masks, which only the embedded portraits have")
    count = min(len(source), limit)
    images = recipe.source_images(pair, GRAPHS[graph][1], count)
    masks = recipe.center(source.masks[:count])
    translated = torch.cat([run(graph, chunk)[0] for chunk in images.split(16)])
    blond = is_blond((translated.float() + 1) / 2, masks)
    return float((blond if graph == "black_to_blond" else ~blond).float().mean())
