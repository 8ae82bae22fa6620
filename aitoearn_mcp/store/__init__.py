"""What the server keeps between calls: conversations and reply records, owned by a keyed hash
of the key that made them. The Store protocol and its records, the memory, SQLite and Redis
stores, and the factory that picks one (apart from the protocol, so no store imports it).

Imports the shared basics and the relay's Message helpers; never a delegation or MCP.
"""
