"""Checkpoints: safetensors round trip of weights and optimizer state, atomic writes, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from zoo_core import checkpoint as checkpoint_module
from zoo_core import io as zio
from zoo_core.checkpoint import load_checkpoint, restore_networks, restore_training_state, save_checkpoint
from zoo_core.errors import ZooError


def trained_pair(seed: int = 0) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
    """Two networks after one Adam step, so the optimizer state holds moments and a step count."""
    torch.manual_seed(seed)
    networks = {"encoder": nn.Linear(3, 2), "decoder": nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))}
    optimizer = torch.optim.Adam([*networks["encoder"].parameters(), *networks["decoder"].parameters()],
                                 lr=1e-2, betas=(0.5, 0.9))
    loss = networks["decoder"](networks["encoder"](torch.randn(4, 3))).square().sum()
    loss.backward()
    optimizer.step()
    return networks, {"adam": optimizer}


def test_round_trip_restores_weights_buffers_optimizer_and_extras(tmp_path: Path) -> None:
    networks, optimizers = trained_pair(0)
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=512.0)
    path = save_checkpoint(tmp_path / "last.safetensors", networks, {"model": "m", "position": {"epoch": 2}},
                           optimizers, {"adam": scaler}, {"generator": torch.Generator().manual_seed(5).get_state()})
    ckpt = load_checkpoint(path)
    assert ckpt.meta["model"] == "m" and ckpt.meta["position"] == {"epoch": 2}
    assert ckpt.network_names() == ["decoder", "encoder"]

    fresh, fresh_optimizers = trained_pair(1)
    fresh_scaler = torch.amp.GradScaler("cpu", enabled=True)
    restore_networks(fresh, ckpt)
    restore_training_state(ckpt, fresh_optimizers, {"adam": fresh_scaler})
    for name in networks:
        for key, value in networks[name].state_dict().items():
            assert torch.equal(value, fresh[name].state_dict()[key]), (name, key)  # includes BatchNorm buffers
    saved, restored = optimizers["adam"].state_dict(), fresh_optimizers["adam"].state_dict()
    assert restored["param_groups"][0]["betas"] == pytest.approx((0.5, 0.9))
    for index, entries in saved["state"].items():
        for key, value in entries.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(restored["state"][index][key]))
    assert fresh_scaler.get_scale() == 512.0
    assert torch.equal(ckpt.tensors["extra/generator"], torch.Generator().manual_seed(5).get_state())


def test_checkpoint_is_plain_safetensors_with_json_metadata(tmp_path: Path) -> None:
    networks, optimizers = trained_pair()
    path = save_checkpoint(tmp_path / "c.safetensors", networks, {"model": "m"}, optimizers)
    header_size = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + header_size])
    record = json.loads(header["__metadata__"]["zoo"])
    assert record["format"] == checkpoint_module.FORMAT
    assert "adam" in record["optimizers"]
    assert {k for k in header if k != "__metadata__"} == set(load_checkpoint(path).tensors)
    assert any(k.startswith("opt/adam/") and k.endswith("/exp_avg") for k in header)  # moments are tensors


def test_a_failing_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    networks, optimizers = trained_pair(0)
    path = save_checkpoint(tmp_path / "last.safetensors", networks, {"model": "m", "step": 1}, optimizers)
    before = path.read_bytes()

    def disk_full(fd: int) -> None:  # the temp file is written but cannot reach the disk
        raise OSError("No space left on device")

    monkeypatch.setattr(zio.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, trained_pair(1)[0], {"model": "m", "step": 2}, optimizers)
    assert path.read_bytes() == before
    assert load_checkpoint(path).meta["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


def test_unreadable_checkpoints_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    networks, _ = trained_pair()
    path = save_checkpoint(tmp_path / "c.safetensors", networks, {"model": "m"})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ZooError, match="truncated"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ZooError, match="not a zoo checkpoint"):
        load_checkpoint(foreign)


def test_restore_names_the_network_that_does_not_fit(tmp_path: Path) -> None:
    networks, _ = trained_pair()
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", networks, {"model": "m"}))
    with pytest.raises(ZooError, match="weights of 'encoder' do not fit"):
        restore_networks({"encoder": nn.Linear(3, 5)}, ckpt)
    with pytest.raises(ZooError, match="no weights for network 'critic'"):
        restore_networks({"critic": nn.Linear(3, 2)}, ckpt)
    with pytest.raises(ZooError, match="weights only"):
        restore_training_state(ckpt, {}, {})
