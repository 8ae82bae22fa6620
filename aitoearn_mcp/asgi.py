"""The ASGI entry for running under an ASGI server of your own:
``uvicorn --factory aitoearn_mcp.asgi:create_app``. Settings come from AITOEARN_* variables."""

from .transports._http import app_from_env as create_app

__all__ = ["create_app"]
