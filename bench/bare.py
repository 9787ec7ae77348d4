"""The yardstick: a bare FastAPI endpoint answering a fixed JSON body (about the size of a
job with its pods), served by the same uvicorn as jobgraph (uvloop, httptools).

    .venv/bin/python bench/bare.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

BODY = {
    "code": 0,
    "msg": "success",
    "data": {
        "jobId": "j-7k2m9x4q", "jobName": "bench", "status": "Succeeded", "owner": "bench",
        "resourcePoolId": "local", "queue": "default", "priority": 0,
        "createdAt": "2026-01-01T00:00:00Z", "startedAt": "2026-01-01T00:00:01Z",
        "finishedAt": "2026-01-01T00:00:02Z", "image": None, "command": ["true"],
        "replicas": 1, "reason": None, "exitCode": 0,
        "config": {"name": "bench", "command": ["true"], "replicas": 1},
        "pods": [{"name": "j-7k2m9x4q-0", "status": "Succeeded", "phase": "Succeeded",
                  "nodeName": "localhost", "exitCode": 0, "restartCount": 0}],
    },
}

app = FastAPI()


@app.get("/bare")
async def bare() -> dict:
    return BODY


@app.post("/bare")
async def bare_post() -> dict:
    return BODY


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                loop="uvloop", http="httptools")
