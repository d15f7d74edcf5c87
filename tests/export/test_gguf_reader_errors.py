"""Truncated, corrupted and lying GGUF files give one clear GGUFError (a ValueError), never a crash."""

from __future__ import annotations

import struct

import pytest

import apt_fast
from apt_fast.export import GGUFError, export_gguf, load_gguf, read_gguf


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    from apt_fast.models.apt import APTConfig, APTModel
    from apt_fast.models.apt.tokenization_byte import APTByteTokenizer

    model = APTModel(APTConfig(vocab_size=259, d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
                               d_ff=64, max_seq_len=8))
    path = tmp_path_factory.mktemp("gguf") / "good.gguf"
    export_gguf(model, path, "q8_0", APTByteTokenizer(), progress=False)
    return path.read_bytes()


def _write(tmp_path, data: bytes):
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    return path


def test_every_truncation_is_reported(tmp_path, good_file):
    for cut in list(range(0, 200, 7)) + list(range(200, len(good_file), max(1, len(good_file) // 60))):
        with pytest.raises(GGUFError, match="truncated"):
            read_gguf(_write(tmp_path, good_file[:cut]))


@pytest.mark.parametrize("patch, message", [
    (lambda d: b"GGML" + d[4:], r"not a GGUF file \(the first 4 bytes are b'GGML', not b'GGUF'\)"),
    (lambda d: d[:4] + struct.pack("<I", 99) + d[8:], "unsupported GGUF version 99"),
    (lambda d: d[:8] + struct.pack("<Q", 2**62) + d[16:], "header declares 4611686018427387904 tensors"),
    (lambda d: d[:16] + struct.pack("<Q", 2**60) + d[24:], "1152921504606846976 metadata entries"),
    (lambda d: d[:24] + struct.pack("<Q", 2**63) + d[32:],
     "length of metadata key 0 is 9223372036854775808, more than"),
])
def test_lying_header(tmp_path, good_file, patch, message):
    with pytest.raises(GGUFError, match=message):
        read_gguf(_write(tmp_path, patch(good_file)))


def _find_tensor_info(data: bytes, name: str) -> int:
    """Offset of the dimension count that follows tensor ``name``'s name in the tensor infos."""
    encoded = name.encode()
    return data.index(struct.pack("<Q", len(encoded)) + encoded) + 8 + len(encoded)


def test_tensor_infos_are_checked(tmp_path, good_file):
    at = _find_tensor_info(good_file, "token_embd.weight")
    n_dims = struct.pack("<I", 7)
    with pytest.raises(GGUFError, match="tensor token_embd.weight has 7 dimensions; GGUF allows 1 to 4"):
        read_gguf(_write(tmp_path, good_file[:at] + n_dims + good_file[at + 4:]))
    huge_dim = struct.pack("<Q", 2**40)
    with pytest.raises(GGUFError, match="truncated file: tensor token_embd.weight"):
        read_gguf(_write(tmp_path, good_file[:at + 4] + huge_dim + good_file[at + 12:]))
    type_at = at + 4 + 16
    with pytest.raises(GGUFError, match="tensor token_embd.weight has ggml type id 12, which apt_fast does not read"):
        read_gguf(_write(tmp_path, good_file[:type_at] + struct.pack("<I", 12) + good_file[type_at + 4:]))
    offset = struct.pack("<Q", 3)
    with pytest.raises(GGUFError, match="misaligned or overlapping data offset 3"):
        read_gguf(_write(tmp_path, good_file[:type_at + 4] + offset + good_file[type_at + 12:]))


def test_not_an_apt_file(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "llama.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFError, match=r"general.architecture is 'llama', not 'apt'; apt_fast imports only APT"):
        load_gguf(path)
    with pytest.raises(ValueError, match="not 'apt'"):
        apt_fast.load(path)


def test_missing_hyperparameter(tmp_path, good_file):
    broken = good_file.replace(b"apt.attention.head_count", b"apt.attention.head_xxxxx")
    with pytest.raises(GGUFError, match="metadata key apt.attention.head_count is missing"):
        load_gguf(_write(tmp_path, broken))
