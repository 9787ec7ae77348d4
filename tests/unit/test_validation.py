"""Domain validation and parsing, without any framework."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.errors import ValidationFailed
from app.domain.jobs import JobSpec, JobStatus
from app.domain.listing import JobCursor, PageRequest
from app.domain.validation import JobSpecDraft, parse_priority, validate_spec


def draft(**changes) -> JobSpecDraft:
    base = {"name": "train", "command": ["python", "train.py"]}
    return JobSpecDraft(**{**base, **changes})


def test_a_minimal_spec_gets_defaults():
    spec = validate_spec(draft(), resource_pool_id="local", queue="default")
    assert spec.replicas == 1 and spec.priority == 0 and spec.max_retries == 0
    assert spec.command == ("python", "train.py")
    assert spec.to_config()["resourcePoolId"] == "local"


def test_config_round_trips():
    spec = validate_spec(
        draft(replicas=2, cpus=4, memory_gib=8, gpu=1, envs=[("A", "1")], labels={"team": "nlp"},
              priority="high", timeout_seconds=60, image="img:1"),
        resource_pool_id="p", queue="q",
    )
    assert JobSpec.from_config(spec.to_config()) == spec


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"command": None}, "command"),
        ({"command": ["a\x00"]}, "command"),
        ({"image": "has space"}, "image"),
        ({"cpus": float("nan")}, "resources.cpus"),
        ({"cpus": 0}, "resources.cpus"),
        ({"memory_gib": -1}, "resources.memory"),
        ({"gpu": 65}, "resources.gpu"),
        ({"envs": [("A", "1"), ("A", "2")]}, "envs"),
        ({"labels": {"k": "v" * 64}}, "labels"),
        ({"priority": "soonish"}, "priority"),
    ],
)
def test_bad_fields_name_themselves(changes, field):
    with pytest.raises(ValidationFailed) as caught:
        validate_spec(draft(**changes), resource_pool_id="local", queue="default")
    assert caught.value.field == field and caught.value.message


def test_priority_words_and_numbers():
    assert parse_priority("normal") == 0 and parse_priority("HIGH") > parse_priority("low")
    assert parse_priority("7") == 7 and parse_priority(None) == 0


def test_status_transitions_from_the_runtime():
    assert JobStatus.QUEUED.accepts(JobStatus.RUNNING)
    assert not JobStatus.SUCCEEDED.accepts(JobStatus.RUNNING)
    assert not JobStatus.STOPPING.accepts(JobStatus.RUNNING)
    assert JobStatus.STOPPING.accepts(JobStatus.STOPPED)


def test_cursor_round_trip_and_garbage():
    cursor = JobCursor(datetime(2026, 1, 1, tzinfo=UTC), "j-abc")
    assert JobCursor.decode(cursor.encode()) == cursor
    for garbage in ("", "!!!", "bm90LWEtY3Vyc29y"):
        with pytest.raises(ValidationFailed):
            JobCursor.decode(garbage)


def test_page_size_bounds():
    with pytest.raises(ValidationFailed):
        PageRequest(first=0)
    with pytest.raises(ValidationFailed):
        PageRequest(first=101)
    assert PageRequest(first=100).first == 100


def test_counts_and_bytes_are_checked_before_any_value():
    """100,000 variables with bad names: refused for their number, before a name is read."""
    from app.domain.limits import SizeLimits

    envs = [("1BAD", "x")] * 100_000
    with pytest.raises(ValidationFailed) as caught:
        validate_spec(draft(envs=envs), resource_pool_id="local", queue="default", limits=SizeLimits())
    assert caught.value.message == "100000 environment variables; at most 256 are allowed"


def test_clip_keeps_both_ends_of_a_long_echo():
    from app.domain.limits import clip

    assert clip("short", 64) == "short"
    text = "job '" + "训" * 10_000 + "' not found"
    clipped = clip(text, 256)
    assert clipped.startswith("job '训") and clipped.endswith("' not found")
    assert len(clipped.encode()) < 256 + 40 and "bytes left out" in clipped
