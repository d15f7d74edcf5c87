"""``POST /api/show``'s reply: the model's details, its config as GGUF-style ``model_info`` keys, the prompt
layout as an Ollama template and its parameters, without filesystem paths."""

from __future__ import annotations

from ..gguf.metadata import ARCHITECTURE, HYPERPARAMETERS, key

# render_prompt's layout: earlier turns (here the system message) as "role: text" lines, then the prompt
TEMPLATE = "{{ if .System }}system: {{ .System }}\n{{ end }}{{ .Prompt }}"


def model_info(config) -> dict:
    info = {"general.architecture": ARCHITECTURE}
    for field, suffix, _, _ in HYPERPARAMETERS:
        value = getattr(config, field, None)
        if value is not None:
            info[key(suffix)] = value
    return info


def template_of(tokenizer) -> str:
    """The tokenizer's chat template as an Ollama template (as export-ollama writes it), else :data:`TEMPLATE`."""
    from ..export.ollama import ollama_template

    chat_template = getattr(tokenizer, "chat_template", None)
    return ollama_template(chat_template) if isinstance(chat_template, str) and chat_template else TEMPLATE


def show_reply(name: str, config, tokenizer, details: dict, modified_at: str) -> dict:
    template = template_of(tokenizer)
    return {"modelfile": f"FROM {name}\nTEMPLATE \"\"\"{template}\"\"\"\nPARAMETER num_ctx {config.max_seq_len}\n",
            "parameters": f"num_ctx {config.max_seq_len}", "template": template, "details": details,
            "model_info": model_info(config), "capabilities": ["completion"], "modified_at": modified_at}
