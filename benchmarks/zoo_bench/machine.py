"""The machine and library versions a result was measured on."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

DISTRIBUTIONS = ("zoo-core", "zoo-export", "zoo-bench", "torch", "onnxruntime", "onnxruntime-gpu", "onnx",
                 "onnxscript", "numpy")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average: other processes competing for the cores make timings noisy."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def gpu_info() -> dict[str, Any] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
            "cudnn": str(torch.backends.cudnn.version())}


def describe_machine(device: str) -> dict[str, Any]:
    """CPU model and cores, the GPU when the run used one, OS, library versions, the date and the load."""
    machine: dict[str, Any] = {
        "cpu": cpu_model(), "cores": usable_cores(), "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "versions": versions(),
        "load_average_1m": load_average(),
    }
    if device == "cuda":
        machine["gpu"] = gpu_info()
    return machine


def device_slug(device: str, machine: dict[str, Any]) -> str:
    """A file-name-safe name for where results were measured: ``cpu-amd-epyc-2c``, ``cuda-nvidia-h200``."""
    if device == "cuda" and machine.get("gpu"):
        name = machine["gpu"]["name"]
        return "cuda-" + slugify(name)
    return f"cpu-{slugify(machine['cpu'])}-{machine['cores']}c"


def slugify(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu @.*$|processor", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"
