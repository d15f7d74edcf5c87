"""`apt-fast serve`: Ollama's REST API and the OpenAI-compatible API over local APT models (the serve extra)."""

from __future__ import annotations

import argparse
import os
import sys

INSTALL_HINT = "apt-fast serve needs the serve extra: pip install 'apt-fast[serve]' (FastAPI and uvicorn)"
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 10**3, "mb": 10**6, "gb": 10**9}


def byte_size(text: str) -> int:
    """``--max-body``: bytes, or a number with KiB/MiB/GiB/KB/MB/GB."""
    number = text.strip().rstrip("bBiIkKmMgG ")
    unit = text.strip()[len(number):].strip().lower()
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected a size such as 8MiB, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a size >= 1 byte, got {text!r}")
    return int(value)


def origins(value: str | None) -> tuple[str, ...]:
    """OLLAMA_ORIGINS: the comma-separated browser origins that CORS allows."""
    return tuple(o.strip() for o in (value or "").split(",") if o.strip())


MAX_DEFAULT_PARALLEL = 4


def default_parallel(environment_value: str | None) -> int:
    """``--parallel``'s default: OLLAMA_NUM_PARALLEL when set, else one worker per usable core, at most
    MAX_DEFAULT_PARALLEL."""
    if environment_value is None or not environment_value.strip():
        return max(1, min(MAX_DEFAULT_PARALLEL, len(os.sched_getaffinity(0))))
    try:
        value = int(environment_value)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"OLLAMA_NUM_PARALLEL must be a whole number >= 1, got {environment_value!r}")
    return value


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve APT models over Ollama's API and the OpenAI-compatible API (needs apt-fast[serve])",
        description="Serve local APT models (model directories, checkpoints, .gguf files) to Ollama and OpenAI "
                    "clients. Listens on OLLAMA_HOST when set, else 127.0.0.1:11434; there is no authentication, "
                    "so bind to another address only on a trusted network. Models load on first use. Browsers may "
                    "call it only from the origins listed in OLLAMA_ORIGINS (comma-separated).")
    parser.add_argument("--host", help="address to bind (default: OLLAMA_HOST's, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: OLLAMA_HOST's, else 11434)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="offer the model at PATH as NAME (name:tag, 'x' means 'x:latest'); repeatable")
    parser.add_argument("--models-dir", metavar="DIR",
                        help="offer every model directory and model file in DIR under its name")
    parser.add_argument("--parallel", type=int,
                        help="requests generated at once, each in a worker process of its own that holds its own copy "
                             "of the models and shares the cores with the others (default: OLLAMA_NUM_PARALLEL, else "
                             f"one per core, at most {MAX_DEFAULT_PARALLEL})")
    parser.add_argument("--max-queue", type=int, default=512,
                        help="requests waiting beyond --parallel before 503 'server busy' (default %(default)s)")
    parser.add_argument("--keep-alive", default=os.environ.get("OLLAMA_KEEP_ALIVE", "5m"),
                        help="how long an idle model stays loaded: seconds or a duration such as 5m; negative "
                             "keeps it forever (default: OLLAMA_KEEP_ALIVE, else 5m)")
    parser.add_argument("--max-body", type=byte_size, default="8MiB", help="request body cap (default 8MiB)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve.app import ServeConfig, create_app
    except ImportError as error:
        raise ValueError(f"{INSTALL_HINT} ({error})") from None
    from ..serve import durations
    from ..serve.host import is_loopback, parse_ollama_host
    from ..serve.models import models_in, parse_model_argument

    env_host, env_port = parse_ollama_host(os.environ.get("OLLAMA_HOST"))
    host = args.host if args.host is not None else env_host
    port = args.port if args.port is not None else env_port
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {port}")
    models = models_in(args.models_dir) if args.models_dir else {}
    for text in args.model:
        name, path = parse_model_argument(text)
        if not os.path.exists(path):
            raise FileNotFoundError(f"--model {text}: no such file or directory")
        models[name] = path
    if not models:
        raise ValueError("no models to serve: give --model NAME=PATH or --models-dir DIR")
    parallel = args.parallel if args.parallel is not None else default_parallel(os.environ.get("OLLAMA_NUM_PARALLEL"))
    config = ServeConfig(models=models, parallel=parallel, max_queue=args.max_queue,
                         keep_alive=durations.seconds(args.keep_alive, "--keep-alive"), max_body=args.max_body,
                         check_host=is_loopback(host), origins=origins(os.environ.get("OLLAMA_ORIGINS")))
    app = create_app(config)
    if not is_loopback(host):
        print(f"apt-fast serve: warning: listening on {host}, not a loopback address; there is no authentication, "
              f"anyone who can reach this port can use the models", file=sys.stderr)
    print(f"apt-fast serve: {len(models)} model(s) ({', '.join(sorted(models))}) on http://{host}:{port}, "
          f"{parallel} worker(s) of {app.state.pool.threads_per_worker} thread(s)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning" if args.quiet else "info")
    return 0
