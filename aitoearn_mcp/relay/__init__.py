"""The AiToEarn chat relay over HTTP: the client (retries, timeouts, bounded reads, the relay's
error forms), its two routes and the exact body each gets (the OpenAI translation included),
the pure folds of either stream into an Anthropic Message and the fold that picks between them,
the model catalogue and the credits estimate.

Imports only the shared basics (the package's top-level modules); nothing here knows of MCP,
the store or a delegation.
"""
