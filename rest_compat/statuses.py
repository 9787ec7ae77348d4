"""The legacy console's status words (REST only; GraphQL keeps its `JobStatus` enum).

The console's filters and tags know `Pending, Running, Stopped, Completed,
ManualTermination, Error, Failed`, and enables "stop" for statuses containing
`running` or `pending`; so answers use its words (a queued job is `Pending`, and can be
stopped from it) and carry the exact enum beside them as `jobStatus`. Filters take
both vocabularies, any case."""

from __future__ import annotations

from app.domain.jobs import JobStatus

# Answers: the enum value -> the word the console shows.
ANSWER_WORDS: dict[JobStatus, str] = {
    JobStatus.PENDING: "Pending",
    JobStatus.QUEUED: "Pending",
    JobStatus.RUNNING: "Running",
    JobStatus.STOPPING: "Stopping",
    JobStatus.SUCCEEDED: "Completed",
    JobStatus.FAILED: "Failed",
    JobStatus.STOPPED: "Stopped",
}

# Filters: a lower-cased word -> the statuses it selects. The console's words first;
# the enum's own names (any case) select just themselves, except `pending`, which in
# the console's vocabulary also means queued (it shows both as Pending).
FILTER_WORDS: dict[str, tuple[JobStatus, ...]] = {
    **{status.value.lower(): (status,) for status in JobStatus},
    "pending": (JobStatus.PENDING, JobStatus.QUEUED),
    "completed": (JobStatus.SUCCEEDED,),
    "manualtermination": (JobStatus.STOPPED,),
    "error": (JobStatus.FAILED,),
}

KNOWN_WORDS = (
    "Pending, Running, Stopping, Stopped, Completed, ManualTermination, Error, Failed, "
    "or the exact status (PENDING, QUEUED, RUNNING, STOPPING, SUCCEEDED, FAILED, STOPPED)"
)


def answer_word(status: str | None) -> str | None:
    """GraphQL's enum value as the console's word (`SUCCEEDED` -> `Completed`)."""
    return ANSWER_WORDS[JobStatus(status)] if status else status


def filter_statuses(word: str) -> tuple[JobStatus, ...] | None:
    """The statuses a filter word selects, or None for a word neither vocabulary has."""
    return FILTER_WORDS.get(word.strip().lower())
