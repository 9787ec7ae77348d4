"""Scalars: timestamps are ISO 8601 in UTC with a `Z` (what legacy clients parse)."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from graphql import GraphQLError


def serialize_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be an ISO 8601 string such as 2025-01-15T10:30:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise GraphQLError(
            f"{value!r} is not an ISO 8601 time; use e.g. 2025-01-15T10:30:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


DateTime = strawberry.scalar(
    name="DateTime",
    description="An ISO 8601 instant in UTC, e.g. `2025-01-15T10:30:00.000Z`.",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
