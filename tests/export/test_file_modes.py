"""Written files follow the umask like open() does (not mkstemp's 0600): model directories, tokenizer files,
GGUF, the Ollama bundle, training logs and benchmark JSON are readable by other users and daemons."""

import os
import stat

import pytest

from apt_fast.atomic import atomic_write_json
from apt_fast.export.ollama import export_ollama


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def files_under(directory):
    return sorted(os.path.join(root, name) for root, _, names in os.walk(directory) for name in names)


def test_model_tokenizer_gguf_and_ollama_bundle_follow_the_umask(tmp_path, model, tokenizer, umask):
    import apt_fast

    apt_fast.save(model, tmp_path / "model", tokenizer)
    export_ollama(model, tokenizer, tmp_path, "q8_0", progress=False)
    atomic_write_json(tmp_path / "training_log.json", {"loss": [1.0]})
    written = files_under(tmp_path)
    assert any(p.endswith(".safetensors") for p in written) and any(p.endswith(".gguf") for p in written)
    expected = 0o666 & ~umask
    wrong = {os.path.relpath(p, tmp_path): oct(mode_of(p)) for p in written if mode_of(p) != expected}
    assert not wrong, f"expected mode {oct(expected)} under umask {oct(umask)}, got {wrong}"
