"""``zoo export MODEL --format web``: a static site that runs the model's tasks in the browser with onnxruntime-web.

Layout of a site folder (any static host serves it; ``zoo web serve DIR`` previews it with the headers that
turn on WASM threads)::

    index.html, zoo-web/{app.js,app.css}   the page: generic JavaScript, no code per model
    zoo-web/ort/                           onnxruntime-web (the one .wasm variant the page loads), from package data
    site.json                              which models the site holds, the runtime's version and files
    models/MODEL/                          the model's zoo export (manifest.json, GRAPH.onnx ...), unchanged
    models/MODEL.json                      the card, each task's WebTask, and what the tasks need from the data,
                                           computed here (examples, a fitted prior, label-group mean encodings)
    _headers                               COOP/COEP for hosts that read a _headers file (Netlify, Cloudflare Pages)

What a task does in the browser comes from its :class:`zoo_core.spec.WebTask` and the graphs' tensor specs (shapes,
value ranges, layouts) in the manifest, so a third-party model that uses the generic kinds needs no JavaScript.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.extend import UsageError, ZooError
from zoo_core.extend import io as zio

SITE_FORMAT = "zoo-web"
SITE_VERSION = 1
SITE_JSON = "site.json"
PACKAGE = Path(__file__).resolve().parent
STATIC = PACKAGE / "static"
ORT_PACKAGE = PACKAGE / "ort"  # filled by `make install` from node_modules (npm ci); ignored by git
ORT_METADATA = "onnxruntime-web.package.json"
# The page's runtime: WASM (SIMD, threads where cross-origin isolated); --web-webgpu ships the WebGPU build instead,
# whose .wasm also runs the WASM execution provider, so either way one .wasm variant is shipped.
ORT_VARIANTS: dict[str, tuple[str, ...]] = {
    "wasm": ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"),
    "webgpu": ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"),
}
STATIC_FILES = {"index.html": "index.html", "app.js": "zoo-web/app.js", "app.css": "zoo-web/app.css"}
HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
           "Cross-Origin-Resource-Policy": "same-origin"}
EXAMPLES = 8            # data images offered per input graph
FIT_ITEMS = 512         # codes a fitted prior is estimated from
GROUP_ITEMS = 64        # images encoded per label cell for the arithmetic box
DATA_LIMIT = 2048       # data items read at export time (embedded sets are generated, so bounded)
MAX_LABEL_ATOMS = 8     # 2**8 label cells at most


def ort_files(variant: str = "wasm") -> list[Path]:
    """The onnxruntime-web files the page needs, from zoo_export's package data; one clear error when absent."""
    files = [ORT_PACKAGE / name for name in (*ORT_VARIANTS[variant], ORT_METADATA)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ZooError(f"--format web needs onnxruntime-web in {ORT_PACKAGE} (missing {', '.join(missing)}); "
                       "run `make install` (npm ci, then copies it there) in the zoo repository")
    return files


def ort_version() -> str:
    metadata = json.loads((ORT_PACKAGE / ORT_METADATA).read_text())
    return str(metadata.get("version", "?"))


def read_site(root: Path) -> dict[str, Any] | None:
    """The site.json of a zoo site at ``root``, None when there is none; anything else there is refused."""
    path = root / SITE_JSON
    if not path.is_file():
        return None
    try:
        site = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"--out {root}: {SITE_JSON} is not readable JSON ({error}); choose another --out") from None
    if not isinstance(site, dict) or site.get("format") != SITE_FORMAT or not isinstance(site.get("models"), list):
        raise UsageError(f"--out {root}: {SITE_JSON} is not a zoo web site's; choose another --out")
    return site


def check_site_target(root: Path, model: str, force: bool) -> Path:
    """Where the model's export goes inside the site; refuses a folder that is neither empty nor a zoo site."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"--out {root} is a file; a web export writes a folder")
    if root.exists() and any(root.iterdir()) and read_site(root) is None:
        raise UsageError(f"--out {root} is not empty and holds no zoo web site ({SITE_JSON}); choose an empty or "
                         "new folder")
    export_dir = root / "models" / model
    if export_dir.exists() and not force:
        raise UsageError(f"--out {root} already holds {model}; pass --force to replace it")
    return export_dir


@dataclass
class Encoder:
    """An exported graph run with native onnxruntime (fp32) for what the site precomputes."""

    session: Any
    inputs: list[str]

    def __call__(self, *arrays: Any) -> list[Any]:
        import numpy as np

        feeds = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(self.inputs, arrays, strict=True)}
        return self.session.run(None, feeds)


def _session(directory: Path, manifest: Mapping[str, Any], graph: str) -> Encoder:
    import onnxruntime as ort

    if graph not in manifest["graphs"]:
        raise ZooError(f"--format web: the task needs graph {graph!r}, which the export lacks (export every graph)")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(directory / manifest["graphs"][graph]["file"]), options,
                                   providers=["CPUExecutionProvider"])
    return Encoder(session, [i.name for i in session.get_inputs()])


def _png_data_url(image: Any, value_range: Sequence[float] | None) -> str:
    """A [C,H,W] float image in ``value_range`` as a PNG data URL."""
    import numpy as np
    from PIL import Image

    low, high = value_range or (0.0, 1.0)
    pixels = np.clip((np.asarray(image, dtype=np.float32) - low) / (high - low), 0, 1)
    pixels = np.round(pixels * 255).astype(np.uint8).transpose(1, 2, 0)
    picture = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _round(values: Any) -> list[float]:
    return [round(float(v), 6) for v in values]


class SiteData:
    """What the tasks need from the model's data, computed once at export time."""

    def __init__(self, registered: Any, directory: Path, manifest: Mapping[str, Any],
                 log: Callable[[str], None]) -> None:
        self.spec = registered.spec
        self.directory = directory
        self.manifest = manifest
        self.log = log
        self._data: Any = None
        self._recipe: Any = None
        self.notes: list[str] = []

    def recipe(self) -> Any:
        if self._recipe is None:
            from zoo_core.extend import load_object

            self._recipe = load_object(self.spec.recipe)(self.spec, self.manifest["config"])
        return self._recipe

    def data(self) -> Any:
        if self._data is None:
            from zoo_core.extend import DataSource

            self._data = self.recipe().load_data(DataSource(limit=DATA_LIMIT))
        return self._data

    def graph_input(self, graph: str) -> Mapping[str, Any]:
        return self.manifest["graphs"][graph]["inputs"][0]

    def inputs(self, graph: str, count: int) -> Any:
        """Real inputs of ``graph`` (its first input) from the data, as float32 numpy, or None."""
        import torch

        with torch.no_grad():
            tensors = self.recipe().data_inputs(graph, self.data(), count, {})
        return None if tensors is None else tensors[0].detach().float().cpu().numpy()

    def examples(self, graph: str) -> list[str]:
        images = self.inputs(graph, EXAMPLES)
        if images is None:
            self.notes.append(f"graph {graph}: the recipe gives no data inputs, so the page offers uploads only")
            return []
        return [_png_data_url(image, self.graph_input(graph)["value_range"]) for image in images]

    def fitted_prior(self, encoder: str) -> dict[str, Any]:
        """A diagonal Gaussian fitted to the codes of real images (an autoencoder's codes are not N(0, I))."""
        images = self.inputs(encoder, FIT_ITEMS)
        if images is None:
            raise ZooError(f"--format web: a fitted prior needs data inputs for graph {encoder!r}; the recipe has none")
        codes = _session(self.directory, self.manifest, encoder)(images)[0]
        std = codes.std(0) if len(codes) > 1 else codes[0] * 0 + 1
        return {"mean": _round(codes.mean(0)), "std": _round(std), "items": len(codes)}

    def label_groups(self, encoder: str) -> dict[str, Any]:
        """Mean encoding and count of every cell of the data's binary labels (their full conjunctions): a group
        such as ``glasses&~male`` is the count-weighted mean of the cells it matches."""
        import numpy as np
        import torch

        data = self.data()
        parts = [p for p in (data.train, data.val) if p is not None and hasattr(p, "labels") and len(p)]
        if not parts:
            raise ZooError("--format web: the arithmetic box needs labelled images; the data has none")
        images = torch.cat([p.images for p in parts])
        labels = {name: torch.cat([p.labels[name] for p in parts]) for name in parts[0].labels}
        atoms = sorted(name for name, values in labels.items()
                       if len(values) and set(values.unique().tolist()) <= {0, 1})[:MAX_LABEL_ATOMS]
        if not atoms:
            raise ZooError("--format web: the arithmetic box needs binary labels; the data has none")
        value_range = self.graph_input(encoder)["value_range"] or (0.0, 1.0)
        run = _session(self.directory, self.manifest, encoder)
        keys = torch.stack([labels[a] for a in atoms], dim=1)
        cells = []
        for key in sorted({tuple(row) for row in keys.tolist()}):
            members = (keys == torch.tensor(key)).all(dim=1).nonzero().flatten()
            chosen = images[members[:GROUP_ITEMS]].float().numpy() / 255.0
            chosen = chosen * (value_range[1] - value_range[0]) + value_range[0]
            codes = run(chosen)[0]
            cells.append({"labels": dict(zip(atoms, key, strict=True)), "count": len(chosen),
                          "matched": len(members), "mean": _round(np.asarray(codes).mean(0))})
        return {"atoms": atoms, "cells": cells, "items_per_cell": GROUP_ITEMS}


def task_data(data: SiteData, task: Any) -> dict[str, Any]:
    """What one task's WebTask needs precomputed (examples, prior, groups)."""
    web = task.web
    options = dict(web.options)
    needs: dict[str, Any] = {}
    if web.kind == "sample" and options.get("prior") == "fitted":
        needs["prior"] = data.fitted_prior(str(options["encoder"]))
    elif web.kind == "image-to-image":
        chains = options["graphs"]
        heads = [chain[0] for chain in (chains.values() if isinstance(chains, Mapping) else [chains])]
        needs["examples"] = {head: data.examples(head) for head in dict.fromkeys(heads)}
    elif web.kind == "interpolate":
        encoder = str(options["encoder"])
        needs["examples"] = {encoder: data.examples(encoder)}
    elif web.kind == "arithmetic":
        needs["groups"] = data.label_groups(str(options["encoder"]))
    return needs


def _param_json(param: Any) -> dict[str, Any]:
    from zoo_core.extend import Param

    if not isinstance(param, Param):  # an API 0.1 click parameter: shown, not used by the page
        return {"name": getattr(param, "name", "?"), "kind": "legacy"}
    default = None if param.required else param.default
    return {"name": param.name, "kind": param.kind, "default": default if not isinstance(default, Path) else None,
            "help": param.help, "minimum": param.minimum, "maximum": param.maximum, "choices": list(param.choices)}


def model_json(registered: Any, directory: Path, manifest: Mapping[str, Any], log: Callable[[str], None]) -> dict:
    """The card and tasks of one model as the page reads them (models/MODEL.json)."""
    from zoo_core.extend import grid_scale

    spec = registered.spec
    data = SiteData(registered, directory, manifest, log)
    tasks = []
    for task in spec.tasks:
        entry: dict[str, Any] = {"name": task.name, "summary": task.summary, "graphs": list(task.graphs),
                                 "params": [_param_json(p) for p in task.params],
                                 "command": f"zoo generate {spec.name} {task.name}", "web": None}
        if task.web is not None:
            missing = [g for g in task.graphs if g not in manifest["graphs"]]
            if missing:
                data.notes.append(f"task {task.name}: graphs {', '.join(missing)} were not exported")
            else:
                entry["web"] = {"kind": task.web.kind, "options": dict(task.web.options), **task_data(data, task)}
        tasks.append(entry)
    image_sides = [t["shape"][-1] for g in manifest["graphs"].values() for t in g["inputs"] + g["outputs"]
                   if t.get("layout") == "NCHW"]
    return {"model": spec.name, "summary": spec.summary, "license": spec.license, "source": spec.source,
            "card_preset": spec.card_preset, "params": spec.total_params,
            "distribution": registered.distribution, "version": registered.version,
            "grid_scale": grid_scale(int(image_sides[0])) if image_sides else 1,
            "tasks": tasks, "notes": data.notes}


def write_site(registered: Any, root: Path, webgpu: bool = False,
               log: Callable[[str], None] = lambda line: None) -> Path:
    """Add the model exported in ``root/models/MODEL`` to the site at ``root`` (page, runtime, site.json)."""
    from zoo_export.manifest import load_export

    variant = "webgpu" if webgpu else "wasm"
    runtime = ort_files(variant)
    record = load_export(root / "models" / registered.name, registered.name)
    card = model_json(registered, record.directory, record.manifest, log)
    zio.write_json(root / "models" / f"{registered.name}.json", card)
    for name, target in STATIC_FILES.items():
        zio.write_bytes(root / target, (STATIC / name).read_bytes())
    ort_dir = root / "zoo-web" / "ort"
    ort_dir.mkdir(parents=True, exist_ok=True)
    shipped = {p.name for p in runtime}
    for stale in ort_dir.iterdir():  # another variant from an earlier export: only ours live here
        if stale.is_file() and stale.name not in shipped and stale.name.startswith("ort"):
            stale.unlink()
    for path in runtime:
        with zio.atomic_path(ort_dir / path.name) as tmp:
            shutil.copyfile(path, tmp)
    site = read_site(root) or {"format": SITE_FORMAT, "version": SITE_VERSION, "models": []}
    models = [m for m in site["models"] if isinstance(m, str) and (root / "models" / m / "manifest.json").is_file()]
    site.update({"models": sorted({*models, registered.name}),
                 "runtime": {"package": "onnxruntime-web", "version": ort_version(), "variant": variant,
                             "module": f"zoo-web/ort/{ORT_VARIANTS[variant][0]}", "wasm_paths": "zoo-web/ort/"},
                 "headers": HEADERS})
    zio.write_json(root / SITE_JSON, site)
    zio.write_text(root / "_headers", "/*\n" + "".join(f"  {k}: {v}\n" for k, v in HEADERS.items()))
    for note in card["notes"]:
        log(f"zoo: note: {note}")
    return root


def site_bytes(root: Path, model: str | None = None) -> int:
    """Bytes a static host serves for the site (or for one model: the page, the runtime and that model's files)."""
    total = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        parts = path.relative_to(root).parts
        if model is not None and parts[0] == "models" and parts[1] not in (model, f"{model}.json"):
            continue
        total += path.stat().st_size
    return total
