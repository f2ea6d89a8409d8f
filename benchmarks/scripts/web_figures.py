"""In-browser speed and size of `zoo export --format web` sites: onnxruntime-web (WASM SIMD, 1 thread and threaded) in
headless Chromium against native onnxruntime at the same thread count, and the bytes each model's site serves.

Two steps, the second holding the CPU alone::

    python benchmarks/scripts/web_figures.py build --work /tmp/zoo-web-figures        # trains 1 step, exports
    flock -x /tmp/zoo-cpu.lock python benchmarks/scripts/web_figures.py measure --work /tmp/zoo-web-figures

``build`` trains every model for one step (speed does not depend on the weights, so they are essentially the random
initial ones) at the quick preset (the 64² generator) and the 256² book generator, and exports each with
``--format web``. ``measure`` writes benchmarks/results/web_figures.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core import io as zio

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results" / "web_figures.json"
# (site, model, preset, overrides): the overrides only shrink the embedded data set, never the networks
BUILDS = [
    ("quick", "ae_mnist", "quick", {"embedded_items": 256}),
    ("quick", "vae_faces", "quick", {"portraits": 256}),
    ("quick", "cyclegan_hair", "quick", {"portraits": 64}),
    ("book256", "cyclegan_hair", "book", {"portraits": 16, "amp": False}),
]
# (label, site, model, graph, batch, seconds, warm-up runs, least runs)
CASES = [
    ("autoencoder (ae_mnist, batch 1)", "quick", "ae_mnist", "autoencoder", 1, 3.0, 5, 10),
    ("autoencoder (ae_mnist, batch 64)", "quick", "ae_mnist", "autoencoder", 64, 3.0, 3, 5),
    ("generator 64² (cyclegan_hair quick, batch 1)", "quick", "cyclegan_hair", "black_to_blond", 1, 3.0, 2, 3),
    ("generator 256² (cyclegan_hair book, random weights, batch 1)", "book256", "cyclegan_hair", "black_to_blond",
     1, 3.0, 1, 2),
]
THREADS = (1, 2)


def zoo(*args: Any) -> None:
    subprocess.run([str(BIN / "zoo"), *map(str, args)], check=True, cwd=ROOT)


def build(work: Path) -> None:
    for site, model, preset, overrides in BUILDS:
        run = work / "runs" / f"{model}-{preset}"
        sets = [part for key, value in overrides.items() for part in ("--set", f"{key}={value}")]
        zoo("train", model, "--preset", preset, *sets, "--max-steps", 1, "--device", "cpu", "--out", run)
        zoo("export", model, "--run", run, "--out", work / f"site-{site}", "--format", "web", "--no-validate",
            "--force")


def native_rate(path: Path, manifest_graph: dict[str, Any], batch: int, threads: int, seconds: float,
                warmups: int, least: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {spec["name"]: rng.standard_normal([batch if d == "N" else d for d in spec["shape"]]).astype(np.float32)
             for spec in manifest_graph["inputs"]}
    for _ in range(warmups):
        session.run(None, feeds)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < least:
        session.run(None, feeds)
        runs += 1
    return runs * batch / (time.perf_counter() - start)


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(600)
    driver.set_page_load_timeout(120)
    return driver


BENCH_JS = """
const done = arguments[arguments.length - 1];
window.zoo.bench(...Array.from(arguments).slice(0, -1)).then(done, (e) => done({error: e.message}));
"""


def open_page(driver: Any, url: str, threads: int) -> None:
    driver.get(f"{url}?threads={threads}")
    for _ in range(600):
        if driver.execute_script("return window.zoo && window.zoo.ready;"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not load")


def cpu_facts() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text()
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    return {"model": model, "cores": os.cpu_count(),
            "flags": sorted(f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                                                       "amx_bf16", "amx_int8"))}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def measure(work: Path, command: str) -> dict[str, Any]:
    import onnxruntime as ort
    from zoo_export.web import site_bytes
    from zoo_export.web.server import serve_in_thread

    before = uptime()
    print(f"uptime before: {before}", flush=True)
    servers = {site: serve_in_thread(work / f"site-{site}") for site in {case[1] for case in CASES}}
    driver = browser()
    rows = []
    try:
        for threads in THREADS:
            for site, (_, url) in servers.items():
                open_page(driver, url, threads)
                runtime = driver.execute_script("return window.zoo.runtime;")
                assert runtime["threads"] == threads and runtime["ep"] == "wasm", runtime
                for label, case_site, model, graph, batch, seconds, warmups, least in CASES:
                    if case_site != site:
                        continue
                    manifest = json.loads((work / f"site-{site}" / "models" / model / "manifest.json").read_text())
                    entry = manifest["graphs"][graph]
                    result = driver.execute_async_script(BENCH_JS, model, graph, batch, seconds, "fp32", warmups,
                                                         least)
                    if "error" in result:
                        raise RuntimeError(f"{label}: {result['error']}")
                    native = native_rate(work / f"site-{site}" / "models" / model / entry["file"], entry, batch,
                                         threads, seconds, warmups, least)
                    gflops = float(entry["gflops_per_item"])
                    row = {"case": label, "model": model, "graph": graph, "batch": batch, "threads": threads,
                           "browser_items_per_s": round(result["items_per_s"], 3), "browser_runs": result["runs"],
                           "native_items_per_s": round(native, 3),
                           "ratio": round(result["items_per_s"] / native, 3),
                           "gflops_per_item": round(gflops, 4),
                           "browser_gflop_per_s": round(gflops * result["items_per_s"], 2),
                           "native_gflop_per_s": round(gflops * native, 2)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        chromium = driver.capabilities.get("browserVersion", "?")
    finally:
        driver.quit()
        for server, _ in servers.values():
            server.shutdown()
    after = uptime()
    print(f"uptime after: {after}", flush=True)
    sizes = []
    for site in sorted({b[0] for b in BUILDS}):
        root = work / f"site-{site}"
        runtime_json = json.loads((root / "site.json").read_text())["runtime"]
        for model in json.loads((root / "site.json").read_text())["models"]:
            sizes.append({"site": site, "model": model, "bytes": site_bytes(root, model),
                          "megabytes": round(site_bytes(root, model) / 1e6, 2),
                          "onnx_fp32_bytes": sum(p.stat().st_size for p in (root / "models" / model).glob("*.onnx")),
                          "runtime_variant": runtime_json["variant"]})
    wasm = sum(p.stat().st_size for p in (work / "site-quick" / "zoo-web" / "ort").iterdir())
    return {"command": command, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpu": cpu_facts(), "platform": platform.platform(), "uptime_before": before, "uptime_after": after,
            "chromium": chromium, "onnxruntime_web": runtime_json["version"], "onnxruntime": ort.__version__,
            "method": "items/s = runs x batch / seconds over >= 3 s after warm-up runs, random float32 inputs; "
                      "browser: window.zoo.bench in headless Chromium on the site served by zoo's static server with "
                      "COOP/COEP (cross-origin isolated), ?threads=N sets ort.env.wasm.numThreads; native: "
                      "onnxruntime CPUExecutionProvider with intra_op_num_threads=N, sequential",
            "weights": "1 training step (initial weights, essentially random): speed does not depend on them",
            "rows": rows, "sites": sizes, "runtime_files_bytes": wasm}


def markdown(figures: dict[str, Any]) -> str:
    """The BENCHMARKS.md section for ``figures``."""
    cpu = figures["cpu"]
    lines = [
        "## In the browser (onnxruntime-web)",
        "",
        f"`zoo export --format web` sites in headless Chromium {figures['chromium']} (onnxruntime-web "
        f"{figures['onnxruntime_web']}, WASM SIMD) against native onnxruntime {figures['onnxruntime']} at the same "
        f"thread count. {cpu['model']}, {cpu['cores']} cores ({', '.join(cpu['flags'])}), {figures['date']}; "
        f"load before: `{figures['uptime_before']}`, after: `{figures['uptime_after']}`. Command: "
        "`python benchmarks/scripts/web_figures.py build --work /tmp/zoo-web-figures` then "
        f"`{figures['command']}`. {figures['weights'].capitalize()}. Method: {figures['method']}.",
        "",
        "| graph | threads | browser items/s | native items/s | browser / native | browser GFLOP/s | native GFLOP/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in figures["rows"]:
        lines.append(f"| {row['case']} | {row['threads']} | {row['browser_items_per_s']:.4g} | "
                     f"{row['native_items_per_s']:.4g} | {row['ratio']:.2f}× | {row['browser_gflop_per_s']:.3g} | "
                     f"{row['native_gflop_per_s']:.3g} |")
    lines += ["", "Site size per model (page + onnxruntime-web's one .wasm variant + the model's files):", "",
              "| site | model | MB | of which .onnx (fp32) MB |", "| --- | --- | --- | --- |"]
    for size in figures["sites"]:
        lines.append(f"| {size['site']} | {size['model']} | {size['megabytes']:.1f} | "
                     f"{size['onnx_fp32_bytes'] / 1e6:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["build", "measure", "markdown"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/zoo-web-figures"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.step == "build":
        build(args.work)
        return
    if args.step == "markdown":
        print(markdown(json.loads(args.out.read_text())), end="")
        return
    command = ("flock -x /tmp/zoo-cpu.lock python benchmarks/scripts/web_figures.py measure --work "
               f"{args.work}")
    figures = measure(args.work, command)
    zio.write_json(args.out, figures)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
