"""``export_ollama``: a directory with the model as GGUF, an Ollama Modelfile and a README.

The Modelfile has FROM (the GGUF file), TEMPLATE (converted from the tokenizer's chat template by
rendering it around placeholders, or a plain prompt template), one ``PARAMETER stop`` per
end-of-generation token and the sampling parameters. The README says plainly that the "apt"
architecture runs only in apt_fast: llama.cpp and Ollama do not implement its autopoietic attention.
"""

from __future__ import annotations

import json
import os

from .writer import export_gguf

PLAIN_TEMPLATE = "{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}"
# apt_fast's generate defaults (APTModel.generate), overridden by a generation_config.json next to the model
DEFAULT_SAMPLING = {"temperature": 1.0, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.0}
# Modelfile PARAMETER name and general.sampling.* key of each setting
_SAMPLING_NAMES = {"temperature": ("temperature", "temp"), "top_p": ("top_p", "top_p"),
                   "top_k": ("top_k", "top_k"), "repetition_penalty": ("repeat_penalty", "penalty_repeat")}
_END_OF_GENERATION = ("</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "[EOS]")
_SYSTEM, _PROMPT = "\x00SYSTEM\x00", "\x00PROMPT\x00"


def sampling_settings(model_path: str | os.PathLike | None) -> dict:
    """DEFAULT_SAMPLING updated from ``<model_path>/generation_config.json`` when it exists."""
    settings = dict(DEFAULT_SAMPLING)
    config_path = os.path.join(os.fspath(model_path), "generation_config.json") if model_path else None
    if config_path and os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            saved = json.load(f)
        settings.update({k: saved[k] for k in DEFAULT_SAMPLING if saved.get(k) is not None})
    return settings


def _render(chat_template: str, messages: list[dict]) -> str | None:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        text = environment.from_string(chat_template).render(messages=messages, add_generation_prompt=True,
                                                              bos_token="", eos_token="")
    except TemplateError:
        return None
    return text.replace(_SYSTEM, "{{ .System }}").replace(_PROMPT, "{{ .Prompt }}") if _PROMPT in text else None


def gguf_sampling(settings: dict) -> dict:
    """``settings`` (DEFAULT_SAMPLING's names) under export_gguf's ``sampling`` names (general.sampling.*)."""
    return {_SAMPLING_NAMES[k][1]: v for k, v in settings.items()}


def ollama_template(chat_template: str | None) -> str:
    """An Ollama (Go) template equivalent to ``chat_template`` (Jinja) for an optional system message and
    one user turn: the Jinja template is rendered around placeholder messages, with and without a system
    message. Without a chat template, or one that cannot be rendered, the plain prompt template."""
    if not chat_template:
        return PLAIN_TEMPLATE
    user = _render(chat_template, [{"role": "user", "content": _PROMPT}])
    with_system = _render(chat_template, [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _PROMPT}])
    if user is None:
        return with_system or PLAIN_TEMPLATE
    if with_system is None or "{{ .System }}" not in with_system:
        return user
    return "{{ if .System }}" + with_system + "{{ else }}" + user + "{{ end }}"


def stop_tokens(tokenizer, model_config) -> list[str]:
    """The text of every end-of-generation token: the tokenizer's and the model config's EOS, and any
    well-known end-of-turn marker in the vocabulary."""
    from .tokenizer_metadata import vocabulary

    tokens = vocabulary(tokenizer)
    ids = [getattr(tokenizer, "eos_token_id", None), model_config.eos_token_id]
    stops = [tokens[i] for i in ids if i is not None and 0 <= i < len(tokens)]
    present = set(tokens)
    stops += [marker for marker in _END_OF_GENERATION if marker in present]
    return [s for i, s in enumerate(stops) if s.strip() and s not in stops[:i]]


def modelfile(gguf_file: str, template: str, stops: list[str], sampling: dict, context_length: int) -> str:
    lines = [f"FROM ./{gguf_file}", f'TEMPLATE """{template}"""']
    lines += [f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}" for stop in stops]
    lines += [f"PARAMETER {_SAMPLING_NAMES[k][0]} {v:g}" for k, v in sampling.items()]
    lines.append(f"PARAMETER num_ctx {context_length}")
    return "\n".join(lines) + "\n"


def readme(name: str, gguf_file: str) -> str:
    return f"""# {name}

`{gguf_file}` holds an APT (Autopoietic Transformer) encoder-decoder in GGUF v3, architecture `apt`,
with its tokenizer, written by apt_fast.

**llama.cpp and Ollama cannot run this model.** They do not implement the "apt" architecture: its
autopoietic attention (the per-head score transform with its sr_conv MLP and learned tau) and its
encoder-decoder layout exist only in apt_fast. `ollama create` may accept the Modelfile, but loading the
model fails with an unknown-architecture error. The Modelfile is provided so the bundle is ready if a
runtime adds the architecture.

Run it with apt_fast, which keeps Q8_0 weights int8 on load and dequantizes the other types:

    apt-fast generate --model-path {gguf_file} --prompt "Hello"
    apt-fast import-gguf --input {gguf_file} --output-dir apt-model   # back to an apt_fast model directory

or from Python: `model, tokenizer = apt_fast.load("{gguf_file}")`.

To use it from Ollama's tools (the `ollama` Python package, Open WebUI, LangChain's ChatOllama, or the
`openai` client at `http://127.0.0.1:11434/v1`), serve it with apt_fast's Ollama-compatible server
(`pip install 'apt-fast[serve]'`) instead of running `ollama serve`:

    apt-fast serve --model {name}={gguf_file}
"""


def bundle_paths(output_dir: str | os.PathLike, quantize: str = "q8_0", name: str = "apt") -> dict[str, str]:
    """The files :func:`export_ollama` writes, by kind: gguf (``<name>-<quantize>.gguf``), modelfile, readme."""
    output_dir = os.fspath(output_dir)
    return {"gguf": os.path.join(output_dir, f"{name}-{quantize.lower()}.gguf"),
            "modelfile": os.path.join(output_dir, "Modelfile"), "readme": os.path.join(output_dir, "README.md")}


def export_ollama(model, tokenizer, output_dir: str | os.PathLike, quantize: str = "q8_0", *,
                  name: str = "apt", sampling: dict | None = None, progress: bool = True) -> dict[str, str]:
    """Write :func:`bundle_paths` into ``output_dir`` (created when missing; files there are replaced);
    returns their paths by kind. A failure removes nothing that existed and leaves no partial file."""
    if tokenizer is None:
        raise ValueError("export_ollama needs the model's tokenizer (for the stop tokens and the template)")
    sampling = {**DEFAULT_SAMPLING, **(sampling or {})}
    paths = bundle_paths(output_dir, quantize, name)
    gguf_file = os.path.basename(paths["gguf"])
    texts = {"modelfile": modelfile(gguf_file, ollama_template(getattr(tokenizer, "chat_template", None)),
                                    stop_tokens(tokenizer, model.config), sampling, model.config.max_seq_len),
             "readme": readme(name, gguf_file)}
    os.makedirs(output_dir, exist_ok=True)
    export_gguf(model, paths["gguf"], quantize, tokenizer, name=name, progress=progress,
                sampling=gguf_sampling(sampling))
    for kind, text in texts.items():
        _write_text(paths[kind], text)
    return paths


def _write_text(path: str, text: str) -> None:
    from ..atomic import atomic_write

    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)
