"""The book's glasses set, read by vae_faces in both of its layouts (moved here from the core: one model reads it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from zoo_vae_faces.glasses import glasses_layout, load_glasses

from zoo_core.api import DataError

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 40), (30, 40, 210)


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (20, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_truncated_png(path: Path) -> Path:
    write_image(path, BLUE, (40, 40))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def mean_colour(images: torch.Tensor) -> list[list[int]]:
    return images.float().mean(dim=(2, 3)).round().int().tolist()


def assert_one_line_error(caught: pytest.ExceptionInfo[DataError], *parts: str) -> None:
    message = str(caught.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


@pytest.mark.parametrize("nested", [False, True])
def test_glasses_folders(tmp_path: Path, nested: bool) -> None:
    base = tmp_path / "glasses" if nested else tmp_path
    write_image(base / "G" / "face-1.png", RED)
    write_image(base / "G" / "face-7.png", RED)
    write_image(base / "NoG" / "face-2.png", GREEN)
    data = load_glasses(tmp_path, size=8)
    assert data.labels["glasses"].tolist() == [1, 1, 0]
    assert data.names == ["G/face-1.png", "G/face-7.png", "NoG/face-2.png"]
    assert mean_colour(data.images) == [list(RED), list(RED), list(GREEN)]
    assert data.classes == {"glasses": ["NoG", "G"]}
    assert glasses_layout(tmp_path) == "glasses-folders"


@pytest.mark.parametrize(("nested", "csv_in_faces_parent"), [(True, False), (False, False), (True, True)])
def test_glasses_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str], nested: bool,
                     csv_in_faces_parent: bool) -> None:
    faces = tmp_path / "faces-spring-2020"
    if nested:
        faces = faces / "faces-spring-2020"
    write_image(faces / "face-1.png", RED)
    write_image(faces / "face-2.png", GREEN)
    write_image(faces / "face-10.png", BLUE)
    table = (faces.parent if csv_in_faces_parent else tmp_path) / "train.csv"
    table.write_text("id,v1,v2,glasses\n10,0.1,0.2,1\n2,0.3,0.4,0\n1,0.5,0.6,1\n3,0.0,0.0,0\n")
    data = load_glasses(tmp_path, size=8)
    assert data.names == ["face-1.png", "face-2.png", "face-10.png"]  # by id, not by string
    assert data.labels["glasses"].tolist() == [1, 0, 1]
    assert mean_colour(data.images) == [list(RED), list(GREEN), list(BLUE)]
    err = capsys.readouterr().err
    assert "skipped 1 rows of train.csv whose image is missing" in err
    assert glasses_layout(tmp_path) == "glasses-csv"


def test_glasses_csv_missing(tmp_path: Path) -> None:
    write_image(tmp_path / "faces-spring-2020" / "face-1.png", RED)
    with pytest.raises(DataError) as caught:
        load_glasses(tmp_path, size=8)
    assert_one_line_error(caught, "train.csv", str(tmp_path))


def test_glasses_csv_without_glasses_column(tmp_path: Path) -> None:
    write_image(tmp_path / "faces-spring-2020" / "face-1.png", RED)
    (tmp_path / "train.csv").write_text("id,v1\n1,0.5\n")
    with pytest.raises(DataError) as caught:
        load_glasses(tmp_path, size=8)
    assert_one_line_error(caught, str(tmp_path / "train.csv"), "glasses")


def test_glasses_nothing_found(tmp_path: Path) -> None:
    write_image(tmp_path / "G" / "x.png", RED)  # G without NoG is not the glasses layout
    with pytest.raises(DataError) as caught:
        load_glasses(tmp_path, size=8)
    assert_one_line_error(caught, str(tmp_path), "NoG", "faces-spring-2020")


def test_glasses_strict_and_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "G" / "a.png", RED)
    bad = write_truncated_png(tmp_path / "NoG" / "b.png")
    data = load_glasses(tmp_path, size=8)
    assert data.labels["glasses"].tolist() == [1]
    assert "skipped 1 unreadable images" in capsys.readouterr().err
    with pytest.raises(DataError) as caught:
        load_glasses(tmp_path, size=8, strict=True)
    assert_one_line_error(caught, str(bad))


def test_neither_layout_is_none(tmp_path: Path) -> None:
    write_image(tmp_path / "x.png", RED)
    assert glasses_layout(tmp_path) is None
