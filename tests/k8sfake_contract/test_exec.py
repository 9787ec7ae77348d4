"""Exec over WebSocket v4.channel.k8s.io with a real process (pipes, or a PTY for tty)."""

from __future__ import annotations

import json

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.stream import WsApiClient

from tests.k8sfake import FakeKubernetes

from .conftest import job_manifest


async def _running_pod(fake: FakeKubernetes, batch: client.BatchV1Api) -> str:
    await batch.create_namespaced_job("default", job_manifest(
        "ex", ["sleep", "60"], env=[{"name": "GREETING", "value": "hello"}]))
    pods = await fake.wait_for(lambda: [p for p in fake.pods_of("ex")
                                        if p["status"].get("phase") == "Running"])
    return pods[0]["metadata"]["name"]


async def _collect(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[bytes], dict[int, bytes]]:
    frames: list[bytes] = []
    out: dict[int, bytes] = {}
    async for msg in ws:
        assert msg.type == aiohttp.WSMsgType.BINARY
        frames.append(msg.data)
        out[msg.data[0]] = out.get(msg.data[0], b"") + msg.data[1:]
    return frames, out


async def test_exec_preload_and_exit_code(fake: FakeKubernetes, batch: client.BatchV1Api,
                                          ws_core: client.CoreV1Api) -> None:
    pod = await _running_pod(fake, batch)
    out = await ws_core.connect_get_namespaced_pod_exec(
        pod, "default", command=["sh", "-c", "echo $GREETING out; echo err >&2"],
        stderr=True, stdin=False, stdout=True, tty=False)
    assert sorted(out.splitlines()) == ["err", "hello out"]  # exit code lost with preload
    rec = fake.calls("GET", f"/api/v1/namespaces/default/pods/{pod}/exec")[0]
    assert rec.query["command"] == ["sh", "-c", "echo $GREETING out; echo err >&2"]
    assert rec.headers["Sec-WebSocket-Protocol"] == "v4.channel.k8s.io" and rec.status == 101
    async with await ws_core.connect_get_namespaced_pod_exec(
            pod, "default", command=["sh", "-c", "exit 3"], stderr=True, stdin=False,
            stdout=True, tty=False, _preload_content=False) as ws:
        frames, chans = await _collect(ws)
    assert frames[0] == b"\x01"  # the first, empty frame on the lowest writable channel
    status = json.loads(chans[3])
    assert status["reason"] == "NonZeroExitCode"
    assert WsApiClient.parse_error_data(chans[3]) == 3


async def test_exec_stdin_echo(fake: FakeKubernetes, batch: client.BatchV1Api,
                               ws_core: client.CoreV1Api) -> None:
    pod = await _running_pod(fake, batch)
    async with await ws_core.connect_get_namespaced_pod_exec(
            pod, "default", command=["sh", "-c", 'read line; echo "got:$line"'], stderr=True,
            stdin=True, stdout=True, tty=False, _preload_content=False) as ws:
        await ws.send_bytes(b"\x00ping\n")
        _frames, chans = await _collect(ws)
    assert chans[1] == b"got:ping\n"
    assert WsApiClient.parse_error_data(chans[3]) == 0


async def test_exec_tty_resize_reaches_the_pty(fake: FakeKubernetes, batch: client.BatchV1Api,
                                               ws_core: client.CoreV1Api) -> None:
    pod = await _running_pod(fake, batch)
    async with await ws_core.connect_get_namespaced_pod_exec(
            pod, "default", command=["sh", "-c", "read x; stty size; echo $((6*7))"],
            stderr=True, stdin=True, stdout=True, tty=True, _preload_content=False) as ws:
        await ws.send_bytes(b"\x04" + json.dumps({"Width": 100, "Height": 40}).encode())
        await ws.send_bytes(b"\x00go\n")
        _frames, chans = await _collect(ws)
    text = chans[1].decode().replace("\r", "")
    assert "40 100\n" in text and "42\n" in text
    assert 2 not in chans  # tty: no stderr channel
    assert WsApiClient.parse_error_data(chans[3]) == 0


async def test_exec_handshake_404(fake: FakeKubernetes, ws_core: client.CoreV1Api) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await ws_core.connect_get_namespaced_pod_exec(
            "nope", "default", command=["true"], stdout=True, stderr=True, stdin=False,
            tty=False)
    assert e.value.status == 404
