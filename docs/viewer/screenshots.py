"""Remake the screenshots in this folder from a viewer written by ``optmem inspect``.

    optmem demo --out /tmp/demo
    optmem inspect /tmp/demo/demo.db --out /tmp/viewer --query "What is the door code for the office storage room?"
    python docs/viewer/screenshots.py /tmp/viewer/demo/index.html

Headless Chromium (Debian: ``apt-get install chromium``) shoots each view; the viewer is framed
in an iframe because Chromium's --screenshot ignores a URL's #anchor. Each shot is quantised to
a 64-colour palette (octree: it keeps the small ledger marks orange) so the three stay a few hundred kB together.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

WIDTH = 1280
SHOTS = {  # file name: (anchor in the viewer, height in px)
    "overview.png": ("", 1000),
    "pages.png": ("page-31", 1150),
    "query-context.png": ("context-1", 1150),
}


def shoot(chromium: str, index: Path, anchor: str, height: int, out: Path, work: Path) -> None:
    frame = work / f"frame-{out.stem}.html"
    src = index.resolve().as_uri() + (f"#{anchor}" if anchor else "")
    frame.write_text(f'<!doctype html><body style="margin:0"><iframe src="{src}" '
                     f'style="border:0;width:{WIDTH}px;height:{height}px"></iframe></body>', encoding="utf-8")
    raw = work / f"{out.stem}-raw.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={work / 'profile'}", "--virtual-time-budget=10000",
                    f"--window-size={WIDTH},{height}", f"--screenshot={raw}", frame.as_uri()],
                   check=True, capture_output=True, timeout=180)
    Image.open(raw).convert("RGB").quantize(64, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", type=Path, help="a viewer's index.html")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium binary: apt-get install chromium")
    with tempfile.TemporaryDirectory() as work:
        for name, (anchor, height) in SHOTS.items():
            shoot(chromium, args.index, anchor, height, args.out / name, Path(work))
            print(f"{args.out / name}: {(args.out / name).stat().st_size // 1024} kB")


if __name__ == "__main__":
    main()
