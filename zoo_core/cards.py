"""A model's card as JSON-ready data: what `zoo list`, `zoo info`, the server and the docs show.

Torch-free: the card is read from the registered spec alone, so the fast paths stay fast.
"""

from __future__ import annotations

from typing import Any

from zoo_core.plugins import RegisteredModel


def model_summary(model: RegisteredModel) -> dict[str, Any]:
    spec = model.spec
    return {
        "name": spec.name, "summary": spec.summary, "distribution": model.distribution, "version": model.version,
        "graphs": [g.name for g in spec.graphs], "presets": [p.name for p in spec.presets],
        "tasks": [t.name for t in spec.tasks], "params": spec.total_params, "params_preset": spec.card_preset,
        "tags": list(spec.tags),
        # --weights NAME: the declared weights, the default first
        "weights": [w.name for w in sorted(spec.weights, key=lambda w: not w.default)],
    }


def model_card(model: RegisteredModel) -> dict[str, Any]:
    """The whole card of a model, at its card preset, as JSON-ready data."""
    spec = model.spec
    card_config = dict(spec.preset(spec.card_preset).values)

    return {
        **model_summary(model),
        "source": spec.source, "license": spec.license, "card_preset": spec.card_preset,
        "default_preset": spec.default_preset, "gpu_preset": spec.gpu_preset,
        "networks": [{"name": n.name, "summary": n.summary, "params": n.params} for n in spec.networks],
        "graphs": [{"name": g.name, "summary": g.summary, "inputs": [t.as_json(card_config) for t in g.inputs],
                    "outputs": [t.as_json(card_config) for t in g.outputs], "gflops_per_item": g.gflops_per_item,
                    "tolerance": dict(g.tolerance)} for g in spec.graphs],
        "presets": [{"name": p.name, "summary": p.summary, "values": dict(p.values)} for p in spec.presets],
        "tasks": [{"name": t.name, "summary": t.summary, "graphs": list(t.graphs)} for t in spec.tasks],
        "data_layouts": [{"name": d.name, "summary": d.summary} for d in spec.data_layouts],
        "weights": [w.as_json(spec.license) for w in spec.weights],
    }
