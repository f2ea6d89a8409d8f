"""Image files on disk (plain folders, CelebA, any layout a plugin lists) decoded once into an ImageSet."""

from __future__ import annotations

import csv
import difflib
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from zoo_core.data.errors import DataError
from zoo_core.data.imageset import ImageSet
from zoo_core.data.mnist import find_idx
from zoo_core.images import IMAGE_SUFFIXES, RESIZE_MODES, decode_image, is_image_file

MODES = RESIZE_MODES
CELEBA_ATTR_FILES = ("list_attr_celeba.txt", "list_attr_celeba.csv")


# -- decoding ----------------------------------------------------------------------------------------------------
_is_image = is_image_file


def _is_regular(path: Path) -> bool:
    """A regular file (after symlinks): a FIFO, socket or device named like an image would block or never end."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:  # a dangling link or a file removed meanwhile
        return False


def _report_irregular(count: int, where: Path) -> None:
    if count:
        print(f"zoo: skipped {count} entries in {where} that are not regular files (pipes, sockets, devices, "
              "broken links)", file=sys.stderr)


def _image_files(folder: Path, recursive: bool, quiet: bool = False) -> list[Path]:
    """Regular image files under ``folder`` sorted by path, skipping hidden files and folders; others are counted."""
    try:
        if not recursive:
            named = [p for p in folder.iterdir() if _is_image(p) and not p.is_dir()]
        else:
            named = []
            for root, dirs, files in os.walk(folder):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                named.extend(Path(root) / name for name in files if _is_image(Path(name)))
    except OSError as error:
        raise DataError(f"{folder}: cannot list ({error.strerror or error}); check its permissions") from None
    found = [p for p in named if _is_regular(p)]
    if not quiet:
        _report_irregular(len(named) - len(found), folder)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _decode(path: Path, size: int, mode: str) -> np.ndarray:
    """One image as RGB uint8 [size, size, 3] through the decoder tasks use too; raises what PIL raises."""
    return decode_image(path, size, mode)


def _check_args(directory: Path, size: int, mode: str, limit: int | None) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"data directory {directory} does not exist or is not a directory; check the --data path")
    if size < 1:
        raise DataError(f"image size must be positive, got {size} for {directory}")
    if mode not in MODES:
        raise DataError(f"unknown resize mode {mode!r} for {directory}; use one of: {', '.join(MODES)}")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit} for {directory}")
    return directory


def decode_images(paths: Sequence[Path], size: int, mode: str, strict: bool,
                  where: Path) -> tuple[np.ndarray, list[int]]:
    """Decode ``paths`` on a thread pool into uint8 [K,size,size,3]; returns it and the indices that decoded."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    errors: list[str | None] = [None] * len(paths)

    def work(index: int) -> None:
        try:
            out[index] = _decode(paths[index], size, mode)
        except Exception as error:  # any failure to decode is an unreadable file, reported below
            errors[index] = f"{type(error).__name__}: {error}"

    # PIL releases the GIL while decoding and resizing, so threads scale with the cores.
    workers = max(1, min(16, (os.cpu_count() or 1) + 2, len(paths)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(len(paths))))
    bad = [i for i, error in enumerate(errors) if error is not None]
    if bad and strict:
        raise DataError(f"{paths[bad[0]]}: unreadable image ({errors[bad[0]]}); remove or replace it "
                        f"({len(bad)} bad in {where})")
    kept = [i for i, error in enumerate(errors) if error is None]
    if not kept:
        first = f"; first: {paths[bad[0]]} ({errors[bad[0]]})" if bad else ""
        raise DataError(f"no readable image in {where} ({len(paths)} tried{first}); check the path and the files")
    if bad:
        print(f"zoo: skipped {len(bad)} unreadable images in {where} (use --strict to refuse)", file=sys.stderr)
    return (out if len(kept) == len(paths) else out[kept]), kept


def _to_set(pixels: np.ndarray, labels: dict[str, Sequence[int]], names: list[str],
            classes: dict[str, list[str]]) -> ImageSet:
    return ImageSet(
        images=torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
        labels={name: torch.tensor(list(values), dtype=torch.int64) for name, values in labels.items()},
        names=names,
        classes=classes,
    )


def _load(files: list[Path], labels: dict[str, list[int]], root: Path, where: Path, size: int, mode: str,
          strict: bool, classes: dict[str, list[str]]) -> ImageSet:
    pixels, kept = decode_images(files, size, mode, strict, where)
    kept_labels = {name: [values[i] for i in kept] for name, values in labels.items()}
    names = [files[i].relative_to(root).as_posix() for i in kept]
    return _to_set(pixels, kept_labels, names, classes)


# -- plain folders -----------------------------------------------------------------------------------------------
def _class_folders(directory: Path) -> list[Path]:
    """Sub-folders that hold at least one image somewhere below them (ImageFolder's classes)."""
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [f for f in folders if _image_files(f, recursive=True, quiet=True)]


def load_image_folder(directory: Path, size: int, mode: str = "resize", strict: bool = False,
                      limit: int | None = None) -> ImageSet:
    """Every image in ``directory``; with class sub-folders, labels {"class": index} in sorted folder order.

    With class sub-folders, images lying directly in ``directory`` are ignored, as torchvision's ImageFolder does.
    """
    directory = _check_args(directory, size, mode, limit)
    classes = _class_folders(directory)
    labels: dict[str, list[int]] = {}
    class_names: dict[str, list[str]] = {}
    if classes:
        files, index = [], []
        for number, folder in enumerate(classes):
            found = _image_files(folder, recursive=True)
            files += found
            index += [number] * len(found)
        labels["class"] = index
        class_names["class"] = [f.name for f in classes]
    else:
        files = _image_files(directory, recursive=False)
    if not files:
        raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {directory} or its sub-folders; "
                        "point --data at the folder that holds the images")
    if limit is not None:
        files = files[:limit]
        labels = {name: values[:limit] for name, values in labels.items()}
    return _load(files, labels, directory, directory, size, mode, strict, class_names)


def _report_missing(count: int, what: str, where: Path) -> None:
    if count:
        print(f"zoo: skipped {count} rows of {what} whose image is missing in {where}", file=sys.stderr)


# -- building blocks for a plugin's own layout ------------------------------------------------------------------
def image_files(folder: Path, recursive: bool = True) -> list[Path]:
    """The regular, non-hidden image files under ``folder`` sorted by path: the listing every reader here uses
    (others, such as pipes or broken links, are counted on stderr)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist or is not a directory; check the --data path")
    return _image_files(folder, recursive)


def load_image_files(files: Sequence[Path], size: int, labels: Mapping[str, Sequence[int]] | None = None,
                     root: Path | None = None, mode: str = "resize", strict: bool = False,
                     classes: Mapping[str, list[str]] | None = None) -> ImageSet:
    """Decode ``files`` (e.g. listed by :func:`image_files` or a table) into an ImageSet: ``labels`` gives one value
    per file under each name, ``names`` are relative to ``root`` (default: the files' common folder). Unreadable
    files are skipped with one line on stderr, or refused with ``strict``; their labels go with them."""
    files = [Path(f) for f in files]
    if not files:
        raise DataError("no image files to load; check the folder and the table that lists them")
    if size < 1:
        raise DataError(f"image size must be positive, got {size}")
    if mode not in MODES:
        raise DataError(f"unknown resize mode {mode!r}; use one of: {', '.join(MODES)}")
    values = {name: list(v) for name, v in (labels or {}).items()}
    for name, v in values.items():
        if len(v) != len(files):
            raise DataError(f"label {name!r} has {len(v)} values for {len(files)} files; give one per file")
    base = Path(root) if root is not None else Path(os.path.commonpath([f.parent for f in files]))
    return _load(files, values, base, base, size, mode, strict, {k: list(v) for k, v in (classes or {}).items()})


def read_text_table(table: Path) -> list[str]:
    """The lines of a UTF-8 text table (a CSV of labels), size-bounded; binary junk is one DataError naming it."""
    return _read_table_lines(Path(table))


# -- CelebA ------------------------------------------------------------------------------------------------------
def _celeba_images(directory: Path) -> Path | None:
    for base in (directory / "img_align_celeba" / "img_align_celeba", directory / "img_align_celeba",
                 directory / "Img" / "img_align_celeba"):
        if base.is_dir():
            return base
    return None


def _celeba_table(directory: Path) -> Path | None:
    for folder in (directory, directory / "Anno"):
        for name in CELEBA_ATTR_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


# The official table is 26 MB; a file far larger is not an attribute table and is refused before it is read.
MAX_TABLE_BYTES = 256 << 20


def _read_table_lines(table: Path) -> list[str]:
    """The lines of a UTF-8 text table; binary junk or another encoding is one DataError naming the file."""
    try:
        if table.stat().st_size > MAX_TABLE_BYTES:
            raise DataError(f"{table}: {table.stat().st_size} bytes, more than the {MAX_TABLE_BYTES} an attribute "
                            "table can be; point --data at the right folder or download the file again")
        text = table.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{table}: not UTF-8 text (byte {error.start}); the file is corrupt or binary, "
                        "download it again") from None
    except OSError as error:
        raise DataError(f"{table}: cannot read ({error.strerror or error}); check its permissions") from None
    if "\x00" in text:
        raise DataError(f"{table}: holds NUL bytes, so it is binary, not a text table; download it again")
    return text.splitlines()


def _inside(root: Path, name: str, table: Path) -> Path:
    """``root / name`` when ``name`` is a plain relative path that stays under ``root``; else a DataError."""
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts:
        raise DataError(f"{table}: row names the image {name!r}, which leaves {root}; "
                        "image names in the table must be plain file names, fix or delete that row")
    return root / relative


def read_celeba_attributes(table: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, file names, values as int8 0/1 [rows, attributes]) from the .txt or Kaggle .csv file."""
    lines = _read_table_lines(table)
    if table.suffix.lower() == ".csv":
        try:
            header = next(csv.reader(lines[:1]), [])
        except csv.Error as error:
            raise DataError(f"{table}: the header is not valid CSV ({error}); download the file again") from None
        if not header or header[0].strip() != "image_id":
            raise DataError(f"{table}: the header must start with image_id (Kaggle's list_attr_celeba.csv); "
                            "download the file again")
        names = [name.strip() for name in header[1:]]
        separator, body, declared = ",", lines[1:], None
    else:
        if len(lines) < 2:
            raise DataError(f"{table}: too short; the official file has a count line, then attribute names, then rows")
        try:
            declared = int(lines[0].strip())
        except ValueError:
            raise DataError(f"{table}: first line should be the image count, got {lines[0][:40]!r}; "
                            "use the official list_attr_celeba.txt") from None
        names, separator, body = lines[1].split(), None, lines[2:]
    rows = [line.split(separator, 1) for line in body if line.strip()]
    if declared is not None and declared != len(rows):
        raise DataError(f"{table}: declares {declared} images but has {len(rows)} rows; the file is truncated, "
                        "download it again")
    if any(len(row) != 2 for row in rows):
        raise DataError(f"{table}: a row has a file name but no attribute values; the file is corrupt, "
                        "download it again")
    # numpy's C parser reads the 200k x 40 table about ten times faster than splitting it in Python.
    try:
        values = np.loadtxt([row[1] for row in rows], dtype=np.int8, delimiter=separator, ndmin=2)
    except (ValueError, OverflowError) as error:
        raise DataError(f"{table}: attribute values are not a clean -1/1 table ({str(error).splitlines()[0]}); "
                        "the file is corrupt, download it again") from None
    if rows and values.shape[0] != len(rows):  # loadtxt skips a row whose values are empty
        raise DataError(f"{table}: {len(rows)} rows but {values.shape[0]} with attribute values; a row has no "
                        "values, the file is corrupt, download it again")
    if rows and values.shape[1] != len(names):
        raise DataError(f"{table}: {values.shape[1]} values per row for {len(names)} attribute names; "
                        "the file is corrupt, download it again")
    files = [row[0].strip() for row in rows]
    return names, files, (values > 0).astype(np.int8).reshape(len(files), len(names))  # -1/1 to 0/1


def load_celeba(directory: Path, size: int, attributes: list[str],
                select: Callable[[dict[str, int]], bool] | None = None, strict: bool = False,
                limit: int | None = None, mode: str = "center_crop") -> ImageSet:
    """CelebA aligned faces with ``attributes`` as 0/1 labels; ``select`` picks rows before anything is decoded."""
    directory = _check_args(directory, size, mode, limit)
    images_dir = _celeba_images(directory)
    table = _celeba_table(directory)
    if images_dir is None or table is None:
        missing = "img_align_celeba/" if images_dir is None else " or ".join(CELEBA_ATTR_FILES)
        raise DataError(f"no CelebA in {directory}: {missing} not found; put img_align_celeba/ and "
                        "list_attr_celeba.txt (or Kaggle's .csv) in that folder")
    names, files, values = read_celeba_attributes(table)
    unknown = [a for a in attributes if a not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise DataError(f"unknown CelebA attribute {unknown[0]!r} in {table}; {hint}available include "
                        f"{', '.join(names[:8])}, ... ({len(names)} in all)")
    order = sorted(range(len(files)), key=files.__getitem__)
    if select is not None:
        order = [i for i in order if select(dict(zip(names, values[i].tolist(), strict=True)))]
    paths, rows, missing = [], [], 0
    for i in order:
        path = _inside(images_dir, files[i], table)
        if _is_regular(path):
            paths.append(path)
            rows.append(i)
            if limit is not None and len(paths) >= limit:
                break
        else:
            missing += 1
    _report_missing(missing, table.name, images_dir)
    if not paths:
        what = "selected by the filter" if select is not None else f"listed in {table.name}"
        raise DataError(f"no CelebA image {what} exists in {images_dir}; check the folder and the filter")
    columns = [names.index(a) for a in attributes]
    labels = {a: values[rows, c].astype(int).tolist() for a, c in zip(attributes, columns, strict=True)}
    return _load(paths, labels, images_dir, images_dir, size, mode, strict,
                 {a: ["no", "yes"] for a in attributes})


# -- layout detection --------------------------------------------------------------------------------------------
def detect_layout(directory: Path) -> str:
    """The reader that fits ``directory``: mnist-idx, mnist-torchvision, celeba or image-folder (a plugin checks its
    own layouts first)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"data directory {directory} does not exist or is not a directory; check the --data path")
    for prefix in ("train", "t10k"):
        found = find_idx(directory, prefix, "images")
        if found is not None:
            return "mnist-idx" if found.parent == directory else "mnist-torchvision"
    if _celeba_images(directory) is not None and _celeba_table(directory) is not None:
        return "celeba"
    if _image_files(directory, recursive=False, quiet=True) or _class_folders(directory):
        return "image-folder"
    raise DataError(f"cannot tell what data is in {directory}: looked for MNIST IDX files (train-images-idx3-ubyte"
                    "[.gz], also under MNIST/raw), img_align_celeba/ with list_attr_celeba.txt|csv, and image files; "
                    "point --data at one of those")
