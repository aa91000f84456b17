"""Hostile DeepSeek-OCR checkpoints (issue 12 item 8): shard paths out of the weights directory,
malformed shard indexes, tensors of a non-weight dtype and malformed safetensors headers are all
refused with a ``CheckpointError`` naming the file, the tensor and the problem; no file outside
the directory is opened. Checkpoints are tiny and written here with the official key names."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from safetensors import SafetensorError, deserialize
from safetensors.torch import save

from optmem.codec import CheckpointError, DeepSeekOCR, DeepSeekOCRConfig
from optmem.codec.loading import official_state_dict, save_official_checkpoint
from optmem.codec.safetensors_header import DTYPE_BITS, Header, read_header

TINY = DeepSeekOCRConfig.tiny()
SHARD = "model-00001-of-000001.safetensors"
INDEX = "model.safetensors.index.json"
NEWLINE = "model.image_newline"
VICTIM = "model.sam_model.net_3.weight"


@pytest.fixture(scope="module")
def built():
    return DeepSeekOCR.from_config(TINY, seed=7)


@pytest.fixture(scope="module")
def good_bytes(built, tmp_path_factory) -> bytes:
    """A valid official-layout checkpoint file."""
    d = tmp_path_factory.mktemp("good")
    return save_official_checkpoint(built.model, TINY, d).read_bytes()


def load(d: Path) -> DeepSeekOCR:
    return DeepSeekOCR.from_pretrained(d, config=TINY, device="cpu", dtype=torch.float32)


def split(file: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(file[:8], "little")
    return json.loads(file[8 : 8 + n]), file[8 + n :]


def assemble(header: dict | bytes, data: bytes, length: int | None = None) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(h) if length is None else length).to_bytes(8, "little") + h + data


# -- files outside the weights directory ------------------------------------------------------
_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def opened_during(fn) -> list[str]:
    """Paths opened from Python while ``fn`` runs (the loader reads every file through ``open``)."""
    global _opened
    _opened = []
    try:
        fn()
    finally:
        seen, _opened = _opened, None
    return seen


@pytest.fixture
def outside(good_bytes, tmp_path) -> Path:
    """A perfectly valid checkpoint and index in a directory next to the weights directory."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / SHARD).write_bytes(good_bytes)
    header, _ = split(good_bytes)
    keys = [k for k in header if k != "__metadata__"]
    (out / INDEX).write_text(json.dumps({"weight_map": {k: SHARD for k in keys}}))
    return out


def _index_to(d: Path, shard: str, good_bytes: bytes) -> None:
    header, _ = split(good_bytes)
    (d / INDEX).write_text(json.dumps({"weight_map": {k: shard for k in header if k != "__metadata__"}}))


def _dotdot(d, out, good):
    _index_to(d, f"../{out.name}/{SHARD}", good)


def _absolute(d, out, good):
    _index_to(d, str(out / SHARD), good)


def _symlinked_shard_in_index(d, out, good):
    (d / "linked.safetensors").symlink_to(out / SHARD)
    _index_to(d, "linked.safetensors", good)


def _symlinked_shard_no_index(d, out, good):
    (d / SHARD).symlink_to(out / SHARD)


def _symlinked_index(d, out, good):
    (d / SHARD).write_bytes(good)
    (d / INDEX).symlink_to(out / INDEX)


@pytest.mark.parametrize("arrange", [_dotdot, _absolute, _symlinked_shard_in_index, _symlinked_shard_no_index,
                                     _symlinked_index], ids=lambda f: f.__name__.strip("_"))
def test_no_file_outside_the_weights_directory_is_opened(outside, good_bytes, tmp_path, arrange):
    d = tmp_path / "weights"
    d.mkdir()
    arrange(d, outside, good_bytes)
    errors: list[CheckpointError] = []

    def attempt():
        with pytest.raises(CheckpointError) as err:
            load(d)
        errors.append(err.value)

    opened = opened_during(attempt)
    assert not [p for p in opened if Path(p).resolve().is_relative_to(outside.resolve())]
    msg = str(errors[0])
    assert "outside the weights directory" in msg or "not the name of a *.safetensors file" in msg
    assert any(name in msg for name in (INDEX, SHARD, "linked.safetensors"))


def test_a_symlinked_weights_directory_and_symlinks_inside_it_still_load(good_bytes, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "blob").write_bytes(good_bytes)
    (real / SHARD).symlink_to(real / "blob")  # resolves inside the directory
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    loaded: list[DeepSeekOCR] = []
    opened = opened_during(lambda: loaded.append(load(tmp_path / "link")))
    assert str(tmp_path / "link" / SHARD) in opened  # the audit hook sees the loader's reads
    assert torch.equal(loaded[0].model.image_newline, load(real).model.image_newline)


# -- malformed shard indexes ------------------------------------------------------------------
@pytest.mark.parametrize("index, problem", [
    ("[]", "expected a JSON object"),
    ('["model-00001-of-000001.safetensors"]', "expected a JSON object"),
    ('{"weight_map": ["model-00001-of-000001.safetensors"]}', "weight_map of type list"),
    ('{"weight_map": null}', "weight_map of type NoneType"),
    ('{"metadata": {}}', "weight_map of type NoneType"),
    ('{"weight_map": {"model.image_newline": 3}}', "'model.image_newline' is mapped to '3'"),
    ('{"weight_map": {"model.image_newline": "a\\u0000.safetensors"}}', "'model.image_newline' is mapped to"),
    ('{"weight_map": {"model.image_newline": "model.bin"}}', "'model.image_newline' is mapped to 'model.bin'"),
    ('{"weight_map": {}}', "lists no tensors"),
    ('{"weight_map": {', "not valid JSON"),
    (b'\xff\xfe{"weight_map": {}}', "not valid JSON"),
], ids=["empty-list", "list", "map-is-list", "map-is-null", "no-map", "int-shard", "nul-in-name", "not-safetensors",
        "empty-map", "truncated", "not-utf8"])
def test_malformed_index_is_a_checkpoint_error(good_bytes, tmp_path, index, problem):
    (tmp_path / SHARD).write_bytes(good_bytes)
    (tmp_path / INDEX).write_bytes(index if isinstance(index, bytes) else index.encode())
    with pytest.raises(CheckpointError) as err:
        load(tmp_path)
    assert INDEX in str(err.value) and problem in str(err.value)


# -- dtypes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, name", [(torch.int8, "I8"), (torch.uint8, "U8"), (torch.bool, "BOOL"),
                                         (torch.int64, "I64"), (torch.float64, "F64"),
                                         (torch.float8_e4m3fn, "F8_E4M3")])
def test_non_weight_dtypes_are_refused_not_cast(built, tmp_path, dtype, name):
    def cast(sd):
        sd[VICTIM] = sd[VICTIM].to(dtype)
    save_official_checkpoint(built.model, TINY, tmp_path, edit=cast)
    with pytest.raises(CheckpointError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert SHARD in msg and repr(VICTIM) in msg and f"dtype {name}" in msg and "BF16, F16, F32" in msg


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_checkpoints_load_exactly(built, tmp_path, dtype):
    def to_half(sd):
        for k in sd:
            sd[k] = sd[k].to(dtype)
    save_official_checkpoint(built.model, TINY, tmp_path, edit=to_half)
    want = {k: v.to(dtype).to(torch.float32) for k, v in official_state_dict(built.model, TINY).items()}
    got = official_state_dict(load(tmp_path).model, TINY)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_unused_tensors_keep_their_own_dtype(built, tmp_path):
    """The fp32 re-save stores CLIP's position_ids as an int64 index buffer; it is skipped, not refused."""
    save_official_checkpoint(built.model, TINY, tmp_path, edit=lambda sd: sd.update(
        {"model.vision_model.embeddings.position_ids": torch.arange(257).unsqueeze(0)}))
    assert torch.equal(load(tmp_path).model.image_newline, built.model.image_newline)


# -- malformed safetensors headers ------------------------------------------------------------
def _set(key, field, value):
    def edit(h, data):
        h[key][field] = value
        return h, data, None
    return edit


def _overlap(h, data):
    """Start one tensor 4 bytes inside the tensor before it (its own size unchanged)."""
    begin, end = h[NEWLINE]["data_offsets"]
    h[NEWLINE]["data_offsets"] = [begin - 4, end - 4]
    return h, data, None


def _past_eof(h, data):
    last = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
    begin, end = h[last]["data_offsets"]
    h[last]["data_offsets"] = [begin, end + 4096]
    h[last]["shape"] = [(end + 4096 - begin) // 4]
    return h, data, None


def _truncated(h, data):
    return h, data[:-100], None


def _trailing(h, data):
    return h, data + b"\0" * 16, None


def _length(n):
    return lambda h, data: (json.dumps(h).encode(), data, n)


def _raw(text: bytes):
    return lambda h, data: (text + b" " * 8, data, None)


def _duplicate(h, data):
    text = json.dumps(h)
    entry = json.dumps({NEWLINE: h[NEWLINE]})[1:-1]
    return (text[:-1] + ", " + entry + "}").encode(), data, None


def _extra_field(h, data):
    h[NEWLINE]["offsets"] = h[NEWLINE]["data_offsets"]
    return h, data, None


def _metadata(value):
    def edit(h, data):
        h["__metadata__"] = value
        return h, data, None
    return edit


HEADER_CASES = {  # id: (edit, tensor named or None, problem)
    "huge-shape": (_set(NEWLINE, "shape", [2**62, 2**62]), NEWLINE, "too large"),
    "huge-shape-u64": (_set(NEWLINE, "shape", [2**64]), NEWLINE, "not a list of non-negative integers"),
    "negative-shape": (_set(NEWLINE, "shape", [-1, -64]), NEWLINE, "not a list of non-negative integers"),
    "bool-shape": (_set(NEWLINE, "shape", [True]), NEWLINE, "not a list of non-negative integers"),
    "shape-not-list": (_set(NEWLINE, "shape", "64"), NEWLINE, "not a list of non-negative integers"),
    "size-mismatch": (_set(NEWLINE, "shape", [1]), NEWLINE, "bytes but shape [1] of F32 needs 4"),
    "wrong-dtype-string": (_set(NEWLINE, "dtype", "F33"), NEWLINE, "unknown dtype 'F33'"),
    "dtype-not-string": (_set(NEWLINE, "dtype", 32), NEWLINE, "unknown dtype"),
    "offsets-not-pair": (_set(NEWLINE, "data_offsets", [0]), NEWLINE, "not a pair"),
    "offsets-reversed": (_set(NEWLINE, "data_offsets", [8, 4]), NEWLINE, "end before they begin"),
    "offsets-past-eof": (_past_eof, None, "run past the end of the file"),
    "overlap": (_overlap, NEWLINE, "overlap"),
    "truncated-data": (_truncated, None, "past the end of the file"),
    "trailing-bytes": (_trailing, None, "trailing bytes belong to no tensor"),
    "entry-not-object": (lambda h, d: ({**h, NEWLINE: [1]}, d, None), NEWLINE, "header entry must have exactly"),
    "extra-field": (_extra_field, NEWLINE, "header entry must have exactly"),
    "duplicate-name": (_duplicate, NEWLINE, "twice"),
    "metadata-not-strings": (_metadata({"format": 1}), None, "__metadata__"),
    "metadata-list": (_metadata(["pt"]), None, "__metadata__"),
    "length-0": (_length(0), None, "header length 0"),
    "length-2**62": (_length(2**62), None, f"header length {2**62} exceeds"),
    "length-past-eof": (lambda h, d: (json.dumps(h).encode(), d, len(json.dumps(h)) + len(d) + 1),
                        None, "runs past the end of the file"),
    "not-json": (_raw(b'{"model.image_newline": {"dtype": F32'), None, "not valid JSON"),
    "not-utf8": (_raw(b'{"\xff\xfe": {}}'), None, "not UTF-8"),
    "lone-surrogate": (_raw(b'{"\\ud800": {}}'), None, "not valid Unicode"),
    "not-object": (_raw(b"[1, 2, 3]"), None, "not an object"),
    "string": (_raw(b'"model.image_newline"'), None, "not an object"),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_malformed_header_is_a_named_checkpoint_error(good_bytes, tmp_path, case):
    edit, tensor, problem = HEADER_CASES[case]
    header, data = split(good_bytes)
    h, data, length = edit(header, data)
    (tmp_path / SHARD).write_bytes(assemble(h, data, length))
    with pytest.raises(CheckpointError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / SHARD) in msg and problem in msg
    if tensor is not None:
        assert f"'{tensor}" in msg


@pytest.mark.parametrize("size", [0, 5])
def test_file_shorter_than_the_length_prefix(tmp_path, size):
    (tmp_path / SHARD).write_bytes(b"\x01" * size)
    with pytest.raises(CheckpointError, match="shorter than the 8-byte safetensors length prefix"):
        load(tmp_path)


@pytest.mark.parametrize("make", [Path.mkdir, os.mkfifo], ids=["directory", "fifo"])
def test_a_shard_that_is_not_a_regular_file_is_refused(tmp_path, make):
    make(tmp_path / SHARD)  # opening a FIFO to read it would block until some writer came
    with pytest.raises(CheckpointError, match=f"{SHARD} is not a regular file"):
        load(tmp_path)


# -- the header validator under fuzzing --------------------------------------------------------
def check(file: bytes) -> Header | None:
    """``read_header`` on ``file``: a Header, or None for a CheckpointError; anything else escapes."""
    try:
        return read_header(io.BytesIO(file), len(file), "fuzz.safetensors")
    except CheckpointError as e:
        assert str(e).startswith("fuzz.safetensors: ")
        return None


def library_accepts(file: bytes) -> list | None:
    try:
        return deserialize(file)
    except SafetensorError:
        return None


def agree(file: bytes) -> None:
    """Whatever the validator accepts, safetensors reads as the same tensors."""
    header = check(file)
    if header is not None:
        lib = library_accepts(file)
        assert lib is not None
        assert sorted((n, d["dtype"], tuple(d["shape"])) for n, d in lib) == \
            sorted((e.name, e.dtype, e.shape) for e in header.tensors)


FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SMALL_FILE = save({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.bfloat16),
                   "c": torch.zeros(0, 5)}, metadata={"format": "pt"})


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(file):
    agree(file)


@FUZZ
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=2**64 - 1) | st.none())
def test_fuzz_random_header_text(text, length):
    agree(assemble(text, b"\0" * 64, length))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(SMALL_FILE) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(-16, 16))
def test_fuzz_byte_mutations_of_a_valid_file(flips, resize):
    file = bytearray(SMALL_FILE)
    for pos, value in flips:
        file[pos] = value
    file = bytes(file[: len(file) + resize]) if resize < 0 else bytes(file) + b"\0" * resize
    agree(file)


_json_leaf = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
_json = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
_dims = st.integers(0, 5) | st.integers(-2, 2**66)
_entries = st.dictionaries(
    st.text(max_size=10).filter(lambda s: s != "__metadata__"),
    st.fixed_dictionaries({"dtype": st.sampled_from(sorted(DTYPE_BITS)) | st.text(max_size=5),
                           "shape": st.lists(_dims, max_size=4)}),
    max_size=5,
)


@FUZZ
@given(_entries, st.data())
def test_fuzz_structured_headers_match_safetensors(entries, data):
    """Generated headers (unique names, exactly the three fields, no metadata), with offsets tiled
    as a writer would or perturbed: the validator accepts exactly what safetensors accepts."""
    header, offset = {}, 0
    for name, info in entries.items():
        bits = DTYPE_BITS.get(info["dtype"], 8)
        n = 1
        for d in info["shape"]:
            n *= max(d, 0)
        size = min(n * bits // 8, 64)
        begin, end = offset, offset + size
        if data.draw(st.booleans()):
            begin, end = data.draw(st.integers(-1, 80)), data.draw(st.integers(-1, 80) | st.integers(0, 2**65))
        header[name] = {**info, "data_offsets": [begin, end]}
        offset += size
    if data.draw(st.booleans()):
        victim = data.draw(st.sampled_from(sorted(header))) if header else None
        if victim is not None:
            header[victim][data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = data.draw(_json)
    file = assemble(header, b"\x07" * (offset + data.draw(st.integers(-2, 2))))
    ours, lib = check(file), library_accepts(file)
    assert (ours is not None) == (lib is not None), (header, ours, lib is not None)
    agree(file)
