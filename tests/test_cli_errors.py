"""The one-line text of the errors a user can cause (apt_fast/commands/errors.py)."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from apt_fast.commands.errors import USER_ERRORS, one_line


class Foreign:
    """Pickled by reference, so torch.load(weights_only=True) refuses it."""


def _unpickling_error(tmp_path):
    torch.save({"weights": Foreign()}, tmp_path / "foreign.pt")
    with pytest.raises(USER_ERRORS) as caught:
        torch.load(tmp_path / "foreign.pt", weights_only=True)
    return caught.value


def test_torch_unpickling_advice_is_never_repeated(tmp_path):
    error = _unpickling_error(tmp_path)
    assert "weights_only` set to `False`" in str(error)  # torch's advice: it would run the file's code
    assert one_line(error) == ("not a checkpoint of tensors (Unsupported global: GLOBAL test_cli_errors.Foreign was "
                               "not an allowed global by default); it was not unpickled")
    try:
        raise ValueError(f"foreign.pt: cannot be read with torch.load(weights_only=True): {error}") from error
    except ValueError as wrapped:
        assert one_line(wrapped) == f"foreign.pt: cannot be read with torch.load(weights_only=True): {one_line(error)}"


@pytest.mark.parametrize("error, line", [
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/x"), "/x: Permission denied"),
    (OSError(errno.EXDEV, os.strerror(errno.EXDEV), "a", None, "b"), "a -> b: Invalid cross-device link"),
    (OSError(errno.ENOSPC, "--save-path /x: not writable (No space left on device)"),
     "--save-path /x: not writable (No space left on device)"),
    (FileExistsError("--output x exists; pass --overwrite to replace it"), "--output x exists; pass --overwrite to "
                                                                           "replace it"),
    (ValueError("first\n\n  second\n"), "first second"),
    (ValueError(""), "ValueError"),
])
def test_one_line(error, line):
    assert one_line(error) == line
