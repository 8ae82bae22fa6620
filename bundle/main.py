"""The Claude Desktop bundle's entry point (manifest.json): ``uv run`` starts it inside the unpacked
bundle, whose pyproject.toml brings in the package and its dependencies."""

from aitoearn_mcp._cli import main

raise SystemExit(main())
