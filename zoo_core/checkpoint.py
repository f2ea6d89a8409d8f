"""Checkpoints in safetensors: network weights, optimizer and scaler state, and run position.

No pickle anywhere: tensors go into the safetensors body, everything else (optimizer
hyper-parameters, epoch, config) into its JSON metadata. Writes are atomic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zoo_core import io as zio
from zoo_core.errors import ZooError

FORMAT = "zoo-checkpoint/1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: tensors by key and the decoded JSON metadata."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config", {})

    def network_state(self, name: str) -> dict[str, torch.Tensor]:
        prefix = f"net/{name}/"
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def network_names(self) -> list[str]:
        return sorted({k.split("/")[1] for k in self.tensors if k.startswith("net/")})


def _optimizer_parts(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt/{name}/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state(name: str, ckpt: Checkpoint) -> dict[str, Any]:
    meta = ckpt.meta["optimizers"][name]
    state: dict[int, dict[str, Any]] = {}
    prefix = f"opt/{name}/"
    for key, value in ckpt.tensors.items():
        if key.startswith(prefix):
            index, entry = key[len(prefix):].split("/", 1)
            state.setdefault(int(index), {})[entry] = value
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | os.PathLike[str],
    networks: dict[str, torch.nn.Module],
    meta: dict[str, Any],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    scalers: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write weights (and, for resumable checkpoints, optimizer and scaler state) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for name, network in networks.items():
        for key, value in network.state_dict().items():
            tensors[f"net/{name}/{key}"] = value.detach()
    record = dict(meta)
    record["format"] = FORMAT
    if optimizers:
        record["optimizers"] = {}
        for name, optimizer in optimizers.items():
            opt_tensors, opt_meta = _optimizer_parts(name, optimizer)
            tensors.update(opt_tensors)
            record["optimizers"][name] = opt_meta
    if scalers:
        record["scalers"] = {name: scaler.state_dict() for name, scaler in scalers.items() if scaler.is_enabled()}
    for key, value in (extra_tensors or {}).items():
        tensors[f"extra/{key}"] = value
    # safetensors refuses shared or non-contiguous storage; copies cost little next to the write
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with zio.atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"zoo": json.dumps(record)})
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint; a missing, truncated or foreign file is one clear ZooError."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint not found: {path}")
    try:
        tensors = load_file(str(path), device=str(device))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ZooError(f"{path} is not a readable safetensors checkpoint ({error}); "
                       "it may be truncated: use another checkpoint or retrain") from None
    try:
        meta = json.loads(metadata["zoo"])
    except (KeyError, json.JSONDecodeError):
        raise ZooError(f"{path} is a safetensors file but not a zoo checkpoint (no zoo metadata)") from None
    if meta.get("format") != FORMAT:
        raise ZooError(f"{path} has checkpoint format {meta.get('format')!r}; this zoo reads {FORMAT}")
    return Checkpoint(tensors=tensors, meta=meta, path=path)


def restore_networks(networks: dict[str, torch.nn.Module], ckpt: Checkpoint) -> None:
    """Load weights into freshly built networks; a mismatch names the network and the keys."""
    for name, network in networks.items():
        state = ckpt.network_state(name)
        if not state:
            raise ZooError(f"{ckpt.path} has no weights for network {name!r} "
                           f"(it holds {', '.join(ckpt.network_names()) or 'none'})")
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ZooError(f"{ckpt.path}: weights of {name!r} do not fit the network built from its "
                           f"config: {first}") from None


def restore_training_state(
    ckpt: Checkpoint,
    optimizers: dict[str, torch.optim.Optimizer],
    scalers: dict[str, Any],
) -> None:
    if "optimizers" not in ckpt.meta:
        raise ZooError(f"{ckpt.path} holds weights only; resume needs a 'last' checkpoint with optimizer state")
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(_optimizer_state(name, ckpt))
    for name, state in ckpt.meta.get("scalers", {}).items():
        if name in scalers and scalers[name].is_enabled():
            scalers[name].load_state_dict(state)


def file_sha256(path: str | os.PathLike[str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
