"""A rerun's draft: the old spec with the overrides (issue 13)."""

from __future__ import annotations

import pytest

from app.domain.errors import ValidationFailed
from app.domain.rerun import RerunOverrides, describe, rerun_draft
from app.domain.validation import JobSpecDraft, validate_spec

OLD = validate_spec(
    JobSpecDraft(
        name="train", command=["python", "train.py"], image="img:1", replicas=2, cpus=4,
        memory_gib=16, gpu=1, envs=[("A", "1"), ("B", "2")], priority=3, max_retries=2,
        timeout_seconds=60, labels={"team": "nlp"},
    ),
    resource_pool_id="gpu", queue="default",
)


def again(overrides: RerunOverrides):
    draft = rerun_draft(OLD, overrides)
    return validate_spec(draft, resource_pool_id=draft.resource_pool_id or "", queue=draft.queue or "")


def test_without_overrides_the_spec_is_the_same():
    assert again(RerunOverrides()) == OLD
    assert again(RerunOverrides(queue="")) == OLD  # an empty queue keeps the old one


def test_overrides_replace_priority_and_queue_and_merge_envs_by_name():
    spec = again(RerunOverrides(priority="high", queue="fast", envs=(("C", "3"), ("A", "9"))))
    assert (spec.priority, spec.queue) == (100, "fast")
    assert [(e.name, e.value) for e in spec.envs] == [("A", "9"), ("B", "2"), ("C", "3")]
    assert spec.command == OLD.command and spec.resources == OLD.resources


def test_a_name_given_twice_is_refused():
    with pytest.raises(ValidationFailed) as caught:
        rerun_draft(OLD, RerunOverrides(envs=(("A", "1"), ("A", "2"))))
    assert caught.value.field == "envs" and "'A' is given twice" in caught.value.message


def test_the_audit_detail_says_what_changed_within_bounds():
    assert describe("j-1", RerunOverrides()) == "rerun of j-1"
    names = tuple((f"V{i}", "x") for i in range(10))
    assert describe("j-1", RerunOverrides(priority=5, envs=names)) == (
        "rerun of j-1 (priority 5; envs V0, V1, V2, V3, V4, V5, V6, V7 and 2 more)"
    )
