"""zoo-openvino's tests reuse zoo-export's tiny third-party model and helpers (beside its tests); tiny_vae is
trained and exported with int8 files once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parents[2] / "export" / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import zoo_export_tiny  # noqa: E402
from zoo_export_testing import install_host_fixture, train_tiny  # noqa: E402
from zoo_openvino_testing import TinyExport, openvino_host  # noqa: E402

install_host = pytest.fixture(install_host_fixture)


@pytest.fixture(scope="session")
def tiny_int8(tmp_path_factory: pytest.TempPathFactory) -> TinyExport:
    """tiny_vae trained for 2 steps and exported with fp32 and int8 ONNX files."""
    from zoo_export.pipeline import ExportOptions, export_model
    from zoo_export.quantize import Int8Options

    root = tmp_path_factory.mktemp("openvino")
    host = openvino_host()
    model = host.models[zoo_export_tiny.MODEL]
    run = train_tiny(model, root / "run")
    log: list[str] = []
    # one calibration method and no speed race: the int8 files are what these tests need, not the search
    options = Int8Options(samples=16, method="minmax", keep_slower=True, progress=False,
                          timer=lambda paths, feeds: [1.0] * len(paths))
    export = export_model(model, ExportOptions(run=run, out=root / "export", int8=options,
                                               log=log.append))
    return TinyExport(host, model, run, export, log)
