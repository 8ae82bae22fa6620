"""The ``aitoearn-mcp`` command: its arguments, serving stdio or HTTP, and ``check``, which
tries the key and one call against the relay.

The top layer: imports anything below it; nothing imports it but ``__main__`` and the console
script.
"""
