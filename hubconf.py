"""torch.hub entry points: ``torch.hub.load("OWNER/zoo", "ae_mnist", weights="mnist")`` returns what
``zoo.load("ae_mnist", weights="mnist")`` returns, a model whose tasks are methods and whose graphs are callables:

    m = torch.hub.load("OWNER/zoo", "ae_mnist", weights="mnist")
    m.reconstruct(n=16).save("reconstruction.png")
    codes = m.graph("encoder")(images)            # images: float [N,1,28,28] in [0,1]

Every keyword is passed on to ``zoo.load`` (``runtime``, ``device``, ``data``, ...). ``weights`` is a name the
model's card declares (``zoo info MODEL``), ``URL#sha256=HEX``, a path or ``hf://org/repo``; left out, the card's
default weights. Where the zoo distributions are not installed (torch.hub's own download of this repository),
the model's plugin is read from ``plugins/MODEL`` beside this file.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

dependencies = ["torch", "safetensors", "pluggy", "click", "numpy", "PIL", "rich"]

ROOT = Path(__file__).resolve().parent


def _load(name: str, weights: str | None, kwargs: dict[str, Any]) -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the zoo and zoo_core packages of this checkout
    import zoo
    from zoo_core.plugins import RegisteredModel, get_host

    host = get_host()
    if name not in host.models:  # not installed: register the plugin from this checkout's plugins/NAME
        sys.path.insert(0, str(ROOT / "plugins" / name))
        plugin = importlib.import_module(f"zoo_{name}.plugin")
        distribution = f"zoo-{name.replace('_', '-')}"
        host.register(plugin, distribution, "source", "hubconf")
        plugin.zoo_register_models(register=lambda spec: host.models.setdefault(
            spec.name, RegisteredModel(spec, distribution, "source")))
    return zoo.load(name, weights=weights or "default", **kwargs)


def ae_mnist(weights: str | None = "mnist", **kwargs: Any) -> Any:
    """The MNIST autoencoder of Learn Generative AI with PyTorch, ch. 7 (784-200-20); ``weights="mnist"``: the
    book preset trained on real MNIST, shipped with the plugin (held-out MSE per pixel 0.0187)."""
    return _load("ae_mnist", weights, kwargs)


def vae_faces(weights: str | None = None, **kwargs: Any) -> Any:
    """The convolutional VAE of faces (sample, reconstruct, interpolate, arithmetic); left out, ``weights`` is the
    shipped ``quick`` (the quick preset, 64², after 6 epochs on the embedded portraits); see ``zoo info vae_faces``."""
    return _load("vae_faces", weights, kwargs)


def cyclegan_hair(weights: str | None = None, **kwargs: Any) -> Any:
    """The black ↔ blond hair CycleGAN (translate, roundtrip); left out, ``weights`` is the shipped ``quick`` (the
    quick preset, 64², after 4 epochs on the embedded portraits); see ``zoo info cyclegan_hair``."""
    return _load("cyclegan_hair", weights, kwargs)
