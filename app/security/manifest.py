"""`python -m app.security.manifest OUT.json`: the persisted-query manifest a client build
imports, so it sends documents by hash only (the dashboard's build: `make web`).

The manifest maps each `queries/*.graphql` document's name to the sha256 the server registers
it under (its canonical print, app.security.persisted): the same function computes both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.config import QUERIES_DIR
from app.security.persisted import read_documents


def manifest(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """Document name -> sha256 of its canonical text, for every document in `directory`."""
    canonical = (read_documents(path)[0] for path in sorted(directory.glob("*.graphql")))
    return {document.name: document.sha256 for document in canonical}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m app.security.manifest OUT.json", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(manifest(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
