"""Task endpoints: every task of a served model over HTTP, with its parameters as form fields.

The fields come from the task's :class:`~zoo_core.spec.Param` data, as `zoo generate`'s options and the Python
method's signature do. Images and files are uploads, checked and decoded in memory (nothing is written to disk);
every other value is converted by its kind and checked against the Param's range. No text value may name a file:
the server refuses values with path separators or brackets and values that name something on disk. Integers are
capped at :data:`MAX_COUNT` so that one request cannot ask for unbounded work. The task runs on a worker thread
through :func:`zoo_core.tasks.run_task`, its graph calls joining the batchers, and returns a TaskResult that the
route encodes as PNG or JSON.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_core.extend import (
    DataSource,
    ImageInput,
    Param,
    TaskResult,
    TaskSpec,
    TrainingData,
    ZooError,
    check_value,
    run_task,
    task_params,
)
from zoo_serve.errors import BadRequest
from zoo_serve.models import BatchedRunner, ServedModel
from zoo_serve.uploads import NPY_MAGIC, image_suffix

MAX_COUNT = 64  # the largest integer a task parameter takes over HTTP (images, steps, rows, ...)
MAX_SEED = 2**32 - 1
MAX_TEXT = 500
FORBIDDEN_TEXT = ("/", "\\", "[", "]", "\x00")
# Param kinds as the gallery's form (gallery.js) and the OpenAPI schema name them
FIELD_KINDS = {"images": "files", "image": "image", "file": "file", "int": "integer", "float": "number", "bool": "flag",
               "choice": "choice", "text": "text"}


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


def _field(param: Param) -> FormField:
    kind = FIELD_KINDS[param.kind]
    high = param.maximum
    if kind == "integer":
        high = MAX_COUNT if high is None else min(high, MAX_COUNT)
    default = None if param.required else param.default
    return FormField(param.name, kind, param.required, default, param.choices, param.minimum, high, param.help)


def task_fields(task: TaskSpec) -> list[FormField]:
    """The task's own parameters and the seed, as form fields."""
    fields = [_field(p) for p in task_params(task)]
    return [*fields, FormField("seed", "integer", False, 0, minimum=0, maximum=MAX_SEED, help="Random seed.")]


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


def _convert(param: Param, field_: FormField, text: str) -> Any:
    """A form's text as the Param's value, checked as a Python caller's would be (and capped over HTTP)."""
    if field_.kind == "flag":
        value: Any = text.lower() in ("1", "true", "yes", "on")
    elif field_.kind == "integer":
        if not (text.isascii() and text.strip().lstrip("-").isdigit()) or len(text) > 20:  # "²".isdigit() holds
            raise BadRequest(f"{field_.name}: a whole number, got {text[:40]!r}")
        value = int(text)
    elif field_.kind == "number":
        try:
            value = float(text)
        except ValueError:
            raise BadRequest(f"{field_.name}: a number, got {text[:40]!r}") from None
    else:
        value = text
    if field_.kind == "integer" and field_.maximum is not None and value > field_.maximum:
        raise BadRequest(f"{field_.name}: at most {int(field_.maximum)} over HTTP, got {value}")
    try:
        return check_value(param, value)
    except ZooError as error:
        raise BadRequest(str(error)) from None


@dataclass
class TaskRequest:
    """A task's parameters read from a form, uploads held in memory."""

    params: dict[str, Any]
    seed: int


async def read_task_form(task: TaskSpec, form: Mapping[str, Any], max_pixels: int) -> TaskRequest:
    """Convert a parsed form (``starlette`` FormData: strings and UploadFiles) into task parameters."""
    known = {f.name for f in task_fields(task)}
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; {task.name} takes {', '.join(sorted(known))}")
    params: dict[str, Any] = {}
    for param, field_ in zip(task_params(task), task_fields(task), strict=False):
        values = form.getlist(field_.name) if hasattr(form, "getlist") else [form[field_.name]]
        values = [v for v in values if not (isinstance(v, str) and v == "")]
        files = [v for v in values if not isinstance(v, str)]
        if not values:
            if field_.required:
                what = "an upload" if "file" in field_.kind else "a value"
                raise BadRequest(f"{task.name} needs {field_.name!r} ({what})")
            continue
        if field_.kind in ("file", "files") and len(files) != len(values):
            raise BadRequest(f"{field_.name}: upload a file (file names are not accepted over HTTP)")
        if field_.kind != "files" and len(values) > 1:
            raise BadRequest(f"{field_.name}: give one value")
        if field_.kind == "files" or (field_.kind == "image" and files):
            images = [await _image_upload(v, field_.name, i, max_pixels) for i, v in enumerate(values)]
            params[param.name] = images if field_.kind == "files" else images[0]
        elif field_.kind == "file":
            params[param.name] = await _file_upload(values[0], field_.name, max_pixels)
        else:
            params[param.name] = _convert(param, field_, _safe_text(values[0], field_.name))
    seed_text = form.get("seed")
    seed = 0
    if seed_text not in (None, ""):
        if (not isinstance(seed_text, str) or not (seed_text.isascii() and seed_text.strip().isdigit())
                or int(seed_text) > MAX_SEED):
            raise BadRequest(f"seed: a whole number from 0 to {MAX_SEED}")
        seed = int(seed_text)
    return TaskRequest(params, seed)


async def _image_upload(upload: Any, name: str, index: int, max_pixels: int) -> ImageInput:
    data = await upload.read()
    if not data:
        raise BadRequest(f"upload {name!r} is empty")
    image_suffix(data, name, max_pixels)  # size, format and a whole decode checked before the task sees it
    return ImageInput(f"{name}_{index}", data)


async def _file_upload(upload: Any, name: str, max_pixels: int) -> bytes:
    data = await upload.read()
    if not data:
        raise BadRequest(f"upload {name!r} is empty")
    if not data.startswith(NPY_MAGIC):
        image_suffix(data, name, max_pixels)
    return data


@dataclass
class ModelData:
    """A model's embedded data, decoded on first use under a lock and shared by every request."""

    data: TrainingData | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, recipe: Any) -> TrainingData:
        with self.lock:
            if self.data is None:
                self.data = recipe.load_data(DataSource())
            return self.data


def run_served_task(model: ServedModel, task: TaskSpec, request: TaskRequest, loop: asyncio.AbstractEventLoop,
                    data: ModelData) -> TaskResult:
    """Run the task (on a worker thread) through the batchers and return its result; nothing is written."""
    runner = BatchedRunner(model, loop)
    try:
        return run_task(model.registered, task.name, runner, request.params, seed=request.seed,
                        data_provider=data.get)
    except ZooError as error:
        raise BadRequest(str(error).removeprefix("zoo: ")) from None


def result_json(result: TaskResult) -> dict[str, Any]:
    """Every picture of a result (the composed one first, then each named image), base64 PNG by file name."""
    files = result.png_files()
    encoded = {name: "data:image/png;base64," + base64.b64encode(data).decode() for name, data in files.items()}
    return {"main": result.filename, "summary": result.summary, "images": encoded}
