"""The book's glasses faces, in both of their layouts: G/ and NoG/ folders, or faces-spring-2020/face-N.png with
train.csv. A reader for one model's data, so it lives here, built from zoo_core.api's data blocks."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from zoo_core.api import DataError, ImageSet, image_files, load_image_files, read_text_table

CLASSES = {"glasses": ["NoG", "G"]}


def glasses_folders(directory: Path) -> Path | None:
    """The folder holding G/ and NoG/ (``directory`` or its glasses/), or None."""
    for base in (directory, directory / "glasses"):
        if (base / "G").is_dir() and (base / "NoG").is_dir():
            return base
    return None


def faces_folder(directory: Path) -> Path | None:
    """The faces-spring-2020 folder of face-N.png files (possibly nested once), or None."""
    for base in (directory / "faces-spring-2020" / "faces-spring-2020", directory / "faces-spring-2020"):
        if base.is_dir() and any(base.glob("face-*.png")):
            return base
    return None


def glasses_layout(directory: Path) -> str | None:
    """``glasses-folders``, ``glasses-csv`` or None when ``directory`` holds neither layout."""
    if glasses_folders(directory) is not None:
        return "glasses-folders"
    if faces_folder(directory) is not None:
        return "glasses-csv"
    return None


def load_glasses(directory: Path, size: int, strict: bool = False, limit: int | None = None,
                 mode: str = "center_crop") -> ImageSet:
    """The glasses faces with label ``glasses`` (1 for G); G before NoG, as the book's ImageFolder orders them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"data directory {directory} does not exist or is not a directory; check the --data path")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit} for {directory}")
    root = glasses_folders(directory)
    if root is not None:
        files, glasses = [], []
        for label, name in ((1, "G"), (0, "NoG")):
            found = image_files(root / name)
            files += found
            glasses += [label] * len(found)
        if not files:
            raise DataError(f"{root}/G and {root}/NoG hold no image files; put the face images in them")
    else:
        root, files, glasses = _listed_faces(directory)
    if limit is not None:
        files, glasses = files[:limit], glasses[:limit]
    return load_image_files(files, size, {"glasses": glasses}, root=root, mode=mode, strict=strict, classes=CLASSES)


def _listed_faces(directory: Path) -> tuple[Path, list[Path], list[int]]:
    faces = faces_folder(directory)
    if faces is None:
        raise DataError(f"no glasses data in {directory}: looked for G/ and NoG/ folders (also under glasses/) and "
                        "for faces-spring-2020/face-N.png with train.csv; point --data at the folder holding them")
    table = next((p for p in (directory / "train.csv", faces.parent / "train.csv", faces / "train.csv")
                  if p.is_file()), None)
    if table is None:
        raise DataError(f"found {faces} but no train.csv in {directory} or next to it; the csv's id and glasses "
                        "columns give the labels, copy it there")
    rows = read_glasses_csv(table)
    files, glasses, missing = [], [], 0
    for face_id, label in sorted(rows):
        path = faces / f"face-{face_id}.png"
        if path.is_file():
            files.append(path)
            glasses.append(label)
        else:
            missing += 1
    if missing:
        print(f"zoo: skipped {missing} rows of {table.name} whose image is missing in {faces}", file=sys.stderr)
    if not files:
        raise DataError(f"none of the {len(rows)} images listed in {table} exist in {faces}; check the layout")
    return faces, files, glasses


def read_glasses_csv(table: Path) -> list[tuple[int, int]]:
    """(face id, glasses 0/1) rows of the data set's train.csv; a bad table is one DataError naming the row."""
    try:
        return _parse_rows(table, csv.reader(read_text_table(table)))
    except csv.Error as error:
        raise DataError(f"{table}: not a valid CSV table ({error}); use the glasses data set's train.csv") from None


def _parse_rows(table: Path, reader: Iterator[list[str]]) -> list[tuple[int, int]]:
    header = [name.strip() for name in next(reader, [])]
    if "id" not in header or "glasses" not in header:
        raise DataError(f"{table}: needs columns id and glasses, found {', '.join(header[:6]) or 'no header'}; "
                        "use the train.csv of the glasses data set")
    id_col, label_col = header.index("id"), header.index("glasses")
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            rows.append((int(float(row[id_col])), int(float(row[label_col]) > 0.5)))
        except (ValueError, IndexError, OverflowError):
            raise DataError(f"{table}:{line}: id or glasses is not a number ({row[:3]}...); fix or delete "
                            "that row") from None
    return rows
