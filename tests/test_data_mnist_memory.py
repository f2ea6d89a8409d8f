"""An IDX file too large for the memory at hand: refused by what its header declares, not as "out of memory"."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

from zoo_core.data import mnist
from zoo_core.data.errors import DataError
from zoo_core.testing import invoke

# 100,000 digits: 78.4 MB of pixels, so loading needs 156.8 MB (the bytes read and the set's own copy)
DIMS = (100_000, 28, 28)


def header(magic: int, dims: tuple[int, ...]) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def gzip_bomb(path: Path, dims: tuple[int, ...], payload: int) -> Path:
    """A gzip IDX images file of ``dims`` whose first ``payload`` bytes of zeros inflate from a few kB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    chunk = bytes(1 << 20)
    parts = [packer.compress(header(mnist.IMAGES_MAGIC, dims))]
    for start in range(0, payload, len(chunk)):
        parts.append(packer.compress(chunk[:min(len(chunk), payload - start)]))
    path.write_bytes(b"".join([*parts, packer.flush()]))
    return path


def write_set(folder: Path, dims: tuple[int, ...], payload: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gzip_bomb(folder / "train-images-idx3-ubyte.gz", dims, payload)
    labels = header(mnist.LABELS_MAGIC, dims[:1]) + bytes(dims[0])
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return folder


def test_a_set_larger_than_the_memory_left_says_what_it_declares_and_needs(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_set(tmp_path / "mnist", DIMS, payload=78_400_000)
    monkeypatch.setattr(mnist, "_memory_available", lambda: 50_000_000)
    with pytest.raises(DataError) as caught:
        mnist.load_mnist(folder)
    message = str(caught.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "declares dims [100000, 28, 28], 78 MB of data" in message
    assert "needs about 157 MB of memory and 50 MB is available" in message
    assert "batch" in message and "out of memory" not in message


def test_zoo_train_says_it_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_set(tmp_path / "mnist", DIMS, payload=1 << 20)  # refused before any of it is inflated
    monkeypatch.setattr(mnist, "_memory_available", lambda: 50_000_000)
    result = invoke("train", "ae_mnist", "--data", folder, "--out", tmp_path / "run", "--device", "cpu",
                    "--no-progress", "--max-steps", "1")
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("zoo: "), result.stderr
    assert "declares dims [100000, 28, 28]" in lines[0] and "out of memory" not in lines[0]
    assert not (tmp_path / "run").exists()


def test_an_allocation_that_fails_anyway_is_the_same_message(tmp_path: Path) -> None:
    """Under an address-space limit the system's free memory does not show: the read's MemoryError says the same."""
    bomb = gzip_bomb(tmp_path / "big.gz", (1_000_000, 32, 32), payload=1 << 20)  # declares 1.02 GB
    script = textwrap.dedent(f"""
        import resource
        from pathlib import Path
        from zoo_core.data import mnist
        from zoo_core.data.errors import DataError
        size = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + (400 << 20), resource.RLIM_INFINITY))
        mnist._memory_available = lambda: None  # as where the system says nothing
        try:
            mnist.read_idx(Path({str(bomb)!r}), mnist.IMAGES_MAGIC)
        except DataError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "declares dims [1000000, 32, 32], 1,024 MB of data" in done.stdout
    assert "it could not be allocated" in done.stdout


def test_a_normal_set_still_loads(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = np.arange(2 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(2, 28, 28)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header(mnist.IMAGES_MAGIC, (2, 28, 28))
                                                                      + images.tobytes()))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header(mnist.LABELS_MAGIC, (2,)) + b"\x03\x07"))
    data = mnist.load_mnist(folder)
    assert data.labels["digit"].tolist() == [3, 7] and data.images[1, 0].numpy().tobytes() == images[1].tobytes()
