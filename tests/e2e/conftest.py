"""The end-to-end server runs with two pools: `local` (4 slots, queues default and high)
and `solo` (1 slot), so queueing can be watched."""

from __future__ import annotations

import pytest

POOLS = """
pools:
  - id: local
    runtime: local
    maxConcurrentJobs: 4
    queues: [default, high]
  - id: solo
    runtime: local
    maxConcurrentJobs: 1
    queues: [default]
"""


@pytest.fixture(scope="session")
def pools_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pools") / "pools.yaml"
    path.write_text(POOLS)
    return path
