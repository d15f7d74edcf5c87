"""Ollama's REST API: /, /api/version, /api/tags, /api/show, /api/ps, /api/generate and /api/chat (NDJSON
streams), /api/embed and the older /api/embeddings."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from .. import __version__
from . import durations
from .embedding import EmbeddingRequest
from .errors import ServeError
from .generation import GenerationRequest
from .handling import collect, events, read_json, start_generation, submit
from .model_tasks import LoadRequest, ShowRequest
from .options import logger, ollama_settings
from .prompts import chat_messages, generate_prompt

router = APIRouter()


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _keep_alive(request: Request, body: dict) -> float:
    value = body.get("keep_alive")
    if value is None:
        return request.app.state.config.keep_alive
    try:
        return durations.seconds(value)
    except ValueError as error:
        raise ServeError(400, str(error)) from None


def _log_unsupported(body: dict, fields: tuple[str, ...]) -> None:
    for field in fields:
        if body.get(field):
            logger.warning("%s is not supported by apt-fast serve; ignored", field)


def _details(path: str) -> dict:
    return {"parent_model": "", "format": "gguf" if path.endswith(".gguf") else "safetensors", "family": "apt",
            "families": ["apt"], "parameter_size": "", "quantization_level": ""}


def _digest(name: str, path: str) -> str:
    """A stable identity of the model entry (name and modification time), without reading its weights."""
    stamp = os.stat(path).st_mtime_ns if os.path.exists(path) else 0
    return hashlib.sha256(f"{name}\0{stamp}".encode()).hexdigest()


def _disk_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)
               if os.path.isfile(os.path.join(path, f))) if os.path.isdir(path) else 0


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> PlainTextResponse:
    return PlainTextResponse("Ollama is running")


@router.get("/api/version")
async def version() -> dict:
    return {"version": __version__}


def _modified_at(path: str) -> str:
    return datetime.fromtimestamp(os.path.getmtime(path), timezone.utc).isoformat() if os.path.exists(path) else now()


@router.get("/api/tags")
async def tags(request: Request) -> dict:
    return {"models": [{"name": name, "model": name, "modified_at": _modified_at(path), "size": _disk_size(path),
                        "digest": _digest(name, path), "details": _details(path)}
                       for name, path in sorted(request.app.state.registry.paths.items())]}


@router.post("/api/show")
async def show(request: Request) -> dict:
    """Reads the config from the model as a worker loaded it (loading it first, for the server's keep_alive), once
    per version of the model's files: the reply is kept under the model's digest, so that clients that show a
    model before each chat do not queue behind the generations."""
    body = await read_json(request)
    registry = request.app.state.registry
    name = registry.resolve(body.get("model"))
    path = registry.paths[name]
    replies, digest = request.app.state.show_replies, _digest(name, path)
    if digest not in replies:
        _, (_, replies[digest]) = await submit(request, ShowRequest(name, _details(path), _modified_at(path)), None)
    return replies[digest]


@router.get("/api/ps")
async def ps(request: Request) -> dict:
    registry = request.app.state.registry
    models = []
    for name, state in sorted(registry.running().items()):
        path = registry.paths[name]
        expires = state.expires_at if state.users == 0 else float("inf")
        expires_at = datetime.fromtimestamp(min(expires, 253402300799), timezone.utc).isoformat()
        models.append({"name": name, "model": name, "size": state.size, "digest": _digest(name, path),
                       "details": _details(path), "expires_at": expires_at, "size_vram": 0,
                       "context_length": state.context_length})
    return {"models": models}


async def _load_or_unload(request: Request, name: str, keep_alive: float, reply: dict) -> JSONResponse:
    """An empty prompt (or no messages): load the model, or unload it when ``keep_alive`` is 0."""
    registry = request.app.state.registry
    name = registry.resolve(name)
    if keep_alive == 0:
        registry.unload(name)
        reason = "unload"
    else:
        await submit(request, LoadRequest(name), keep_alive)  # reports a failure to load
        request.app.state.pool.preload(name)  # the other workers load it too, when idle
        reason = "load"
    return JSONResponse({"model": name, "created_at": now(), **reply, "done": True, "done_reason": reason})


def _ndjson(job, name: str, chunk) -> StreamingResponse:
    async def lines():
        async for event in events(job):
            if event[0] == "text":
                yield json.dumps({"model": name, "created_at": now(), **chunk(event[1]), "done": False}) + "\n"
            elif event[0] == "done":
                yield json.dumps({"model": name, "created_at": now(), **chunk(""), "done": True, **event[1]}) + "\n"
            else:
                yield json.dumps({"error": event[2]}) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def _respond(request: Request, body: dict, generation: GenerationRequest, keep_alive: float, chunk):
    job = await start_generation(request, generation, keep_alive)
    if body.get("stream", True) is False:
        text, stats = await collect(request, job)
        return JSONResponse({"model": generation.model, "created_at": now(), **chunk(text), "done": True, **stats})
    return _ndjson(job, generation.model, chunk)


@router.post("/api/generate")
async def generate(request: Request):
    body = await read_json(request)
    name, prompt = body.get("model"), body.get("prompt") or ""
    keep_alive = _keep_alive(request, body)
    if not isinstance(prompt, str):
        raise ServeError(400, f"prompt must be a string, got {prompt!r}")
    if body.get("raw") and (body.get("system") or body.get("template") or body.get("context")):
        raise ServeError(400, "raw mode does not support template, system, or context")
    if not prompt:
        return await _load_or_unload(request, name, keep_alive, {"response": ""})
    _log_unsupported(body, ("format", "suffix", "images", "context"))
    text = prompt if body.get("raw") else generate_prompt(prompt, body.get("system"), body.get("template"))
    generation = GenerationRequest(request.app.state.registry.resolve(name), text, ollama_settings(body.get("options")))
    return await _respond(request, body, generation, keep_alive, lambda piece: {"response": piece})


@router.post("/api/chat")
async def chat(request: Request):
    body = await read_json(request)
    name, messages = body.get("model"), body.get("messages")
    keep_alive = _keep_alive(request, body)
    empty_message = {"message": {"role": "assistant", "content": ""}}
    if not messages:
        return await _load_or_unload(request, name, keep_alive, empty_message)
    _log_unsupported(body, ("format", "tools"))
    generation = GenerationRequest(request.app.state.registry.resolve(name), "", ollama_settings(body.get("options")),
                                   messages=chat_messages(messages))
    return await _respond(request, body, generation, keep_alive,
                          lambda piece: {"message": {"role": "assistant", "content": piece}})


@router.post("/api/embed")
async def embed(request: Request):
    body = await read_json(request)
    name = request.app.state.registry.resolve(body.get("model"))
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise ServeError(400, f"input must be a string or a non-empty list of strings, got {body.get('input')!r}")
    embedding = EmbeddingRequest(name, tuple(inputs), body.get("truncate", True) is not False)
    _, (_, reply) = await submit(request, embedding, _keep_alive(request, body))
    return {"model": name, **reply}


@router.post("/api/embeddings")
async def embeddings(request: Request):
    """Ollama's older embedding route: one ``prompt``, one ``embedding`` (the same vector /api/embed gives)."""
    body = await read_json(request)
    name = request.app.state.registry.resolve(body.get("model"))
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise ServeError(400, f"prompt must be a non-empty string, got {prompt!r}")
    _, (_, reply) = await submit(request, EmbeddingRequest(name, (prompt,), True), _keep_alive(request, body))
    return {"embedding": reply["embeddings"][0]}
