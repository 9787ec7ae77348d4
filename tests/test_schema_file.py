"""schema.graphql is the exported SDL of the live schema."""

from pathlib import Path

from app.graphql.schema import sdl

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_schema_graphql_matches_the_live_schema():
    assert SCHEMA_FILE.read_text() == sdl(), "schema.graphql is stale: run `make schema`"
