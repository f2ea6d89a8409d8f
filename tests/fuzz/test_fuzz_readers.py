"""Every reader of user input, fed generated hostile input: a result or one ZooError line, within bounds.

Each example runs in a forked child (fuzz_bounded.assert_bounded) under an address-space limit and a deadline.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fuzz_bounded import assert_bounded
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from zoo_core.config import parse_assignment, resolve_config
from zoo_core.registry import registered_model

FIRST_PARTY = ("ae_mnist", "vae_faces", "cyclegan_hair")


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per example (Hypothesis reuses a test's fixtures across its examples)."""
    folder = tempfile.mkdtemp(prefix="zoo-fuzz-")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def png_bytes(width: int = 6, height: int = 5) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = png_bytes()
# A gzip stream that inflates to 64 MiB of zeros from about 64 KiB: the bomb the IDX reader must not inflate.
BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)

# -- JSON values and the damage done to JSON records --------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from([-1, 0, 1, 10**7, 10**30, 1e30, -5, "../../evil", "1e999", [], {}]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def damaged_json(draw: st.DrawFn, record: Any) -> Any:
    """``record`` with one to three fields replaced by generated values, deleted, or the whole thing replaced."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    record = json.loads(json.dumps(record))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(record)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = record
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return record


def json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


@st.composite
def damaged_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, bit-flipped, spliced with junk, or replaced by junk."""
    how = draw(st.sampled_from(["truncate", "flip", "splice", "junk", "non-utf8"]))
    if how == "truncate":
        return data[:draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            if out:
                out[draw(st.integers(0, len(out) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    if how == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(max_size=64)) + data[at:]
    if how == "non-utf8":
        return data + b"\xff\xfe\xc3\x28"
    return draw(st.binary(max_size=256))


# -- MNIST IDX, raw and gzip -------------------------------------------------------------------------------------
dims_values = st.one_of(st.integers(0, 40), st.sampled_from([28, 60000, 65536, 2**31 - 1, 2**32 - 1, 2**16 + 1]))


@st.composite
def idx_file(draw: st.DrawFn, magic: int) -> bytes:
    found_magic = draw(st.sampled_from([magic, magic, magic, 2049 if magic == 2051 else 2051, 0, 0xFFFFFFFF]))
    ndim = draw(st.sampled_from([1, 3, 3, 0, 2, 4, 255]))
    dims = draw(st.lists(dims_values, min_size=min(ndim, 6), max_size=min(ndim, 6)))
    header = found_magic.to_bytes(4, "big")[:3] + bytes([ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
    size = int(np.prod(dims, dtype=object)) if dims else 1
    exact = size if size < 4096 else 0
    body_size = draw(st.sampled_from([exact, exact, max(0, exact - 1), exact + 1, 0, 100]))
    body = draw(st.binary(min_size=body_size, max_size=body_size)) if body_size < 64 else bytes(body_size)
    data = header + body
    wrap = draw(st.sampled_from(["raw", "gzip", "gzip-truncated", "bomb", "damaged"]))
    if wrap == "gzip":
        return gzip.compress(data)
    if wrap == "gzip-truncated":
        packed = gzip.compress(data)
        return packed[:draw(st.integers(0, len(packed) - 1))]
    if wrap == "bomb":  # the header declares a few bytes; the stream goes on for 64 MiB
        return gzip.compress(data[:len(header)]) + BOMB
    if wrap == "damaged":
        return draw(damaged_bytes(data))
    return data


@given(images=idx_file(2051), labels=idx_file(2049), gz=st.booleans())
def test_mnist_idx_files(images: bytes, labels: bytes, gz: bool) -> None:
    from zoo_core.data.mnist import load_mnist

    with scratch() as folder:
        suffix = ".gz" if gz else ""
        (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(images)
        (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(labels)
        assert_bounded(lambda: load_mnist(folder))


# -- CelebA attribute tables -------------------------------------------------------------------------------------
file_names = st.one_of(st.sampled_from(["000001.jpg", "000002.jpg", "../../outside.jpg", "/etc/passwd", "..",
                                        "a/../../b.jpg", "sub/000001.jpg", "", "x\x00y.jpg", "fifo.jpg"]),
                       st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12))
values = st.sampled_from(["1", "-1", "-1", "1", "0", "x", "300", "nan", "1e99", "", " ", "-129", "--1"])


@st.composite
def celeba_table(draw: st.DrawFn, csv: bool) -> bytes:
    if draw(st.integers(0, 7)) == 0:
        return draw(st.binary(max_size=200))
    names = draw(st.lists(st.sampled_from(["Eyeglasses", "Male", "Smiling", "x,y", ""]), min_size=0, max_size=4))
    rows = draw(st.lists(st.tuples(file_names, st.lists(values, min_size=0, max_size=5)), max_size=5))
    separator = "," if csv else " "
    lines = [separator.join(["image_id", *names])] if csv else [draw(st.sampled_from(
        [str(len(rows)), str(len(rows) + 1), "-1", "x", "99999999999999999999"])), " ".join(names)]
    lines += [separator.join([name, *row]) for name, row in rows]
    text = "\n".join(lines).encode("utf-8", "surrogatepass")
    return draw(damaged_bytes(text)) if draw(st.integers(0, 3)) == 0 else text


@given(csv=st.booleans(), data=st.data())
def test_celeba_tables(csv: bool, data: st.DataObject) -> None:
    from zoo_core.data.folders import load_celeba

    table = data.draw(celeba_table(csv))
    attributes = data.draw(st.lists(st.sampled_from(["Eyeglasses", "Male", "Nope"]), min_size=1, max_size=2))
    with scratch() as folder:
        images = folder / "img_align_celeba"
        images.mkdir()
        (images / "000001.jpg").write_bytes(PNG)
        (images / "000002.jpg").write_bytes(b"not an image")
        os.mkfifo(images / "fifo.jpg")
        (folder / "outside.jpg").write_bytes(PNG)
        (folder / ("list_attr_celeba.csv" if csv else "list_attr_celeba.txt")).write_bytes(table)
        assert_bounded(lambda: load_celeba(folder, 8, attributes, limit=4))


# -- image folders and single images -----------------------------------------------------------------------------
def _huge_png_header() -> bytes:
    """A PNG whose header claims 100,000 x 100,000 pixels (a decompression bomb's front)."""
    import struct
    import zlib

    data = bytearray(PNG)
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


HUGE_PNG = _huge_png_header()
entry_kinds = st.sampled_from(["png", "png", "junk", "truncated", "empty", "fifo", "dangling", "dir", "huge",
                               "hidden", "socket-like"])


def _make_entry(path: Path, kind: str, junk: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "png":
        path.write_bytes(PNG)
    elif kind == "junk":
        path.write_bytes(junk)
    elif kind == "truncated":
        path.write_bytes(PNG[: len(PNG) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind in ("fifo", "socket-like"):
        os.mkfifo(path)
    elif kind == "dangling":
        path.symlink_to(path.parent / "missing-target.png")
    elif kind == "dir":
        path.mkdir()
    elif kind == "huge":
        path.write_bytes(HUGE_PNG)
    elif kind == "hidden":
        (path.parent / f"._{path.name}").write_bytes(junk)


@given(entries=st.lists(st.tuples(st.sampled_from(["", "a/", "b/", "a/deep/", "G/", "NoG/"]), entry_kinds,
                                  st.sampled_from([".png", ".jpg", ".JPEG", ".webp"]), st.binary(max_size=40)),
                        min_size=1, max_size=6),
       size=st.sampled_from([1, 8, 16]), strict=st.booleans())
def test_image_folders(entries: list[tuple[str, str, str, bytes]], size: int, strict: bool) -> None:
    from zoo_core.data.folders import load_image_folder

    with scratch() as folder:
        for index, (sub, kind, suffix, junk) in enumerate(entries):
            _make_entry(folder / f"{sub}img{index}{suffix}", kind, junk)
        assert_bounded(lambda: load_image_folder(folder, size, strict=strict), deadline=30)


@given(kind=entry_kinds, suffix=st.sampled_from([".png", ".jpg", ".gif", ""]), junk=st.binary(max_size=64),
       channels=st.sampled_from([1, 3]))
def test_single_images(kind: str, suffix: str, junk: bytes, channels: int) -> None:
    from zoo_core.images import expand_image_paths, load_images

    with scratch() as folder:
        path = folder / f"input{suffix}"
        _make_entry(path, kind, junk)
        assert_bounded(lambda: load_images(expand_image_paths([path]), 8, channels), deadline=30)


# -- checkpoints and their metadata -------------------------------------------------------------------------------
def _checkpoint_parts(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["zoo"])
    return load_file(str(path)), meta


@given(data=st.data())
def test_checkpoints(tiny_run: Path, data: st.DataObject) -> None:
    from safetensors.torch import save

    from zoo_core.models import load_model

    source = tiny_run / "checkpoints" / "last.safetensors"
    how = data.draw(st.sampled_from(["metadata", "metadata", "bytes", "tensor"]))
    if how == "bytes":
        content = data.draw(damaged_bytes(source.read_bytes()))
    else:
        tensors, meta = _checkpoint_parts(source)
        if how == "metadata":
            meta = data.draw(damaged_json(meta))
        else:  # a tensor of another shape or dtype under a real name, the checksum left as it was
            key = data.draw(st.sampled_from(sorted(tensors)))
            tensors[key] = data.draw(st.sampled_from([torch.zeros(3), torch.zeros(0), torch.ones(2, 2).double(),
                                                      tensors[key] + 1]))
        content = save(tensors, metadata={"zoo": json_text(meta)})
    with scratch() as folder:
        path = folder / "last.safetensors"
        path.write_bytes(content)
        assert_bounded(lambda: load_model(registered_model("ae_mnist"), checkpoint=path, device="cpu", log=None))


# -- run directories for --resume ----------------------------------------------------------------------------------
@given(data=st.data())
def test_run_directories_for_resume(tiny_run: Path, data: st.DataObject) -> None:
    from safetensors.torch import save

    from zoo_core.engine import TrainOptions, train

    with scratch() as folder:
        run = Path(shutil.copytree(tiny_run, folder / "run"))
        part = data.draw(st.sampled_from(["config", "config", "config-bytes", "metrics", "position", "leftovers"]))
        if part == "config":
            record = json.loads((run / "config.json").read_text())
            (run / "config.json").write_text(json_text(data.draw(damaged_json(record))))
        elif part == "config-bytes":
            (run / "config.json").write_bytes(data.draw(damaged_bytes((run / "config.json").read_bytes())))
        elif part == "metrics":
            (run / "metrics.jsonl").write_bytes(data.draw(damaged_bytes((run / "metrics.jsonl").read_bytes())))
        elif part == "position":
            tensors, meta = _checkpoint_parts(run / "checkpoints" / "last.safetensors")
            meta["position"] = data.draw(damaged_json(meta["position"]))
            (run / "checkpoints" / "last.safetensors").write_bytes(save(tensors, metadata={"zoo": json_text(meta)}))
        else:  # what a killed save leaves: zoo's and safetensors' temporaries
            (run / "checkpoints" / ".last.safetensors.abcd1234.tmp").write_bytes(b"half")
            (run / "checkpoints" / ".tmpAb12Cd").write_bytes(b"half")
        options = TrainOptions(resume=run, max_steps=6, progress=False, device="cpu")
        assert_bounded(lambda: train(registered_model("ae_mnist"), options))
        if part == "leftovers":
            assert not [p.name for p in (run / "checkpoints").iterdir() if "tmp" in p.name]


# -- export directories and manifests ------------------------------------------------------------------------------
@given(data=st.data())
def test_export_directories(tiny_export: Path, data: st.DataObject) -> None:
    from zoo_export.runtime import open_export
    from zoo_export.sessions import SessionSettings

    with scratch() as folder:
        export = Path(shutil.copytree(tiny_export, folder / "export"))
        (folder / "outside.onnx").write_bytes((export / "decoder.onnx").read_bytes())
        manifest = json.loads((export / "manifest.json").read_text())
        part = data.draw(st.sampled_from(["manifest", "manifest", "manifest-bytes", "onnx", "swap", "escape"]))
        if part == "manifest":
            (export / "manifest.json").write_text(json_text(data.draw(damaged_json(manifest))))
        elif part == "manifest-bytes":
            (export / "manifest.json").write_bytes(data.draw(damaged_bytes((export / "manifest.json").read_bytes())))
        elif part == "onnx":
            damaged = data.draw(damaged_bytes((export / "decoder.onnx").read_bytes()))
            (export / "decoder.onnx").write_bytes(damaged)
            if data.draw(st.booleans()):  # the sha fixed up to match, so only onnxruntime can tell
                from zoo_core.checkpoint import file_sha256

                manifest["graphs"]["decoder"]["sha256"] = file_sha256(export / "decoder.onnx")
                (export / "manifest.json").write_text(json.dumps(manifest))
        elif part == "swap":  # another graph's file under this graph's name, with a matching sha
            manifest["graphs"]["decoder"]["file"] = manifest["graphs"]["encoder"]["file"]
            manifest["graphs"]["decoder"]["sha256"] = manifest["graphs"]["encoder"]["sha256"]
            (export / "manifest.json").write_text(json.dumps(manifest))
        else:
            manifest["graphs"]["decoder"]["file"] = data.draw(st.sampled_from(
                ["../outside.onnx", str(folder / "outside.onnx"), "link.onnx", "sub/decoder.onnx", "."]))
            (export / "link.onnx").symlink_to(folder / "outside.onnx")
            (export / "manifest.json").write_text(json.dumps(manifest))
        z_dim = 4

        def run() -> None:
            runner = open_export(export, "ae_mnist", SessionSettings(device="cpu", intra_op_threads=1))
            runner.run("decoder", torch.zeros(2, z_dim))
            runner.run("encoder", torch.zeros(3, 1, 28, 28))

        assert_bounded(run)


# -- --set values ---------------------------------------------------------------------------------------------------
set_values = st.one_of(
    st.sampled_from(["null", "-1", "0", "1e30", "1e999", "-1e999", "NaN", "Infinity", "1.5", "true", "[1,2]",
                     "{\"a\": 1}", "\"text\"", "9" * 40, "9" * 5000, "[" * 3000, "", "=", "1\n2", "0x10"]),
    st.text(max_size=12), st.integers(-(10**12), 10**12).map(str), st.floats().map(repr))


@given(model=st.sampled_from(FIRST_PARTY), data=st.data())
def test_set_values(model: str, data: st.DataObject) -> None:
    spec = registered_model(model).spec
    key = data.draw(st.one_of(st.sampled_from(sorted(spec.preset("quick").values)), st.text(max_size=8)))
    text = f"{key}={data.draw(set_values)}"

    def resolve() -> None:
        key_name, value = parse_assignment(text)
        config = resolve_config(spec, "quick", {key_name: value})
        if model == "ae_mnist":  # its networks are small at any accepted size: build them too
            from zoo_core.models import build_model

            build_model(registered_model(model), config)

    assert_bounded(resolve)


# -- --z files ------------------------------------------------------------------------------------------------------
@st.composite
def npy_file(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200))
    descr = draw(st.sampled_from(["<f4", "<f8", "<i8", "|O", "<c8", "|b1", "<U3", "<f2", "bogus"]))
    shape = draw(st.sampled_from(["(2, 4)", "(100000000000, 20)", "(2,)", "(0, 4)", "(3, 4, 1)", "(-1, 4)",
                                  "(2, 5)", "()", "(20000, 4)"]))
    header = f"{{'descr': '{descr}', 'fortran_order': {draw(st.booleans())}, 'shape': {shape}, }}"
    header = header.ljust(118) + "\n"
    magic = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1")
    body = draw(st.sampled_from([bytes(32), bytes(0), np.full(8, np.nan, np.float32).tobytes(), bytes(320000)]))
    return draw(damaged_bytes(magic + body)) if draw(st.integers(0, 5)) == 0 else magic + body


@given(content=npy_file())
def test_z_files(content: bytes) -> None:
    from zoo_ae_mnist.tasks import load_codes

    with scratch() as folder:
        path = folder / "codes.npy"
        path.write_bytes(content)
        assert_bounded(lambda: load_codes(path, 4))


# -- arithmetic expressions (vae_faces) ----------------------------------------------------------------------------
expression_text = st.one_of(
    st.text(alphabet=list("glasses male smiling~&|+-()0123456789., /*\n\t'\""), max_size=40),
    st.text(max_size=30),
    st.sampled_from(["glasses&male - glasses&~male + ~glasses&~male", "((((((((((glasses", "~" * 5000,
                     "+" * 3000, "faces/*.png + ../../etc", "1e999*glasses", "glasses&" * 500]))


@given(text=expression_text)
def test_arithmetic_expressions(text: str) -> None:
    from zoo_vae_faces.expression import parse_expression

    assert_bounded(lambda: parse_expression(text), deadline=20)


# -- environment variables -----------------------------------------------------------------------------------------
env_values = st.one_of(st.sampled_from(["", "0", "1", "-1", "99999", "1000", "²", "٣", "1.5", "fp16", "int8",
                                        "yes", "no", "x" * 300, " 2 ", "true", "fp64"]), st.text(max_size=8))


@given(threads=env_values, precision=env_values, tf32=env_values, cuda_graph=env_values)
def test_runtime_environment_variables(threads: str, precision: str, tf32: str, cuda_graph: str) -> None:
    from zoo_export.sessions import SessionSettings

    def resolve() -> None:
        for name, value in (("THREADS", threads), ("PRECISION", precision), ("TF32", tf32),
                            ("CUDA_GRAPH", cuda_graph)):
            os.environ["ZOO_ORT_" + name] = value.replace("\x00", "")  # the OS cannot hold a NUL
        SessionSettings.from_env("cpu")

    assert_bounded(resolve, deadline=20)


@given(load=st.one_of(st.none(), env_values), disable=st.one_of(st.none(), env_values), cache=env_values)
def test_plugin_and_cache_environment_variables(load: str | None, disable: str | None, cache: str) -> None:
    from zoo_core import plugins
    from zoo_core.data.procedural import cache_root

    def resolve() -> None:
        for name, value in (("ZOO_LOAD_PLUGINS", load), ("ZOO_DISABLE_PLUGINS", disable)):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value.replace("\x00", "")
        os.environ["ZOO_CACHE_DIR"] = cache.replace("\x00", "")
        plugins.reset_host(None)
        plugins.get_host().commands()
        cache_root()

    assert_bounded(resolve, deadline=30)
