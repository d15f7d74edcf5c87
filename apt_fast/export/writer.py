"""``export_gguf``: an APT model (and its tokenizer) as one GGUF v3 file, streamed tensor by tensor.

Types: 2-D weight matrices (the embedding, the untied output, the q/k/v/o projections and the FFN) take
the requested type; every other tensor (biases, norms, tau, the sr_conv weights, the positional table,
the taylor parameters) stays F32. A block type (q8_0, q4_*, q5_*) needs rows that are a multiple of 32
elements; a matrix whose rows are not is written as F16 instead, as llama.cpp's converter does. The tied
output projection is not written: ``token_embd.weight`` serves both (tensor names:
apt_fast/gguf/tensor_names.py). A quantized layer (Int8Linear, Fp8Linear, QuantizedEmbedding) is written under
its layer's weight name: as Q8_0 its int8 codes and scales as they are, never through float32, when it is an
Int8Linear of group size 32 (any other quantized layer is refused for q8_0), and for every other type as its
dequantized weight (quantized_layers.py).

Memory: the tensor infos are planned from shapes alone and written with gguf's GGUFWriter; then each
tensor is converted and appended in turn, a piece at a time through one small scratch buffer
(tensor_data.py), so the export holds the model plus a few MiB (plus one quantized layer's
codes, or its dequantized weight, at a time). The file is written under a temporary
name in the target directory and renamed when complete: a failure or Ctrl-C leaves no partial .gguf,
and an existing file at the target is replaced only by a finished one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..atomic import atomic_write
from ..gguf import metadata as meta
from ..gguf.tensor_names import gguf_name
from ..gguf.tensor_types import TYPES, GGUFType, gguf_type
from .gguf_blocks import convert
from .quantized_layers import check_q8_0, export_state, float_weight, q8_0_data, shape_of, writes_as_is
from .tensor_data import padding, pieces, scratch_buffer
from .tokenizer_metadata import add_tokenizer

# ggml's file-type codes (general.file_type: what most tensors are)
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "bf16": 32}
_QUANTIZATION_VERSION = 2  # the block layouts of ggml's quantization version 2


@dataclass(frozen=True)
class PlannedTensor:
    name: str  # GGUF name
    key: str  # state_dict key
    shape: tuple[int, ...]  # as written (PyTorch order)
    qtype: GGUFType


def _is_matrix_weight(key: str, shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and key.endswith(".weight")


def plan_tensors(model, qtype: GGUFType) -> list[PlannedTensor]:
    """What each exported tensor is called, its shape and its type, in file order (state_dict order); a quantized
    layer that q8_0 cannot store as it is is refused here, before anything is written."""
    tied = model.config.tie_word_embeddings
    plan = []
    for key, source in export_state(model).items():
        if key == "output_projection.weight" and tied:
            continue
        shape = shape_of(source)
        if key == "positional_encoding.pe":
            shape = shape[1:]  # [1, L, D] -> [L, D]
        elif len(shape) == 0:
            shape = (1,)
        chosen = TYPES["f32"]
        if _is_matrix_weight(key, shape):
            fits = not qtype.is_block_quantized or shape[-1] % qtype.block_size == 0
            chosen = qtype if fits else TYPES["f16"]
            if writes_as_is(source, chosen):
                check_q8_0(model, source)
        plan.append(PlannedTensor(gguf_name(key), key, shape, chosen))
    return plan


def _array_spec(entry: PlannedTensor) -> tuple[tuple[int, ...], np.dtype, object]:
    """(array shape, array dtype, raw ggml type or None) of the data ``convert`` produces for ``entry``."""
    import gguf

    name = entry.qtype.name
    if name == "f32":
        return entry.shape, np.dtype(np.float32), None
    if name == "f16":
        return entry.shape, np.dtype(np.float16), None
    if name == "bf16":
        return entry.shape, np.dtype(np.uint16), gguf.GGMLQuantizationType.BF16
    return entry.qtype.byte_shape(entry.shape), np.dtype(np.uint8), gguf.GGMLQuantizationType(entry.qtype.ggml_id)


def _check_model(model) -> None:
    from ..models.apt import APTModel

    if not isinstance(model, APTModel):
        raise ValueError(f"export_gguf needs an apt_fast APTModel, got {type(model).__name__}")


def check_output_path(path: str | os.PathLike) -> str:
    """``path`` as a str, or an error when its directory does not exist or it names a directory."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output directory {directory} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"output {path} is a directory; give a file name such as {os.path.join(path, 'model.gguf')}")
    return path


def _write_metadata(tmp_path: str, model, plan, qtype: GGUFType, tokenizer, name: str, sampling: dict | None) -> int:
    """The header, the key-value metadata and the tensor infos, written with gguf's GGUFWriter (which also
    lays out the tensor offsets); returns the data alignment the tensor data must follow."""
    import gguf

    writer = gguf.GGUFWriter(tmp_path, meta.ARCHITECTURE)
    try:
        writer.add_name(name)
        writer.add_file_type(FILE_TYPES[qtype.name])
        if qtype.is_block_quantized:
            writer.add_quantization_version(_QUANTIZATION_VERSION)
        meta.add_config(writer, model.config)
        for setting, value in (sampling or {}).items():
            getattr(writer, f"add_sampling_{setting}")(value)
        if tokenizer is not None:
            add_tokenizer(writer, tokenizer)
        for entry in plan:
            shape, dtype, raw = _array_spec(entry)
            writer.add_tensor_info(entry.name, shape, dtype, entry.qtype.nbytes(entry.shape), raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        return writer.data_alignment
    finally:
        writer.close()


def _write_tensor_data(tmp_path: str, model, plan, alignment: int, desc: str, progress: bool) -> None:
    """Appends the data section: every tensor at a multiple of ``alignment`` (the offsets GGUFWriter wrote),
    converted piece by piece into one scratch buffer and written from it (tensor_data.py); a quantized layer
    written as q8_0 is written from its codes and scales (quantized_layers.py)."""
    from tqdm import tqdm

    state = export_state(model)
    scratch = scratch_buffer(plan)
    total = sum(entry.qtype.nbytes(entry.shape) for entry in plan)
    with open(tmp_path, "r+b") as f, \
            tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
        f.write(padding(f.seek(0, os.SEEK_END), alignment))
        for entry in plan:
            source = state[entry.key]
            if writes_as_is(source, entry.qtype):
                converted = [q8_0_data(model, source)]
            else:
                converted = (convert(piece, entry.qtype, scratch)
                             for piece in pieces(float_weight(source).reshape(entry.shape), entry.qtype))
            for data in converted:
                f.write(data)  # large writes go straight from the buffer to the file, uncopied
                bar.update(data.nbytes)
            f.write(padding(entry.qtype.nbytes(entry.shape), alignment))


def _write(tmp_path: str, model, plan, qtype: GGUFType, tokenizer, name: str, sampling: dict | None, progress: bool):
    alignment = _write_metadata(tmp_path, model, plan, qtype, tokenizer, name, sampling)
    _write_tensor_data(tmp_path, model, plan, alignment, f"export {qtype.name}", progress)


def export_gguf(
    model,
    path: str | os.PathLike,
    dtype: str = "f16",
    tokenizer=None,
    *,
    name: str | None = None,
    sampling: dict | None = None,
    progress: bool = True,
) -> str:
    """Write ``model`` (an APTModel) and ``tokenizer`` to the GGUF file ``path``; returns the path.

    ``dtype``: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1 (the type of the weight matrices).
    ``sampling``: optional ``general.sampling.*`` values, e.g. ``{"temp": 0.7, "top_k": 40, "top_p": 0.9,
    "penalty_repeat": 1.1}``. The directory of ``path`` must exist; an existing file is replaced atomically.
    """
    qtype = gguf_type(dtype)
    _check_model(model)
    path = check_output_path(path)
    plan = plan_tensors(model, qtype)
    name = name or os.path.splitext(os.path.basename(path))[0]

    def write(tmp_path: str) -> None:
        with torch.no_grad():
            _write(tmp_path, model, plan, qtype, tokenizer, name, sampling, progress)

    atomic_write(path, write, prefix=f".{os.path.basename(path)}.", suffix=".part")
    return path
