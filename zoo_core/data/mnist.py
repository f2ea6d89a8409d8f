"""MNIST from its IDX files (gzipped or not), in the plain layout or torchvision's ``MNIST/raw``."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core.data.errors import DataError
from zoo_core.data.imageset import ImageSet

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
SPLITS = {"train": "train", "test": "t10k"}
# Kaggle copies spell the names with a dot ("train-images.idx3-ubyte"); accept both spellings.
_STEMS = {
    "images": ("{prefix}-images-idx3-ubyte", "{prefix}-images.idx3-ubyte"),
    "labels": ("{prefix}-labels-idx1-ubyte", "{prefix}-labels.idx1-ubyte"),
}


def mnist_dirs(directory: Path) -> list[Path]:
    """Where IDX files may live under ``directory``: itself, then torchvision's ``MNIST/raw``."""
    directory = Path(directory)
    return [directory, directory / "MNIST" / "raw"]


def find_idx(directory: Path, prefix: str, kind: str) -> Path | None:
    """The first existing IDX file for ``prefix`` ("train"/"t10k") and ``kind`` ("images"/"labels")."""
    for folder in mnist_dirs(directory):
        for stem in _STEMS[kind]:
            # Prefer the uncompressed file: torchvision keeps both and the raw one skips a decompression.
            for name in (stem.format(prefix=prefix), stem.format(prefix=prefix) + ".gz"):
                if (folder / name).is_file():
                    return folder / name
    return None


def _looked_for(prefix: str) -> str:
    return ", ".join(f"{_STEMS[kind][0].format(prefix=prefix)}[.gz]" for kind in ("images", "labels"))


# The largest IDX payload zoo reads: the full MNIST train images are 47 MB; this leaves room for bigger sets
# while a hostile header or gzip bomb cannot make zoo allocate more.
MAX_IDX_BYTES = 1 << 30


def _check_dims(path: Path, dims: tuple[int, ...]) -> int:
    """The payload size the header declares; refuses one that is absurd before anything is allocated."""
    size = 1
    for dim in dims:
        size *= dim  # Python ints: no overflow, so a header cannot wrap around to a small size
    if size > MAX_IDX_BYTES:
        raise DataError(f"{path}: the IDX header declares dims {list(dims)} ({size} bytes), more than the "
                        f"{MAX_IDX_BYTES} bytes zoo reads; the file is corrupt, download it again")
    return size


def _memory_available() -> int | None:
    """Bytes this process may still allocate (the least of free RAM, its cgroup's and its address-space limit's
    room); None where the system does not say."""
    import resource

    room: list[int] = []
    try:
        meminfo = Path("/proc/meminfo").read_text()
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    fields = {line.split(":")[0]: line.split()[1:2] for line in meminfo.splitlines() + status.splitlines()}
    if fields.get("MemAvailable"):
        room.append(int(fields["MemAvailable"][0]) * 1024)
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY and fields.get("VmSize"):
        room.append(limit - int(fields["VmSize"][0]) * 1024)
    try:  # cgroup v2: a container's limit, which MemAvailable does not show
        cap = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if cap != "max":
            room.append(int(cap) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(room)) if room else None


def _too_large(path: Path, dims: tuple[int, ...], size: int, needed: int, available: int | None) -> DataError:
    """The data set, not a batch, is too large: what the header declares and what loading it takes."""
    have = f"{available / 1e6:,.0f} MB is available" if available is not None else "it could not be allocated"
    return DataError(f"{path}: the IDX header declares dims {list(dims)}, {size / 1e6:,.0f} MB of data; loading it "
                     f"needs about {needed / 1e6:,.0f} MB of memory and {have}. The data set is too large for this "
                     "machine (--batch-size does not change that): use a smaller IDX file, or more memory")


def _read_bytes(path: Path) -> bytes:
    """The IDX bytes of ``path``, inflating gzip no further than the size its header declares (+1 to see excess)."""
    with open(path, "rb") as handle:
        start = handle.read(2)
        handle.seek(0)
        if start != b"\x1f\x8b":  # the gzip magic, so a misnamed file is still read correctly
            return _read_bounded(path, handle)
        try:
            with gzip.GzipFile(fileobj=handle) as inflated:
                return _read_bounded(path, inflated)
        except (EOFError, OSError, zlib.error) as error:
            raise DataError(f"{path}: gzip data is truncated or corrupt ({error}); delete it and download it again "
                            "(zoo data download mnist)") from None


def _read_bounded(path: Path, handle: Any) -> bytes:
    head = handle.read(4)
    if len(head) < 4:
        return head
    ndim = head[3]
    dims_bytes = handle.read(4 * ndim)
    dims = tuple(int.from_bytes(dims_bytes[4 * i:4 * i + 4], "big") for i in range(len(dims_bytes) // 4))
    if len(dims) < ndim:
        return head + dims_bytes
    try:
        size = _check_dims(path, dims)
    except DataError:
        return head + dims_bytes  # read_idx names the problem once it has checked the magic number
    # the bytes read, then the set's own copy (images) or int64 labels (8 bytes each): checked before reading
    needed = size * (2 if ndim > 1 else 9)
    available = _memory_available()
    if available is not None and needed > available:
        raise _too_large(path, dims, size, needed, available)
    try:
        return head + dims_bytes + handle.read(size + 1)
    except MemoryError:
        raise _too_large(path, dims, size, needed, None) from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file as a uint8 array shaped by its header; refuses a wrong magic number or length."""
    path = Path(path)
    try:
        data = _read_bytes(path)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}); check its permissions") from None
    if len(data) < 8:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header; the file is truncated, "
                        "download it again")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        what = "images (idx3)" if magic == IMAGES_MAGIC else "labels (idx1)"
        raise DataError(f"{path}: magic number {found}, expected {magic} for MNIST {what}; "
                        "the file is not an MNIST IDX file of that kind, check its name or download it again")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: the IDX header declares {ndim} dims but the file ends inside the header; "
                        "the file is truncated, download it again")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + _check_dims(path, dims)
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes but the header {list(dims)} needs {expected}; "
                        "the file is truncated or corrupt, download it again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(directory: Path, split: str = "auto") -> ImageSet:
    """MNIST digits as uint8 [N,1,28,28] with labels {"digit"}; split "train", "test" or "auto" (train if present)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"MNIST directory {directory} does not exist; create it with: zoo data download mnist "
                        f"--dir {directory}")
    if split not in ("train", "test", "auto"):
        raise DataError(f"unknown MNIST split {split!r} for {directory}; use train, test or auto")
    if split == "auto":
        # Train files win when both are there; the test split is the fallback for test-only copies.
        has_train = find_idx(directory, "train", "images") or find_idx(directory, "train", "labels")
        prefix = "train" if has_train else "t10k"
    else:
        prefix = SPLITS[split]
    images_path = find_idx(directory, prefix, "images")
    labels_path = find_idx(directory, prefix, "labels")
    if images_path is None and labels_path is None:
        names = _looked_for("train") + ", " + _looked_for("t10k") if split == "auto" else _looked_for(prefix)
        raise DataError(f"no MNIST IDX files in {directory} or {directory / 'MNIST' / 'raw'} (looked for {names}); "
                        f"download them with: zoo data download mnist --dir {directory}")
    if images_path is None or labels_path is None:
        missing = _STEMS["images" if images_path is None else "labels"][0].format(prefix=prefix)
        raise DataError(f"{directory}: found {(images_path or labels_path).name} but not {missing}[.gz]; "
                        "put both files of the split in the same directory")
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.ndim != 3:
        raise DataError(f"{images_path}: IDX images have dims {list(images.shape)}, expected [N, rows, cols]")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: IDX labels have dims {list(labels.shape)}, expected [N]")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} holds {images.shape[0]} images but {labels_path.name} holds "
                        f"{labels.shape[0]} labels; the two files come from different splits or one is truncated")
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} is not a digit 0-9; this is not an MNIST label file")
    # Copy out of the read-only bytes buffer: torch wants a writable array and the set must own its memory.
    return ImageSet(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels={"digit": torch.from_numpy(labels.astype(np.int64))},
        classes={"digit": [str(d) for d in range(10)]},
    )

