"""Image-file readers: plain folders, CelebA with .txt or .csv, building blocks for other layouts, layout detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo_core.data.errors import DataError
from zoo_core.data.folders import (
    detect_layout,
    image_files,
    load_celeba,
    load_image_files,
    load_image_folder,
    read_text_table,
)

RED, GREEN, BLUE, GREY = (220, 20, 20), (20, 200, 40), (30, 40, 210), (128, 128, 128)


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


# -- plain folders -----------------------------------------------------------------------------------------------
def test_class_subfolders_give_labels(tmp_path: Path) -> None:
    write_image(tmp_path / "dogs" / "b.png", GREEN)
    write_image(tmp_path / "cats" / "a.jpg", RED, (30, 20))
    write_image(tmp_path / "cats" / "deeper" / "c.bmp", BLUE)
    write_image(tmp_path / ".hidden" / "x.png", GREY)  # hidden folders are not classes
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path, size=8)
    assert data.images.shape == (3, 3, 8, 8) and data.images.dtype == torch.uint8
    assert data.classes == {"class": ["cats", "dogs"]}
    assert data.labels["class"].tolist() == [0, 0, 1]
    assert data.names == ["cats/a.jpg", "cats/deeper/c.bmp", "dogs/b.png"]
    colours = mean_colour(data.images)
    assert np.allclose(colours[0], RED, atol=4)  # JPEG is lossy
    assert colours[1] == list(BLUE) and colours[2] == list(GREEN)


def test_flat_folder_has_no_labels_and_sorted_names(tmp_path: Path) -> None:
    for name, colour in (("b.png", GREEN), ("a.png", RED), ("c.webp", BLUE)):
        write_image(tmp_path / name, colour)
    data = load_image_folder(tmp_path, size=4)
    assert data.labels == {}
    assert data.names == ["a.png", "b.png", "c.webp"]
    assert mean_colour(data.images)[:2] == [list(RED), list(GREEN)]


def test_resize_modes(tmp_path: Path) -> None:
    # 40x20: red left and right quarters, green middle half; the centre crop keeps only the green square.
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :] = RED
    array[:, 10:30] = GREEN
    Image.fromarray(array).save(tmp_path / "wide.png")
    cropped = load_image_folder(tmp_path, size=10, mode="center_crop").images[0]
    assert cropped[:, :, 1:-1].permute(1, 2, 0).reshape(-1, 3).float().mean(0).round().int().tolist() == list(GREEN)
    resized = load_image_folder(tmp_path, size=10, mode="resize").images[0]
    assert resized[:, 5, 0].tolist() == list(RED) and resized[:, 5, 5].tolist() == list(GREEN)
    with pytest.raises(DataError, match="unknown resize mode 'stretch'"):
        load_image_folder(tmp_path, size=10, mode="stretch")


def test_grey_and_rgba_become_rgb(tmp_path: Path) -> None:
    Image.new("L", (10, 10), 77).save(tmp_path / "a.png")
    Image.new("RGBA", (10, 10), (10, 20, 30, 128)).save(tmp_path / "b.png")
    data = load_image_folder(tmp_path, size=5)
    assert data.images.shape == (2, 3, 5, 5)
    assert mean_colour(data.images) == [[77, 77, 77], [10, 20, 30]]


def test_truncated_png_is_skipped_with_a_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "a.png", RED)
    write_truncated_png(tmp_path / "b.png")
    (tmp_path / "c.png").write_bytes(b"this is not a png")
    write_image(tmp_path / "d.png", GREEN)
    data = load_image_folder(tmp_path, size=6)
    assert data.names == ["a.png", "d.png"]
    assert mean_colour(data.images) == [list(RED), list(GREEN)]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"zoo: skipped 2 unreadable images in {tmp_path} (use --strict to refuse)"]


def test_truncated_png_strict_names_the_first_bad_file(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", RED)
    bad = write_truncated_png(tmp_path / "b.png")
    (tmp_path / "c.png").write_bytes(b"junk")
    with pytest.raises(DataError) as caught:
        load_image_folder(tmp_path, size=6, strict=True)
    assert_one_line_error(caught, str(bad), "unreadable")


def test_labels_follow_the_skipped_images(tmp_path: Path) -> None:
    write_truncated_png(tmp_path / "a" / "1.png")
    write_image(tmp_path / "a" / "2.png", RED)
    write_image(tmp_path / "b" / "3.png", GREEN)
    data = load_image_folder(tmp_path, size=4)
    assert data.labels["class"].tolist() == [0, 1]
    assert data.names == ["a/2.png", "b/3.png"]


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty-class").mkdir()
    (tmp_path / "readme.md").write_text("no images here")
    with pytest.raises(DataError) as caught:
        load_image_folder(tmp_path, size=8)
    assert_one_line_error(caught, str(tmp_path), "no image files")


def test_only_unreadable_images_is_an_error(tmp_path: Path) -> None:
    write_truncated_png(tmp_path / "a.png")
    with pytest.raises(DataError) as caught:
        load_image_folder(tmp_path, size=8)
    assert_one_line_error(caught, "no readable image", str(tmp_path / "a.png"))


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_image_folder(tmp_path / "absent", size=8)
    assert_one_line_error(caught, str(tmp_path / "absent"), "does not exist")


def test_limit_takes_the_first_after_sorting(tmp_path: Path) -> None:
    for index in range(5):
        write_image(tmp_path / f"{index}.png", (index * 40, 0, 0))
    data = load_image_folder(tmp_path, size=4, limit=2)
    assert data.names == ["0.png", "1.png"]
    with pytest.raises(DataError, match="limit"):
        load_image_folder(tmp_path, size=4, limit=0)


# -- CelebA ------------------------------------------------------------------------------------------------------
ATTRS = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Eyeglasses", "Male"]
ROWS = {  # file: values in ATTRS order, -1/1 as in CelebA
    "000001.jpg": (-1, 1, -1, -1, 1),
    "000002.jpg": (-1, -1, 1, 1, -1),
    "000003.jpg": (1, 1, -1, -1, 1),
    "000004.jpg": (-1, -1, -1, 1, -1),
}
COLOURS = {"000001.jpg": RED, "000002.jpg": GREEN, "000003.jpg": BLUE, "000004.jpg": GREY}


def write_celeba(root: Path, table: str, nested: bool, skip: tuple[str, ...] = ()) -> Path:
    images = root / "img_align_celeba"
    if nested:
        images = images / "img_align_celeba"
    for name, colour in COLOURS.items():
        if name not in skip:
            write_image(images / name, colour, (18, 22))  # CelebA's 178x218 portrait shape, scaled down
    if table == "txt":
        lines = [str(len(ROWS)), " ".join(ATTRS)]
        lines += [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in ROWS.items()]
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    else:
        lines = ["image_id," + ",".join(ATTRS)]
        lines += [f"{name}," + ",".join(str(v) for v in values) for name, values in ROWS.items()]
        (root / "list_attr_celeba.csv").write_text("\n".join(lines) + "\n")
    return images


@pytest.mark.parametrize(("table", "nested"), [("txt", False), ("txt", True), ("csv", True), ("csv", False)])
def test_celeba_attributes(tmp_path: Path, table: str, nested: bool) -> None:
    write_celeba(tmp_path, table, nested)
    data = load_celeba(tmp_path, size=8, attributes=["Blond_Hair", "Male"])
    assert data.images.shape == (4, 3, 8, 8)
    assert data.names == list(ROWS)
    assert data.labels["Blond_Hair"].tolist() == [0, 1, 0, 0]
    assert data.labels["Male"].tolist() == [1, 0, 1, 0]
    assert set(data.labels) == {"Blond_Hair", "Male"}
    assert np.allclose(mean_colour(data.images), [COLOURS[n] for n in ROWS], atol=4)
    assert detect_layout(tmp_path) == "celeba"


@pytest.mark.parametrize("table", ["txt", "csv"])
def test_celeba_select_filters_before_decoding(tmp_path: Path, table: str) -> None:
    images = write_celeba(tmp_path, table, nested=True)
    # Rows the filter drops are never opened: a broken file among them does not trip strict mode.
    write_truncated_png(images / "000002.jpg")
    write_truncated_png(images / "000004.jpg")
    data = load_celeba(tmp_path, size=8, attributes=["Male"], select=lambda a: a["Black_Hair"] == 1, strict=True)
    assert data.names == ["000001.jpg", "000003.jpg"]
    assert data.labels["Male"].tolist() == [1, 1]
    seen: list[dict[str, int]] = []
    load_celeba(tmp_path, size=8, attributes=["Male"], select=lambda a: seen.append(a) or a["Eyeglasses"] == 0)
    assert seen[0] == dict(zip(ATTRS, [0, 1, 0, 0, 1], strict=True))  # every attribute, as 0/1


def test_celeba_missing_images_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_celeba(tmp_path, "txt", nested=False, skip=("000003.jpg",))
    data = load_celeba(tmp_path, size=8, attributes=["Male"], limit=2)
    assert data.names == ["000001.jpg", "000002.jpg"]
    data = load_celeba(tmp_path, size=8, attributes=["Male"])
    assert data.names == ["000001.jpg", "000002.jpg", "000004.jpg"]
    assert "skipped 1 rows of list_attr_celeba.txt whose image is missing" in capsys.readouterr().err


@pytest.mark.parametrize("table", ["txt", "csv"])
def test_celeba_unknown_attribute(tmp_path: Path, table: str) -> None:
    write_celeba(tmp_path, table, nested=False)
    with pytest.raises(DataError) as caught:
        load_celeba(tmp_path, size=8, attributes=["Male", "Blonde_Hair"])
    assert_one_line_error(caught, "'Blonde_Hair'", "Blond_Hair", "5_o_Clock_Shadow", f"list_attr_celeba.{table}")


def test_celeba_truncated_table(tmp_path: Path) -> None:
    write_celeba(tmp_path, "txt", nested=False)
    table = tmp_path / "list_attr_celeba.txt"
    table.write_text("\n".join(table.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError) as caught:
        load_celeba(tmp_path, size=8, attributes=["Male"])
    assert_one_line_error(caught, str(table), "declares 4 images but has 3 rows")


def test_celeba_ragged_row(tmp_path: Path) -> None:
    write_celeba(tmp_path, "csv", nested=False)
    table = tmp_path / "list_attr_celeba.csv"
    table.write_text(table.read_text().replace("000002.jpg,-1,-1,1,1,-1", "000002.jpg,-1,-1,1"))
    with pytest.raises(DataError) as caught:
        load_celeba(tmp_path, size=8, attributes=["Male"])
    assert_one_line_error(caught, str(table), "corrupt")


def test_celeba_not_found(tmp_path: Path) -> None:
    write_image(tmp_path / "img_align_celeba" / "000001.jpg", RED)
    with pytest.raises(DataError) as caught:
        load_celeba(tmp_path, size=8, attributes=["Male"])
    assert_one_line_error(caught, str(tmp_path), "list_attr_celeba.txt")


# -- layout detection --------------------------------------------------------------------------------------------
def test_detect_layout_mnist(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    assert detect_layout(tmp_path / "plain") == "mnist-idx"
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"")
    assert detect_layout(tmp_path / "tv") == "mnist-torchvision"


def test_detect_layout_image_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "flat" / "a.png", RED)
    assert detect_layout(tmp_path / "flat") == "image-folder"
    write_image(tmp_path / "classes" / "x" / "a.png", RED)
    assert detect_layout(tmp_path / "classes") == "image-folder"


def test_detect_layout_unknown(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing")
    with pytest.raises(DataError) as caught:
        detect_layout(tmp_path)
    assert_one_line_error(caught, str(tmp_path), "train-images-idx3-ubyte", "list_attr_celeba")
    with pytest.raises(DataError, match="does not exist"):
        detect_layout(tmp_path / "absent")


# -- building blocks ---------------------------------------------------------------------------------------------
def test_a_plugin_layout_from_the_building_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "cats" / "b.png", RED)
    write_image(tmp_path / "cats" / "a.png", GREEN)
    write_image(tmp_path / "cats" / "._a.png", BLUE)  # macOS resource fork: hidden, never listed
    bad = write_truncated_png(tmp_path / "cats" / "c.png")
    files = image_files(tmp_path)
    assert files == [tmp_path / "cats" / "a.png", tmp_path / "cats" / "b.png", bad]
    data = load_image_files(files, 8, {"score": [5, 6, 7]}, classes={"score": ["low", "high"]})
    assert data.names == ["a.png", "b.png"] and data.labels["score"].tolist() == [5, 6]
    assert mean_colour(data.images) == [list(GREEN), list(RED)]
    assert "skipped 1 unreadable images" in capsys.readouterr().err
    with pytest.raises(DataError, match="label 'score' has 1 values for 3 files"):
        load_image_files(files, 8, {"score": [1]})
    (tmp_path / "labels.csv").write_text("\ufeffname,score\na.png,5\n")
    assert read_text_table(tmp_path / "labels.csv") == ["name,score", "a.png,5"]
    with pytest.raises(DataError, match="does not exist"):
        image_files(tmp_path / "absent")
