"""Pillow loads with the first image, not with the media layer (the layering itself is
tests/test_layers.py's)."""

from __future__ import annotations

import subprocess
import sys


def test_pillow_is_not_imported_up_front() -> None:
    code = (
        "import sys, aitoearn_mcp.media._client, aitoearn_mcp.media._images, aitoearn_mcp.media._download; "
        "print('PIL' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
