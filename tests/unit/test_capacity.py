"""Pool capacity: the pools file's `capacity`, and the check that refuses a job its pool
could never run (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.pools import PoolCatalog, PoolsFileError
from app.domain.capacity import check_fits
from app.domain.errors import CapacityExceeded
from app.domain.jobs import Resources
from app.domain.validation import JobSpecDraft, validate_spec


def spec(*, replicas: int = 1, cpus=None, memory=None, gpu=None):
    draft = JobSpecDraft(
        name="train", command=["python", "train.py"], replicas=replicas, cpus=cpus,
        memory_gib=memory, gpu=gpu,
    )
    return validate_spec(draft, resource_pool_id="gpu", queue="default")


POOL = Resources(cpus=16, memory_gib=64, gpu=8)


def refusal(job, **limits) -> CapacityExceeded:
    with pytest.raises(CapacityExceeded) as caught:
        check_fits(job, **limits)
    assert caught.value.code == "EXCEEDS_POOL_CAPACITY"
    return caught.value


def test_replicas_together_over_the_pool_are_refused_naming_resource_asked_and_most():
    error = refusal(spec(replicas=3, gpu=4), capacity=POOL)
    assert error.field == "resources.gpu"
    assert error.message == (
        "the job can never run in pool 'gpu': its 3 replicas ask for 12 GPUs together "
        "(4 GPUs each), and the pool has at most 8 GPUs in all (its declared capacity)"
    )
    error = refusal(spec(memory=64.5), capacity=POOL)
    assert error.field == "resources.memory"
    assert "it asks for 64.5 GiB of memory" in error.message
    assert "at most 64 GiB of memory" in error.message
    assert refusal(spec(replicas=2, cpus=8.5), capacity=POOL).field == "resources.cpus"


def test_exactly_the_capacity_fits():
    check_fits(spec(replicas=2, cpus=8, memory=32, gpu=4), capacity=POOL)
    check_fits(spec(cpus=16, memory=64, gpu=8), capacity=POOL)
    # Decimal amounts add up exactly: 3 x 0.1 CPU is 0.3, not 0.30000000000000004.
    check_fits(spec(replicas=3, cpus=0.1), capacity=Resources(cpus=0.3))


def test_what_is_not_declared_or_not_asked_is_not_checked():
    check_fits(spec(replicas=64, cpus=1024, memory=16384, gpu=64), capacity=None)
    check_fits(spec(cpus=1024, memory=16384), capacity=Resources(gpu=8))
    check_fits(spec(), capacity=Resources(cpus=1, memory_gib=1, gpu=0))


def test_no_gpus_declared_means_none():
    error = refusal(spec(gpu=1), capacity=Resources(cpus=16))
    assert "it asks for 1 GPU, and the pool has at most 0 GPUs in all" in error.message


def test_amounts_read_as_written():
    error = refusal(spec(replicas=2, cpus=0.5), capacity=Resources(cpus=0.5))
    assert "ask for 1 CPU together (0.5 CPUs each)" in error.message


def test_one_replica_over_the_largest_node_is_refused():
    node = Resources(cpus=32, memory_gib=128, gpu=4)
    check_fits(spec(replicas=4, gpu=4), capacity=None, largest_node=node)  # 4 nodes of 4
    error = refusal(spec(replicas=1, gpu=5), capacity=None, largest_node=node)
    assert error.field == "resources.gpu"
    assert error.message == (
        "the job can never run in pool 'gpu': each replica asks for 5 GPUs, and the pool's "
        "largest node has at most 4 GPUs allocatable (a replica runs on one node)"
    )
    # A node's unknown amounts are not checked.
    check_fits(spec(cpus=64), capacity=None, largest_node=Resources(gpu=8))


def test_the_pool_total_is_reported_before_the_node():
    error = refusal(spec(gpu=16), capacity=POOL, largest_node=Resources(gpu=4))
    assert "declared capacity" in error.message


def catalog(tmp_path: Path, capacity: str) -> PoolCatalog:
    path = tmp_path / "pools.yaml"
    path.write_text(f"pools:\n  - id: gpu\n    runtime: local\n    capacity: {capacity}\n")
    return PoolCatalog.load(path)


def test_the_pools_file_declares_capacity(tmp_path):
    pool = catalog(tmp_path, "{cpus: 16, memory: 64.5, gpu: 8}").default
    assert pool.capacity == Resources(cpus=16, memory_gib=64.5, gpu=8)
    assert "capacity" not in pool.options
    assert catalog(tmp_path, "{memory: 64}").default.capacity == Resources(memory_gib=64, gpu=0)
    assert PoolCatalog.load(None).default.capacity is None


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        ("16", "pools[0].capacity must be a mapping of one or more of cpus, memory, gpu"),
        ("{}", "pools[0].capacity must be a mapping of one or more of cpus, memory, gpu"),
        ("{gpus: 8}", "pools[0].capacity has unknown keys gpus; it takes cpus, memory, gpu"),
        ("{cpus: 0}", "pools[0].capacity.cpus must be a number greater than 0, got 0"),
        ("{cpus: true}", "pools[0].capacity.cpus must be a number greater than 0, got True"),
        ("{memory: 64Gi}", "pools[0].capacity.memory must be a number of GiB greater than 0 (e.g. 64), got '64Gi'"),
        ("{memory: .nan}", "pools[0].capacity.memory must be a number of GiB"),
        ("{gpu: 1.5}", "pools[0].capacity.gpu must be a whole number of 0 or more, got 1.5"),
        ("{gpu: -1}", "pools[0].capacity.gpu must be a whole number of 0 or more, got -1"),
    ],
)
def test_a_bad_capacity_is_refused_with_where_and_why(tmp_path, capacity, message):
    with pytest.raises(PoolsFileError) as caught:
        catalog(tmp_path, capacity)
    assert str(caught.value).startswith(message)
