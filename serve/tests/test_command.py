"""`zoo serve` as a new user meets it (issue 22, defects 5, 6 and 12): a model named with its --export, a port
in use, and what a plain `zoo serve` looked at, found and skipped."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from zoo_serve_live import LOOPBACK

from zoo_core.testing import invoke


@pytest.fixture
def no_uvicorn(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    import uvicorn

    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: apps.append(app))
    return apps


def test_a_model_named_with_its_own_export_is_served(no_uvicorn: list[object], exports: dict[str, Path]) -> None:
    """Defect 5: `zoo serve ae_mnist --export DIR`, written as `zoo generate MODEL --export DIR` is."""
    result = invoke("serve", "ae_mnist", "--export", exports["ae_mnist"], "--port", "0")
    assert result.exit_code == 0, result.output
    assert "named more than once" not in result.output
    server = no_uvicorn[0].state.server
    assert list(server.models) == ["ae_mnist"] and str(exports["ae_mnist"]) in server.models["ae_mnist"].source
    twice = invoke("serve", "--export", exports["ae_mnist"], "--export", exports["ae_mnist"], "--port", "0")
    assert twice.exit_code != 0 and "ae_mnist named more than once" in twice.output  # two exports still clash


def test_a_port_in_use_is_one_line_and_exit_1(exports: dict[str, Path]) -> None:
    """Defect 6: checked before anything loads or is announced (uvicorn's own error exited 3)."""
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = invoke("serve", "--export", exports["ae_mnist"], "--port", str(port))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"zoo: port {port} on {LOOPBACK} is in use by another process; stop it or choose another --port"]


def test_plain_zoo_serve_says_where_it_looked_what_it_found_and_skipped(
        no_uvicorn: list[object], exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 12: the folder served, each model found, each installed model skipped and why."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(exports["ae_mnist"], tmp_path / "exports" / "ae_mnist")
    (tmp_path / "exports" / "vae_faces").mkdir()  # a folder without a manifest
    result = invoke("serve", "--port", "0")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"looking for exports under {tmp_path / 'exports'}/ (the default)" in out
    assert "zoo serve: ae_mnist: graphs encoder, decoder, autoencoder" in out
    assert f"skipped vae_faces: no {Path('exports') / 'vae_faces' / 'manifest.json'}" in out
    assert f"skipped cyclegan_hair: no {Path('exports') / 'cyclegan_hair'}/" in out
    assert list(no_uvicorn[0].state.server.models) == ["ae_mnist"]
