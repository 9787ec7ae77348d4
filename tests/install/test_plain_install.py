"""A plain `pip install .` (no extras, not editable, as the Dockerfile does) serves: the
package is installed with only its declared dependencies into a fresh virtualenv, and
that venv's `jobgraph serve` runs one job to the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support.jobs import create_job, logs, wait_for_status
from tests.support.processes import kill_leftover_replicas
from tests.support.server import GraphQLClient, Server, server_env

ROOT = Path(__file__).resolve().parents[2]
# What the sdist/wheel is built from (the Dockerfile copies the same).
SOURCES = ("pyproject.toml", "README.md", "app", "rest_compat")
INSTALL_TIMEOUT = 600  # pip's cache is warm; this is only the bound of a hung install


def _copy_sources(into: Path) -> None:
    """A copy, so pip's in-tree build leaves nothing in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=ignore)
        else:
            shutil.copy2(source, into / name)


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("plain-install")
    sources, env_dir = base / "src", base / "venv"
    sources.mkdir()
    _copy_sources(sources)
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-compile", str(sources)],
        env=env, cwd=base, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
    )
    assert result.returncode == 0, f"pip install . failed:\n{result.stdout}\n{result.stderr}"
    return env_dir


def test_the_installed_package_is_the_one_served(plain_venv: Path) -> None:
    """The venv imports its own copy (site-packages), not this checkout, and has none of
    the test extra."""
    probe = (
        "import importlib.util, app, rest_compat;"
        "print(app.__file__); print(rest_compat.__file__);"
        "print(importlib.util.find_spec('pytest') is None)"
    )
    out = subprocess.run(
        [str(plain_venv / "bin" / "python"), "-c", probe],
        cwd=plain_venv, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert all("site-packages" in path for path in out[:2]), out
    assert out[2] == "True", "the test extra was installed"


async def test_plain_install_serves_a_job(plain_venv: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = server_env(data_dir, None)  # SQLite: migrations shipped inside the package
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    server = Server(data_dir=data_dir, env=env, executable=str(plain_venv / "bin" / "jobgraph"))
    token = server.token("alice")
    server.start()
    client = GraphQLClient(server.url, token)
    try:
        job = await create_job(
            client, name="installed", command=[sys.executable, "-c", "print('served by a plain install')"]
        )
        done = await wait_for_status(client, job["jobId"], "SUCCEEDED", "FAILED", timeout=60)
        assert done["status"] == "SUCCEEDED", done
        assert "served by a plain install" in await logs(client, job["jobId"], f"{job['jobId']}-0")
    finally:
        await client.close()
        server.stop()
        kill_leftover_replicas(data_dir)
