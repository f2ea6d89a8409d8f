"""The face data layouts on tiny fixtures written here: glasses (both layouts), CelebA, image folders, embedded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_vae_faces.arithmetic import attribute_atoms
from zoo_vae_faces.data import join, load_faces, split_faces

from zoo_core.api import DataError, DataSource, ImageSet

SIZE = 16
CONFIG = {"image_size": SIZE, "portraits": 24, "data_seed": 3, "val_split": 0.25}


def write_face(path: Path, shade: int, size: tuple[int, int] = (24, 20)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), shade, dtype=np.uint8)).save(path)


def write_truncated(path: Path) -> None:
    write_face(path, 200)
    path.write_bytes(path.read_bytes()[:30])


def test_glasses_folders(tmp_path: Path) -> None:
    for index in range(3):
        write_face(tmp_path / "G" / f"g{index}.png", 10 + index)
    for index in range(2):
        write_face(tmp_path / "NoG" / f"n{index}.png", 100 + index)
    faces = load_faces(DataSource(data=tmp_path), CONFIG)
    assert faces.images.shape == (5, 3, SIZE, SIZE)
    has_glasses = (faces.images[:, 0, 0, 0] < 100).long()  # G faces were drawn darker
    assert torch.equal(faces.labels["glasses"], has_glasses) and int(has_glasses.sum()) == 3
    assert set(attribute_atoms(faces)) >= {"glasses", "G", "NoG"}


def test_glasses_csv_layout(tmp_path: Path) -> None:
    faces_dir = tmp_path / "faces-spring-2020"
    for face_id in (1, 2, 3, 4):
        write_face(faces_dir / f"face-{face_id}.png", 40 * face_id)
    (tmp_path / "train.csv").write_text("id,glasses\n1,0\n2,1\n3,1\n4,0\n")
    faces = load_faces(DataSource(data=tmp_path), CONFIG)
    assert faces.labels["glasses"].tolist() == [0, 1, 1, 0]
    assert faces.images[:, 0, 0, 0].tolist() == [40, 80, 120, 160]


@pytest.mark.parametrize("table", ["txt", "csv"])
def test_celeba_attributes_become_glasses_and_male(tmp_path: Path, table: str) -> None:
    rows = {"000001.jpg": (1, -1, 1), "000002.jpg": (-1, 1, 1), "000003.jpg": (1, 1, -1)}
    for index, name in enumerate(rows):
        write_face(tmp_path / "img_align_celeba" / name, 60 * (index + 1), size=(30, 40))
    names = ["Eyeglasses", "Male", "Smiling"]
    if table == "txt":
        lines = [str(len(rows)), " ".join(names)]
        lines += [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in rows.items()]
        (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    else:
        lines = ["image_id," + ",".join(names)] + [f"{name}," + ",".join(map(str, values))
                                                  for name, values in rows.items()]
        (tmp_path / "list_attr_celeba.csv").write_text("\n".join(lines) + "\n")
    faces = load_faces(DataSource(data=tmp_path), CONFIG)
    assert faces.images.shape == (3, 3, SIZE, SIZE)  # 30x40 centre-cropped to a square, then resized
    assert faces.labels["glasses"].tolist() == [1, 0, 1]
    assert faces.labels["male"].tolist() == [0, 1, 1]
    assert set(faces.labels) == {"glasses", "male"}
    assert {"glasses", "male"} <= set(attribute_atoms(faces))


def test_image_folder_with_sub_folders_gives_class_attributes(tmp_path: Path) -> None:
    write_face(tmp_path / "smiling" / "a.png", 10)
    write_face(tmp_path / "serious" / "b.png", 20)
    write_face(tmp_path / "serious" / "c.jpg", 30)
    faces = load_faces(DataSource(data=tmp_path), CONFIG)
    assert faces.labels["class"].tolist() == [0, 0, 1]  # sorted folder names: serious, smiling
    atoms = attribute_atoms(faces)
    assert atoms["serious"] == ("class", 0) and atoms["smiling"] == ("class", 1)
    assert "class" not in atoms


def test_plain_image_folder_has_no_attributes(tmp_path: Path) -> None:
    for index in range(3):
        write_face(tmp_path / f"{index}.png", 50)
    faces = load_faces(DataSource(data=tmp_path), CONFIG)
    assert len(faces) == 3 and faces.labels == {}
    assert attribute_atoms(faces) == {}


def test_unreadable_images_are_skipped_with_a_count_or_refused(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_face(tmp_path / "G" / "good.png", 10)
    write_face(tmp_path / "NoG" / "good.png", 20)
    write_truncated(tmp_path / "NoG" / "broken.png")
    faces = load_faces(DataSource(data=tmp_path), CONFIG)
    assert len(faces) == 2
    assert "skipped 1 unreadable" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"broken\.png"):
        load_faces(DataSource(data=tmp_path, strict=True), CONFIG)


def test_a_folder_without_a_readable_image_is_one_error(tmp_path: Path) -> None:
    write_truncated(tmp_path / "a.png")
    write_truncated(tmp_path / "b.png")
    with pytest.raises(DataError, match="no readable image"):
        load_faces(DataSource(data=tmp_path), CONFIG)


def test_digits_and_two_domains_are_refused(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\0" * 16)
    with pytest.raises(DataError, match="not faces"):
        load_faces(DataSource(data=tmp_path), CONFIG)
    with pytest.raises(DataError, match="--data, not --data-a"):
        load_faces(DataSource(data_a=tmp_path), CONFIG)


def test_embedded_portraits_are_deterministic_and_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    first = load_faces(DataSource(), CONFIG)
    again = load_faces(DataSource(), CONFIG)  # read back from the cache
    assert first.images.shape == (24, 3, SIZE, SIZE) and first.images.dtype == torch.uint8
    assert torch.equal(first.images, again.images)
    assert set(first.labels) == {"glasses", "male", "blond"}
    limited = load_faces(DataSource(limit=10), CONFIG)
    assert len(limited) == 10 and torch.equal(limited.images, load_faces(DataSource(limit=10), CONFIG).images)


def test_every_kth_item_validates_and_join_restores_the_order() -> None:
    faces = ImageSet(images=torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 3, 2, 2).clone(),
                     labels={"glasses": (torch.arange(20) < 10).long()})  # one class after the other, as on disk
    data = split_faces(faces, DataSource(), CONFIG)
    assert data.val.images[:, 0, 0, 0].tolist() == [2, 6, 10, 14, 18]  # val_split 0.25: every fourth
    assert data.val.labels["glasses"].tolist() == [1, 1, 0, 0, 0]
    assert len(data.train) == 15 and not set(data.train.images[:, 0, 0, 0].tolist()) & {2, 6, 10, 14, 18}
    assert torch.equal(join(data).images, faces.images)
    assert data.held_out() is data.val
    assert len(split_faces(faces, DataSource(val_split=0.0), CONFIG).val) == 0
    assert split_faces(faces, DataSource(val_split=0.0), CONFIG).held_out().images.shape[0] == 20
    with pytest.raises(DataError, match="val_split"):
        split_faces(faces, DataSource(val_split=1.5), CONFIG)
