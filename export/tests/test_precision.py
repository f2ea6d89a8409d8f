"""`zoo generate --precision`: which of an export's graph files a runtime runs, refused in one line when absent.

The int8 path through every model's tasks is covered by test_int8.py (it generates with ``--precision int8``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from zoo_export_testing import Exported, assert_clean_exit, assert_one_line_error, zoo


def _sample(tiny: Exported, out: Path, *options: str | Path) -> object:
    return zoo("generate", tiny.model.name, "sample", "--count", "2", "--device", "cpu", "--out", out, *options)


def test_fp16_runs_the_fp16_files_and_the_option_wins_over_the_environment(
        tiny: Exported, tmp_path: Path, install_host, monkeypatch: pytest.MonkeyPatch) -> None:
    install_host(tiny.host)
    monkeypatch.setenv("ZOO_ORT_PRECISION", "int8")  # tiny's export has no int8 files: the option must win
    result = _sample(tiny, tmp_path / "fp16", "--runtime", "onnxruntime", "--export", tiny.export,
                     "--precision", "fp16")
    assert_clean_exit(result)
    assert "fp16 on cpu" in result.stderr and list((tmp_path / "fp16").rglob("*.png"))
    result = _sample(tiny, tmp_path / "fp32", "--runtime", "onnxruntime", "--export", tiny.export,
                     "--precision", "fp32")
    assert_clean_exit(result)
    assert "fp32 on cpu" in result.stderr


def test_an_export_without_int8_files_is_one_line_before_anything_runs(tiny: Exported, tmp_path: Path,
                                                                       install_host) -> None:
    install_host(tiny.host)
    result = _sample(tiny, tmp_path / "out", "--runtime", "onnxruntime", "--export", tiny.export,
                     "--precision", "int8")
    assert_one_line_error(result, 1, "no int8 file for any graph", f"zoo export {tiny.model.name} --int8")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("runtime", "precision"), [("torch", "int8"), ("torch", "fp16"), ("aoti", "int8")])
def test_a_runtime_that_runs_only_fp32_refuses_another_precision(tiny: Exported, tmp_path: Path, install_host,
                                                                 runtime: str, precision: str) -> None:
    install_host(tiny.host)
    source = ["--run", tiny.run] if runtime == "torch" else ["--export", tiny.export]
    result = _sample(tiny, tmp_path / "out", "--runtime", runtime, *source, "--precision", precision)
    assert_one_line_error(result, 2, f"--runtime {runtime} runs fp32 only", f"--precision {precision}")


def test_an_unknown_precision_is_a_usage_error(tiny: Exported, tmp_path: Path, install_host) -> None:
    install_host(tiny.host)
    result = _sample(tiny, tmp_path / "out", "--runtime", "onnxruntime", "--export", tiny.export,
                     "--precision", "int4")
    assert result.exit_code == 2 and "int4" in result.stderr and "Traceback" not in result.output
