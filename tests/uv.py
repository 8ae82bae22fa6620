"""uv (from PyPI, in the dev extra) run as on a clean machine: its own cache, tool and home
folders under a temporary directory, Python from this machine (no interpreter download). The
machine's network settings (CA bundles, proxies) are kept: they are the machine's, not uv's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
UV = BIN / "uv"
UVX = BIN / "uvx"


def clean_env(root: Path) -> dict[str, str]:
    """The environment of a user who has only uv: nothing cached, nothing installed."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "AITOEARN_"))}
    return {
        **inherited,
        "PATH": os.pathsep.join([str(BIN), os.environ["PATH"]]),
        "HOME": str(home),
        "UV_CACHE_DIR": str(root / "uv-cache"),
        "UV_TOOL_DIR": str(root / "uv-tools"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
    }
