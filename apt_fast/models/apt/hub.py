"""``APTModel.push_to_hub``: upload the model, its tokenizer and its model card in one commit.

transformers' own push_to_hub replaces the card with a generic one and knows nothing of apt_fast's
tokenizers, so this saves with :meth:`APTModel.save_pretrained` (weights, config, tokenizer, card) into a
temporary directory and uploads that folder. A README.md already on the Hub that apt_fast did not write is
kept. When the Hub cannot be reached (no network, ``HF_HUB_OFFLINE=1``) the error is one line:
:class:`HubUnreachableError`.
"""

from __future__ import annotations

import os
import tempfile

from .model_card import CARD_FILE, is_apt_fast_card

# Exception classes (by name, anywhere in the MRO) that mean the Hub was not reached: requests' and the
# builtin ConnectionError, httpx's TransportError (huggingface_hub >= 1.0), timeouts.
_UNREACHABLE = frozenset({"ConnectionError", "TransportError", "Timeout", "TimeoutException", "TimeoutError"})


class HubUnreachableError(ConnectionError):
    """push_to_hub could not reach the Hugging Face Hub."""


def _unreachable(err: BaseException) -> bool:
    return any(cls.__name__ in _UNREACHABLE for cls in type(err).__mro__)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _keeps_remote_card(api, repo_id: str, revision: str | None) -> bool:
    """Whether the repo has a README.md that apt_fast did not write."""
    if not api.file_exists(repo_id, CARD_FILE, revision=revision):
        return False
    with open(api.hf_hub_download(repo_id, CARD_FILE, revision=revision), encoding="utf-8", errors="replace") as f:
        return not is_apt_fast_card(f.read())


def push_to_hub(model, repo_id: str, *, tokenizer=None, commit_message: str | None = None,
                commit_description: str | None = None, private: bool | None = None, token: bool | str | None = None,
                revision: str | None = None, create_pr: bool = False, max_shard_size: int | str | None = "50GB"):
    """Create ``repo_id`` if needed and upload the saved model; returns the hub's CommitInfo."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder, tokenizer=tokenizer, max_shard_size=max_shard_size)
            if _keeps_remote_card(api, repo_id, revision):
                os.remove(os.path.join(folder, CARD_FILE))
            return api.upload_folder(repo_id=repo_id, folder_path=folder,
                                     commit_message=commit_message or "Upload APT model",
                                     commit_description=commit_description, revision=revision, create_pr=create_pr)
    except Exception as err:
        if _unreachable(err):
            raise HubUnreachableError(
                f"push_to_hub: cannot reach the Hugging Face Hub (offline?): {_first_line(err)}"
            ) from None
        raise
