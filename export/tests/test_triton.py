"""`zoo export --triton DIR`: a Triton model repository whose every config.pbtxt parses with the protobuf schema
shipped in tritonclient, beside byte-identical model.onnx files; DIR may hold other models, which zoo never touches."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from zoo_export.manifest import load_export
from zoo_export.sessions import GraphSession
from zoo_export.triton import MARKER, write_triton_repository
from zoo_export_testing import MODEL, Exported, assert_clean_exit, assert_one_line_error, zoo

from zoo_core.checkpoint import file_sha256


def model_config_pb2() -> Any:
    """tritonclient's ModelConfig schema, loaded from its file: tritonclient.grpc's package needs grpcio, the
    schema module itself only protobuf."""
    tritonclient = pytest.importorskip("tritonclient", reason="pip install tritonclient to parse config.pbtxt")
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    if not path.is_file():
        pytest.skip(f"this tritonclient has no {path}")
    spec = importlib.util.spec_from_file_location("zoo_triton_model_config_pb2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse(config: Path) -> Any:
    from google.protobuf import text_format

    schema = model_config_pb2()
    return text_format.Parse(config.read_text(), schema.ModelConfig())


def test_every_graph_becomes_a_parsable_triton_model(tiny: Exported, tmp_path: Path) -> None:
    record = load_export(tiny.export, MODEL)
    repository = tmp_path / "models"
    folders = write_triton_repository(record, repository, max_batch=4)
    assert sorted(p.name for p in folders) == [f"{MODEL}.decoder", f"{MODEL}.encoder"]
    schema = model_config_pb2()
    for folder in folders:
        config = parse(folder / "config.pbtxt")
        graph = folder.name.split(".", 1)[1]
        entry = record.graph_entry(graph)
        assert config.name == folder.name and config.platform == "onnxruntime_onnx"
        assert config.max_batch_size == 4 and config.dynamic_batching.max_queue_delay_microseconds > 0
        assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
        for declared, tensors in ((entry["inputs"], config.input), (entry["outputs"], config.output)):
            assert [t.name for t in tensors] == [t["name"] for t in declared]
            assert [list(t.dims) for t in tensors] == [t["shape"][1:] for t in declared]
            assert all(t.data_type == schema.TYPE_FP32 for t in tensors)
        onnx_file = folder / "1" / "model.onnx"
        assert file_sha256(onnx_file) == entry["sha256"]
        session = GraphSession(onnx_file)  # the copy runs, with the batch axis Triton adds
        inputs = [np.zeros((3, *t["shape"][1:]), np.float32) for t in entry["inputs"]]
        assert [o.shape[0] for o in session.run_numpy(inputs)] == [3] * len(entry["outputs"])


def test_the_cli_writes_the_repository_and_replaces_only_its_own(tiny: Exported, tmp_path: Path,
                                                                install_host: Any) -> None:
    install_host(tiny.host)
    repository = tmp_path / "models"
    foreign = repository / "someone_else"
    foreign.mkdir(parents=True)
    (foreign / "config.pbtxt").write_text('name: "someone_else"\n')
    args = ["export", MODEL, "--run", tiny.run, "--out", tmp_path / "export", "--no-validate", "--triton", repository]
    assert_clean_exit(zoo(*args))
    configs = sorted(repository.glob("*/config.pbtxt"))
    assert sorted(p.parent.name for p in configs) == ["someone_else", f"{MODEL}.decoder", f"{MODEL}.encoder"]
    assert all(parse(p).name == p.parent.name for p in configs)
    # a second export replaces zoo's own models in place, and leaves the foreign one alone
    assert_clean_exit(zoo(*args, "--force", "--triton-max-batch", "16"))
    assert parse(repository / f"{MODEL}.encoder" / "config.pbtxt").max_batch_size == 16
    assert (foreign / "config.pbtxt").read_text() == 'name: "someone_else"\n'
    assert not [p for p in repository.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_a_model_folder_zoo_did_not_write_is_refused(tiny: Exported, tmp_path: Path, install_host: Any) -> None:
    install_host(tiny.host)
    repository = tmp_path / "models"
    mine = repository / f"{MODEL}.decoder"
    mine.mkdir(parents=True)
    (mine / "config.pbtxt").write_text("# hand-written\n")
    result = zoo("export", MODEL, "--run", tiny.run, "--out", tmp_path / "export", "--no-validate",
                 "--triton", repository)
    assert_one_line_error(result, 2, "not written by zoo export")
    assert (mine / "config.pbtxt").read_text() == "# hand-written\n"
    assert not (repository / f"{MODEL}.encoder").exists()  # nothing written when any model is refused
    assert MARKER not in (mine / "config.pbtxt").read_text()
