"""The ASGI app: Open Inference Protocol (KServe v2) routes, task endpoints and the gallery page.

FastAPI (on Starlette) because it writes the OpenAPI schema and serves ``/docs`` for free; the task
routes are added per task at start-up with their multipart schema, so ``/docs`` lists every one.
``POST /v2/models/MODEL[/versions/V]/infer`` is the one hot route: :class:`ServeApp` answers it as raw
ASGI before FastAPI's middleware, routing and dependency layers (about two thirds of a request's CPU
time on the small graphs); its FastAPI route stays for ``/docs`` and runs the same :meth:`Server.infer`.
Every refusal is a 4xx with ``{"error": "..."}``; nothing a request sends becomes a file path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from zoo_core.extend import TaskSpec, encode_png, model_card
from zoo_serve import __version__
from zoo_serve.errors import BadRequest, NotFound
from zoo_serve.models import SETTINGS_ENV, ServedGraph, ServedModel, ServeSettings, element_limit, load_models
from zoo_serve.openapi import truthful_openapi
from zoo_serve.tasks import (
    MAX_COUNT,
    ModelData,
    read_task_form,
    result_json,
    run_served_task,
    task_fields,
)
from zoo_serve.tensors import HEADER_LENGTH, decode_request, encode_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
MAX_UPLOAD_FILES = 16
MAX_FORM_FIELDS = 64
INFER_PATH = re.compile(r"/v2/models/([^/]+)/(?:versions/([^/]+)/)?infer")
REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # a client's X-Request-ID is kept only if it is this tame
# The gallery runs only its own script and style; images it shows are fetched blobs or data: URLs.
GALLERY_CSP = (b"default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
               b"frame-ancestors 'none'; form-action 'self'")
ACCESS_LOG = logging.getLogger("zoo_serve.access")


def error_response(status: int, message: str) -> JSONResponse:
    # a body refused as too large was not read to its end: the connection cannot carry another request
    headers = {"connection": "close"} if status == 413 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def internal_error_response(error: Exception) -> JSONResponse:
    """A bug, not bad input: the traceback goes to the server's log, the client gets one JSON line."""
    traceback.print_exception(error, file=sys.stderr)
    return error_response(500, f"internal error ({type(error).__name__}); the server log has the details")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None if the client went away; longer than ``limit`` bytes is a 413."""
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the request body is larger than the {limit} bytes this server takes", status=413)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the request body is larger than the {limit} bytes this server takes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BodyLimit:
    """Reads each request body up to ``limit`` bytes before the app sees it; anything longer gets 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, self.limit)
        except BadRequest as error:
            await error_response(error.status, error.message)(scope, receive, send)
            return
        if body is None:
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class Server:
    """The served models and what the routes share: settings, thread pools, per-model data caches."""

    def __init__(self, settings: ServeSettings, models: dict[str, ServedModel]) -> None:
        self.settings = settings
        self.models = models
        self.graphs: dict[str, ServedGraph] = {g.name: g for m in models.values() for g in m.graphs.values()}
        self.tasks = ThreadPoolExecutor(max_workers=settings.task_threads, thread_name_prefix="zoo-serve-task")
        self.data = {name: ModelData() for name in models}
        self.max_elements = element_limit(settings)

    def graph(self, name: str, version: str | None = None) -> ServedGraph:
        if name not in self.graphs:
            known = ", ".join(sorted(self.graphs)) or "none"
            raise NotFound(f"unknown model {name!r}; this server serves {known} (v2 names are MODEL.GRAPH)")
        if version not in (None, "", "1"):
            raise NotFound(f"model {name!r} has no version {version!r}; its only version is 1")
        return self.graphs[name]

    def authorise(self, request: Request) -> None:
        self.authorise_header(request.headers.get("authorization", ""))

    def authorise_header(self, header: str) -> None:
        """Refuse (401) unless ``header`` (the Authorization value) carries the API key, when one is set."""
        key = self.settings.api_key
        if key is None:
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise BadRequest("this route needs the API key: send 'Authorization: Bearer KEY'", status=401)

    async def infer(self, graph: ServedGraph, headers: Mapping[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
        """One v2 inference request (``headers`` by lower-case name): the response body and its headers."""
        self.authorise_header(headers.get("authorization", ""))
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding not in ("", "identity"):
            raise BadRequest(f"Content-Encoding {encoding!r} is not supported; send the body uncompressed", status=415)
        decoded = decode_request(body, headers.get(HEADER_LENGTH.lower()), graph.expected_inputs,
                                 self.max_elements)
        names = graph.output_names
        wanted = decoded.outputs if decoded.outputs is not None else names
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise BadRequest(f"unknown output(s) {', '.join(unknown)}; {graph.name} gives {', '.join(names)}")
        outputs = await graph.infer([decoded.inputs[t.name] for t in graph.spec.inputs])
        by_name = dict(zip(names, outputs, strict=True))
        return encode_response(graph.name, decoded, [(n, by_name[n]) for n in wanted])

    async def close(self) -> None:
        for graph in self.graphs.values():
            await graph.batcher.close()
        self.tasks.shutdown(wait=False, cancel_futures=True)


def _task_openapi(task: TaskSpec) -> dict[str, Any]:
    fields = task_fields(task)
    schema = {"type": "object", "properties": {f.name: f.schema() for f in fields},
              "required": [f.name for f in fields if f.required]}
    return {"requestBody": {"required": False, "content": {"multipart/form-data": {"schema": schema},
                                                           "application/x-www-form-urlencoded": {"schema": schema}}},
            "parameters": [{"name": "format", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["png", "json"], "default": "png"},
                            "description": "png: the task's main image; json: every image it wrote, base64"}],
            "responses": {"200": {"description": "the image(s)", "content": {"image/png": {}, "application/json": {}}},
                          "400": {"description": "bad parameters: {\"error\": message}"}}}


def _add_task_route(app: FastAPI, server: Server, model: ServedModel, task: TaskSpec) -> None:
    async def endpoint(request: Request) -> Response:
        server.authorise(request)
        try:
            form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_FORM_FIELDS,
                                      max_part_size=server.settings.max_request_bytes)
        except MultiPartException as error:
            raise BadRequest(f"unreadable form: {error.message}") from None
        loop = asyncio.get_running_loop()
        try:
            parsed = await read_task_form(task, form, server.settings.max_image_pixels)
        finally:
            await form.close()
        result = await loop.run_in_executor(server.tasks, run_served_task, model, task, parsed, loop,
                                            server.data[model.name])
        if request.query_params.get("format") == "json":
            return JSONResponse(result_json(result))
        return Response(encode_png(result.grid_array()), media_type="image/png")

    async def checked(request: Request) -> Response:
        answer = request.query_params.get("format", "png")
        if answer not in ("png", "json"):
            raise BadRequest(f"format: png or json, not {answer[:40]!r}")
        return await endpoint(request)

    app.add_api_route(f"/tasks/{model.name}/{task.name}", checked, methods=["POST"], name=f"{model.name} {task.name}",
                      summary=task.summary, tags=[f"tasks: {model.name}"], openapi_extra=_task_openapi(task))


def model_entry(server: Server, model: ServedModel) -> dict[str, Any]:
    """What the gallery shows of a model: its card, what serves it, its v2 graphs and its task forms."""
    return {"card": model_card(model.registered), "source": model.source, "config": dict(model.config),
            "graphs": [g.metadata() for g in model.graphs.values()],
            "tasks": [{"name": t.name, "summary": t.summary, "path": f"/tasks/{model.name}/{t.name}",
                       "fields": [f.as_json() for f in task_fields(t)]}
                      for t in model.registered.spec.tasks if all(g in model.graphs for g in t.graphs)]}


class ServeApp(FastAPI):
    """FastAPI, except that v2 inference requests are answered as raw ASGI (see the module's docstring).

    The shortcut keeps every refusal of the FastAPI route: 401, 413, 415, 404, 400, and a JSON 500 with the
    traceback in the server log.
    """

    server: Server
    fast_path = True  # off where a middleware must see every response (CORS)
    access_log = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every HTTP response gets an X-Request-ID (the client's, if tame, else a new one) and an access log line."""
        if scope["type"] != "http":
            await self._route(scope, receive, send)
            return
        request_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        if not REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex.encode()
        extra = [(b"x-request-id", request_id), (b"x-content-type-options", b"nosniff")]
        path = scope["path"]
        if path == "/" or path.startswith("/static/"):
            extra.append((b"content-security-policy", GALLERY_CSP))
        status, size, start = 0, 0, time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self._route(scope, receive, send_with_id)
        finally:
            if self.access_log:
                client = scope.get("client") or ("-", 0)
                query = "?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""
                ACCESS_LOG.info('%s:%s "%s %s%s HTTP/%s" %d %d %.1fms id=%s', client[0], client[1], scope["method"],
                                path, query, scope["http_version"], status, size,
                                (time.perf_counter() - start) * 1e3, request_id.decode())

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (INFER_PATH.fullmatch(scope["path"]) if self.fast_path and scope["type"] == "http"
                 and scope["method"] == "POST" else None)
        if match is None:
            await super().__call__(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, self.server.settings.max_request_bytes)
            if body is None:
                return
            graph = self.server.graph(match[1], match[2])
            # first value of each header wins, as in Starlette's Headers.get
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
            content, extra = await self.server.infer(graph, headers, body)
        except BadRequest as error:
            response: Response = error_response(error.status, error.message)
        except Exception as error:
            response = internal_error_response(error)
        else:
            # the two ASGI messages Starlette's Response would send, without building one per request
            fields = [(b"content-length", b"%d" % len(content))]
            fields += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
            await send({"type": "http.response.start", "status": 200, "headers": fields})
            await send({"type": "http.response.body", "body": content})
            return
        await response(scope, receive, send)


def create_app(settings: ServeSettings, models: dict[str, ServedModel] | None = None) -> FastAPI:
    """The app for ``settings``; loads the models unless given (tests share one load)."""
    server = Server(settings, models if models is not None else load_models(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await server.close()

    app = ServeApp(title="zoo serve", version=__version__, lifespan=lifespan,
                  description="KServe v2 (Open Inference Protocol) on zoo's exported graphs, one v2 model per graph "
                              "named MODEL.GRAPH, with dynamic batching; task endpoints returning PNG; a gallery at /.")
    app.state.server = app.server = server
    app.access_log = settings.access_log
    if settings.access_log and not ACCESS_LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s zoo serve: %(message)s"))
        ACCESS_LOG.addHandler(handler)
        ACCESS_LOG.setLevel(logging.INFO)
        ACCESS_LOG.propagate = False

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, error: BadRequest) -> JSONResponse:
        return error_response(error.status, error.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = error_response(error.status_code, str(error.detail))
        response.headers.update(error.headers or {})  # the Allow header of a 405
        return response

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return internal_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(400, "; ".join(str(e.get("msg", e)) for e in error.errors()))

    @app.get("/v2", tags=["v2"], summary="server metadata")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "zoo", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", tags=["v2"], summary="the server is up")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"], summary="every model is loaded")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/{model}", tags=["v2"], summary="inputs and outputs of a graph (MODEL.GRAPH)")
    async def metadata(model: str) -> dict[str, Any]:
        return server.graph(model).metadata()

    @app.get("/v2/models/{model}/versions/{version}", tags=["v2"], summary="metadata of a version (1)")
    async def metadata_version(model: str, version: str) -> dict[str, Any]:
        return server.graph(model, version).metadata()

    @app.get("/v2/models/{model}/ready", tags=["v2"], summary="the graph is loaded")
    async def model_ready(model: str) -> dict[str, Any]:
        return {"name": server.graph(model).name, "ready": True}

    @app.get("/v2/models/{model}/versions/{version}/ready", tags=["v2"], summary="the graph version is loaded")
    async def model_version_ready(model: str, version: str) -> dict[str, Any]:
        return {"name": server.graph(model, version).name, "ready": True}

    @app.get("/v2/models/{model}/stats", tags=["v2"], summary="requests and batches so far (Triton's statistics)")
    async def model_stats(model: str) -> dict[str, Any]:
        graph = server.graph(model)
        stats = graph.batcher.stats
        return {"model_stats": [{"name": graph.name, "version": "1", "inference_count": stats.items,
                                 "execution_count": stats.batches, "batch_sizes": stats.sizes}]}

    async def infer(request: Request, graph: ServedGraph) -> Response:
        # ServeApp answers these paths itself; this route documents them and serves any mounted copy of the app
        content, headers = await server.infer(graph, request.headers, await request.body())
        return Response(content, headers=headers)

    @app.post("/v2/models/{model}/infer", tags=["v2"], summary="run a graph on JSON (or binary) tensors")
    async def infer_route(model: str, request: Request) -> Response:
        return await infer(request, server.graph(model))

    @app.post("/v2/models/{model}/versions/{version}/infer", tags=["v2"], summary="run a graph version")
    async def infer_version_route(model: str, version: str, request: Request) -> Response:
        return await infer(request, server.graph(model, version))

    @app.get("/api/models", tags=["gallery"], summary="cards, graphs and task forms of the served models")
    async def api_models() -> dict[str, Any]:
        return {"models": [model_entry(server, m) for m in server.models.values()], "max_count": MAX_COUNT,
                "api_key": server.settings.api_key is not None}

    for served in server.models.values():
        for task in served.registered.spec.tasks:
            if all(g in served.graphs for g in task.graphs):
                _add_task_route(app, server, served, task)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = truthful_openapi(FastAPI.openapi(app), list(server.graphs),
                                                  settings.api_key is not None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    static = resources.files("zoo_serve") / "static"

    @app.get("/", include_in_schema=False)
    async def gallery() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    if settings.cors_origins:
        app.fast_path = False  # CORS headers come from the middleware, which the raw path would skip
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type", "inference-header-content-length",
                                          "x-request-id"], expose_headers=["x-request-id",
                                                                           "inference-header-content-length"])
    return app


def app_from_environment() -> FastAPI:
    """The app a uvicorn worker process builds (``--workers N``): settings come in ``ZOO_SERVE_SETTINGS``."""
    return create_app(ServeSettings.from_json(os.environ[SETTINGS_ENV]))
