"""The floor: a one-tool MCPServer on the same SDK, for start-up and per-call comparisons.
``python floor_server.py`` serves stdio; ``python floor_server.py PORT`` serves stateless
streamable HTTP on that loopback port, as aitoearn-mcp does."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("floor")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


if __name__ == "__main__":
    if len(sys.argv) > 1:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]), stateless_http=True)
    else:
        server.run("stdio")
