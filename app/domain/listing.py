"""Filters and keyset pagination for job lists."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from app.domain.errors import ValidationFailed
from app.domain.jobs import Job, JobStatus

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_OFFSET = 100_000
MAX_KEYWORD_LENGTH = 128


@dataclass(frozen=True, slots=True)
class JobFilter:
    keyword: str | None = None
    statuses: tuple[JobStatus, ...] = ()
    resource_pool_id: str | None = None
    queue: str | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        if self.keyword is not None and len(self.keyword) > MAX_KEYWORD_LENGTH:
            raise ValidationFailed(
                f"keyword is longer than {MAX_KEYWORD_LENGTH} characters", field="keyword"
            )


@dataclass(frozen=True, slots=True)
class Audience:
    """Whose jobs a non-admin may read: their own and those shared with their groups."""

    user: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobCursor:
    """Position after a job in the (created_at desc, job_id desc) order. Pages built on
    it do not shift when new jobs are created meanwhile."""

    created_at: datetime
    job_id: str

    @classmethod
    def of(cls, job: Job) -> JobCursor:
        return cls(job.created_at, job.job_id)

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.job_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> JobCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            stamp, job_id = raw.split("|", 1)
            created_at = datetime.fromisoformat(stamp)
            if created_at.tzinfo is None or not job_id:
                raise ValueError
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise ValidationFailed(
                "cursor is not valid: pass a cursor returned by a previous page", field="after"
            ) from None
        return cls(created_at, job_id)


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int = DEFAULT_PAGE_SIZE
    after: JobCursor | None = None
    # For clients that page by number (the REST facade): skip this many first.
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.first <= MAX_PAGE_SIZE:
            raise ValidationFailed(
                f"page size must be between 1 and {MAX_PAGE_SIZE}, got {self.first}", field="first"
            )
        if not 0 <= self.offset <= MAX_OFFSET:
            raise ValidationFailed(f"offset must be between 0 and {MAX_OFFSET}", field="offset")


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    has_next_page: bool
    # Computed lazily by the caller only when asked for (a count is a second query).
    has_previous_page: bool = False
