"""Errors a request can cause, with the HTTP status Ollama gives them, and their bodies in both APIs."""

from __future__ import annotations


class ServeError(Exception):
    """A request's failure: ``status`` is its HTTP status, ``str(error)`` the message sent to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def model_not_found(name: str) -> ServeError:
    return ServeError(404, f"model '{name}' not found")


def ollama_body(message: str) -> dict:
    """Ollama's error body: ``{"error": "..."}``."""
    return {"error": message}


_OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error", 413: "invalid_request_error",
                 503: "api_error"}


def openai_body(status: int, message: str) -> dict:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "api_error"), "param": None,
                      "code": None}}
