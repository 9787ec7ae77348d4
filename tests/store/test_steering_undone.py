"""A hold or re-order that the database allowed but the runtime refused (the job started
between the two) is undone, answered CONFLICT and audited as refused: the record never
claims a running job is held or re-ordered."""

from __future__ import annotations

import asyncio
import sys

import pytest
from sqlalchemy import update

from app.domain.audit import AuditFilter
from app.domain.errors import Conflict
from app.domain.jobs import JobStatus
from app.domain.principal import Principal
from app.domain.validation import JobSpecDraft
from app.settings import Settings
from app.store.tables import JobRow
from app.web.bootstrap import start_services, stop_services
from tests.support.processes import kill_leftover_replicas

ALICE = Principal("alice")
ROOT = Principal("root", is_admin=True)


async def test_a_refusal_of_the_runtime_undoes_the_record(db, tmp_path):
    services = await start_services(Settings(data_dir=tmp_path / "data", database_url=db.url))
    try:
        draft = JobSpecDraft(name="sleeps", command=[sys.executable, "-c", "import time; time.sleep(600)"])
        job = await services.jobs.create(actor=ALICE, draft=draft)
        async with asyncio.timeout(30):
            async for seen in services.live.job_updates(actor=ALICE, job_id=job.job_id):
                if seen.status is JobStatus.RUNNING:
                    break
        # The database is behind the runtime, as when the sync has not applied the start.
        async with services.db.transaction() as session:
            await session.execute(
                update(JobRow).where(JobRow.id == job.job_id).values(status="QUEUED")
            )

        with pytest.raises(Conflict, match="only a waiting job can be held"):
            await services.jobs.hold(actor=ALICE, job_id=job.job_id)
        with pytest.raises(Conflict, match="only a waiting job can be re-ordered"):
            await services.jobs.update(actor=ALICE, job_id=job.job_id, priority=4, queue=None)
        after = await services.jobs.get(actor=ALICE, job_id=job.job_id)
        assert after.held is False and after.pending_reason is None
        assert after.spec.priority == 0 and after.spec.queue == "default"

        entries, _ = await services.audit.entries(
            actor=ROOT, audit_filter=AuditFilter(job_id=job.job_id), first=20, after=None
        )
        trail = [(e.action, e.outcome) for e in reversed(entries)]
        assert trail == [
            ("job.create", "allowed"),
            ("job.hold", "allowed"), ("job.hold", "refused"),
            ("job.update", "allowed"), ("job.update", "refused"),
        ]
        assert all(e.detail.startswith("undone: the runtime refused it: job ")
                   for e in entries if e.outcome == "refused")
        await services.jobs.stop(actor=ALICE, job_id=job.job_id)
        async with asyncio.timeout(30):
            async for seen in services.live.job_updates(actor=ALICE, job_id=job.job_id):
                if seen.status.is_final:
                    break
    finally:
        await stop_services(services)
        kill_leftover_replicas(tmp_path)
