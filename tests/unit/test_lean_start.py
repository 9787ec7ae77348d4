"""A server of the embedded default loads only what it uses: no Alembic once its database
is at the newest revision (every start but the first), no JOSE library without OIDC, no
Kubernetes client without a kubernetes pool; together ~65 MiB of a server's memory
(bench/README.md, "Memory"). In a fresh process per start, so nothing is loaded before."""

from __future__ import annotations

import os
import subprocess
import sys

PROGRAM = """
import asyncio, sys
from app.settings import Settings
from app.web.app import create_app

async def main():
    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
heavy = {"alembic", "joserfc", "cryptography", "kubernetes_asyncio"}
print("loaded:", *sorted(heavy & {name.split(".")[0] for name in sys.modules}))
"""


def loaded_by_a_start(data_dir, **settings: str) -> set[str]:
    env = {**os.environ, "JOBGRAPH_DATA_DIR": str(data_dir), "JOBGRAPH_LOG_LEVEL": "warning", **settings}
    env.pop("JOBGRAPH_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), result.stdout
    return set(last.split()[1:])


def test_a_second_start_loads_neither_alembic_nor_jose_nor_kubernetes(tmp_path):
    assert "alembic" in loaded_by_a_start(tmp_path)  # the first start creates the schema
    assert loaded_by_a_start(tmp_path) == set()


def test_oidc_loads_its_jose_library(tmp_path):
    loaded = loaded_by_a_start(
        tmp_path, JOBGRAPH_OIDC_ISSUER="https://idp.example", JOBGRAPH_OIDC_AUDIENCE="jobgraph"
    )
    assert "joserfc" in loaded
