"""Write the schema SDL to `schema.graphql` at the repository root (`make schema`)."""

from __future__ import annotations

from pathlib import Path

from schema.root import schema

SDL_PATH = Path(__file__).resolve().parent.parent / "schema.graphql"


def sdl() -> str:
    return schema.as_str() + "\n"


def main() -> None:
    SDL_PATH.write_text(sdl())
    print(f"wrote {SDL_PATH}")


if __name__ == "__main__":
    main()
