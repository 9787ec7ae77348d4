"""`running` is one server per session: give it the e2e package's pools whichever
package starts it first (as tests/rest does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import POOLS


@pytest.fixture(scope="session")
def pools_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pools") / "pools.yaml"
    path.write_text(POOLS)
    return path
