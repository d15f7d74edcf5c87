"""The streamed text: no UTF-8 character split across pieces, text that could begin a stop sequence held back."""

from __future__ import annotations

import pytest

from apt_fast.models.apt.tokenization_byte import APTByteTokenizer
from apt_fast.serve.decoding import TextStream


def pieces(text: str, stops=(), tokenizer=None):
    tokenizer = tokenizer or APTByteTokenizer()
    stream = TextStream(tokenizer, tuple(stops))
    out = [stream.push(token) for token in tokenizer.encode(text)]
    return out, stream.finish(), stream.stopped


def test_multibyte_characters_come_whole():
    out, tail, stopped = pieces("aé€😀b")
    assert out == ["a", "", "é", "", "", "€", "", "", "", "😀", "b"] and tail == "" and not stopped


def test_a_possible_stop_is_held_back_until_decided():
    out, tail, stopped = pieces("xabyab", stops=["abc"])
    assert out == ["x", "", "", "aby", "", ""] and tail == "ab" and not stopped


@pytest.mark.parametrize("stops, before", [(["yz"], "abcx"), (["q", "cx"], "ab"), (["€"], "abcxyz")])
def test_the_text_stops_before_the_first_stop_sequence(stops, before):
    out, tail, stopped = pieces("abcxyz€€", stops=stops)
    assert "".join(out) + tail == before and stopped and tail == ""


def test_a_stop_sequence_split_over_pieces_is_found():
    out, _, stopped = pieces("hello world", stops=["lo w"])
    assert "".join(out) == "hel" and stopped
