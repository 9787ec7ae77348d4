"""OIDC tokens from a real local identity provider, API token lifecycle, groups, sharing,
the audit trail and the rate limit, end to end against the real server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import httpx
import pytest
import websockets
from joserfc.jwk import RSAKey

from tests.support.jobs import CREATE_JOB, GET_JOB, PY, STOP_JOB, create_job, wait_for_status
from tests.support.server import GraphQLErrors
from tests.support.subscriptions import gql_session, gql_subscribe, ws_url

VIEWER = "{ viewer { user groups isAdmin } }"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def refused(secured, token: str) -> tuple[str, str]:
    """The 401 messages of GraphQL and REST for this bearer token."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=secured.server.url, headers=headers) as http:
        graphql = await http.post("/graphql", json={"query": VIEWER})
        rest = await http.post("/api/jobs", json={})
    assert graphql.status_code == 401 and rest.status_code == 401
    assert rest.json()["success"] is False and rest.json()["code"] == "UNAUTHENTICATED"
    message = graphql.json()["errors"][0]["message"]
    assert rest.json()["message"] == message
    assert token not in message
    return message.lower(), rest.json()["message"]


async def test_valid_oidc_tokens_identify_the_user_and_groups(secured):
    rs = secured.client(secured.jwt())
    assert (await rs.execute(VIEWER))["viewer"] == {"user": "dana", "groups": ["ml-team"], "isAdmin": False}
    es = secured.client(secured.jwt(secured.idp.keys[1], alg="ES256", sub="erin",
                                    groups=["platform-admins"]))
    assert (await es.execute(VIEWER))["viewer"]["isAdmin"] is True
    async with httpx.AsyncClient(base_url=secured.server.url,
                                 headers={"Authorization": f"Bearer {secured.jwt()}"}) as http:
        me = (await http.get("/api/currentUser")).json()
    assert me["success"] and me["data"]["name"] == "dana" and me["data"]["access"] == "user"


async def test_bad_oidc_tokens_are_refused_with_the_reason(secured):
    now_claims = secured.claims()
    cases = {
        "expired": (secured.jwt(exp=now_claims["iat"] - 120, iat=now_claims["iat"] - 400), "expired"),
        "not yet valid": (secured.jwt(nbf=now_claims["iat"] + 600), "not yet valid"),
        "wrong audience": (secured.jwt(aud="someone-else"), "audience"),
        "wrong issuer": (secured.jwt(iss="https://evil.example/realms/x"), "issuer"),
    }
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(secured.claims()).encode())
    cases["alg none"] = (f"{header}.{payload}.", "algorithm")
    # The classic confusion attack: HMAC-SHA256 keyed with the RSA public key's PEM.
    public_pem = secured.idp.keys[0].as_pem(private=False)
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'rsa-1'}).encode())}.{payload}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(mac)}"
    cases["HS256 with the public key"] = (forged, "algorithm")
    good = secured.jwt()
    head, _, sig = good.split(".")
    tampered = f"{head}.{b64(json.dumps(secured.claims(sub='root', groups=['platform-admins'])).encode())}.{sig}"
    cases["tampered payload"] = (tampered, "signature")
    for name, (token, why) in cases.items():
        message, _ = await refused(secured, token)
        assert why in message, (name, message)


async def test_a_rotated_key_is_fetched_when_a_token_names_it(secured):
    new_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-rotated", "use": "sig"})
    token = secured.jwt(new_key, sub="rotated-user")
    message, _ = await refused(secured, token)  # not published yet
    assert "signing key" in message
    secured.idp.keys.append(new_key)
    client = secured.client(token)
    assert (await client.execute(VIEWER))["viewer"]["user"] == "rotated-user"


async def test_oidc_token_works_for_a_subscription_and_the_terminal(secured, tmp_path):
    token = secured.jwt(sub="sub-user", groups=[])
    client = secured.client(token)
    job = await create_job(client, command=["sleep", "600"], envs=[{"name": "HOME", "value": str(tmp_path)}])
    async with gql_session(secured.server.url, token) as session:
        async for result in gql_subscribe(session, "subscription($id: ID) { jobUpdated(jobId: $id) { status } }",
                                          {"id": job["jobId"]}):
            if result["jobUpdated"]["status"] == "RUNNING":
                break
    async with httpx.AsyncClient(base_url=secured.server.url, headers={"Authorization": f"Bearer {token}"}) as http:
        url = (await http.get(f"/api/jobs/{job['jobId']}/pods/{job['jobId']}-0/webterminal")).json()["data"]["webTerminalUrl"]
    async with websockets.connect(url) as ws:
        await ws.send(b"\x04" + json.dumps({"Height": 24, "Width": 80}).encode())
        await ws.send(b"\x00echo $((6*7))\n")
        seen = ""
        async with asyncio.timeout(15):
            while "42" not in seen.replace("6*7", ""):
                frame = await ws.recv()
                seen += frame.decode(errors="replace") if isinstance(frame, bytes) else frame
    assert "42" in seen.replace("6*7", "")  # the shell ran the OIDC user's command
    await client.execute(STOP_JOB, {"id": job["jobId"]})


async def test_pools_restricted_to_groups(secured):
    member = secured.client(secured.jwt(sub="member", groups=["ml-team"]))
    outsider = secured.client(secured.jwt(sub="outsider", groups=["web"]))
    ok = await create_job(member, command=[PY, "-c", "pass"], resourcePoolId="restricted")
    assert ok["resourcePoolId"] == "restricted"
    pools = (await outsider.execute("{ resourcePools { id } }"))["resourcePools"]
    assert [p["id"] for p in pools] == ["local"]
    payload = (await outsider.execute(CREATE_JOB, {"input": {"name": "x", "command": ["true"],
                                                             "resourcePoolId": "restricted"}}))["createJob"]
    assert payload["job"] is None and payload["userErrors"][0]["code"] == "FORBIDDEN"
    assert "ml-team" in payload["userErrors"][0]["message"]
    async with httpx.AsyncClient(base_url=secured.server.url,
                                 headers={"Authorization": f"Bearer {secured.jwt(sub='outsider', groups=['web'])}"}) as http:
        rest = await http.post("/api/jobs/create", json={"jobName": "x", "image": "i", "command": ["true"],
                                                         "resourcePoolId": "restricted"})
    assert rest.status_code == 403 and rest.json()["code"] == "FORBIDDEN"


async def test_jobs_shared_read_only_with_a_group(secured):
    owner = secured.client(secured.jwt(sub="owner", groups=[]))
    reader = secured.client(secured.jwt(sub="reader", groups=["nlp"]))
    stranger = secured.client(secured.jwt(sub="stranger", groups=["web"]))
    job = await create_job(owner, command=["sleep", "600"], sharedWithGroups=["nlp"])
    await wait_for_status(owner, job["jobId"], "RUNNING")
    seen = (await reader.execute(GET_JOB, {"id": job["jobId"]}))["job"]
    assert seen["owner"] == "owner"
    listed = await reader.execute("{ jobs(filter: {owner: \"owner\"}) { nodes { jobId } } }")
    assert job["jobId"] in [n["jobId"] for n in listed["jobs"]["nodes"]]
    stop = (await reader.execute(STOP_JOB, {"id": job["jobId"]}))["stopJob"]
    assert stop["userErrors"][0]["code"] == "FORBIDDEN" and "read-only" in stop["userErrors"][0]["message"]
    with pytest.raises(GraphQLErrors) as caught:
        await stranger.execute(GET_JOB, {"id": job["jobId"]})
    assert caught.value.code == "NOT_FOUND"
    stopped = (await owner.execute(STOP_JOB, {"id": job["jobId"]}))["stopJob"]
    assert stopped["userErrors"] == []

    # Refused and allowed actions are in the audit trail, which only admins read.
    admin = secured.client(secured.jwt(sub="auditor", groups=["platform-admins"]))
    trail = (await admin.execute(
        "query($id: ID) { auditLog(filter: {jobId: $id}, first: 50) { nodes { actor action outcome detail clientAddr } } }",
        {"id": job["jobId"]}))["auditLog"]["nodes"]
    entries = {(e["actor"], e["action"], e["outcome"]) for e in trail}
    assert ("owner", "job.create", "allowed") in entries
    assert ("reader", "job.stop", "refused") in entries
    assert ("owner", "job.stop", "allowed") in entries
    assert all(e["clientAddr"] == "127.0.0.1" for e in trail)
    with pytest.raises(GraphQLErrors) as caught:
        await reader.execute("{ auditLog { nodes { id } } }")
    assert caught.value.code == "FORBIDDEN"


async def test_api_tokens_revoke_at_once(secured):
    # Expiry is decided by the service's clock, injected in tests/store/test_token_expiry.py
    # (no test waits for a token to expire).
    token = secured.server.cli("token", "create", "--user", "rita", "--group", "nlp")
    client = secured.client(token)
    assert (await client.execute(VIEWER))["viewer"] == {"user": "rita", "groups": ["nlp"], "isAdmin": False}
    listing = secured.server.cli("token", "list")
    token_id = next(line.split("\t")[0] for line in listing.splitlines() if "\trita\t" in line)
    assert token not in listing
    secured.server.cli("token", "revoke", token_id)
    # SQLite: refused at once (the revoker stamps a file the server checks); PostgreSQL:
    # as soon as the server hears the revoking transaction's NOTIFY.
    async with asyncio.timeout(10):
        while (await client.raw(VIEWER)).status_code != 401:
            await asyncio.sleep(0.05)
    message, _ = await refused(secured, token)
    assert "revoked" in message
    admin = secured.client(secured.jwt(sub="auditor", groups=["platform-admins"]))
    trail = (await admin.execute('{ auditLog(filter: {action: "token.revoke"}) { nodes { detail } } }'))
    assert token_id in [n["detail"] for n in trail["auditLog"]["nodes"]]


async def test_rate_limit_answers_429_with_retry_after(rate_limited, tmp_path):
    token = rate_limited.jwt(sub="spammer", groups=[])
    spammer = rate_limited.client(token)
    job = await create_job(spammer, command=["sleep", "600"], envs=[{"name": "HOME", "value": str(tmp_path)}])
    await wait_for_status(spammer, job["jobId"], "RUNNING")
    async with httpx.AsyncClient(base_url=rate_limited.server.url, headers={"Authorization": f"Bearer {token}"}) as http:
        terminal = (await http.get(f"/api/jobs/{job['jobId']}/pods/{job['jobId']}-0/webterminal")).json()
        statuses = [(await http.post("/api/jobs", json={})).status_code for _ in range(45)]
        first_refused = statuses.index(429)  # the burst (40) is spent: the rest are refused
        assert first_refused >= 25 and set(statuses[:first_refused]) == {200}
        assert set(statuses[first_refused:]) == {429}
        rest = await http.post("/api/jobs", json={})
        assert rest.status_code == 429 and int(rest.headers["Retry-After"]) >= 1
        assert rest.json()["code"] == "RATE_LIMITED"
        graphql = await http.post("/graphql", json={"query": VIEWER})
        assert graphql.status_code == 429 and graphql.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    async with websockets.connect(ws_url(rate_limited.server.url), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4401
    # The terminal socket counts against the same limit: refused before the upgrade.
    with pytest.raises(websockets.InvalidStatus) as refused_socket:
        async with websockets.connect(terminal["data"]["webTerminalUrl"]):
            pass
    assert refused_socket.value.response.status_code == 403


async def test_query_cost_is_reported_and_limited(secured):
    client = secured.client(secured.jwt(sub="coster", groups=[]))
    body = (await client.raw("{ jobs(first: 10) { nodes { jobId pods { name } } } }")).json()
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1 + 10 + 100
    greedy = "{ " + " ".join(f"a{i}: jobs(first: 100) {{ nodes {{ pods {{ name }} events {{ reason }} }} }}" for i in range(12)) + " }"
    body = (await client.raw(greedy)).json()
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_EXPENSIVE"
    assert body["data"] is None


async def test_subscribers_see_jobs_shared_with_their_groups(secured, tmp_path):
    owner = secured.client(secured.jwt(sub="sharer", groups=[]))
    reader_token = secured.jwt(sub="follower", groups=["vision"])
    reader = secured.client(reader_token)
    async with gql_session(secured.server.url, reader_token) as session:
        stream = gql_subscribe(session, "subscription { jobUpdated { jobId owner } }")
        probe = await create_job(reader, command=[PY, "-c", "pass"])
        async with asyncio.timeout(20):  # the subscription is live once the probe shows
            while (await anext(stream))["jobUpdated"]["jobId"] != probe["jobId"]:
                pass
        private = await create_job(owner, command=[PY, "-c", "pass"])
        shared = await create_job(owner, command=[PY, "-c", "pass"], sharedWithGroups=["vision"])
        async with asyncio.timeout(20):
            seen = set()
            while shared["jobId"] not in seen:
                seen.add((await anext(stream))["jobUpdated"]["jobId"])
        await stream.aclose()
    assert private["jobId"] not in seen


async def test_forged_terminal_urls_stop_costing_audit_writes_past_the_rate_limit(rate_limited):
    base = rate_limited.server.url.replace("http://", "ws://")
    for i in range(50):
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(f"{base}/webterminal/forged{i}.sig"):
                pass
    admin = rate_limited.client(rate_limited.jwt(sub="auditor", groups=["platform-admins"]))
    trail = await admin.execute(
        '{ auditLog(filter: {actor: "anonymous", action: "terminal.open"}, first: 100) { nodes { outcome } } }'
    )
    refused = trail["auditLog"]["nodes"]
    # The burst (40) is audited; the rest are refused without a write.
    assert len(refused) == 40 and {e["outcome"] for e in refused} == {"refused"}
