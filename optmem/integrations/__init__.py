"""Adapters for agent frameworks, each behind its own extra so optmem never imports a framework
it was not asked for:

- ``optmem.integrations.langchain``: ``OpticalChatMessageHistory`` (``pip install 'optmem[langchain]'``)
- ``optmem.integrations.llamaindex``: ``OpticalMemoryBlock`` (``pip install 'optmem[llamaindex]'``)
- ``optmem.integrations.agents``: ``OpticalSession`` for the OpenAI Agents SDK (``pip install 'optmem[agents]'``)
- ``optmem.integrations.mcp_server``: ``optmem mcp``, a stdio MCP server (``pip install 'optmem[mcp]'``)
"""
