"""How hosts reach the server: stdio (one host, a clean exit however it quits) and streamable
HTTP for shared deployments (per-caller keys, bounded bodies and connections, probes, drain,
Prometheus metrics).

Imports the server and everything below it; only the command line and the ASGI entry import it.
"""
