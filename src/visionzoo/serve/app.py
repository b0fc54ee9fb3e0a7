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
from .batching import Overloaded
from .config import ServeConfig, exposure_warning
from .models import TASKS, Served, load_served
from .uploads import UploadError
from .video import is_video_upload, video_response

log = logging.getLogger("visionzoo.serve")
STATIC = Path(__file__).resolve().parent / "static"
API_KEY_HEADER = "X-API-Key"
FilesParam = File(..., description="One or more images (repeat the `file` field for several).")
ModelParam = Form(None, description="Which loaded model answers (default: the first of this task).")


def _error(status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status, headers=headers)


class RequestGuard:
    """Pure ASGI: the API key on /v1 (401) and a declared body over the limit (413) are refused before
    any body is read; a body without Content-Length is counted as it is read (413 past the limit)."""

    def __init__(self, app, api_key: str | None, max_body: int, max_mb: float):
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.max_body = max_body
        self.max_mb = max_mb

    def _presented(self, headers: dict[bytes, bytes]) -> bytes:
        if b"x-api-key" in headers:
            return headers[b"x-api-key"]
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return token.strip() if scheme.lower() == b"bearer" else b""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        path = scope.get("path", "")
        response = None
        if self.key and (path == "/v1" or path.startswith("/v1/")) \
                and not hmac.compare_digest(self._presented(headers), self.key):
            response = _error(401, f"missing or wrong API key (send it in the {API_KEY_HEADER} header)",
                              {"WWW-Authenticate": "ApiKey"})
        elif headers.get(b"content-length", b"").isdigit() and int(headers[b"content-length"]) > self.max_body:
            response = _error(413, f"request too large (limit {self.max_mb:g} MB)", {"Connection": "close"})
        if response is not None:
            await response(scope, receive, send)
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

        await self.app(scope, limited_receive, send)


def _status_of(exc: BaseException) -> tuple[int, str, dict[str, str] | None]:
    if isinstance(exc, UploadError):
        return exc.status, exc.reason, None
    if isinstance(exc, Overloaded):
        return 503, f"server busy: {exc}", {"Retry-After": "1"}
    if isinstance(exc, LookupError):
        return 404, str(exc).strip("'\""), None
    log.error("request failed", exc_info=exc)
    return 500, "internal server error (see the server log)", None


class Answers:
    """How a route answers uploads: decode each file in a worker thread (a few at a time, so decoded
    images in memory stay bounded), submit it to its model's batcher, await all with the deadline."""

    def __init__(self, cfg: ServeConfig, served: Served):
        self.cfg, self.served = cfg, served
        self.decode_slots = asyncio.Semaphore(max(2, usable_cpus()))

    async def process(self, files: list[UploadFile], model, submit: Callable, post: Callable) -> list[Any]:
        """Per file: its answer (a dict) or the exception that stopped it; the whole lot has a deadline."""
        cfg = self.cfg
        if len(files) > cfg.max_files:
            raise UploadError(413, f"too many files in one request ({len(files)} > {cfg.max_files})")

        async def one(upload: UploadFile):
            name = upload.filename or "upload"
            data = await upload.read()
            async with self.decode_slots:
                item = await run_in_threadpool(model.prepare, data, name)
            return post(await asyncio.wrap_future(submit(item)))

        try:
            return await asyncio.wait_for(asyncio.gather(*(one(f) for f in files), return_exceptions=True),
                                          cfg.timeout_s)
        except asyncio.TimeoutError:
            raise UploadError(504, f"timed out after {cfg.timeout_s:g} s (the server is overloaded or the image "
                                   f"is very large)") from None

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
                       post: Callable, extra: Callable[[Any], dict[str, Any]]) -> JSONResponse:
        try:
            model = self.served.get(task, model_name)
            results = await self.process(files, model, lambda item: submit(model, item), lambda out: post(model, out))
        except (UploadError, Overloaded, LookupError) as exc:
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
    app.add_middleware(RequestGuard, api_key=cfg.api_key, max_body=cfg.max_upload_bytes, max_mb=cfg.max_upload_mb)
    # Malformed multipart bodies are answered with a 400; the parser's own warning for each is noise.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    _add_error_handlers(app, cfg)
    # Documents the key in /docs ("Authorize"); RequestGuard enforces it before the body is read.
    auth = [Security(APIKeyHeader(name=API_KEY_HEADER, auto_error=False))] if cfg.api_key else []
    v1 = APIRouter(prefix="/v1", dependencies=auth)
    answer = Answers(cfg, served)
    _add_service_routes(app, v1, cfg, served)
    _add_classification_routes(v1, answer)
    _add_search_routes(v1, answer, served)
    for task in TASKS[1:]:
        _add_task_route(v1, answer, task)
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
        return {"status": "ok", "version": __version__, "auth": bool(cfg.api_key)}

    @v1.get("/models", tags=["service"])
    async def models() -> dict[str, Any]:
        """What is loaded: task, classes, preprocessing; and the search index."""
        return {"models": [m.info() for m in served.all()],
                "index": served.index.info() if served.index else None,
                "limits": {"max_upload_mb": cfg.max_upload_mb, "max_pixels": cfg.max_pixels,
                           "max_files": cfg.max_files, "timeout_s": cfg.timeout_s}}


def _add_classification_routes(v1: APIRouter, answer: Answers) -> None:
    @v1.post("/classify", tags=["classification"])
    async def classify(file: list[UploadFile] = FilesParam, k: int = Form(5, ge=1, le=1000),
                       model: Optional[str] = ModelParam) -> JSONResponse:
        """Top-k labels with probabilities: `{"predictions": [{"label", "index", "probability"}], "model"}`."""
        return await answer("classify", file, model, submit=lambda m, x: m.classify_batcher.submit(x),
                            post=lambda m, probs: {"predictions": m.top_k(probs, k)},
                            extra=lambda m: {"model": m.name})

    @v1.post("/embed", tags=["classification"])
    async def embed(file: list[UploadFile] = FilesParam, model: Optional[str] = ModelParam) -> JSONResponse:
        """The feature vector with the fields of a feature file's manifest (model, weights, layer, pool)."""
        return await answer("classify", file, model, submit=lambda m, x: m.embed_batcher.submit(x),
                            post=lambda m, vec: {"embedding": [round(float(v), 7) for v in vec]},
                            extra=lambda m: {"model": m.name, "weights_sha256": m.digest, **m.embedding,
                                             "preprocessing": m.spec.to_dict()["preprocessing"]})


def _add_search_routes(v1: APIRouter, answer: Answers, served: Served) -> None:
    @v1.post("/search", tags=["search"])
    async def search(file: list[UploadFile] = FilesParam, k: int = Form(10, ge=1, le=1000)) -> JSONResponse:
        """The k most similar images of the loaded index (cosine), with thumbnail URLs."""
        index = served.index
        if index is None:
            return _error(404, "no index is loaded (start the server with --index DIR, made by `visionzoo index`)")

        def neighbours(_m, hits: list[dict[str, Any]]) -> dict[str, Any]:
            return {"neighbours": [{**h, "thumbnail": f"/v1/thumbnail?path={quote(h['path'], safe='')}"} for h in hits]}

        return await answer("classify", file, index.classifier.name, submit=lambda _m, x: index.batcher.submit((x, k)),
                            post=neighbours, extra=lambda m: {"index": {"count": len(index.index.paths),
                                                                       "model": m.name}})

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


def _add_task_route(v1: APIRouter, answer: Answers, task: str) -> None:
    async def predict(file: list[UploadFile] = FilesParam, model: Optional[str] = ModelParam) -> JSONResponse:
        if len(file) == 1 and await is_video_upload(file[0]):   # serve/video.py
            try:
                loaded = answer.served.get(task, model)
            except LookupError as exc:
                return _error(*_status_of(exc))
            return await video_response(task, loaded, file[0], answer.cfg.timeout_s)
        return await answer(task, file, model, submit=lambda m, x: m.batcher.submit(x),
                            post=lambda _m, out: out, extra=lambda m: {"model": m.name})

    predict.__doc__ = (f"The {task} model's JSON for each image (the same as `visionzoo {task} predict` writes, "
                       f"in the uploaded image's pixels); for one short video, each frame's JSON, the video's "
                       f"summary and the annotated video; 404 when no {task} model is loaded.")
    v1.add_api_route(f"/{task}", predict, methods=["POST"], tags=[task], name=f"{task}_predict")


def run(config: ServeConfig | None = None, **options: Any) -> None:
    """Load the models, then serve until interrupted (`visionzoo serve`)."""
    import uvicorn

    cfg = ServeConfig(**{**(vars(config) if config else {}), **options})
    cfg.check()
    app = create_app(cfg)
    warning = exposure_warning(cfg.host, cfg.api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    served: Served = app.state.served
    names = ", ".join(f"{m.name} ({m.task})" for m in served.all())
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    print(f"serving {names}{' + index ' + served.index.path if served.index else ''}\n"
          f"open http://{host}:{cfg.port}/ in a browser; API docs at http://{host}:{cfg.port}/docs",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level, limit_concurrency=cfg.max_connections,
                timeout_keep_alive=5, server_header=False)
