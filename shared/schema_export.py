"""Generate the JSON Schema files in `schemas/` from the msgspec Structs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from shared.schemas import SCHEMA_ROOTS


def render_schemas() -> dict[str, str]:
    """File name -> JSON Schema text for every schema root."""
    out = {}
    for name, root in SCHEMA_ROOTS.items():
        schema = msgspec.json.schema(root)
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    target = Path((argv or sys.argv[1:] or ["schemas"])[0])
    target.mkdir(parents=True, exist_ok=True)
    for file_name, text in render_schemas().items():
        (target / file_name).write_text(text)
        print(f"wrote {target / file_name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
