"""The FastAPI app: JSON API under /v1, the page at /, and the guards around them.

A request's images are decoded in worker threads (a few at a time, so memory stays bounded),
queued for their model's micro-batcher, and awaited with a deadline; the event loop itself never
decodes or runs a model. Client mistakes come back as 4xx JSON with a reason; nothing a client
sends produces a stack trace in a response.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..cpus import usable_cpus
from ..data.decode import ImageDecodeError, image_size
from .batching import Overloaded
from .budget import ClientGone, PixelBudget, bounded
from .config import ServeConfig, exposure_warning, host_allowed, host_name, origin_allowed
from .connections import ConnectionLimits, guarded_protocol
from .models import TASKS, Served, load_served
from .uploads import UploadError, status_for
from .video import VideoJobs, is_video_upload

log = logging.getLogger("visionzoo.serve")
STATIC = Path(__file__).resolve().parent / "static"
API_KEY_HEADER = "X-API-Key"
FilesParam = File(..., description="One or more images (repeat the `file` field for several).")
ModelParam = Form(None, description="Which loaded model answers (default: the first of this task).")


def _error(status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status, headers=headers)


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# The page: its own script, style and images only (data: and blob: for answers' masks and the photo).
PAGE_CSP = (b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; object-src 'none'; "
            b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")   # FastAPI's API docs load Swagger UI / ReDoc from a CDN: no CSP there


class RequestGuard:
    """Pure ASGI, before any body is read: a Host this server does not answer to or a foreign Origin
    (403: DNS rebinding, other sites in the user's browser), the API key on /v1 (401), a declared
    body over the limit (413); a body without Content-Length is counted as it is read (413 past the
    limit). Every response gets the security headers, the page its Content-Security-Policy."""

    def __init__(self, app, api_key: str | None, max_body: int, max_mb: float, allow_hosts: list[str]):
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.max_body = max_body
        self.max_mb = max_mb
        self.allow = list(allow_hosts)

    def _presented(self, headers: dict[bytes, bytes]) -> bytes:
        if b"x-api-key" in headers:
            return headers[b"x-api-key"]
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return token.strip() if scheme.lower() == b"bearer" else b""

    def _refusal(self, path: str, headers: dict[bytes, bytes]) -> JSONResponse | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_allowed(host_name(host), self.allow):
            return _error(403, f"this server does not answer to Host {host[:100]!r} (start it with --allow-host NAME "
                               f"to add a name)")
        origin = headers.get(b"origin")
        if origin is not None and not origin_allowed(origin.decode("latin-1"), host, self.allow):
            return _error(403, "requests from other sites are refused (start the server with --allow-host NAME "
                               "to allow a site)")
        if self.key and (path == "/v1" or path.startswith("/v1/")) \
                and not hmac.compare_digest(self._presented(headers), self.key):
            return _error(401, f"missing or wrong API key (send it in the {API_KEY_HEADER} header)",
                          {"WWW-Authenticate": "ApiKey"})
        if headers.get(b"content-length", b"").isdigit() and int(headers[b"content-length"]) > self.max_body:
            return _error(413, f"request too large (limit {self.max_mb:g} MB)", {"Connection": "close"})
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        path = scope.get("path", "")
        extra = SECURITY_HEADERS if path.startswith(DOCS_PATHS) else [*SECURITY_HEADERS,
                                                                       (b"content-security-policy", PAGE_CSP)]

        async def secured_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        response = self._refusal(path, headers)
        if response is not None:
            await response(scope, receive, secured_send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:  # re-raised by FastAPI's body parsing, answered as JSON
                    raise StarletteHTTPException(413)
            return message

        await self.app(scope, limited_receive, secured_send)


def _status_of(exc: BaseException) -> tuple[int, str, dict[str, str] | None]:
    if isinstance(exc, UploadError):
        return exc.status, exc.reason, None
    if isinstance(exc, Overloaded):
        return 503, f"server busy: {exc}", {"Retry-After": "1"}
    if isinstance(exc, LookupError):
        return 404, str(exc).strip("'\""), None
    if isinstance(exc, ClientGone):
        return 499, "client closed the connection", None
    log.error("request failed", exc_info=exc)
    return 500, "internal server error (see the server log)", None


class Answers:
    """How a route answers uploads: each file's size from its header (413 / 415 before decoding), its
    pixels held from the server's pixel budget while decoded and answered (so decoded images in memory
    stay bounded across all requests), decoded in a worker thread and submitted to its model's batcher;
    all under the deadline, and stopped when the client disconnects."""

    def __init__(self, cfg: ServeConfig, served: Served):
        self.cfg, self.served = cfg, served
        self.decode_slots = asyncio.Semaphore(max(2, usable_cpus()))
        self.pixels = PixelBudget(cfg.max_pixels)

    async def _one(self, upload: UploadFile, model, submit: Callable, post: Callable) -> Any:
        name = upload.filename or "upload"
        data = await upload.read()
        try:
            w, h = await run_in_threadpool(image_size, data, name, self.cfg.max_pixels)
        except ImageDecodeError as exc:
            raise UploadError(status_for(exc.reason), exc.reason, name) from None
        held = await self.pixels.acquire(w * h)
        try:
            async with self.decode_slots:
                item = await run_in_threadpool(model.prepare, data, name)
            if not model.keeps_image:        # a classifier's item is its small input tensor
                self.pixels.release(held)
                held = 0
            return post(await asyncio.wrap_future(submit(item)))
        finally:
            self.pixels.release(held)

    async def process(self, files: list[UploadFile], model, submit: Callable, post: Callable,
                      receive: Callable | None = None) -> list[Any]:
        """Per file: its answer (a dict) or the exception that stopped it; the whole lot has a deadline."""
        cfg = self.cfg
        if len(files) > cfg.max_files:
            raise UploadError(413, f"too many files in one request ({len(files)} > {cfg.max_files})")
        work = asyncio.gather(*(self._one(f, model, submit, post) for f in files), return_exceptions=True)
        return await bounded(work, timeout_s=cfg.timeout_s, receive=receive, what="the request")

    @staticmethod
    def respond(files: list[UploadFile], results: list[Any], extra: dict[str, Any]) -> JSONResponse:
        """One file: its answer or its 4xx. Several: a list with per-file errors (4xx if none worked)."""
        fatal = [r for r in results if isinstance(r, BaseException) and not isinstance(r, UploadError)]
        if fatal:
            return _error(*_status_of(fatal[0]))
        if len(files) == 1:
            if isinstance(results[0], UploadError):
                return _error(results[0].status, results[0].reason, filename=files[0].filename)
            return JSONResponse({**results[0], **extra})
        items = [{"filename": f.filename, "error": r.reason, "status": r.status} if isinstance(r, UploadError)
                 else {"filename": f.filename, **r} for f, r in zip(files, results)]
        if all(isinstance(r, UploadError) for r in results):
            return _error(results[0].status, "no uploaded file could be read", results=items)
        return JSONResponse({"results": items, **extra})

    async def __call__(self, task: str, files: list[UploadFile], model_name: Optional[str], *, submit: Callable,
                       post: Callable, extra: Callable[[Any], dict[str, Any]], request: Request) -> JSONResponse:
        try:
            model = self.served.get(task, model_name)
            results = await self.process(files, model, lambda item: submit(model, item), lambda out: post(model, out),
                                         request.receive)
        except (UploadError, Overloaded, LookupError, ClientGone) as exc:
            return _error(*_status_of(exc))
        return self.respond(files, results, extra(model))


def create_app(config: ServeConfig | None = None, **options: Any) -> FastAPI:
    """Build the app and load its models and index (once, now). `options` override `config` fields."""
    cfg = ServeConfig(**{**(vars(config) if config else {}), **options})
    cfg.check()
    served = load_served(cfg)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        served.close()

    app = FastAPI(
        title="visionzoo", version=__version__, lifespan=lifespan,
        description="Pretrained vision models over HTTP: classify, embed, search, and task models.",
    )
    app.state.served = served
    app.state.config = cfg
    app.add_middleware(RequestGuard, api_key=cfg.api_key, max_body=cfg.max_upload_bytes, max_mb=cfg.max_upload_mb,
                       allow_hosts=cfg.allow_hosts)
    # Malformed multipart bodies are answered with a 400; the parser's own warning for each is noise.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    _add_error_handlers(app, cfg)
    # Documents the key in /docs ("Authorize"); RequestGuard enforces it before the body is read.
    auth = [Security(APIKeyHeader(name=API_KEY_HEADER, auto_error=False))] if cfg.api_key else []
    v1 = APIRouter(prefix="/v1", dependencies=auth)
    app.state.answers = answer = Answers(cfg, served)
    app.state.videos = videos = VideoJobs(cfg, cfg.video_jobs or max(1, usable_cpus() // 2))
    _add_service_routes(app, v1, cfg, served)
    _add_classification_routes(v1, answer)
    _add_search_routes(v1, answer, served)
    for task in TASKS[1:]:
        _add_task_route(v1, answer, videos, task)
    app.include_router(v1)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_error_handlers(app: FastAPI, cfg: ServeConfig) -> None:
    """Every error a JSON `{"error": reason}` with its status; never a stack trace."""
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        reason = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 413:
            reason = f"request too large (limit {cfg.max_upload_mb:g} MB)"
        return _error(exc.status_code, reason, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body", "problem": e.get("msg", "")}
                    for e in exc.errors()]
        text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return _error(422, f"invalid request ({text})", problems=problems)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception):
        status, reason, headers = _status_of(exc)
        return _error(status, reason, headers)


def _add_service_routes(app: FastAPI, v1: APIRouter, cfg: ServeConfig, served: Served) -> None:
    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness: answers while the server runs (no key needed)."""
        registry = getattr(app.state, "connections", None)
        return {"status": "ok", "version": __version__, "auth": bool(cfg.api_key),
                "busy": {"video_jobs": app.state.videos.running, "pixels_held": app.state.answers.pixels.used,
                         "connections": len(registry.open) if registry else None}}

    @v1.get("/models", tags=["service"])
    async def models() -> dict[str, Any]:
        """What is loaded: task, classes, preprocessing; and the search index."""
        return {"models": [m.info() for m in served.all()],
                "index": served.index.info() if served.index else None,
                "limits": {"max_upload_mb": cfg.max_upload_mb, "max_pixels": cfg.max_pixels,
                           "max_frames": cfg.max_frames, "max_files": cfg.max_files, "timeout_s": cfg.timeout_s}}


def _add_classification_routes(v1: APIRouter, answer: Answers) -> None:
    @v1.post("/classify", tags=["classification"])
    async def classify(request: Request, file: list[UploadFile] = FilesParam, k: int = Form(5, ge=1, le=1000),
                       model: Optional[str] = ModelParam) -> JSONResponse:
        """Top-k labels with probabilities: `{"predictions": [{"label", "index", "probability"}], "model"}`."""
        return await answer("classify", file, model, submit=lambda m, x: m.classify_batcher.submit(x),
                            post=lambda m, probs: {"predictions": m.top_k(probs, k)},
                            extra=lambda m: {"model": m.name}, request=request)

    @v1.post("/embed", tags=["classification"])
    async def embed(request: Request, file: list[UploadFile] = FilesParam,
                    model: Optional[str] = ModelParam) -> JSONResponse:
        """The feature vector with the fields of a feature file's manifest (model, weights, layer, pool)."""
        return await answer("classify", file, model, submit=lambda m, x: m.embed_batcher.submit(x),
                            post=lambda m, vec: {"embedding": [round(float(v), 7) for v in vec]},
                            extra=lambda m: {"model": m.name, "weights_sha256": m.digest, **m.embedding,
                                             "preprocessing": m.spec.to_dict()["preprocessing"]}, request=request)


def _add_search_routes(v1: APIRouter, answer: Answers, served: Served) -> None:
    @v1.post("/search", tags=["search"])
    async def search(request: Request, file: list[UploadFile] = FilesParam,
                     k: int = Form(10, ge=1, le=1000)) -> JSONResponse:
        """The k most similar images of the loaded index (cosine), with thumbnail URLs."""
        index = served.index
        if index is None:
            return _error(404, "no index is loaded (start the server with --index DIR, made by `visionzoo index`)")

        def neighbours(_m, hits: list[dict[str, Any]]) -> dict[str, Any]:
            return {"neighbours": [{**h, "thumbnail": f"/v1/thumbnail?path={quote(h['path'], safe='')}"} for h in hits]}

        return await answer("classify", file, index.classifier.name, submit=lambda _m, x: index.batcher.submit((x, k)),
                            post=neighbours, extra=lambda m: {"index": {"count": len(index.index.paths),
                                                                       "model": m.name}}, request=request)

    @v1.get("/thumbnail", tags=["search"], responses={200: {"content": {"image/jpeg": {}}}})
    async def thumbnail(path: str = Query(..., description="A path exactly as stored in the index.")) -> Response:
        """A small JPEG of an indexed image; any other path is refused (404)."""
        index = served.index
        if index is None or not index.is_indexed(path):
            return _error(404, "not an image of the loaded index")
        try:
            data = await run_in_threadpool(index.thumbnail, path)
        except Exception as exc:  # the indexed file was moved, deleted or damaged since indexing
            return _error(404, f"indexed image unavailable: {getattr(exc, 'reason', exc)}")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def _add_task_route(v1: APIRouter, answer: Answers, videos: VideoJobs, task: str) -> None:
    async def predict(request: Request, file: list[UploadFile] = FilesParam,
                      model: Optional[str] = ModelParam) -> JSONResponse:
        if len(file) == 1 and await is_video_upload(file[0]):   # serve/video.py
            try:
                loaded = answer.served.get(task, model)
            except LookupError as exc:
                return _error(*_status_of(exc))
            return await videos.respond(task, loaded, file[0], request.receive)
        return await answer(task, file, model, submit=lambda m, x: m.batcher.submit(x),
                            post=lambda _m, out: out, extra=lambda m: {"model": m.name}, request=request)

    predict.__doc__ = (f"The {task} model's JSON for each image (the same as `visionzoo {task} predict` writes, "
                       f"in the uploaded image's pixels); for one short video, each frame's JSON, the video's "
                       f"summary and the annotated video; 404 when no {task} model is loaded.")
    v1.add_api_route(f"/{task}", predict, methods=["POST"], tags=[task], name=f"{task}_predict")


def server_config(app: FastAPI, cfg: ServeConfig, **uvicorn_options: Any):
    """uvicorn's settings for `app`: its HTTP protocol with the connection guard (read deadlines,
    connections per client, header size; serve/connections.py), short keep-alive, no Server header."""
    import uvicorn

    limits = ConnectionLimits(header_timeout_s=cfg.header_timeout_s, body_timeout_s=cfg.body_timeout_s,
                              per_client=cfg.max_connections_per_client, total=cfg.max_connections,
                              max_header_bytes=cfg.max_header_kb * 1024)
    protocol = guarded_protocol(limits)
    app.state.connections = protocol.registry
    options = {"host": cfg.host, "port": cfg.port, "log_level": cfg.log_level, **uvicorn_options}
    return uvicorn.Config(app, http=protocol, h11_max_incomplete_event_size=limits.max_header_bytes,
                          limit_concurrency=None, timeout_keep_alive=5, server_header=False, **options)


def _return_freed_memory() -> None:
    """glibc raises its mmap threshold after a large buffer is freed, so the next decoded images come from
    the heap and stay in RSS after the request; a fixed threshold returns them to the system."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").mallopt(-3, 4 * 1024 * 1024)   # M_MMAP_THRESHOLD: 4 MB
        except (OSError, AttributeError):
            pass


def run(config: ServeConfig | None = None, **options: Any) -> None:
    """Load the models, then serve until interrupted (`visionzoo serve`)."""
    import uvicorn

    cfg = ServeConfig(**{**(vars(config) if config else {}), **options})
    cfg.check()
    _return_freed_memory()
    app = create_app(cfg)
    warning = exposure_warning(cfg.host, cfg.api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    served: Served = app.state.served
    names = ", ".join(f"{m.name} ({m.task})" for m in served.all())
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    print(f"serving {names}{' + index ' + served.index.name if served.index else ''}\n"
          f"open http://{host}:{cfg.port}/ in a browser; API docs at http://{host}:{cfg.port}/docs",
          file=sys.stderr, flush=True)
    uvicorn.Server(server_config(app, cfg)).run()
