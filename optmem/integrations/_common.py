"""What every adapter shares: importing its framework with an error that names the extra, and
optmem's context as OpenAI-shaped messages (the one export every framework here can take apart)."""

from __future__ import annotations

import base64
import importlib
from dataclasses import dataclass
from types import ModuleType

from optmem.exports import page_image_bytes
from optmem.memory import OpticalMemory


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or fail with the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(f"{e.name}.")):
            raise  # the framework is there but broken: its own error says more
        raise ImportError(f"this optmem adapter needs {module.split('.')[0]!r}, which is not installed: "
                          f"pip install 'optmem[{extra}]'") from e


@dataclass(frozen=True)
class Image:
    data: bytes
    media_type: str
    detail: str | None = None  # the profile's image detail where its API takes one

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.b64}"


Part = str | Image


def context_messages(mem: OpticalMemory, query: str | None = None, budget: int | None = None,
                     system: str | None = None) -> list[tuple[str, list[Part]]]:
    """The context ``mem`` assembles, as (role, parts) messages: ``system`` first when given, then
    user and assistant in turn, memory as user content. Page images are parts only when the
    reader takes images; a text reader gets a marker line per page instead (optmem.exports)."""
    ctx = mem.context(query, budget, system=system)
    out: list[tuple[str, list[Part]]] = []
    for message in ctx.to_messages():
        content = message["content"]
        if isinstance(content, str):
            out.append((message["role"], [content]))
            continue
        parts: list[Part] = []
        for block in content:
            if block["type"] == "text":
                parts.append(block["text"])
            else:
                parts.append(_image(block["image_url"]["url"], block["image_url"].get("detail")))
        out.append((message["role"], parts))
    return out


def context_parts(mem: OpticalMemory, query: str | None = None, budget: int | None = None) -> list[Part]:
    """The context as one flat run of parts, for frameworks that take memory as a single block:
    for a reader that takes images, each page's label and image and each text segment in order;
    for one that does not, the whole context as text (``Context.to_text``)."""
    ctx = mem.context(query, budget)
    if not mem.reader.profile.takes_images:
        return [ctx.to_text()]
    parts: list[Part] = []
    for s in ctx.segments:
        if s.kind == "page":
            parts += [s.label, Image(*page_image_bytes(s))]
        else:
            parts.append(s.text)
    return [p for p in parts if not isinstance(p, str) or p.strip()]


def _image(data_url: str, detail: str | None) -> Image:
    header, _, payload = data_url.partition(",")
    return Image(base64.b64decode(payload), header.removeprefix("data:").removesuffix(";base64"), detail)


def joined_text(parts: list[Part]) -> str:
    return "".join(p for p in parts if isinstance(p, str))
