"""The Claude Desktop bundle's entry point (manifest.json): ``uv run`` starts it inside the unpacked
bundle, whose pyproject.toml brings in the package and its dependencies."""

from aitoearn_mcp.cli._main import main

raise SystemExit(main())
