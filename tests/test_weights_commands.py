"""--weights on zoo export and zoo bench (the named weights exported and timed like a checkpoint), and the exported
runtimes refusing --weights in one line that says how to export them."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo_core.testing import invoke, isolated_host, torch_threads

ae_plugin = pytest.importorskip("zoo_ae_mnist.plugin")
export_plugin = pytest.importorskip("zoo_export.plugin")
SHIPPED = Path(ae_plugin.__file__).parent / "weights" / "mnist.safetensors"


def zoo(*args: object) -> object:
    with isolated_host((ae_plugin, "zoo-ae-mnist"), (export_plugin, "zoo-export")), torch_threads(1):
        return invoke(*args)


def test_export_takes_weights_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo_export.pipeline

    asked = []  # the exporter itself is tested with checkpoints elsewhere: here, what it is handed
    monkeypatch.setattr(zoo_export.pipeline, "export_model", lambda model, options: asked.append(options) or
                        tmp_path / "export")
    result = zoo("export", "ae_mnist", "--weights", "mnist", "--out", tmp_path / "export")
    assert result.exit_code == 0, result.stderr
    assert asked[0].checkpoint == SHIPPED and asked[0].run is None
    both = zoo("export", "ae_mnist", "--weights", "mnist", "--checkpoint", SHIPPED, "--out", tmp_path / "x")
    assert both.exit_code == 2 and both.stderr == "zoo: --weights names the weights already; drop --run and " \
                                                  "--checkpoint\n"


def test_exported_runtimes_refuse_weights_in_one_line() -> None:
    result = zoo("generate", "ae_mnist", "reconstruct", "--runtime", "onnxruntime", "--weights", "mnist")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "zoo export ae_mnist --weights mnist" in result.stderr


def test_bench_times_weights_by_name(tmp_path: Path) -> None:
    bench_plugin = pytest.importorskip("zoo_bench.plugin")
    with isolated_host((ae_plugin, "zoo-ae-mnist"), (bench_plugin, "zoo-bench")), torch_threads(1):
        result = invoke("bench", "ae_mnist", "--weights", "mnist", "--runtimes", "torch", "--graphs", "decoder",
                        "--batch-sizes", "1", "--device", "cpu", "--min-seconds", "0.01", "--min-runs", "1",
                        "--max-seconds", "0.05", "--warmup-seconds", "0", "--peak-size", "512", "--no-progress",
                        "--json", tmp_path / "bench.json")
        refused = invoke("bench", "ae_mnist", "--weights", "nope")
    assert result.exit_code == 0, result.stderr
    assert "bench.json" in result.stderr and (tmp_path / "bench.json").is_file()
    assert refused.exit_code == 2 and "not a weights name of ae_mnist" in refused.stderr


def test_serve_loads_weights_by_name_on_torch() -> None:
    pytest.importorskip("zoo_serve.models")
    from zoo_serve.models import ServeSettings, load_models, resolve_sources

    from zoo_core.errors import UsageError

    with isolated_host((ae_plugin, "zoo-ae-mnist")), torch_threads(1):
        served = load_models(ServeSettings(models=("ae_mnist",), runtime="torch", weights="mnist", quiet=True))
        assert served["ae_mnist"].runner.checkpoint == SHIPPED
        for settings in (ServeSettings(models=("ae_mnist",), weights="mnist"),  # onnxruntime: serves exports
                         ServeSettings(runtime="torch", weights="mnist")):  # which model's weights?
            with pytest.raises(UsageError, match="--weights serves one named model on --runtime torch"):
                resolve_sources(settings)
