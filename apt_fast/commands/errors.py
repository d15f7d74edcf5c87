"""Which failures are the user's (their arguments, files, disk, machine), and their one-line text.

A command's user error is an OSError (a missing, unreadable or unwritable path, a full disk, a read-only
file system), a ValueError (bad values and file contents: UnicodeDecodeError, JSONDecodeError, CheckpointError,
GGUFError, ...) or torch.load's UnpicklingError; ``apt-fast`` prints it as ``apt-fast CMD: error: TEXT`` and
exits with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import pickle

USER_ERRORS = (OSError, ValueError, pickle.UnpicklingError)


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """What torch.load(weights_only=True) refused, without torch's advice to retry with weights_only=False
    (which would run whatever code the file holds)."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    detail = text.split(marker, 1)[1].strip().split("\n", 1)[0] if marker in text else ""
    detail = detail.split(". ", 1)[0].rstrip(".")
    return "not a checkpoint of tensors" + (f" ({detail})" if detail else "") + "; it was not unpickled"


def _unpickling_error(error: BaseException) -> pickle.UnpicklingError | None:
    seen = error
    while seen is not None:
        if isinstance(seen, pickle.UnpicklingError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def one_line(error: BaseException) -> str:
    """``error``'s message on one line: an OSError as 'PATH: reason', torch's unpickling advice replaced."""
    if isinstance(error, OSError) and error.strerror:
        paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
        text = ": ".join([" -> ".join(paths), error.strerror] if paths else [error.strerror])
    else:
        text = str(error)
    unpickling = _unpickling_error(error)
    if unpickling is not None:
        if str(unpickling) and str(unpickling) in text:
            text = text.replace(str(unpickling), _unpickling_reason(unpickling))
        elif unpickling is error:
            text = _unpickling_reason(unpickling)
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__
