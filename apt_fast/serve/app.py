"""The ASGI app of `apt-fast serve`: both APIs' routes behind the Host check and body cap, errors in each
API's shape."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from . import ollama_api, openai_api
from .errors import ServeError, ollama_body, openai_body
from .models import ModelRegistry
from .security import SafetyMiddleware
from .workers import ClientGone, WorkerPool

DEFAULT_MAX_BODY = 8 << 20
SWEEP_SECONDS = 0.25  # how often idle models past their keep_alive are unloaded


@dataclass(frozen=True)
class ServeConfig:
    """``models`` maps name:tag to a local path; ``keep_alive`` is seconds (< 0 forever); ``check_host`` turns on
    the DNS-rebinding protection (for a server bound to a loopback address); ``origins`` are the browser origins
    allowed by CORS (none by default); ``worker_setup`` is ``(module, function, *args)``, called in each worker
    process before its first task (for tests)."""

    models: dict
    parallel: int = 1
    max_queue: int = 512
    keep_alive: float = 300.0
    max_body: int = DEFAULT_MAX_BODY
    check_host: bool = True
    origins: tuple = ()
    worker_setup: tuple | None = None


@asynccontextmanager
async def _unload_expired_models_and_stop_workers(app: FastAPI):
    async def sweep():
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            app.state.registry.sweep()

    task = asyncio.create_task(sweep())
    try:
        yield
    finally:
        task.cancel()
        app.state.pool.shutdown()


def create_app(config: ServeConfig) -> FastAPI:
    app = FastAPI(title="apt-fast serve", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=_unload_expired_models_and_stop_workers)
    app.state.config = config
    app.state.registry = ModelRegistry(dict(config.models))
    app.state.show_replies = {}  # /api/show's reply by model digest
    app.state.pool = WorkerPool(config.models, config.parallel, config.max_queue,
                                loaded=app.state.registry.worker_loaded, setup=config.worker_setup)
    app.state.registry.on_unload = app.state.pool.unload
    app.include_router(ollama_api.router)
    app.include_router(openai_api.router)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, error: ServeError) -> JSONResponse:
        openai = request.url.path.startswith("/v1/")
        body = openai_body(error.status, str(error)) if openai else ollama_body(str(error))
        return JSONResponse(body, status_code=error.status)

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, error: ClientGone) -> Response:
        return Response(status_code=499)

    if config.origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.origins), allow_methods=["GET", "POST", "HEAD"],
                           allow_headers=["*"])
    app.add_middleware(SafetyMiddleware, check_host=config.check_host, max_body=config.max_body)
    return app
