"""save_pretrained keeps the tokenizer with the model and writes a model card; apt_fast.load says when a checkpoint
has no tokenizer; push_to_hub uploads model, tokenizer and card, and offline fails with one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest
from byte_models import byte_model, byte_tokenizer

import apt_fast


def test_save_pretrained_saves_the_attached_or_given_tokenizer(tmp_path):
    apt_fast.save(byte_model(), tmp_path / "first", byte_tokenizer())
    model, tokenizer = apt_fast.load(tmp_path / "first")
    assert model.tokenizer is tokenizer
    model.save_pretrained(tmp_path / "again")
    assert type(apt_fast.load(tmp_path / "again")[1]).__name__ == "APTByteTokenizer"
    from apt_fast.models.apt.tokenization_char import HLBDCharTokenizer

    model.save_pretrained(tmp_path / "other", tokenizer=HLBDCharTokenizer.with_special_tokens())
    assert type(apt_fast.load(tmp_path / "other")[1]).__name__ == "HLBDCharTokenizer"


def test_from_pretrained_attaches_the_directory_tokenizer(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    apt_fast.save(byte_model(), tmp_path, byte_tokenizer())
    assert type(AutoModelForSeq2SeqLM.from_pretrained(tmp_path).tokenizer).__name__ == "APTByteTokenizer"


def test_load_warns_when_the_checkpoint_has_no_tokenizer(tmp_path):
    byte_model().save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match=rf"^apt_fast.load: {tmp_path} has no tokenizer, so the tokenizer returned is "
                      r"None; save the model with one: apt_fast.save\(model, path, tokenizer\)$"):
        model, tokenizer = apt_fast.load(tmp_path)
    assert tokenizer is None and model.tokenizer is None


def test_every_save_writes_the_model_card(tmp_path):
    model = byte_model()
    apt_fast.save(model, tmp_path / "a", byte_tokenizer())
    card = (tmp_path / "a" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: apt_fast\n")
    assert "| encoder / decoder layers | 1 / 1 |" in card and "| d_model | 32 |" in card
    assert "Tokenizer: `APTByteTokenizer`" in card and 'AutoModelForSeq2SeqLM.from_pretrained("' in card
    model.save_pretrained(tmp_path / "b")
    assert "No tokenizer is saved with this model" in (tmp_path / "b" / "README.md").read_text()
    apt_fast.save(model, tmp_path / "b", byte_tokenizer())  # a second save rewrites apt_fast's card ...
    assert "Tokenizer: `APTByteTokenizer`" in (tmp_path / "b" / "README.md").read_text()
    (tmp_path / "b" / "README.md").write_text("# my own card\n")  # ... but never a card written by hand
    apt_fast.save(model, tmp_path / "b", byte_tokenizer())
    assert (tmp_path / "b" / "README.md").read_text() == "# my own card\n"
    assert not [name for name in os.listdir(tmp_path / "b") if name.startswith(".tmp")]


def test_push_to_hub_offline_is_one_line(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError) as error:
        byte_model().push_to_hub("someone/apt-model")
    message = str(error.value)
    assert message.startswith("push_to_hub: cannot reach the Hugging Face Hub (offline?): ") and "\n" not in message


def test_push_to_hub_unreachable_is_one_line(monkeypatch):
    import huggingface_hub

    class TransportError(Exception):  # what httpx raises when there is no network
        pass

    def no_network(self, *args, **kwargs):
        raise TransportError("[Errno -2] Name or service not known\nmore detail")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    with pytest.raises(ConnectionError, match=r"^push_to_hub: cannot reach the Hugging Face Hub \(offline\?\): "
                       r"\[Errno -2\] Name or service not known$"):
        byte_model().push_to_hub("someone/apt-model")


class _FakeHub:
    """Stands for huggingface_hub.HfApi: records what would be uploaded."""

    uploads: ClassVar[list] = []
    remote_card: ClassVar[str | None] = None

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=None, exist_ok=False):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def file_exists(self, repo_id, filename, revision=None):
        return self.remote_card is not None

    def hf_hub_download(self, repo_id, filename, revision=None):
        path = os.path.join(os.environ["FAKE_HUB_DIR"], filename)
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.remote_card)
        return path

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {path.name: path.read_bytes() for path in Path(folder_path).iterdir()}
        _FakeHub.uploads.append((repo_id, files, kwargs))
        return "commit"


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeHub)
    monkeypatch.setenv("FAKE_HUB_DIR", str(tmp_path))
    monkeypatch.setattr(_FakeHub, "uploads", [])
    monkeypatch.setattr(_FakeHub, "remote_card", None)
    return _FakeHub


def test_push_to_hub_uploads_tokenizer_and_card(fake_hub, tmp_path):
    model, _ = apt_fast.load(_saved(tmp_path))
    assert model.push_to_hub("someone/apt-model", commit_message="first") == "commit"
    repo_id, files, kwargs = fake_hub.uploads[-1]
    assert repo_id == "someone/apt-model" and kwargs["commit_message"] == "first"
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "README.md"} <= set(files)
    assert b"Tokenizer: `APTByteTokenizer`" in files["README.md"]
    fake_hub.remote_card = "# written on the Hub by hand\n"
    model.push_to_hub("someone/apt-model")
    assert "README.md" not in fake_hub.uploads[-1][1] and "tokenizer_config.json" in fake_hub.uploads[-1][1]
    model.save_pretrained(tmp_path / "out", push_to_hub=True, commit_message="via save")
    repo_id, files, kwargs = fake_hub.uploads[-1]
    assert repo_id == "out" and kwargs["commit_message"] == "via save" and "tokenizer_config.json" in files


def _saved(tmp_path):
    apt_fast.save(byte_model(), tmp_path / "saved", byte_tokenizer())
    return tmp_path / "saved"
