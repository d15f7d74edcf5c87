"""`apt-fast serve`: Ollama's REST API and the OpenAI-compatible API over APT models (needs the ``serve`` extra).

app.py builds the ASGI app from a :class:`~.app.ServeConfig`; ollama_api.py and openai_api.py are its routes,
models.py the name:tag registry that loads models on first use, decoding.py the token-by-token decoder and its
text stream, workers.py the fixed worker pool with its bounded queue, security.py the Host check and body cap.
"""
