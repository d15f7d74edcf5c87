"""`apt-fast chat` on a real terminal: a pseudo-terminal drives it as a person would (prompt, reply, /exit)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="this platform has no pseudo-terminals")

PROMPT = b"you> "
CHAT_ARGS = ["--greedy", "--max-new-tokens", "4"]


def _expected_reply(model_dir: str, message: str) -> str:
    """The reply the command gives: the same model, fast path and settings, in this process."""
    from apt_fast.train.chat import ChatSession, ChatSettings
    from apt_fast.train.fast_path import apply_fast_path
    from apt_fast.train.inputs import load_pretrained

    model, tokenizer = load_pretrained(model_dir)
    apply_fast_path(model, True)
    return ChatSession(model, tokenizer, ChatSettings(max_new_tokens=4, greedy=True)).reply(message)


def _read_until(terminal: int, marker: bytes, deadline: float) -> bytes:
    """What the terminal shows until ``marker`` appears or the process closes it."""
    shown = b""
    while marker not in shown:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} on the terminal; it shows {shown!r}"
        if select.select([terminal], [], [], remaining)[0]:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: every process closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    return shown


def test_chat_on_a_terminal_replies_and_exits(tiny_model_dir, tmp_path):
    expected = _expected_reply(tiny_model_dir, "abc")
    controller, terminal = os.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}
    chat = subprocess.Popen([sys.executable, "-m", "apt_fast.cli", "chat", "--model-path", tiny_model_dir, *CHAT_ARGS],
                            stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=tmp_path)
    os.close(terminal)
    try:
        deadline = time.monotonic() + 60
        shown = _read_until(controller, PROMPT, deadline)
        os.write(controller, b"abc\n")
        shown += _read_until(controller, PROMPT, deadline)
        os.write(controller, b"/exit\n")
        assert chat.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        if chat.poll() is None:
            chat.kill()
            chat.wait()
        os.close(controller)
    assert b"/reset forgets the conversation, /exit quits" in shown  # the interactive banner
    assert b"apt> " + expected.encode("utf-8") + b"\r\n" + PROMPT in shown  # the terminal writes \n as \r\n
