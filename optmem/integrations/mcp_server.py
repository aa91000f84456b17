"""optmem as an MCP server over stdio, on the official ``mcp`` package (``pip install 'optmem[mcp]'``).

``optmem mcp --db memory.db --conversation alice`` (or ``python -m optmem.integrations.mcp_server``)
serves one conversation with four tools: ``add_turn``, ``get_context`` (text, and page images as
MCP image content when the reader takes images), ``recall`` and ``list_pages``. Stdout carries
the protocol; everything else goes to stderr.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from optmem.config import load_config
from optmem.errors import InvalidArgument
from optmem.integrations._common import Image, context_parts, require
from optmem.memory import OpticalMemory

require("mcp", "mcp")

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ImageContent, TextContent

_F = TypeVar("_F", bound=Callable)


def _told(tool: _F) -> _F:
    """Bad arguments reach the client as a ToolError with optmem's message; mcp keeps the text of
    any other exception on the server."""
    @functools.wraps(tool)
    def wrapper(*args, **kwargs):
        try:
            return tool(*args, **kwargs)
        except InvalidArgument as e:
            raise ToolError(str(e)) from e
    return wrapper  # type: ignore[return-value]


def build_server(memory: OpticalMemory) -> MCPServer:
    """An MCP server whose tools read and write ``memory`` (one conversation, never another)."""
    server = MCPServer("optmem", instructions=(
        f"Long-term memory of the conversation {memory.conversation!r}: store every turn with add_turn; "
        "get_context returns what to show the model, within a token budget; recall finds old pages."))

    @server.tool()
    @_told
    def add_turn(role: str, text: str) -> str:
        """Store a turn (role: user, assistant, system or tool); returns its number."""
        return f"stored turn {memory.add(role, text)}"

    @server.tool()
    @_told
    def get_context(query: str | None = None, budget: int | None = None) -> list[TextContent | ImageContent]:
        """The memory to show the model: recent turns as text, older pages as images (or text for
        a text-only reader), pages relevant to ``query`` re-expanded; within ``budget`` reader tokens."""
        return [ImageContent(data=p.b64, mime_type=p.media_type) if isinstance(p, Image) else TextContent(text=p)
                for p in context_parts(memory, query, budget)]

    @server.tool()
    @_told
    def recall(query: str, k: int = 3) -> list[dict]:
        """The k sealed pages most related to ``query``, read back to text at their current tier."""
        if not memory.config.retrieval.enabled:
            raise ToolError("recall needs retrieval, which this server's config disables (retrieval.enabled = false)")
        return [{"page": r.page, "tier": r.tier, "score": round(float(r.score), 4), "source": r.source, "text": r.text}
                for r in memory.recall(query, k)]

    @server.tool()
    @_told
    def list_pages() -> list[dict]:
        """Every page, oldest first: its number, turns, tier and whether it is sealed."""
        return [{"page": p.number, "first_turn": p.first_turn, "last_turn": p.last_turn,
                 "tier": getattr(p.tier, "value", p.tier), "sealed": p.sealed,
                 "pinned_tier": p.pinned} for p in memory.pages()]

    return server


def serve(db: str, conversation: str, config: Path | None) -> int:
    """Serve ``conversation`` of ``db`` over stdio until the client closes it."""
    with OpticalMemory.open(db, conversation, load_config(config)) as memory:
        build_server(memory).run("stdio")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m optmem.integrations.mcp_server ARGS`` is ``optmem mcp ARGS``."""
    from optmem.cli import main as cli_main

    return cli_main(["mcp", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
