"""Tiny exports of the first-party models for zoo-serve's tests and benchmark scripts.

Each model trains for a couple of steps on a few embedded images at a small size and is exported
without validation (zoo-export's own tests validate): seconds on a CPU, yet every graph and task
the server serves is real. The autoencoder's graph has its full size at any preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo_core.extend import TrainOptions, registered_model, train

TINY: dict[str, dict[str, Any]] = {
    "ae_mnist": {"embedded_items": 64, "epochs": 1, "batch_size": 16},
    "vae_faces": {"image_size": 32, "portraits": 48, "batch_size": 8, "epochs": 1},
    "cyclegan_hair": {"image_size": 32, "load_size": 32, "features": 4, "res_blocks": 1, "d_features": 4,
                      "portraits": 24, "batch_size": 2, "epochs": 1, "val_fraction": 0.2},
}
STEPS = 2


def tiny_export(model: str, root: Path, overrides: Mapping[str, Any] | None = None, steps: int = STEPS,
                preset: str = "quick") -> Path:
    """Train ``model`` for ``steps`` steps under ``root/runs`` and export it to ``root/exports/MODEL``."""
    from zoo_export.pipeline import ExportOptions, export_model

    registered = registered_model(model)
    values = dict(TINY.get(model, {})) if overrides is None else dict(overrides)
    # runs/MODEL/RUN, the layout in which `--runtime torch` finds the newest run
    run = train(registered, TrainOptions(preset=preset, overrides=values, device="cpu",
                                         out=root / "runs" / model / "tiny", max_steps=steps, progress=False))
    return export_model(registered, ExportOptions(run=run, out=root / "exports" / model, validate=False,
                                                  log=lambda line: None))


def tiny_exports(root: Path, models: tuple[str, ...] = tuple(TINY)) -> dict[str, Path]:
    """Tiny exports of ``models`` (default: the three first-party ones) under ``root/exports``."""
    return {model: tiny_export(model, root) for model in models}


SCHEMATHESIS_CONFIG = Path(__file__).resolve().parents[1] / "tests" / "schemathesis.toml"


def run_schemathesis(url: str, examples: int, seed: int = 7, request_timeout_s: float = 20,
                     max_time_s: float | None = None) -> dict[str, Any]:
    """Schemathesis (``st run --checks all``) on ``url``'s OpenAPI document; the outcome as a dict.

    Keys: ``command``, ``exit_code``, ``generated`` and ``passed`` (test cases), ``failures`` and ``errors``
    (counts from the summary), ``output`` (the report's first 12,000 characters: the failures come first).
    A request that hangs past ``request_timeout_s`` is an error, so a hang cannot pass.
    """
    import re
    import subprocess
    import sys

    st = Path(sys.executable).with_name("st")
    command = [str(st), "--config-file", str(SCHEMATHESIS_CONFIG), "run", f"{url}/openapi.json", "--checks", "all",
               "--max-examples", str(examples), "--seed", str(seed), "--workers", "1",
               "--request-timeout", str(request_timeout_s), "--no-color"]
    if max_time_s is not None:
        command += ["--max-time", str(max_time_s)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    cases = re.search(r"(\d+) generated, (\d+) (?:passed|found)", output)
    generated = int(cases[1]) if cases else 0
    failures = re.search(r"(\d+) (?:unique )?failures?", output.split("SUMMARY")[-1]) if "SUMMARY" in output else None
    errors = re.search(r"(\d+) errors?", output.split("SUMMARY")[-1]) if "SUMMARY" in output else None
    passed = re.search(r"(\d+) passed", output.split("SUMMARY")[-1])
    return {"command": " ".join([Path(command[0]).name, *command[3:]]), "exit_code": done.returncode,
            "generated": generated,
            "passed": int(passed[1]) if passed else 0, "failures": int(failures[1]) if failures else 0,
            "errors": int(errors[1]) if errors else 0, "output": output[:12000]}
