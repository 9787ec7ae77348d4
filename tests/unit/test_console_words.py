"""The legacy console's status words (rest_compat/statuses.py), every entry: answers for
each enum value (STOPPING included, which HTTP tests cannot hold still), and filters in
both vocabularies. The HTTP tests (tests/rest/test_console_jobs.py) use them end to end."""

from __future__ import annotations

from app.domain.jobs import JobStatus as S
from rest_compat.statuses import answer_word, filter_statuses


def test_every_status_has_the_consoles_word():
    assert {s: answer_word(s.value) for s in S} == {
        S.PENDING: "Pending", S.QUEUED: "Pending", S.RUNNING: "Running", S.STOPPING: "Stopping",
        S.SUCCEEDED: "Completed", S.FAILED: "Failed", S.STOPPED: "Stopped",
    }
    # The console offers "stop" for words containing running or pending: exactly the
    # statuses a stop applies to.
    stoppable = {s for s in S if any(w in answer_word(s.value).lower() for w in ("running", "pending"))}
    assert stoppable == {S.PENDING, S.QUEUED, S.RUNNING}


def test_filters_take_both_vocabularies_in_any_case():
    expected = {
        "Pending": {S.PENDING, S.QUEUED}, "Running": {S.RUNNING}, "Stopped": {S.STOPPED},
        "Completed": {S.SUCCEEDED}, "ManualTermination": {S.STOPPED}, "Error": {S.FAILED},
        "Failed": {S.FAILED}, "Stopping": {S.STOPPING}, "Queued": {S.QUEUED},
        "Succeeded": {S.SUCCEEDED},
    }
    for word, statuses in expected.items():
        for spelling in (word, word.upper(), word.lower(), f"  {word} "):
            assert set(filter_statuses(spelling) or ()) == statuses, spelling
    assert filter_statuses("Sleeping") is None and filter_statuses("") is None
