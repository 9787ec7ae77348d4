"""Requests are labelled by the template of the route that answered them (Starlette
records the matched route in the scope), so ids never become label values."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from app.web.metrics import REGISTRY, MetricsMiddleware


def _count(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("jobgraph_http_requests_total", labels) or 0.0


def _app(static_dir) -> FastAPI:
    router = APIRouter()

    @router.get("/things/{thing_id}/parts/{part_name}")
    async def part(thing_id: str, part_name: str) -> dict[str, str]:
        return {"thing": thing_id, "part": part_name}

    @router.post("/things/create")
    async def create() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(router, prefix="/api")  # a prefix, as the REST facade has

    app.mount("/files", StaticFiles(directory=static_dir), name="files")
    app.add_middleware(MetricsMiddleware)
    return app


async def test_requests_are_labelled_by_the_route_template(tmp_path):
    (tmp_path / "a.js").write_text("let a;")
    expected = {
        ("GET", "/api/things/{thing_id}/parts/{part_name}", 200): 2,
        ("POST", "/api/things/create", 200): 1,
        ("DELETE", "/api/things/create", 405): 1,  # matched the path, not the method
        ("GET", "/files/{path}", 200): 1,  # a mounted app: its prefix
        ("GET", "unmatched", 404): 2,
    }
    before = {key: _count(*key) for key in expected}
    transport = httpx.ASGITransport(app=_app(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/api/things/t-1/parts/p-9")).status_code == 200
        assert (await client.get("/api/things/t-2/parts/p-8")).status_code == 200
        assert (await client.post("/api/things/create")).status_code == 200
        assert (await client.delete("/api/things/create")).status_code == 405
        assert (await client.get("/files/a.js")).status_code == 200
        assert (await client.get("/random/probe/123")).status_code == 404
        assert (await client.get("/api/things/t-1")).status_code == 404
    assert {key: _count(*key) - before[key] for key in expected} == expected
    # No id ever became a label value.
    exposed = "\n".join(
        str(sample.labels) for metric in REGISTRY.collect() for sample in metric.samples
    )
    assert "t-1" not in exposed and "p-9" not in exposed
