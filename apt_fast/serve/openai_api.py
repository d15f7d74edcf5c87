"""The OpenAI-compatible API under /v1: models, chat completions and completions (SSE streams ending with
``data: [DONE]``), embeddings."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .embedding import EmbeddingRequest
from .errors import ServeError
from .generation import GenerationRequest
from .handling import collect, events, read_json, start_generation, submit
from .options import openai_settings
from .prompts import chat_messages

router = APIRouter(prefix="/v1")


@router.get("/models")
async def models(request: Request) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "apt_fast"}
                                       for name in sorted(request.app.state.registry.paths)]}


def _usage(stats: dict) -> dict:
    prompt, completion = stats["prompt_eval_count"], stats["eval_count"]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(value) -> str:
    return f"data: {value if isinstance(value, str) else json.dumps(value)}\n\n"


async def _complete(request: Request, body: dict, prompt: str, kind: str):
    """``kind`` "chat" (chat.completion objects, ``delta``/``message``; the prompt is the body's messages) or
    "text" (text_completion, ``text``)."""
    registry = request.app.state.registry
    messages = chat_messages(body.get("messages")) if kind == "chat" else None
    generation = GenerationRequest(registry.resolve(body.get("model")), prompt, openai_settings(body),
                                   messages=messages)
    job = await start_generation(request, generation, None)
    ident = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    head = {"id": ident, "created": int(time.time()), "model": generation.model}
    if not body.get("stream"):
        text, stats = await collect(request, job)
        choice = ({"message": {"role": "assistant", "content": text}} if kind == "chat" else {"text": text})
        return JSONResponse({**head, "object": "chat.completion" if kind == "chat" else "text_completion",
                             "choices": [{"index": 0, **choice, "finish_reason": stats["done_reason"]}],
                             "usage": _usage(stats)})
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    chunk_head = {**head, "object": "chat.completion.chunk" if kind == "chat" else "text_completion"}

    def chunk(piece: str | None, finish: str | None, role: bool = False) -> dict:
        if kind == "chat":
            delta = {} if piece is None else {"role": "assistant", "content": piece} if role else {"content": piece}
            return {**chunk_head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return {**chunk_head, "choices": [{"index": 0, "text": piece or "", "finish_reason": finish}]}

    async def stream():
        if kind == "chat":
            yield _sse(chunk("", None, role=True))
        async for event in events(job):
            if event[0] == "text":
                yield _sse(chunk(event[1], None))
            elif event[0] == "done":
                yield _sse(chunk(None, event[1]["done_reason"]))
                if include_usage:
                    yield _sse({**chunk_head, "choices": [], "usage": _usage(event[1])})
            else:
                yield _sse({"error": {"message": event[2], "type": "api_error", "param": None, "code": None}})
        yield _sse("[DONE]")

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.post("/chat/completions")
async def chat_completions(request: Request):
    body = await read_json(request)
    request.app.state.registry.resolve(body.get("model"))
    return await _complete(request, body, "", "chat")


@router.post("/completions")
async def completions(request: Request):
    body = await read_json(request)
    request.app.state.registry.resolve(body.get("model"))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise ServeError(400, f"prompt must be a non-empty string, got {prompt!r}")
    return await _complete(request, body, prompt, "text")


@router.post("/embeddings")
async def embeddings(request: Request) -> dict:
    """The unit mean-pooled encoder states of each ``input`` (as /api/embed); inputs longer than the context are
    a 400, as OpenAI does not truncate."""
    body = await read_json(request)
    name = request.app.state.registry.resolve(body.get("model"))
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
        raise ServeError(400, f"input must be a non-empty string or list of them, got {body.get('input')!r}")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise ServeError(400, f"encoding_format must be 'float' or 'base64', got {encoding!r}")
    _, (_, reply) = await submit(request, EmbeddingRequest(name, tuple(inputs), False), None)
    count = reply["prompt_eval_count"]
    return {"object": "list", "model": name, "usage": {"prompt_tokens": count, "total_tokens": count},
            "data": [{"object": "embedding", "index": i, "embedding": _encoded(vector, encoding)}
                     for i, vector in enumerate(reply["embeddings"])]}


def _encoded(vector: list[float], encoding: str):
    """``base64``: the little-endian float32 bytes, as OpenAI's client asks for by default."""
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
