"""The `zoo export` command (click only at import; the exporter loads when the command runs)."""

from __future__ import annotations

from pathlib import Path

import click

from zoo_core.extend import MODEL, UsageError


def _graph_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("--graphs takes comma-separated graph names, e.g. --graphs encoder,decoder")
    return names


@click.command("export")
@click.argument("model", type=MODEL)
@click.option("--run", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Run directory (default: the newest under runs/MODEL).")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint file instead of a run directory.")
@click.option("--weights", help="Published weights instead of a run: a name from `zoo info MODEL`, "
              "URL#sha256=HEX, a file, a Hub folder or hf://org/repo[@rev].")
@click.option("--out", type=click.Path(path_type=Path), help="Export directory (default: exports/MODEL).")
@click.option("--graphs", help="Comma-separated graphs to export (default: all).")
@click.option("--opset", type=click.IntRange(min=7), default=18, show_default=True,
              help="ONNX opset (18 keeps CUDA kernels for Pad and ConvTranspose).")
@click.option("--fp16", is_flag=True, help="Also write GRAPH.fp16.onnx (fp16 weights and activations).")
@click.option("--fp16-io", is_flag=True, help="Give the fp16 files float16 inputs and outputs (implies --fp16).")
@click.option("--int8", is_flag=True,
              help="Also write GRAPH.int8.onnx (static QDQ quantization), kept where the graph's quality bars hold.")
@click.option("--calibration-data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Data folder to calibrate --int8 on (default: the run's own training data).")
@click.option("--calibration-method", type=click.Choice(["minmax", "entropy", "percentile"]),
              help="How --int8 calibration picks activation ranges (default: the search tries all three).")
@click.option("--calibration-samples", type=click.IntRange(1, 100_000),
              help="Inputs --int8 calibrates on (default: clamp(2**22 / input values per item, 16, 256)).")
@click.option("--int8-keep-slower", is_flag=True,
              help="Write the int8 file even where it runs no faster than fp32 on this machine.")
@click.option("--format", "formats", type=click.Choice(["onnx", "aoti", "executorch", "web"]), multiple=True,
              help="aoti also writes GRAPH.pt2 AOTInductor packages; executorch writes GRAPH.pte XNNPACK programs "
                   "(and GRAPH.int8.pte with --int8); web makes --out a static site running every task in the "
                   "browser (onnxruntime-web), the export in OUT/models/MODEL. The .onnx files are always written.")
@click.option("--web-webgpu", is_flag=True,
              help="web: ship onnxruntime-web's WebGPU build (27 MB, also runs WASM) instead of the WASM one (14 MB).")
@click.option("--no-validate", is_flag=True, help="Skip the onnxruntime-against-PyTorch validation.")
@click.option("--force", is_flag=True, help="Replace a previous zoo export at --out (never anything else).")
@click.option("--triton", type=click.Path(file_okay=False, path_type=Path),
              help="Also write a Triton model repository here: MODEL.GRAPH/config.pbtxt and MODEL.GRAPH/1/model.onnx.")
@click.option("--triton-max-batch", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="max_batch_size (and dynamic batching) of the --triton models.")
@click.option("--threads", type=int, help="CPU threads for torch (default: ZOO_THREADS, else one per core).")
def export_command(model: str, run: Path | None, checkpoint: Path | None, out: Path | None, graphs: str | None,
                   weights: str | None,
                   opset: int, fp16: bool, fp16_io: bool, int8: bool, calibration_data: Path | None,
                   calibration_method: str | None, calibration_samples: int | None, formats: tuple[str, ...],
                   no_validate: bool, force: bool, triton: Path | None = None, triton_max_batch: int = 8,
                   threads: int | None = None, int8_keep_slower: bool = False, web_webgpu: bool = False) -> None:
    """Export MODEL's graphs to ONNX, validate them against PyTorch and write manifest.json."""
    from zoo_core.extend import apply_threads, registered_model

    apply_threads(threads)
    from zoo_export.pipeline import ExportOptions, export_model
    from zoo_export.quantize import Int8Options

    if not int8 and int8_keep_slower:
        raise UsageError("--int8-keep-slower applies to an int8 export: add --int8")
    if not int8 and calibration_data is not None:
        raise UsageError("--calibration-data calibrates an int8 export: add --int8")
    if web_webgpu and "web" not in formats:
        raise UsageError("--web-webgpu applies to a web export: add --format web")
    registered = registered_model(model)
    if weights is not None:  # published weights: used as the checked checkpoint file they resolve to
        if run is not None or checkpoint is not None:
            raise UsageError("--weights names the weights already; drop --run and --checkpoint")
        from zoo_core.api import resolve_weights

        checkpoint = resolve_weights(registered, weights, log=lambda line: click.echo(line, err=True))
    site = (out or Path("exports") / f"{model}-web") if "web" in formats else None
    if site is not None:  # refused before the export runs, not after: no site folder, or no onnxruntime-web
        from zoo_export.web import check_site_target, ort_files

        ort_files("webgpu" if web_webgpu else "wasm")
        out = check_site_target(site, model, force)
    if triton is not None:  # refused before the export runs, not after
        from zoo_export.triton import check_repository

        check_repository(triton, model, _graph_names(graphs) or [g.name for g in registered.spec.graphs])
    options = ExportOptions(run=run, checkpoint=checkpoint, out=out, graphs=_graph_names(graphs), opset=opset,
                            fp16=fp16 or fp16_io, fp16_io=fp16_io, validate=not no_validate, force=force,
                            int8=Int8Options(samples=calibration_samples, method=calibration_method,
                                             data=calibration_data, keep_slower=int8_keep_slower)
                            if int8 else None,
                            aoti="aoti" in formats, executorch="executorch" in formats)
    directory = export_model(registered, options)
    click.echo(f"export directory: {directory}")
    if site is not None:
        from zoo_export.web import write_site

        root = write_site(registered, site, webgpu=web_webgpu, log=click.echo)
        click.echo(f"web site: {root} (preview: zoo web serve {root}; for WASM threads a static host must send "
                   "Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)")
    if triton is not None:
        from zoo_export.manifest import load_export
        from zoo_export.triton import write_triton_repository

        write_triton_repository(load_export(directory, model), triton, max_batch=triton_max_batch)
        click.echo(f"Triton model repository: {triton}")
