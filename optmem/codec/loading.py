"""Load the official ``deepseek-ai/DeepSeek-OCR`` safetensors into ``DeepSeekOCRModel``.

The mapping is explicit (deepseek-ocr-spec.md §3): every checkpoint tensor is either assigned to
exactly one model tensor (directly, as a third of v1's fused CLIP ``qkv_proj``, or as one expert's
slice of the packed MoE tensors) or listed in ``UNUSED``; anything else is an error that names
the tensor. Only safetensors are read; nothing is unpickled and no hub is contacted.

A checkpoint directory is treated as hostile input: every header is checked by
``safetensors_header`` before any data is read, shard paths must stay inside the directory, and
tensors whose dtype is not a weight dtype are refused rather than cast. Every such failure is a
``CheckpointError`` naming the file and tensor.
"""

from __future__ import annotations

import json
import os
import re
import stat
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import torch
from safetensors.torch import save_file

from .config import DeepSeekOCRConfig
from .safetensors_header import CheckpointError, TensorEntry, read_header

# Present in the official file (or its fp32 re-save) but deliberately not used: v1 replaces
# CLIP's patch conv with the SAM feature map, and position_ids is a saved index buffer.
UNUSED = (
    "model.vision_model.embeddings.patch_embedding.weight",
    "model.vision_model.embeddings.position_ids",
)

DOWNLOAD_HINT = (
    "download the official weights on a machine with network access, e.g.\n"
    "    huggingface-cli download deepseek-ai/DeepSeek-OCR --local-dir /path/to/DeepSeek-OCR\n"
    "copy that directory here and pass it to from_pretrained (see docs/codec.md)"
)

INDEX_NAME = "model.safetensors.index.json"
MAX_INDEX_BYTES = 64 * 2**20  # the official index is 247 kB

# The dtypes a DeepSeek-OCR weight may be stored in; each is widened or rounded to the requested
# dtype on load. BF16 is the official file; F32 re-saves (a three-shard mirror exists) hold the same
# values exactly, and F16 is the usual half-precision export for GPUs without bf16. Everything else is refused
# rather than cast: F64 is no exporter's format for this model, so it means a wrong conversion;
# int, bool and the F8/F4/F6 formats are quantised or not weights at all, and casting them without
# their scales would load a silently broken model.
WEIGHT_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


@dataclass(frozen=True)
class Piece:
    """Where one official tensor (or a row slice ``src_rows`` of it) goes: ``target``, or
    ``target[index]`` (one expert), or rows ``dst_rows`` of that (gate or up half of the packed
    ``gate_up_proj``)."""

    target: str
    index: int | None = None
    src_rows: tuple[int, int] | None = None
    dst_rows: tuple[int, int] | None = None


_SAM_NECK = {"neck.0": "neck.conv1", "neck.1": "neck.layer_norm1", "neck.2": "neck.conv2",
             "neck.3": "neck.layer_norm2", "net_2": "proj.conv1", "net_3": "proj.conv2"}


def _sam_target(rest: str) -> str:
    """SAM key (after ``model.sam_model.``) -> name in transformers' ``DeepseekOcr2SamVisionEncoder``."""
    if rest.startswith("patch_embed.proj."):
        return "vision.sam.patch_embed.projection." + rest.rsplit(".", 1)[1]
    m = re.fullmatch(r"blocks\.(\d+)\.norm([12])\.(weight|bias)", rest)
    if m:
        return f"vision.sam.layers.{m[1]}.layer_norm{m[2]}.{m[3]}"
    if rest.startswith("blocks."):  # attn.qkv / attn.proj / attn.rel_pos_* / mlp.lin1 / mlp.lin2
        return "vision.sam.layers." + rest[len("blocks."):]
    module, _, param = rest.rpartition(".")
    if module in _SAM_NECK:
        return f"vision.sam.{_SAM_NECK[module]}.{param}"
    return "vision.sam." + rest  # pos_embed


def map_key(key: str, config: DeepSeekOCRConfig) -> list[Piece] | None:
    """Targets of one official key, or None when the key is not part of v1."""
    if key == "lm_head.weight":
        return [Piece("lm_head.weight")]
    if not key.startswith("model."):
        return None
    k = key[len("model."):]
    if k in ("embed_tokens.weight", "norm.weight"):
        return [Piece("language_model." + k)]
    m = re.fullmatch(r"layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight", k)
    if m:
        base = f"language_model.layers.{m[1]}.mlp.experts."
        expert, which = int(m[2]), m[3]
        if which == "down":
            return [Piece(base + "down_proj", index=expert)]
        inter = config.text.moe_intermediate_size
        start = 0 if which == "gate" else inter  # packed as cat(gate, up) on the output dim
        return [Piece(base + "gate_up_proj", index=expert, dst_rows=(start, start + inter))]
    if k.startswith("layers."):
        return [Piece("language_model." + k)]
    if k in ("projector.layers.weight", "projector.layers.bias"):
        return [Piece("vision.projector." + k.rsplit(".", 1)[1])]
    if k == "image_newline":
        return [Piece("image_newline")]
    if k == "view_seperator":  # sic: v1 misspells it in every key
        return [Piece("view_separator")]
    if k.startswith("sam_model."):
        return [Piece(_sam_target(k[len("sam_model."):]))]
    if k == "vision_model.embeddings.class_embedding":
        return [Piece("vision.clip.class_embedding")]
    if k == "vision_model.embeddings.position_embedding.weight":
        return [Piece("vision.clip.position_embedding.weight")]
    if k.startswith("vision_model.pre_layrnorm."):
        return [Piece("vision.clip.pre_layrnorm." + k.rsplit(".", 1)[1])]
    m = re.fullmatch(r"vision_model\.transformer\.layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)", k)
    if m:  # fused [q; k; v] on the output dim -> CLIPAttention's separate projections
        d = config.clip.hidden_size
        base = f"vision.clip.encoder.layers.{m[1]}.self_attn."
        return [Piece(f"{base}{p}_proj.{m[2]}", src_rows=(i * d, (i + 1) * d)) for i, p in enumerate("qkv")]
    m = re.fullmatch(r"vision_model\.transformer\.layers\.(\d+)\.(.+)", k)
    if m:
        return [Piece(f"vision.clip.encoder.layers.{m[1]}.{m[2]}")]
    return None


def _official_shape(pieces: list[Piece], expected: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shape an official tensor must have for its pieces to fit the model."""
    first = pieces[0]
    shape = expected[first.target]
    if first.index is not None:
        shape = shape[1:]
    if first.dst_rows is not None:
        shape = (first.dst_rows[1] - first.dst_rows[0],) + shape[1:]
    if first.src_rows is not None:
        shape = (sum(p.src_rows[1] - p.src_rows[0] for p in pieces),) + shape[1:]
    return tuple(shape)


def _destination(buf: torch.Tensor, piece: Piece) -> torch.Tensor:
    dst = buf[piece.index] if piece.index is not None else buf
    return dst[piece.dst_rows[0] : piece.dst_rows[1]] if piece.dst_rows is not None else dst


def _pieces_needed(target: str, shape: tuple[int, ...]) -> int:
    if target.endswith("experts.gate_up_proj"):
        return 2 * shape[0]  # gate and up of every expert
    if target.endswith("experts.down_proj"):
        return shape[0]
    return 1


def checkpoint_files(local_dir: str | Path) -> list[Path]:
    """The safetensors files of the checkpoint in ``local_dir``: the shards its
    ``model.safetensors.index.json`` lists, else every ``*.safetensors``. Each must resolve inside
    the directory (a shard name with a path, or a symlink out of it, is refused before anything
    outside is opened)."""
    d = Path(local_dir).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"DeepSeek-OCR weights directory {str(d)!r} does not exist; {DOWNLOAD_HINT}")
    root = d.resolve()
    index = d / INDEX_NAME
    if index.is_file():
        _check_inside(index, root)
        files = [d / n for n in _shard_names(index)]
        for f in files:
            _check_inside(f, root)
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"shards listed in {index} are missing: {missing}")
        return files
    files = sorted(d.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in d.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        extra = f" (found {pickles}: pickle checkpoints are never loaded)" if pickles else ""
        raise FileNotFoundError(f"no *.safetensors in {str(d)!r}{extra}; {DOWNLOAD_HINT}")
    for f in files:
        _check_inside(f, root)
    return files


def _check_inside(path: Path, root: Path) -> None:
    target = path.resolve()
    if not target.is_relative_to(root):
        raise CheckpointError(
            f"{path} resolves to {target}, outside the weights directory {root}; checkpoint files are only "
            "read from inside it (copy the real files in, e.g. cp -L, instead of linking out)"
        )


def _shard_names(index: Path) -> list[str]:
    """The shard file names ``index`` maps tensors to: plain ``*.safetensors`` names, no paths."""
    with _open_regular(index) as f:
        raw = f.read(MAX_INDEX_BYTES + 1)
    if len(raw) > MAX_INDEX_BYTES:
        raise CheckpointError(f"{index}: larger than {MAX_INDEX_BYTES:,} bytes; not a shard index")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, over-long integers, deep nesting
        raise CheckpointError(f"{index}: not valid JSON ({str(e)[:80]})") from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict):
        got = type(doc).__name__ if not isinstance(doc, dict) else f"weight_map of type {type(weight_map).__name__}"
        raise CheckpointError(f"{index}: expected a JSON object whose 'weight_map' maps tensor names to "
                              f"shard file names, got a {got}")
    if not weight_map:
        raise CheckpointError(f"{index}: 'weight_map' lists no tensors")
    for key, name in weight_map.items():
        if not (isinstance(name, str) and name.endswith(".safetensors") and Path(name).name == name
                and "\0" not in name):
            raise CheckpointError(f"{index}: tensor {key!r} is mapped to {str(name)[:120]!r}, which is not the "
                                  "name of a *.safetensors file in the weights directory")
    return sorted(set(weight_map.values()))


def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (a FIFO or device would block or never end)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise CheckpointError(f"{path} is not a regular file")
    return open(path, "rb")


@dataclass(frozen=True)
class _Planned:
    """One official tensor to read: where its bytes are and which model tensors they fill."""

    stream: BinaryIO
    path: Path
    offset: int
    key: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    pieces: list[Piece]


def load_state_dict(model: torch.nn.Module, local_dir: str | Path, config: DeepSeekOCRConfig,
                    dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Read the checkpoint, map it onto ``model``'s names and check it covers the model exactly.
    Returns the state dict (in ``dtype``) for ``model.load_state_dict(sd, strict=True, assign=True)``.

    Every shard's header, name, shape and dtype is checked before any tensor data is read, and
    the shards stay open in between, so the bytes read are the ones that were checked."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with ExitStack() as stack:
        plan: list[_Planned] = []
        seen: dict[str, Path] = {}
        for path in checkpoint_files(local_dir):
            stream = stack.enter_context(_open_regular(path))
            header = read_header(stream, os.fstat(stream.fileno()).st_size, str(path))
            for entry in header.tensors:
                planned = _plan(entry, header.data_start, stream, path, seen, expected, config)
                if planned is not None:
                    plan.append(planned)
        absent = [k for k in official_keys(config) if k not in seen and k not in UNUSED]
        if absent:
            raise CheckpointError(
                f"checkpoint in {str(local_dir)!r} lacks {len(absent)} tensor(s): {', '.join(absent[:8])}"
                + (" …" if len(absent) > 8 else "")
            )
        out: dict[str, torch.Tensor] = {}
        filled: dict[str, int] = {}
        for p in plan:
            tensor = _read_tensor(p)
            for piece in p.pieces:
                part = tensor if piece.src_rows is None else tensor[piece.src_rows[0] : piece.src_rows[1]]
                if piece.index is None and piece.dst_rows is None:
                    out[piece.target] = part.to(dtype).contiguous()
                else:
                    if piece.target not in out:
                        out[piece.target] = torch.empty(expected[piece.target], dtype=dtype)
                    _destination(out[piece.target], piece).copy_(part.to(dtype))
                filled[piece.target] = filled.get(piece.target, 0) + 1
    missing = [t for t, shape in expected.items() if filled.get(t, 0) < _pieces_needed(t, shape)]
    if missing:  # backstop: the key list and the model disagree
        raise CheckpointError(
            f"checkpoint in {str(local_dir)!r} lacks tensors for {len(missing)} model tensor(s): "
            + "; ".join(f"{official_names_for(t, config)} (-> {t})" for t in missing[:8])
        )
    return out


def _plan(entry: TensorEntry, data_start: int, stream: BinaryIO, path: Path, seen: dict[str, Path],
          expected: dict[str, tuple[int, ...]], config: DeepSeekOCRConfig) -> _Planned | None:
    """Check one header entry against the model; None for a deliberately unused tensor."""
    key = entry.name
    if key in seen:
        raise CheckpointError(f"tensor {key!r} appears in more than one shard ({seen[key].name} and {path.name})")
    seen[key] = path
    if key in UNUSED:
        return None
    pieces = map_key(key, config)
    if pieces is None:
        raise CheckpointError(f"unexpected tensor {key!r} in {path.name}: not part of DeepSeek-OCR v1")
    absent = [p.target for p in pieces if p.target not in expected]
    if absent:
        raise CheckpointError(f"unexpected tensor {key!r} in {path.name}: this model has no {absent[0]!r}")
    want = _official_shape(pieces, expected)
    if entry.shape != want:
        raise CheckpointError(f"{path}: tensor {key!r} has shape {list(entry.shape)}, expected {list(want)}")
    if entry.dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"{path}: tensor {key!r} has dtype {entry.dtype}; DeepSeek-OCR weights must be "
                              f"one of {', '.join(WEIGHT_DTYPES)} (other dtypes are refused, not cast)")
    return _Planned(stream, path, data_start + entry.begin, key, WEIGHT_DTYPES[entry.dtype], want, pieces)


def _read_tensor(p: _Planned) -> torch.Tensor:
    """The tensor's bytes read straight into a tensor of the checked shape and dtype (so the size
    allocated is the model's, which the header was checked to match)."""
    tensor = torch.empty(p.shape, dtype=p.dtype)
    view = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
    p.stream.seek(p.offset)
    done = 0
    while done < len(view):  # readinto may stop short of a large buffer
        n = p.stream.readinto(view[done:])
        if not n:
            raise CheckpointError(f"{p.path}: tensor {p.key!r} ends early: the file shrank after its header was read")
        done += n
    return tensor


# -- the inverse: model tensors under official names (tests, export) ------------------------
def official_state_dict(model: torch.nn.Module, config: DeepSeekOCRConfig) -> dict[str, torch.Tensor]:
    """The model's weights under the official v1 key names (experts unpacked, CLIP qkv fused)."""
    sd = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key in official_keys(config):
        if key in UNUSED:
            continue
        parts = [_destination(sd[p.target], p) for p in map_key(key, config)]
        out[key] = torch.cat(parts, dim=0).contiguous().clone()
    return out


def official_keys(config: DeepSeekOCRConfig) -> list[str]:
    """Every tensor name of the official checkpoint for ``config`` (2,710 at full size)."""
    keys = ["lm_head.weight", "model.embed_tokens.weight", "model.norm.weight",
            "model.projector.layers.weight", "model.projector.layers.bias",
            "model.image_newline", "model.view_seperator",
            "model.sam_model.patch_embed.proj.weight", "model.sam_model.patch_embed.proj.bias",
            "model.sam_model.pos_embed"]
    t = config.text
    for i in range(t.num_hidden_layers):
        p = f"model.layers.{i}."
        keys += [p + f"self_attn.{x}_proj.weight" for x in "qkvo"]
        keys += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
        if i < t.first_k_dense_replace:
            keys += [p + f"mlp.{x}_proj.weight" for x in ("gate", "up", "down")]
        else:
            keys.append(p + "mlp.gate.weight")
            keys += [p + f"mlp.shared_experts.{x}_proj.weight" for x in ("gate", "up", "down")]
            keys += [p + f"mlp.experts.{e}.{x}_proj.weight" for e in range(t.n_routed_experts)
                     for x in ("gate", "up", "down")]
    for i in range(config.sam.num_hidden_layers):
        p = f"model.sam_model.blocks.{i}."
        keys += [p + f"{n}.{w}" for n in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.lin1", "mlp.lin2")
                 for w in ("weight", "bias")]
        keys += [p + "attn.rel_pos_h", p + "attn.rel_pos_w"]
    keys += ["model.sam_model.neck.0.weight", "model.sam_model.neck.1.weight", "model.sam_model.neck.1.bias",
             "model.sam_model.neck.2.weight", "model.sam_model.neck.3.weight", "model.sam_model.neck.3.bias",
             "model.sam_model.net_2.weight", "model.sam_model.net_3.weight"]
    keys += ["model.vision_model.embeddings.class_embedding",
             "model.vision_model.embeddings.position_embedding.weight",
             "model.vision_model.embeddings.patch_embedding.weight",
             "model.vision_model.pre_layrnorm.weight", "model.vision_model.pre_layrnorm.bias"]
    for i in range(config.clip.num_hidden_layers):
        p = f"model.vision_model.transformer.layers.{i}."
        keys += [p + f"{n}.{w}" for n in ("self_attn.qkv_proj", "self_attn.out_proj", "layer_norm1",
                                           "layer_norm2", "mlp.fc1", "mlp.fc2") for w in ("weight", "bias")]
    return keys


def unused_shapes(config: DeepSeekOCRConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the official tensors v1 deliberately ignores (the one in the official file)."""
    c = config.clip
    return {"model.vision_model.embeddings.patch_embedding.weight": (c.hidden_size, 3, c.patch_size, c.patch_size)}


def official_names_for(target: str, config: DeepSeekOCRConfig) -> str:
    names = [k for k in official_keys(config) if k not in UNUSED
             and any(p.target == target for p in (map_key(k, config) or []))]
    if not names:
        return "?"
    return names[0] if len(names) == 1 else f"{names[0]} … ({len(names)} tensors)"


def save_official_checkpoint(model: torch.nn.Module, config: DeepSeekOCRConfig, local_dir: str | Path,
                             *, include_unused: bool = True, seed: int = 0,
                             edit: Callable[[dict[str, torch.Tensor]], None] | None = None) -> Path:
    """Write ``model`` as an official-layout checkpoint (one safetensors file). ``include_unused``
    adds a random CLIP patch conv as the official file has; ``edit`` may alter the dict first."""
    sd = official_state_dict(model, config)
    if include_unused:
        gen = torch.Generator().manual_seed(seed)
        for k, shape in unused_shapes(config).items():
            sd[k] = torch.randn(shape, generator=gen)
    if edit is not None:
        edit(sd)
    d = Path(local_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "model-00001-of-000001.safetensors"
    save_file(sd, str(path), metadata={"format": "pt"})
    return path


def iter_shapes(config: DeepSeekOCRConfig) -> Iterable[tuple[str, tuple[int, ...]]]:
    """(official key, shape) for every tensor of the official checkpoint, from a meta-device model."""
    from .modeling_deepseek_ocr import DeepSeekOCRModel

    with torch.device("meta"):
        model = DeepSeekOCRModel(config)
    sd = official_state_dict(model, config)
    for k, v in sd.items():
        yield k, tuple(v.shape)
    yield from unused_shapes(config).items()
