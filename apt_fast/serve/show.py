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


def show_reply(name: str, config, details: dict, modified_at: str) -> dict:
    return {"modelfile": f"FROM {name}\nTEMPLATE \"\"\"{TEMPLATE}\"\"\"\nPARAMETER num_ctx {config.max_seq_len}\n",
            "parameters": f"num_ctx {config.max_seq_len}", "template": TEMPLATE, "details": details,
            "model_info": model_info(config), "capabilities": ["completion"], "modified_at": modified_at}
