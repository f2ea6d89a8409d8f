"""Publishing a trained run as a Hugging Face Hub model repository: `zoo card` writes it, `zoo push` uploads it.

The folder ``zoo card RUN --out DIR`` writes is what the Hub expects of a model repository:

- ``README.md``: the model card, YAML metadata first (``library_name: zoo``, tags, license, datasets, metrics
  and a ``model-index`` with the run's last held-out figures), then what the model is and how to load it;
- ``config.json``: the model, its plugin and the resolved training config (what the weights need to be built);
- ``model.safetensors``: the network weights only, as a zoo checkpoint, so ``--weights DIR`` and
  ``--weights hf://org/repo`` load it through :func:`zoo_core.weights.resolve_weights`;
- ``export/`` (with ``--export DIR``): a validated `zoo export` of the same checkpoint, manifest included.

huggingface_hub is needed by `zoo push` only (``pip install 'zoo-core[hub]'``), imported there.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo_core import io as zio
from zoo_core.errors import UsageError, ZooError
from zoo_core.weights import HUB_CONFIG, HUB_PREFIX, HUB_WEIGHTS, split_hub

Log = Callable[[str], None] | None
EXPORT_FOLDER = "export"
CARD = "README.md"
LIBRARY = "zoo"
MAX_EXPORT_BYTES = 4 << 30


@dataclass(frozen=True)
class CardOptions:
    """What `zoo card` was told."""

    out: Path
    which: str | None = None  # best or last; None: the run's default (best where the recipe selects one)
    dtype: str = "float32"
    export: Path | None = None
    datasets: tuple[str, ...] = ()
    license: str | None = None
    force: bool = False
    repo: str | None = None  # the Hub repository id the card is for (zoo push fills it in); None: ORG/REPO


def read_run(run: Path) -> dict[str, Any]:
    """A run directory's ``config.json``, checked against its model's config schema."""
    from zoo_core.registry import registered_model
    from zoo_core.validate import read_json_object, read_run_record

    if not (Path(run) / "config.json").is_file():
        raise UsageError(f"{run} is not a zoo run directory (no config.json); pass the folder `zoo train` wrote")
    model = read_json_object(Path(run) / "config.json", "run config").get("model")
    if not isinstance(model, str):
        raise ZooError(f"{run}/config.json names no model")
    record = read_run_record(registered_model(model).spec, Path(run))
    return record


def is_card_folder(folder: Path) -> bool:
    """A folder `zoo card` wrote (its config.json says library_name zoo): the only kind `--force` replaces."""
    config = folder / HUB_CONFIG
    try:
        return json.loads(config.read_text()).get("library_name") == LIBRARY
    except (OSError, ValueError, AttributeError):
        return False


def write_card(run: Path, options: CardOptions, log: Log = None) -> Path:
    """Write the Hub repository folder of ``run`` to ``options.out``, all or nothing."""
    from zoo_core.checkpoint import file_sha256
    from zoo_core.models import choose_checkpoint
    from zoo_core.registry import registered_model
    from zoo_core.validate import read_metrics
    from zoo_core.weights import write_inference_weights

    record = read_run(run)
    model = registered_model(record["model"])
    out = Path(options.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (options.force and is_card_folder(out)):
            hint = " (add --force to replace it)" if is_card_folder(out) else "; zoo replaces only a folder it wrote"
            raise UsageError(f"--out {out} exists and is not empty{hint}")
    choice = choose_checkpoint(model, run=Path(run), which=options.which)  # type: ignore[arg-type]
    metrics = read_metrics(Path(run) / "metrics.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.stage-", dir=out.parent))
    try:
        weights = write_inference_weights(model, choice.path, stage / HUB_WEIGHTS, dtype=options.dtype,
                                          provenance={"run": Path(run).name, "checkpoint": choice.path.name,
                                                      "chosen": choice.reason})
        from zoo_core.weights import read_metadata

        config = read_metadata(weights)["config"]
        export = _copy_export(options.export, model.name, config, file_sha256(choice.path), stage) \
            if options.export is not None else None
        summary = {"sha256": file_sha256(weights), "size": weights.stat().st_size, "dtype": options.dtype}
        zio.write_json(stage / HUB_CONFIG, {
            "library_name": LIBRARY, "model": model.name,
            "plugin": {"distribution": model.distribution, "version": model.version},
            "zoo_version": _zoo_version(), "preset": config.get("preset"), "config": config,
            "seed": record.get("seed"), "weights": {"file": HUB_WEIGHTS, **summary},
            "export": EXPORT_FOLDER if export else None,
        })
        zio.write_text(stage / CARD, card_text(model, record, config, metrics, summary, choice.reason, options,
                                               export))
        zio.replace_directory(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if log is not None:
        log(f"zoo: wrote the Hub repository of {run} ({choice.path.name}, {choice.reason}) to {out}")
    return out


def _zoo_version() -> str:
    from zoo_core import __version__

    return __version__


def _copy_export(export: Path, model: str, config: Mapping[str, Any], checkpoint_sha256: str, stage: Path) -> str:
    """Copy a `zoo export` folder of the same checkpoint into ``stage/export`` (plain files only)."""
    from zoo_core.validate import read_json_object

    manifest = read_json_object(Path(export) / "manifest.json", "export manifest")
    if manifest.get("model") != model:
        raise UsageError(f"--export {export}: an export of {str(manifest.get('model'))[:40]!r}, not {model!r}")
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    if source.get("sha256") != checkpoint_sha256 or manifest.get("config") != dict(config):
        raise UsageError(f"--export {export} was made from another checkpoint than the one the card publishes; "
                         "export that one (zoo export MODEL --checkpoint FILE) or pick it with --which")
    files = [p for p in sorted(Path(export).rglob("*")) if p.is_file() and not p.is_symlink()]
    if sum(p.stat().st_size for p in files) > MAX_EXPORT_BYTES:
        raise UsageError(f"--export {export} holds more than {MAX_EXPORT_BYTES >> 30} GB; publish a smaller one")
    for path in files:
        relative = path.relative_to(export)
        if relative.parts[0].startswith("."):
            continue  # a temporary or backup of the exporter, never part of the export
        target = stage / EXPORT_FOLDER / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return EXPORT_FOLDER


def _yaml_string(text: str) -> str:
    return json.dumps(str(text))  # a JSON string is a valid YAML scalar, quotes and escapes included


def card_metadata(model: Any, config: Mapping[str, Any], metrics: list[dict[str, Any]],
                  options: CardOptions) -> list[str]:
    """The YAML front matter lines (without the --- fences)."""
    spec = model.spec
    licence = (options.license or spec.license or "other").lower()
    tags = [LIBRARY, f"zoo-{spec.name}", *spec.tags]
    lines = [f"library_name: {LIBRARY}", f"license: {_yaml_string(licence)}", "tags:"]
    lines += [f"- {_yaml_string(t)}" for t in dict.fromkeys(tags)]
    if options.datasets:
        lines += ["datasets:", *[f"- {_yaml_string(d)}" for d in options.datasets]]
    last = metrics[-1] if metrics else {}
    figures = {f"val_{k}": v for k, v in (last.get("val") or {}).items()} or \
        {f"train_{k}": v for k, v in (last.get("train") or {}).items()}
    if figures:
        lines += ["metrics:", *[f"- {_yaml_string(k)}" for k in figures]]
        dataset = options.datasets[0] if options.datasets else "held-out split of the training data"
        lines += ["model-index:", f"- name: {_yaml_string(spec.name)}", "  results:",
                  "  - task:", "      type: other", f"      name: {_yaml_string(spec.name)}",
                  "    dataset:", f"      name: {_yaml_string(dataset)}", f"      type: {_yaml_string(dataset)}",
                  "    metrics:"]
        for key, value in figures.items():
            lines += [f"    - type: {_yaml_string(key)}", f"      value: {float(value):.6g}",
                      f"      name: {_yaml_string(key + ' at epoch ' + str(last.get('epoch')))}"]
    return lines


def card_text(model: Any, record: Mapping[str, Any], config: Mapping[str, Any], metrics: list[dict[str, Any]],
              weights: Mapping[str, Any], reason: str, options: CardOptions, export: str | None) -> str:
    spec = model.spec
    front = "\n".join(["---", *card_metadata(model, config, metrics, options), "---"])
    tasks = next(iter(spec.tasks), None)
    repo = options.repo or "ORG/REPO"
    example = (f"zoo generate {spec.name} {tasks.name} --weights hf://{repo}" if tasks is not None
               else f"zoo export {spec.name} --weights hf://{repo}")
    rows = "\n".join(f"| {k} | {json.dumps(v)} |" for k, v in config.items())
    last = metrics[-1] if metrics else None
    figures = ""
    if last is not None:
        parts = [f"| {split} {k} | {float(v):.6g} |" for split in ("train", "val")
                 for k, v in (last.get(split) or {}).items()]
        figures = (f"\n## Figures\n\nAt epoch {last.get('epoch')}, step {last.get('step')} (the run's metrics.jsonl; "
                   "`val` is its held-out split):\n\n| metric | value |\n| --- | --- |\n" + "\n".join(parts) + "\n")
    data = record.get("data_description") or "see config.json"
    exported = (f"\n`{export}/` holds a validated `zoo export` of the same weights (ONNX; see its manifest.json): "
                f"`zoo generate {spec.name} TASK --runtime onnxruntime --export {export}`.\n") if export else ""
    return f"""{front}

# {spec.name}

{spec.summary}

Trained with zoo (plugin {model.distribution} {model.version}), preset `{config.get('preset')}`, seed
{record.get('seed')}. `model.safetensors` holds the network weights of the run's checkpoint ({reason}) in
{weights['dtype']}: {weights['size']:,} bytes, sha256 `{weights['sha256']}`.

Source: {spec.source or '-'}. License: {options.license or spec.license}.

## Use

```
pip install zoo-core {model.distribution}
{example}
```

or from Python: `zoo.load("{spec.name}", weights="hf://{repo}")`.
{exported}
## Training data

{data}
{figures}
## Config

| key | value |
| --- | --- |
{rows}
"""


def push(source: Path, reference: str, options: CardOptions | None = None, private: bool = False,
         message: str | None = None, log: Log = None) -> str:
    """Upload ``source`` (a run directory, or a folder `zoo card` wrote) to the Hub repository ``reference``."""
    repo, revision = split_hub(reference if reference.startswith(HUB_PREFIX) else HUB_PREFIX + reference)
    try:
        from huggingface_hub import HfApi
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise UsageError("zoo push needs huggingface_hub; install it with pip install 'zoo-core[hub]'") from None
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as scratch:
        if is_card_folder(Path(source)):
            folder = Path(source)
        else:
            card = replace(options or CardOptions(Path(scratch)), out=Path(scratch) / "card", repo=repo)
            folder = write_card(Path(source), card, log)
        api = HfApi()
        try:
            api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model", revision=revision,
                                       commit_message=message or f"zoo push {Path(source).name}")
        except hub_errors.LocalTokenNotFoundError:
            raise ZooError("zoo push: no Hugging Face token; run `huggingface-cli login` or set HF_TOKEN") from None
        except (hub_errors.HfHubHTTPError, OSError, ValueError) as error:
            from zoo_core.errors import error_line

            raise ZooError(f"zoo push to {repo}: the upload failed ({error_line(error, 200)})") from None
    url = getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo}"
    if log is not None:
        log(f"zoo: pushed {source} to {repo} ({url}); load it with --weights hf://{repo}")
    return str(url)
