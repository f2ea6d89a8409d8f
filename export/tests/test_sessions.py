"""The session layer: settings in one place, host runs, copy-free IOBinding runs, node placement."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from zoo_export.runtime import open_export
from zoo_export.sessions import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    GraphSession,
    SessionSettings,
    cpu_nodes,
    execution_providers,
    gpu_available,
    node_providers,
    session_options,
)
from zoo_export_testing import Exported

from zoo_core.errors import UsageError


def test_cpu_settings_ask_only_for_the_cpu_provider() -> None:
    settings = SessionSettings.resolve("cpu", intra_op_threads=1)
    assert execution_providers(settings) == [CPU_PROVIDER]
    options = session_options(settings)
    assert options.intra_op_num_threads == 1
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_ALL")


def test_cuda_settings_configure_the_cuda_provider() -> None:
    settings = SessionSettings(device="cuda", device_id=1, cuda_graph=True)
    (name, options), fallback = execution_providers(settings)
    assert (name, fallback) == (CUDA_PROVIDER, CPU_PROVIDER)
    assert options == {"device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE", "use_tf32": "0",
                       "enable_cuda_graph": "1"}


def test_auto_device_follows_the_hardware() -> None:
    assert SessionSettings.resolve("auto").device == ("cuda" if gpu_available() else "cpu")
    if not gpu_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            SessionSettings.resolve("cuda")


def test_environment_selects_precision_threads_and_cuda_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_ORT_PRECISION", "fp16")
    monkeypatch.setenv("ZOO_ORT_THREADS", "2")
    settings = SessionSettings.from_env("cpu")
    assert (settings.precision, settings.intra_op_threads, settings.cuda_graph) == ("fp16", 2, False)
    monkeypatch.setenv("ZOO_ORT_CUDA_GRAPH", "1")
    with pytest.raises(UsageError, match="CUDA graphs need --device cuda"):
        SessionSettings.from_env("cpu")
    monkeypatch.setenv("ZOO_ORT_CUDA_GRAPH", "maybe")
    with pytest.raises(UsageError, match="ZOO_ORT_CUDA_GRAPH must be 0 or 1"):
        SessionSettings.from_env("cpu")


def test_session_reports_inputs_outputs_and_runs_host_arrays(tiny: Exported) -> None:
    session = GraphSession(tiny.export / "encoder.onnx", SessionSettings())
    assert [(i.name, i.shape, i.dtype) for i in session.inputs] == [("image", ("N", 1, 8, 8), np.float32)]
    assert [o.name for o in session.outputs] == ["mu", "logvar"]
    assert session.providers == [CPU_PROVIDER]
    mu, logvar = session.run_numpy([np.full((3, 1, 8, 8), 0.5, dtype=np.float64)])  # cast to the model's float32
    assert mu.shape == logvar.shape == (3, 4) and mu.dtype == np.float32


def test_bound_run_writes_outputs_in_place_without_copies(tiny: Exported) -> None:
    session = GraphSession(tiny.export / "encoder.onnx", SessionSettings())
    images = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    bound = session.bind([images])
    assert bound.inputs[0].data_ptr() == images.ctypes.data  # the numpy buffer itself is bound
    assert [tuple(o.shape) for o in bound.outputs] == [(4, 4), (4, 4)]
    pointers = [o.data_ptr() for o in bound.outputs]
    bound.run()
    first = [o.clone() for o in bound.outputs]
    for got, want in zip(first, session.run_numpy([images]), strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    images[:] = 1.0 - images  # refill in place: the next run sees the new values
    bound.run()
    assert [o.data_ptr() for o in bound.outputs] == pointers
    np.testing.assert_array_equal(bound.outputs[0].numpy(), session.run_numpy([images])[0])
    assert not torch.equal(bound.outputs[0], first[0])


def test_fp16_io_session_casts_host_inputs(tiny: Exported) -> None:
    runner = open_export(tiny.export, "tiny_vae", SessionSettings(precision="fp16"))
    session = runner.session("decoder")
    assert session.path.name == "decoder.fp16.onnx"
    (image,) = runner.run("decoder", torch.zeros(2, 4))
    assert image.dtype == torch.float32 and image.shape == (2, 1, 8, 8)


def test_node_providers_name_every_node_and_its_provider(tiny: Exported) -> None:
    placements = node_providers(tiny.export / "decoder.onnx", SessionSettings(), [np.zeros((2, 4), np.float32)])
    assert {p.provider for p in placements} == {CPU_PROVIDER}
    assert {"Conv", "ConvTranspose", "InstanceNormalization"} <= {p.op_type for p in placements}
    assert len(cpu_nodes(placements)) == len(placements)
    assert cpu_nodes(placements)[0].keys() == {"node", "op"}


def test_onnxruntime_is_quiet_on_a_cpu_machine(tiny: Exported) -> None:
    """Importing onnxruntime-gpu and running a session prints nothing when there is no GPU."""
    script = ("from zoo_export.sessions import GraphSession, SessionSettings\n"
              "import numpy as np\n"
              f"GraphSession({str(tiny.export / 'decoder.onnx')!r}, SessionSettings.resolve('auto'))"
              ".run_numpy([np.zeros((1, 4), np.float32)])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if not gpu_available():
        assert done.stdout == "" and done.stderr == ""


def test_runner_keeps_a_binding_per_shape_and_returns_fresh_tensors(tiny: Exported) -> None:
    runner = open_export(tiny.export, "tiny_vae", SessionSettings())
    first = runner.run("decoder", torch.zeros(2, 4))[0]
    binding = runner.bindings["decoder"]
    second = runner.run("decoder", torch.ones(2, 4))[0]
    assert runner.bindings["decoder"] is binding  # same shape: same buffers
    assert not torch.equal(first, second)  # the first result was not overwritten by the second call
    np.testing.assert_array_equal(first.numpy(), runner.session("decoder").run_numpy([np.zeros((2, 4))])[0])
    third = runner.run("decoder", torch.ones(5, 4))[0]
    assert runner.bindings["decoder"] is not binding and third.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(third[:2].numpy(), second.numpy(), rtol=1e-5, atol=1e-6)
