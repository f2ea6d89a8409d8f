"""Checkpoints in safetensors: network weights, optimizer and scaler state, and run position.

No pickle anywhere: tensors go into the safetensors body, everything else (optimizer
hyper-parameters, epoch, config) into its JSON metadata. Writes are atomic.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from zoo_core import io as zio
from zoo_core.errors import ZooError

FORMAT = "zoo-checkpoint/1"
# A run directory's checkpoint files: the one place these names are spelled (zoo_core.models uses them).
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.safetensors"
BEST_CHECKPOINT = "best.safetensors"
CHECKSUM_KEY = "tensors_sha256"  # in the zoo metadata; checkpoints written before it load unchecked


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
    record[CHECKSUM_KEY] = tensors_sha256(tensors)
    # Serialised in memory and written by zio: safetensors' own save_file leaves a 0600 ".tmpXXXXXX" file
    # behind when killed, where zio's temporaries follow the umask and are removed on --resume.
    zio.write_bytes(path, save(tensors, metadata={"zoo": json.dumps(record)}))
    return Path(path)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """One digest of every tensor's name, dtype, shape and bytes, in name order (stored in the metadata)."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# Temporaries a killed save leaves: zio's ".NAME.XXXXXXXX.tmp" and safetensors' own ".tmpXXXXXX" (older zoo).
_STALE_TEMPORARY = re.compile(r"^(\..+\.[A-Za-z0-9_]{8}\.tmp|\.tmp[A-Za-z0-9]{6})$")


def remove_stale_temporaries(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries killed saves left in a run directory (zoo's own names only); returns them."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT_DIR, Path(run_dir) / "samples"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if _STALE_TEMPORARY.match(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


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
    except (KeyError, ValueError, RecursionError):
        raise ZooError(f"{path} is a safetensors file but not a zoo checkpoint (no zoo metadata)") from None
    if not isinstance(meta, dict):
        raise ZooError(f"{path}: its zoo metadata must be a JSON object, found {type(meta).__name__}; "
                       "the checkpoint was edited or is corrupt")
    if meta.get("format") != FORMAT:
        raise ZooError(f"{path} has checkpoint format {str(meta.get('format'))[:40]!r}; this zoo reads {FORMAT}")
    stored = meta.get(CHECKSUM_KEY)
    if stored is not None and stored != tensors_sha256(tensors):
        raise ZooError(f"{path}: tensor data does not match the checksum saved with it; the file is corrupt "
                       "(a bad disk or copy), use another checkpoint or retrain")
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
        except RuntimeError:
            raise ZooError(f"{ckpt.path}: weights of {name!r} do not fit the network built from its "
                           f"config: {_mismatch(network, state)}") from None


def _mismatch(network: torch.nn.Module, state: dict[str, torch.Tensor]) -> str:
    """Which keys are missing, unexpected or of another shape, in one line (the first few of each)."""
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape of", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{label} {', '.join(items[:3])}{more}")
    return "; ".join(parts) or "tensor types differ"


def restore_training_state(
    ckpt: Checkpoint,
    optimizers: dict[str, torch.optim.Optimizer],
    scalers: dict[str, Any],
) -> None:
    if "optimizers" not in ckpt.meta:
        raise ZooError(f"{ckpt.path} holds weights only; resume needs a 'last' checkpoint with optimizer state")
    try:
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(_optimizer_state(name, ckpt))
        for name, state in ckpt.meta.get("scalers", {}).items():
            if name in scalers and scalers[name].is_enabled():
                scalers[name].load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"{ckpt.path}: optimizer state does not fit this run's optimizers ({reason[:120]}); "
                       "the checkpoint was edited or is corrupt") from None


def file_sha256(path: str | os.PathLike[str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
