"""The web terminal end to end: the real server process, a URL from the REST facade, and
the `websockets` client speaking the legacy console's protocol to a real PTY."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.core.terminal_tickets import TerminalTickets
from app.web.terminal_socket import Resize, parse_frame
from tests.live.terminal import (
    KEEPALIVE,
    ShellJob,
    audit_entries,
    line,
    read_until,
    resize,
    start_shell_job,
    stdin,
    terminal_url,
    wait_for_audit,
)
from tests.support.jobs import DELETE_JOB, GET_JOB, STOP_JOB, create_job, wait_for_status
from tests.support.server import GraphQLClient

TIMEOUT = 20.0


@pytest.fixture
async def shell_job(alice, tmp_path) -> AsyncIterator[ShellJob]:
    job = await start_shell_job(alice, str(tmp_path))
    yield job
    await alice.execute(STOP_JOB, {"id": job.job_id})  # userErrors if it ended already


async def refused_status(url: str) -> int:
    """The HTTP status a refused handshake answers (no upgrade happens)."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=TIMEOUT):
            pass
    return refused.value.response.status_code


def server_tickets(running, ttl_seconds: float = 60) -> TerminalTickets:
    """Credentials signed with the server's own key: they pass the signature check, so
    what refuses them is the re-check of who may open which pod."""
    secret = (running.server.data_dir / "secret_key").read_bytes().strip()
    return TerminalTickets(secret=secret, ttl_seconds=ttl_seconds)


def ws_url(running, credential: str) -> str:
    return running.server.url.replace("http://", "ws://") + f"/webterminal/{credential}"


async def test_a_shell_in_the_pod_speaks_the_console_protocol(running, admin, shell_job):
    url = await terminal_url(running.server, running.alice_token, shell_job)
    assert url.startswith("ws://127.0.0.1:")
    async with connect(url, open_timeout=TIMEOUT, max_size=None) as ws:
        await ws.send(resize(30, 100))  # what the console sends on open
        await ws.send(KEEPALIVE)
        await ws.send(stdin("stty size; echo $((6*7)); echo pod=$JOBGRAPH_POD_NAME; pwd\n"))
        out = await read_until(ws, line("30 100"), line("42"), line(f"pod={shell_job.pod}"))
        assert f"/{shell_job.job_id}/workdir" in out  # the job's workdir

        # The keep-alive is not input: `head` sees only the line typed after it.
        await ws.send(stdin("head -n 1 | od -An -tx1\n"))
        await read_until(ws, r"od -An -tx1\r?\n")
        await ws.send(KEEPALIVE)
        await ws.send(stdin("hi\n"))
        out = await read_until(ws, line(" 68 69 0a"))
        assert "00 00" not in out

        # A resize later on resizes the PTY too; text frames carry the same bytes.
        await ws.send(resize(40, 120).decode())
        await ws.send(stdin("stty size; echo text-$((2+3))\n").decode())
        await read_until(ws, line("40 120"), line("text-5"))

    [opened] = await wait_for_audit(admin, jobId=shell_job.job_id, action="terminal.open")
    assert (opened["actor"], opened["outcome"]) == ("alice", "allowed")
    assert opened["detail"] == f"pod {shell_job.pod}" and opened["clientAddr"] == "127.0.0.1"
    [closed] = await wait_for_audit(admin, jobId=shell_job.job_id, action="terminal.close")
    assert closed["actor"] == "alice" and closed["at"] >= opened["at"]
    assert closed["detail"].startswith(f"pod {shell_job.pod}; closed by the client; open ")


async def test_a_terminal_url_works_once(running, admin, shell_job):
    url = await terminal_url(running.server, running.alice_token, shell_job)
    async with connect(url, open_timeout=TIMEOUT) as ws:
        await ws.send(stdin("echo first-$((1+1))\n"))
        await read_until(ws, line("first-2"))
        assert await refused_status(url) == 403  # while the first session is open
    assert await refused_status(url) == 403  # and after it ended

    # The refusals name whose URL was replayed.
    refused = await wait_for_audit(
        admin, count=2, jobId=shell_job.job_id, action="terminal.open", outcome="refused"
    )
    assert [r["actor"] for r in refused] == ["alice", "alice"]
    assert all("already used" in r["detail"] for r in refused)


async def test_forged_and_foreign_credentials_are_refused_before_the_upgrade(
    running, admin, alice, bob, shell_job, tmp_path
):
    url = await terminal_url(running.server, running.alice_token, shell_job)
    body, _, signature = url.rsplit("/", 1)[1].partition(".")
    forged = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert await refused_status(ws_url(running, forged)) == 403
    assert await refused_status(ws_url(running, "not-a-credential")) == 403

    tickets = server_tickets(running)
    bobs = await start_shell_job(bob, str(tmp_path))
    try:
        # Signed alright, but alice may not see bob's job ...
        theirs = tickets.issue(user="alice", job_id=bobs.job_id, pod_name=bobs.pod)
        assert await refused_status(ws_url(running, theirs.credential)) == 403
        # ... nor is bob's pod one of her job's pods.
        other_pod = tickets.issue(user="alice", job_id=shell_job.job_id, pod_name=bobs.pod)
        assert await refused_status(ws_url(running, other_pod.credential)) == 403
        # An expired credential.
        expired = server_tickets(running, ttl_seconds=-1).issue(
            user="alice", job_id=shell_job.job_id, pod_name=shell_job.pod
        )
        assert await refused_status(ws_url(running, expired.credential)) == 403
    finally:
        await bob.execute(STOP_JOB, {"id": bobs.job_id})

    # The URL that was handed out still works: the refusals did not touch it.
    async with connect(url, open_timeout=TIMEOUT) as ws:
        await ws.send(stdin("echo ok-$((3*3))\n"))
        await read_until(ws, line("ok-9"))

    # Refused before the upgrade, so already on the trail.
    anonymous = await audit_entries(admin, actor="anonymous", action="terminal.open")
    assert sum("not valid" in r["detail"] for r in anonymous) >= 2
    mine = await audit_entries(admin, jobId=shell_job.job_id, outcome="refused")
    assert any("expired" in r["detail"] for r in mine)
    assert any(f"pod {bobs.pod}: pod" in r["detail"] and "not found" in r["detail"] for r in mine)
    [theirs_entry] = await audit_entries(admin, jobId=bobs.job_id, outcome="refused")
    assert theirs_entry["actor"] == "alice" and "not found" in theirs_entry["detail"]


async def test_an_admin_may_open_a_shell_in_anyones_job(running, admin, shell_job):
    url = await terminal_url(running.server, running.admin_token, shell_job)
    async with connect(url, open_timeout=TIMEOUT) as ws:
        await ws.send(stdin("echo admin-$((4*4))\n"))
        await read_until(ws, line("admin-16"))
    [entry] = await wait_for_audit(admin, jobId=shell_job.job_id, action="terminal.open")
    assert entry["actor"] == "root"


OPEN_TERMINAL = """
mutation Open($id: ID!, $pod: String!) {
  openWebTerminal(input: {jobId: $id, podName: $pod}) { url userErrors { code message } }
}
"""


async def test_a_job_shared_read_only_gives_no_shell(running, admin, alice, tmp_path):
    job = await create_job(
        alice, name="shared", command=["sleep", "600"], sharedWithGroups=["readers"],
        envs=[{"name": "HOME", "value": str(tmp_path)}],
    )
    await wait_for_status(alice, job["jobId"], "RUNNING")
    pod = f"{job['jobId']}-0"
    dave = running.client(running.server.cli("token", "create", "--user", "dave",
                                             "--group", "readers"))
    try:
        # dave may read the job, but not get a terminal URL for it ...
        assert (await dave.execute(GET_JOB, {"id": job["jobId"]}))["job"]["owner"] == "alice"
        opened = (await dave.execute(OPEN_TERMINAL, {"id": job["jobId"], "pod": pod}))
        assert opened["openWebTerminal"]["url"] is None
        assert opened["openWebTerminal"]["userErrors"][0]["code"] == "FORBIDDEN"
        # ... nor open a shell with a credential made out to him.
        made_up = server_tickets(running).issue(user="dave", job_id=job["jobId"], pod_name=pod)
        assert await refused_status(ws_url(running, made_up.credential)) == 403
        refused = await audit_entries(admin, actor="dave", action="terminal.open")
        assert [r["outcome"] for r in refused] == ["refused", "refused"]
    finally:
        await alice.execute(STOP_JOB, {"id": job["jobId"]})


async def test_a_deleted_job_refuses_its_url(running, alice, tmp_path):
    job = await start_shell_job(alice, str(tmp_path))
    url = await terminal_url(running.server, running.alice_token, job)
    deleted = await alice.execute(DELETE_JOB, {"id": job.job_id})
    assert deleted["deleteJob"]["userErrors"] == []
    assert await refused_status(url) == 403


async def test_the_end_of_the_pod_closes_the_socket(running, admin, alice, shell_job):
    url = await terminal_url(running.server, running.alice_token, shell_job)
    async with connect(url, open_timeout=TIMEOUT) as ws:
        await ws.send(stdin("echo ready-$((5*5))\n"))
        await read_until(ws, line("ready-25"))
        stopped = await alice.execute(STOP_JOB, {"id": shell_job.job_id})
        assert stopped["stopJob"]["userErrors"] == []
        tail = ""
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                while True:
                    tail += (await ws.recv()).decode()
        assert "[jobgraph: the shell ended]" in tail
    await wait_for_status(alice, shell_job.job_id, "STOPPED")
    [closed] = await wait_for_audit(admin, jobId=shell_job.job_id, action="terminal.close")
    assert "the shell ended" in closed["detail"]
    # A URL for the stopped job's pod is refused too (the pod no longer runs).
    later = server_tickets(running).issue(
        user="alice", job_id=shell_job.job_id, pod_name=shell_job.pod
    )
    assert await refused_status(ws_url(running, later.credential)) == 403


async def test_the_page_does_not_spend_the_credential(running, shell_job):
    url = await terminal_url(running.server, running.alice_token, shell_job)
    page_url = url.replace("ws://", "http://")
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(2):  # a reload, too
            page = await http.get(page_url)
            assert page.status_code == 200
            assert page.headers["cache-control"] == "no-store"
            assert "/static/vendor/@xterm/xterm/lib/xterm.js" in page.text
            assert 'data-problem=""' in page.text
        for asset in ("/static/terminal.js", "/static/vendor/@xterm/addon-fit/lib/addon-fit.js"):
            assert (await http.get(running.server.url + asset)).status_code == 200

        async with connect(url, open_timeout=TIMEOUT) as ws:
            await ws.send(stdin("echo page-$((7*7))\n"))
            await read_until(ws, line("page-49"))

        used = await http.get(page_url)
        assert used.status_code == 403 and "already used" in used.text
        forged = await http.get(page_url[:-3] + "xyz")
        assert forged.status_code == 403 and "not valid" in forged.text


@pytest.fixture(scope="module")
async def impatient(server_factory):
    """A server that closes terminals after 2 s without a keystroke."""
    server = await server_factory(JOBGRAPH_TERMINAL_IDLE_SECONDS="2")
    token, admin_token = server.token("carol"), server.token("root", admin=True)
    server.start()
    return server, token, admin_token


async def test_an_idle_session_is_closed(impatient, tmp_path):
    server, token, admin_token = impatient
    carol, admin = GraphQLClient(server.url, token), GraphQLClient(server.url, admin_token)
    try:
        job = await start_shell_job(carol, str(tmp_path))
        url = await terminal_url(server, token, job)
        async with connect(url, open_timeout=TIMEOUT) as ws:
            # How keystrokes move the limit is timed on an injected clock
            # (tests/unit/test_idle_limit.py); here, that the server closes a session
            # that gets only resizes and keep-alives, and says why.
            await ws.send(stdin("echo still-$((1+1))\n"))
            await read_until(ws, line("still-2"))
            tail = ""
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(TIMEOUT):
                    while True:
                        await ws.send(KEEPALIVE)
                        await ws.send(resize(24, 80))
                        try:
                            async with asyncio.timeout(0.3):
                                tail += (await ws.recv()).decode()
                        except TimeoutError:
                            pass
            assert "[jobgraph: closed after 2 s without input]" in tail
        [closed] = await wait_for_audit(admin, jobId=job.job_id, action="terminal.close")
        assert "closed after 2 s without input" in closed["detail"]
        await carol.execute(STOP_JOB, {"id": job.job_id})
    finally:
        await carol.close()
        await admin.close()


def test_frames_of_the_console_protocol():
    assert parse_frame(b"\x00ls\n") == b"ls\n"
    assert parse_frame(KEEPALIVE) is None
    assert parse_frame(b"\x00\x00") == b"\x00"  # a typed NUL (Ctrl-@) is input
    assert parse_frame(b'\x04{"Height": 30, "Width": 100}') == Resize(30, 100)
    for junk in (b"", b"\x00", b"\x04{}", b"\x04[1]", b'\x04{"Height": 0, "Width": 9}',
                 b"\x04nope", b"\x07x"):
        assert parse_frame(junk) is None, junk


def test_the_admin_flag_travels_in_the_credential():
    tickets = TerminalTickets(secret=b"s" * 32)
    ticket = tickets.issue(user="alice", job_id="j-1", pod_name="j-1-0", is_admin=True)
    binding, _ = tickets.verify(ticket.credential)
    assert binding.is_admin and binding.user == "alice"
    plain = tickets.issue(user="bob", job_id="j-2", pod_name="j-2-0")
    assert tickets.verify(plain.credential)[0].is_admin is False

