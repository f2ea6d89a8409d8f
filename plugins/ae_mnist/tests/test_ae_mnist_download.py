"""`zoo data download mnist` comes from ae_mnist (the core has no torchvision); torchvision's downloader is faked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torchvision
from click.testing import Result
from zoo_ae_mnist import plugin as ae_plugin

from zoo_core.api import invoke, isolated_host

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class FakeMNIST:
    """Writes what torchvision's MNIST(download=True) writes, or fails after half a file."""

    fail = False

    def __init__(self, root: str, train: bool, download: bool) -> None:
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name in FILES[:2] if train else FILES[2:]:
            (raw / name).write_bytes(b"\x00" * 8)
            if self.fail:
                raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://... no route to host")


@pytest.fixture
def zoo(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    with isolated_host((ae_plugin, "zoo-ae-mnist")):
        yield invoke


def test_the_command_comes_from_the_plugin(zoo, tmp_path: Path) -> None:
    result = zoo("data", "download", "mnist", "--dir", tmp_path / "mnist")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "mnist" / "MNIST" / "raw").iterdir()) == sorted(FILES)
    assert result.stdout == f"downloaded mnist to {tmp_path / 'mnist' / 'MNIST' / 'raw'}; train with: zoo train " \
                            f"ae_mnist --data {tmp_path / 'mnist'}\n"


def test_a_failed_download_is_one_line_and_leaves_nothing(zoo, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(FakeMNIST, "fail", True)
    result = zoo("data", "download", "mnist", "--dir", tmp_path / "mnist")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"zoo: could not download MNIST into {tmp_path / 'mnist'} (Error downloading ")
    assert "no route to host" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "mnist").exists()


def test_without_the_plugin_there_is_no_data_command() -> None:
    with isolated_host():
        assert invoke("data", "download", "mnist").exit_code == 2
