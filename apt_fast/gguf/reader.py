"""A strict GGUF (v2/v3, little-endian) reader: header, metadata and tensor infos, every count, length
and offset checked against the file size before anything is allocated; tensor data as memory-mapped views.

Any problem raises :class:`GGUFError` naming the file and what is wrong (truncated, bad magic, unsupported
version or type, a count or size larger than the file, overlapping or misaligned tensor data, ...).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from .tensor_types import TYPES_BY_ID, GGUFType

MAGIC = b"GGUF"
MAX_DIMS = 4  # ggml's GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32
_SCALARS = {  # GGUF value type id -> (name, struct format)
    0: ("uint8", "<B"), 1: ("int8", "<b"), 2: ("uint16", "<H"), 3: ("int16", "<h"), 4: ("uint32", "<I"),
    5: ("int32", "<i"), 6: ("float32", "<f"), 7: ("bool", "<?"), 10: ("uint64", "<Q"), 11: ("int64", "<q"),
    12: ("float64", "<d"),
}
_STRING, _ARRAY = 8, 9
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 10: "<u8", 11: "<i8", 12: "<f8"}


class GGUFError(ValueError):
    """A file that is not a valid GGUF file apt_fast can read."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # PyTorch order (GGUF stores the dimensions reversed)
    qtype: GGUFType
    offset: int  # absolute, in bytes
    nbytes: int


class _Cursor:
    """Reads little-endian values from a memory-mapped file, checking each read against its end."""

    def __init__(self, data: np.ndarray, source: str):
        self.data, self.source, self.pos = data, source, 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise GGUFError(f"{self.source}: truncated file: {what} at offset {self.pos} needs {n} bytes, "
                            f"only {self.remaining} remain")
        chunk = self.data[self.pos:self.pos + n].tobytes()
        self.pos += n
        return chunk

    def scalar(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def count(self, what: str, min_item_size: int) -> int:
        """A u64 count, rejected when that many items of at least ``min_item_size`` bytes cannot fit."""
        n = self.scalar("<Q", what)
        if n * min_item_size > self.remaining:
            raise GGUFError(f"{self.source}: truncated or corrupted file: {what} is {n}, more than the "
                            f"{self.remaining} bytes left in the file can hold")
        return n

    def string(self, what: str) -> str:
        raw = self.take(self.count(f"length of {what}", 1), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise GGUFError(f"{self.source}: {what} is not valid UTF-8 ({err})") from None

    def value(self, type_id: int, what: str):
        if type_id in _SCALARS:
            return self.scalar(_SCALARS[type_id][1], what)
        if type_id == _STRING:
            return self.string(what)
        if type_id == _ARRAY:
            item_type = self.scalar("<I", f"item type of {what}")
            if item_type == _STRING:
                n = self.count(f"item count of {what}", 8)
                return [self.string(f"{what}[{i}]") for i in range(n)]
            if item_type not in _NUMPY:
                raise GGUFError(f"{self.source}: {what} is an array of unsupported value type {item_type}")
            width = np.dtype(_NUMPY[item_type]).itemsize
            n = self.count(f"item count of {what}", width)
            items = np.frombuffer(self.take(n * width, what), dtype=_NUMPY[item_type])
            return items.tolist()
        raise GGUFError(f"{self.source}: {what} has unknown value type {type_id}")


@dataclass
class GGUFFile:
    """A parsed GGUF file: ``metadata`` (key -> value), ``tensors`` (name -> TensorInfo, file order)."""

    path: str
    version: int
    metadata: dict
    tensors: dict
    _data: np.ndarray

    def raw(self, name: str) -> np.ndarray:
        """The bytes of tensor ``name`` as a read-only uint8 view of the mapped file (nothing is copied)."""
        info = self.tensors[name]
        return self._data[info.offset:info.offset + info.nbytes]


def _map(path: str) -> np.ndarray:
    try:
        size = os.path.getsize(path)
    except OSError as err:
        raise GGUFError(f"{path}: cannot open: {err.strerror}") from None
    if size < 24:
        raise GGUFError(f"{path}: truncated file: {size} bytes, a GGUF header alone is 24")
    return np.memmap(path, dtype=np.uint8, mode="r")


def _tensor_info(cursor: _Cursor, index: int) -> tuple[str, tuple[int, ...], GGUFType, int]:
    name = cursor.string(f"name of tensor {index}")
    n_dims = cursor.scalar("<I", f"dimension count of tensor {name}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise GGUFError(f"{cursor.source}: tensor {name} has {n_dims} dimensions; GGUF allows 1 to {MAX_DIMS}")
    dims = [cursor.scalar("<Q", f"dimension {d} of tensor {name}") for d in range(n_dims)]
    type_id = cursor.scalar("<I", f"type of tensor {name}")
    offset = cursor.scalar("<Q", f"data offset of tensor {name}")
    if type_id not in TYPES_BY_ID:
        raise GGUFError(f"{cursor.source}: tensor {name} has ggml type id {type_id}, which apt_fast does not read "
                        f"(it reads {', '.join(t.name for t in TYPES_BY_ID.values())})")
    qtype = TYPES_BY_ID[type_id]
    if any(d < 1 for d in dims) or dims[0] % qtype.block_size:
        raise GGUFError(f"{cursor.source}: tensor {name} has invalid dimensions {dims} for type {qtype.name}")
    return name, tuple(reversed(dims)), qtype, offset


def read_gguf(path: str | os.PathLike) -> GGUFFile:
    """Parse and validate the GGUF file at ``path``; tensor data stays on disk, mapped."""
    path = os.fspath(path)
    data = _map(path)
    cursor = _Cursor(data, path)
    if cursor.take(4, "magic") != MAGIC:
        raise GGUFError(f"{path}: not a GGUF file (the first 4 bytes are {bytes(data[:4])!r}, not b'GGUF')")
    version = cursor.scalar("<I", "version")
    if version not in (2, 3):
        raise GGUFError(f"{path}: unsupported GGUF version {version} (apt_fast reads versions 2 and 3)")
    n_tensors = cursor.scalar("<Q", "tensor count")
    n_kv = cursor.scalar("<Q", "metadata count")
    if n_tensors * 24 + n_kv * 13 > cursor.remaining:
        raise GGUFError(f"{path}: truncated or corrupted file: the header declares {n_tensors} tensors and {n_kv} "
                        f"metadata entries, more than the {cursor.remaining} bytes that follow can hold")
    metadata = {}
    for index in range(n_kv):
        key = cursor.string(f"metadata key {index}")
        if key in metadata:
            raise GGUFError(f"{path}: metadata key {key} appears twice")
        metadata[key] = cursor.value(cursor.scalar("<I", f"value type of {key}"), key)
    infos = [_tensor_info(cursor, index) for index in range(n_tensors)]
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment < 1 or alignment & (alignment - 1) or alignment > 1 << 20:
        raise GGUFError(f"{path}: general.alignment must be a power of two up to 2^20, got {alignment!r}")
    data_start = -(-cursor.pos // alignment) * alignment
    tensors, end_of_previous = {}, 0
    for name, shape, qtype, offset in sorted(infos, key=lambda info: info[3]):
        nbytes = qtype.nbytes(shape)
        if name in tensors:
            raise GGUFError(f"{path}: tensor {name} appears twice")
        if offset % alignment or offset < end_of_previous:
            raise GGUFError(f"{path}: tensor {name} has a misaligned or overlapping data offset {offset}")
        if data_start + offset + nbytes > len(data):
            raise GGUFError(f"{path}: truncated file: tensor {name} ({qtype.name}, shape {list(shape)}) needs bytes "
                            f"{data_start + offset}..{data_start + offset + nbytes}, the file has {len(data)}")
        tensors[name] = TensorInfo(name, shape, qtype, data_start + offset, nbytes)
        end_of_previous = offset + nbytes
    ordered = {info[0]: tensors[info[0]] for info in infos}
    return GGUFFile(path, version, metadata, ordered, data)
