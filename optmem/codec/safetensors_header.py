"""Read and check a safetensors header before any tensor data is read.

A safetensors file is an 8-byte little-endian header length ``N``, ``N`` bytes of UTF-8 JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``), then
the data section, which the tensors must tile exactly. Every claim the header makes is checked
here against the file size, so that a hostile file fails with a ``CheckpointError`` naming the
file, the tensor and the problem, and nothing is read or allocated from a size the file chose:
at most ``min(file size, MAX_HEADER_BYTES)`` header bytes are read, and a tensor's byte count is
only trusted once it matches its dtype and shape and lies inside the file. The rules are
safetensors' own (so anything accepted here is accepted by the library), plus three it lets
through: a name listed twice, a field other than the three above, and a ``__metadata__`` that
is not a string map are refused too.

Pure apart from reading the stream it is given; torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, BinaryIO

# safetensors' own limit: a real header (2,710 tensors for DeepSeek-OCR) is ~250 kB.
MAX_HEADER_BYTES = 100_000_000

# Every dtype string the safetensors format defines, with its width in bits.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

_FIELDS = {"dtype", "shape", "data_offsets"}
_U64 = 2**64


class CheckpointError(ValueError):
    """A checkpoint is unusable: a tensor is missing, unexpected, mis-shaped or of a refused dtype,
    a safetensors header is malformed, or a shard index is invalid or points outside the weights
    directory. The message names the file and, where one is involved, the tensor."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as its header describes it; ``begin``/``end`` are offsets into the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    """A checked header: ``data_start`` is the file offset of the data section; ``tensors`` are in
    data order and tile ``[0, data_size)`` exactly."""

    data_start: int
    data_size: int
    tensors: tuple[TensorEntry, ...]
    metadata: dict[str, str]


def read_header(stream: BinaryIO, file_size: int, label: str) -> Header:
    """Read and check the header of the safetensors file ``stream`` (positioned at its start,
    ``file_size`` bytes long). ``label`` (the file's path) starts every error message."""
    if file_size < 8:
        raise CheckpointError(f"{label}: {file_size} bytes, shorter than the 8-byte safetensors length prefix")
    length = int.from_bytes(_read_exact(stream, 8, label), "little")
    if length < 2:  # the shortest JSON object, "{}"
        raise CheckpointError(f"{label}: header length {length} is too short to hold a JSON object")
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(f"{label}: header length {length} exceeds the {MAX_HEADER_BYTES:,}-byte limit")
    if length > file_size - 8:
        raise CheckpointError(f"{label}: header length {length} runs past the end of the file ({file_size} bytes)")
    return parse_header(_read_exact(stream, length, label), file_size - 8 - length, label)


def parse_header(raw: bytes, data_size: int, label: str) -> Header:
    """Check header bytes ``raw`` against a data section of ``data_size`` bytes."""
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_checked_object)
    except _DuplicateName as e:
        raise CheckpointError(f"{label}: header lists {_short(e.args[0])!r} twice") from None
    except _BadText as e:
        raise CheckpointError(f"{label}: header name {_short(e.args[0])!r} is not valid Unicode") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{label}: header is not UTF-8 text") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, over-long integers, deep nesting
        raise CheckpointError(f"{label}: header is not valid JSON ({_short(e)})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{label}: header is a JSON {type(doc).__name__}, not an object")
    metadata = doc.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not (isinstance(metadata, dict) and all(isinstance(v, str) and _is_text(v) for v in metadata.values())):
        raise CheckpointError(f"{label}: header __metadata__ is not a map of strings to strings")
    entries = [_entry(name, info, data_size, label) for name, info in doc.items()]
    entries.sort(key=lambda e: (e.begin, e.end))
    covered = 0
    previous = None
    for e in entries:
        if e.begin < covered:
            raise CheckpointError(f"{label}: tensor {_short(e.name)!r} data_offsets [{e.begin}, {e.end}] overlap "
                                  f"tensor {_short(previous)!r}, which ends at {covered}")
        if e.begin > covered:
            raise CheckpointError(f"{label}: tensor {_short(e.name)!r} starts at {e.begin}, leaving data bytes "
                                  f"[{covered}, {e.begin}) that belong to no tensor")
        covered, previous = e.end, e.name
    if covered != data_size:
        raise CheckpointError(f"{label}: tensors cover {covered} bytes of a {data_size}-byte data section "
                              "(trailing bytes belong to no tensor)")
    return Header(data_start=len(raw) + 8, data_size=data_size, tensors=tuple(entries), metadata=metadata)


def _entry(name: str, info: Any, data_size: int, label: str) -> TensorEntry:
    where = f"{label}: tensor {_short(name)!r}"
    if not isinstance(info, dict) or set(info) != _FIELDS:
        got = sorted(info) if isinstance(info, dict) else type(info).__name__
        raise CheckpointError(f"{where}: header entry must have exactly {sorted(_FIELDS)}, got {_short(got)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise CheckpointError(f"{where}: unknown dtype {_short(dtype)!r}")
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        raise CheckpointError(f"{where}: shape {_short(shape)} is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise CheckpointError(f"{where}: data_offsets {_short(offsets)} is not a pair of non-negative integers")
    begin, end = offsets
    if end < begin:
        raise CheckpointError(f"{where}: data_offsets [{begin}, {end}] end before they begin")
    if end > data_size:
        raise CheckpointError(f"{where}: data_offsets [{begin}, {_short(end)}] run past the end of the file "
                              f"(the data section holds {data_size} bytes)")
    bits = _bit_count(shape, DTYPE_BITS[dtype])
    if bits is None:
        raise CheckpointError(f"{where}: shape {_short(shape)} of {dtype} is too large (its size overflows 64 bits)")
    if bits % 8:
        raise CheckpointError(f"{where}: shape {_short(shape)} of {dtype} does not fill whole bytes")
    if bits // 8 != end - begin:
        raise CheckpointError(f"{where}: data_offsets [{begin}, {end}] hold {end - begin} bytes but shape "
                              f"{_short(shape)} of {dtype} needs {bits // 8}")
    return TensorEntry(name, dtype, tuple(shape), begin, end)


def _bit_count(shape: list[int], bits: int) -> int | None:
    """Bits the tensor occupies, or None where that arithmetic overflows 64 bits. Dimensions are
    multiplied in order and the count is capped as safetensors does (``[2**40, 2**40, 0]``
    overflows, ``[0, 2**40, 2**40]`` is empty), which also keeps every product small."""
    elements = 1
    for d in shape:
        elements *= d
        if elements >= _U64:
            return None
    total = elements * bits
    return total if total < _U64 else None


def _is_count(x: Any) -> bool:
    """A dimension or offset: a u64 in the format."""
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < _U64


def _read_exact(stream: BinaryIO, n: int, label: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:  # the file shrank after its size was taken
        raise CheckpointError(f"{label}: file ended after {len(data)} of {n} expected header bytes")
    return data


class _DuplicateName(ValueError):
    pass


class _BadText(ValueError):
    pass


def _checked_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object from its pairs; a name given twice or not valid Unicode is refused."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateName(key)
        if not _is_text(key):
            raise _BadText(key)
        out[key] = value
    return out


def _is_text(text: str) -> bool:
    """False for a lone surrogate, which Python's JSON decoder lets through (``"\\ud800"``) but the
    format (and safetensors' parser) does not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(x: Any, limit: int = 80) -> str:
    """``x`` as text, cut to ``limit`` characters: headers may hold megabyte-long values."""
    text = str(x)
    return text if len(text) <= limit else text[: limit - 1] + "…"
