"""``optmem serve``: an OpenAI-compatible proxy that gives any app optical memory.

``create_app(settings)`` builds the ASGI app (Starlette); ``optmem serve`` runs it with uvicorn.
Needs the optional ``serve`` extra: ``pip install 'optmem[serve]'``.
"""

from optmem.server.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
