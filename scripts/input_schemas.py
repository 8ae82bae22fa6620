"""Write aitoearn_mcp/server/input_schemas.json from the tools' input models: run it after changing one
(tests/test_tools.py fails until then)."""

from aitoearn_mcp.server._dto import input_schemas_json
from aitoearn_mcp.server._schemas import INPUT_SCHEMAS_FILE

if __name__ == "__main__":
    INPUT_SCHEMAS_FILE.write_text(input_schemas_json(), encoding="utf-8")
    print(f"wrote {INPUT_SCHEMAS_FILE}")
