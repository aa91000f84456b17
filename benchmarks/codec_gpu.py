"""Codec speed: DeepEncoder pages/s per mode (random weights, batched) and the latency of
splice + one decoder forward over an N-position context (default 8192, the decoder's limit).

    python benchmarks/codec_gpu.py                 # full-size v1, GPU bf16 if present; writes results
    python benchmarks/codec_gpu.py --quick         # tiny config: runs anywhere (CPU) in seconds

Weights are random (speed does not depend on their values). Figures are printed; on a GPU (or with
--out) they are written to benchmarks/results/codec_gpu.{json,md} with the device name.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image, ImageDraw

from optmem.codec import DeepSeekOCR, DeepSeekOCRConfig, ImageSegment, TextSegment
from optmem.modes import tier_slots

MODES = ("tiny", "small", "base", "large", "gundam")
RESULTS = Path(__file__).resolve().parent / "results" / "codec_gpu"


def synthetic_page(seed: int, side: int = 1280) -> Image.Image:
    """A page-like image: white, with rows of dark word-shaped boxes (content does not change timing)."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(img)
    for y in range(40, side - 40, 28):
        x = 40
        while x < side - 80:
            w = int(rng.integers(12, 70))
            draw.rectangle((x, y, x + w, y + 16), fill=int(rng.integers(0, 90)))
            x += w + 10
    return img


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    fn()  # warm-up (kernels, allocator)
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def filler_text(tokenizer, n_tokens: int) -> str:
    """Text of exactly ``n_tokens`` BPE tokens."""
    text = " a" * n_tokens
    while tokenizer.count(text) > n_tokens:
        text = text[:-2]
    while tokenizer.count(text) < n_tokens:
        text += " a"
    if tokenizer.count(text) != n_tokens:
        raise RuntimeError(f"could not build a {n_tokens}-token filler")
    return text


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


@torch.no_grad()
def run(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    cfg = DeepSeekOCRConfig.tiny() if args.quick else DeepSeekOCRConfig()
    batch = args.batch or (8 if device.type == "cuda" else 2)
    t0 = time.perf_counter()
    codec = DeepSeekOCR.from_config(cfg, dtype=dtype, device=device)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in codec.model.parameters())
    pages = [synthetic_page(i) for i in range(batch)]

    encoder = {}
    for mode in args.modes:
        t0 = time.perf_counter()
        prepared = [codec.prepare(p, mode) for p in pages]
        prep_s = (time.perf_counter() - t0) / len(pages)
        slots = codec.model.encode_prepared(prepared[:1])[0].shape[0]
        med, times = timed(lambda: codec.model.encode_prepared(prepared), device, args.repeats)
        encoder[mode] = {
            "batch": batch, "slots_per_page": int(slots), "pages_per_s": batch / med,
            "batch_seconds_median": med, "batch_seconds": times, "cpu_preprocess_s_per_page": prep_s,
        }
        print(f"encoder {mode:>6}: {batch / med:8.2f} pages/s  (batch {batch}, {med:.3f} s/batch, "
              f"{slots} slots/page, preprocess {prep_s * 1000:.1f} ms/page on CPU)", flush=True)

    # Context: [BOS] + k Large pages + text filling it to exactly `context` positions.
    per_page = tier_slots("large")
    k = min(args.context_pages, (args.context - 1) // per_page)
    filler = filler_text(codec.tokenizer, args.context - 1 - k * per_page)
    ctx_pages = [synthetic_page(1000 + i) for i in range(k)]
    segments = [ImageSegment(p, "large") for p in ctx_pages] + [TextSegment(filler)]
    codec.encode_batch(ctx_pages, "large")  # pages are cached, as in a running memory
    ids, embeds, mask = codec.splice(segments)
    assert ids.shape[1] == args.context, ids.shape
    splice_s, splice_times = timed(lambda: codec.splice(segments), device, args.repeats)
    forward_s, forward_times = timed(lambda: codec.decode(embeds, mask, None, False, last_only=True),
                                     device, args.repeats)
    both_s, both_times = timed(lambda: codec.decode(*codec.splice(segments)[1:], None, False, last_only=True),
                               device, args.repeats)
    print(f"context {args.context} positions ({k} large pages + {args.context - 1 - k * per_page} text tokens): "
          f"splice {splice_s * 1000:.1f} ms, decoder forward {forward_s * 1000:.1f} ms, "
          f"splice + forward {both_s * 1000:.1f} ms", flush=True)

    return {
        "device": device_name(device), "device_type": device.type, "dtype": str(dtype).replace("torch.", ""),
        "config": "tiny (--quick)" if args.quick else "full-size DeepSeek-OCR v1 (random weights)",
        "parameters": n_params, "build_seconds": build_s,
        "torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0],
        "repeats": args.repeats, "encoder": encoder,
        "context": {
            "positions": args.context, "large_pages": k, "text_tokens": args.context - 1 - k * per_page,
            "splice_ms_median": splice_s * 1000, "decoder_forward_ms_median": forward_s * 1000,
            "splice_plus_forward_ms_median": both_s * 1000,
            "splice_ms": [t * 1000 for t in splice_times], "decoder_forward_ms": [t * 1000 for t in forward_times],
        },
    }


def markdown(r: dict) -> str:
    lines = [
        "# Codec speed (benchmarks/codec_gpu.py)", "",
        f"Device: **{r['device']}**, dtype {r['dtype']}, {r['config']}, {r['parameters']:,} parameters; "
        f"torch {r['torch']}, transformers {r['transformers']}; median of {r['repeats']} runs after a warm-up.", "",
        "## DeepEncoder (batched, preprocessing excluded)", "",
        "| mode | slots/page | batch | pages/s | s/batch | CPU preprocess ms/page |", "|---|---|---|---|---|---|",
    ]
    for mode, e in r["encoder"].items():
        lines.append(f"| {mode} | {e['slots_per_page']} | {e['batch']} | {e['pages_per_s']:.2f} | "
                     f"{e['batch_seconds_median']:.3f} | {e['cpu_preprocess_s_per_page'] * 1000:.1f} |")
    c = r["context"]
    lines += [
        "", f"## Splice + one decoder forward, {c['positions']}-position context", "",
        f"{c['large_pages']} cached Large pages + {c['text_tokens']} text tokens + BOS; logits of the last position.", "",
        "| splice ms | decoder forward ms | splice + forward ms |", "|---|---|---|",
        f"| {c['splice_ms_median']:.1f} | {c['decoder_forward_ms_median']:.1f} | {c['splice_plus_forward_ms_median']:.1f} |",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny config (CPU-friendly smoke run)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on GPU, float32 on CPU")
    ap.add_argument("--batch", type=int, default=None, help="pages per encoder batch (default 8 GPU, 2 CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--context-pages", type=int, default=16, help="Large pages in the context (rest is text)")
    ap.add_argument("--out", default=None, help="write OUT.json and OUT.md (default on GPU: benchmarks/results/codec_gpu)")
    args = ap.parse_args(argv)
    result = run(args)
    out = args.out or (str(RESULTS) if result["device_type"] == "cuda" and not args.quick else None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out + ".json").write_text(json.dumps(result, indent=2) + "\n")
        Path(out + ".md").write_text(markdown(result))
        print(f"wrote {out}.json and {out}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
