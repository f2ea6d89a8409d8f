"""Task endpoints: every `zoo generate MODEL TASK` over HTTP, with the same parameters as form fields.

A task's click parameters become form fields: ``click.Path`` parameters are file uploads (saved under
server-chosen names in a private temporary folder), every other value is converted by the parameter's
own click type. No text value may name a file: the server refuses values with path separators or
brackets and values that name something on disk, so a request never reaches a path the server did not
create. Integers are capped at :data:`MAX_COUNT` so that one request cannot ask for unbounded work.
The task runs on a worker thread with ``--out`` set to that folder; its graph calls join the batchers.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from zoo_core.errors import ZooError
from zoo_core.models import build_recipe
from zoo_core.recipe import DataSource, TrainingData
from zoo_core.spec import TaskSpec, load_object
from zoo_core.tasks import TaskContext
from zoo_serve.errors import BadRequest
from zoo_serve.models import BatchedRunner, ServedModel
from zoo_serve.uploads import save_upload

MAX_COUNT = 64  # the largest integer a task parameter takes over HTTP (images, steps, rows, ...)
MAX_SEED = 2**32 - 1
MAX_TEXT = 500
FORBIDDEN_TEXT = ("/", "\\", "[", "]", "\x00")
UPLOADS = "uploads"


@dataclass(frozen=True)
class FormField:
    """One form field of a task endpoint, as the gallery and the OpenAPI schema describe it."""

    name: str
    kind: str  # file, files, text, integer, number, choice, flag
    required: bool
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "required": self.required, "default": self.default,
                "choices": list(self.choices), "minimum": self.minimum, "maximum": self.maximum, "help": self.help}

    def schema(self) -> dict[str, Any]:
        """The field's OpenAPI schema in a multipart request body."""
        if self.kind == "files":
            return {"type": "array", "items": {"type": "string", "format": "binary"}}
        if self.kind == "file":
            return {"type": "string", "format": "binary"}
        kinds = {"integer": "integer", "number": "number", "flag": "boolean"}
        schema: dict[str, Any] = {"type": kinds.get(self.kind, "string"), "description": self.help}
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.default is not None:
            schema["default"] = self.default
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


def _field(param: click.Parameter) -> FormField:
    kind, choices, low, high = "text", (), None, None
    ptype = param.type
    multiple = param.nargs == -1 or getattr(param, "multiple", False)
    if isinstance(ptype, click.Path | click.File):
        kind = "files" if multiple else "file"
    elif isinstance(ptype, click.Choice):
        kind, choices = "choice", tuple(str(c) for c in ptype.choices)
    elif isinstance(ptype, click.types.IntParamType):
        kind, low, high = "integer", getattr(ptype, "min", None), getattr(ptype, "max", None)
        high = MAX_COUNT if high is None else min(high, MAX_COUNT)
    elif isinstance(ptype, click.types.FloatParamType):
        kind, low, high = "number", getattr(ptype, "min", None), getattr(ptype, "max", None)
    elif isinstance(ptype, click.types.BoolParamType) or getattr(param, "is_flag", False):
        kind = "flag"
    default = _default(param)
    return FormField(param.name or "", kind, bool(param.required), default, choices, low, high,
                     getattr(param, "help", None) or "")


def task_fields(task: TaskSpec) -> list[FormField]:
    """The task's own parameters and the seed, as form fields."""
    fields = [_field(p) for p in task.params]
    return [*fields, FormField("seed", "integer", False, 0, minimum=0, maximum=MAX_SEED, help="Random seed.")]


def _default(param: click.Parameter) -> Any:
    """The parameter's default as its task function expects it (click marks 'no default' with a sentinel)."""
    value = param.default
    if value is None or isinstance(value, str | int | float | bool | tuple | list):
        return value
    return False if getattr(param, "is_flag", False) else None


def _safe_text(value: str, name: str) -> str:
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{name}: at most {MAX_TEXT} characters")
    if any(mark in value for mark in FORBIDDEN_TEXT):
        raise BadRequest(f"{name}: text parameters may not hold '/', '\\', '[' or ']' (no file names over HTTP); "
                         "upload files instead")
    try:
        on_disk = Path(value).exists()
    except (OSError, ValueError):
        on_disk = True
    if value and on_disk:
        raise BadRequest(f"{name}: {value!r} names a file on the server; text parameters may not name files")
    return value


def _convert(param: click.Parameter, field_: FormField, text: str) -> Any:
    if field_.kind == "flag":
        return text.lower() in ("1", "true", "yes", "on")
    try:
        value = param.type.convert(text, param, None)
    except click.BadParameter as error:
        raise BadRequest(f"{field_.name}: {error.format_message()}") from None
    if field_.kind == "integer" and field_.maximum is not None and value > field_.maximum:
        raise BadRequest(f"{field_.name}: at most {int(field_.maximum)} over HTTP, got {value}")
    return value


@dataclass
class TaskRequest:
    """A task's parameters read from a form; uploads already written into ``folder``."""

    params: dict[str, Any]
    seed: int
    folder: Path


async def read_task_form(task: TaskSpec, form: Mapping[str, Any], folder: Path, max_pixels: int) -> TaskRequest:
    """Convert a parsed form (``starlette`` FormData: strings and UploadFiles) into task parameters."""
    known = {f.name for f in task_fields(task)}
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; {task.name} takes {', '.join(sorted(known))}")
    uploads = folder / UPLOADS
    uploads.mkdir()
    params: dict[str, Any] = {}
    for param, field_ in zip(task.params, task_fields(task), strict=False):
        values = form.getlist(field_.name) if hasattr(form, "getlist") else [form[field_.name]]
        values = [v for v in values if not (isinstance(v, str) and v == "")]
        files = [v for v in values if not isinstance(v, str)]
        if not values:
            if field_.required:
                what = "an upload" if "file" in field_.kind else "a value"
                raise BadRequest(f"{task.name} needs {field_.name!r} ({what})")
            params[param.name or ""] = () if field_.kind == "files" else _default(param)
            continue
        if field_.kind in ("file", "files") and len(files) != len(values):
            raise BadRequest(f"{field_.name}: upload a file (file names are not accepted over HTTP)")
        if field_.kind != "files" and len(values) > 1:
            raise BadRequest(f"{field_.name}: give one value")
        converted = []
        for index, value in enumerate(values):
            if isinstance(value, str):
                converted.append(_convert(param, field_, _safe_text(value, field_.name)))
            else:
                path = save_upload(await value.read(), field_.name, index, uploads, max_pixels)
                converted.append(path if field_.kind in ("file", "files") else str(path))
        params[param.name or ""] = tuple(converted) if field_.kind == "files" else converted[0]
    seed_text = form.get("seed")
    seed = 0
    if seed_text not in (None, ""):
        if not isinstance(seed_text, str) or not seed_text.strip().isdigit() or int(seed_text) > MAX_SEED:
            raise BadRequest(f"seed: a whole number from 0 to {MAX_SEED}")
        seed = int(seed_text)
    return TaskRequest(params, seed, folder)


class ServedTaskContext(TaskContext):
    """A TaskContext whose data (the embedded default) is decoded once per model and shared by requests."""

    shared: ModelData | None = None

    def data(self) -> TrainingData:
        if self.shared is None:
            return super().data()
        return self.shared.get(self.recipe)


@dataclass
class ModelData:
    """A model's embedded data, decoded on first use under a lock."""

    data: TrainingData | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, recipe: Any) -> TrainingData:
        with self.lock:
            if self.data is None:
                self.data = recipe.load_data(DataSource())
            return self.data


def run_task(model: ServedModel, task: TaskSpec, request: TaskRequest, loop: asyncio.AbstractEventLoop,
             data: ModelData) -> dict[str, bytes]:
    """Run the task (on a worker thread) and return the PNG files it wrote, by name."""
    runner = BatchedRunner(model, loop)
    out = request.folder / "out"
    out.mkdir()
    ctx = ServedTaskContext(model=model.registered, runner=runner, recipe=build_recipe(model.registered, runner.config),
                            out=out, seed=request.seed)
    ctx.shared = data
    try:
        load_object(task.function)(ctx, **request.params)
    except ZooError as error:
        raise BadRequest(str(error).removeprefix("zoo: ")) from None
    images = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png")) if p.is_file()}
    if not images:
        raise ZooError(f"{model.name} {task.name} wrote no PNG")
    return images


def main_image(images: Mapping[str, bytes]) -> str:
    """The image a PNG response carries: the only one, else the grid, else the first by name."""
    names = sorted(images)
    grids = [n for n in names if "grid" in n]
    return names[0] if len(names) == 1 else (grids[0] if grids else names[0])


def images_json(images: Mapping[str, bytes]) -> dict[str, Any]:
    return {"main": main_image(images),
            "images": {name: "data:image/png;base64," + base64.b64encode(data).decode()
                       for name, data in images.items()}}


def task_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="zoo-serve-task-")
