"""The committed SDL is the served schema: every API change shows up as a reviewable diff."""

from schema.export import SDL_PATH, sdl


def test_schema_graphql_is_current() -> None:
    assert SDL_PATH.read_text() == sdl(), "schema.graphql is stale: run `make schema`"
