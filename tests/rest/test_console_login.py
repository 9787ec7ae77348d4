"""The legacy console's login form and logout (issue 10, point 1), over HTTP against a
running server: ak = user name, sk = an API token of that user."""

from __future__ import annotations

import httpx

from tests.support.server import GraphQLClient

LOGIN = "/api/login/account"
LOGOUT = "/api/login/outLogin"
AUDIT = """
query($actor: String) {
  auditLog(filter: {action: "login", actor: $actor}, first: 100) {
    nodes { actor action outcome detail clientAddr }
  }
}
"""


async def login(http: httpx.AsyncClient, ak, sk, **extra) -> httpx.Response:
    return await http.post(LOGIN, json={"ak": ak, "sk": sk, "type": "account", **extra})


def refused(response: httpx.Response, status: int) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert body["status"] == "error" and body["success"] is False and body["message"], body
    assert "token" not in body and body["data"] is None, body
    return body


async def test_login_answers_a_session_token_that_works_everywhere_until_logout(console):
    async with httpx.AsyncClient(base_url=console.server.url, timeout=30) as http:
        answer = await login(http, "carol", console.carol_token)
        body = answer.json()
        assert answer.status_code == 200, body
        assert body["status"] == "ok" and body["type"] == "account"
        assert body["currentAuthority"] == "user" and body["success"] is True
        token = body["token"]
        assert token != console.carol_token and body["data"]["token"] == token
        assert body["data"]["user"] == "carol" and body["data"]["expiresAt"].endswith("Z")

        # As the console sends it: both headers; and each header alone.
        both = {"Authorization": f"Bearer {token}", "X-Auth-Token": token}
        for headers in (both, {"Authorization": f"Bearer {token}"}, {"X-Auth-Token": token}):
            me = await http.get("/api/currentUser", headers=headers)
            assert me.status_code == 200 and me.json()["data"]["name"] == "carol", me.text
            jobs = await http.post("/api/jobs", json={}, headers=headers)
            assert jobs.status_code == 200 and jobs.json()["success"] is True
        graphql = GraphQLClient(console.server.url, token)
        try:
            assert (await graphql.execute("{ viewer { user isAdmin } }"))["viewer"] == {
                "user": "carol", "isAdmin": False}
        finally:
            await graphql.close()

        # An admin's token makes an admin session.
        admin = (await login(http, "root", console.admin_token)).json()
        assert admin["status"] == "ok" and admin["currentAuthority"] == "admin"

        # Logout revokes the session token (and only it); then it is refused.
        out = await http.post(LOGOUT, headers=both)
        assert out.status_code == 200 and out.json()["success"] is True
        assert out.json()["data"] == {"sessionEnded": True}
        after = await http.post("/api/jobs", json={}, headers=both)
        assert after.status_code == 401 and "revoked" in after.json()["message"]
        # Logging out again, or without any token, is still 200 (nothing left to end).
        for headers in (both, {}):
            again = await http.post(LOGOUT, headers=headers)
            assert again.status_code == 200 and again.json()["data"] == {"sessionEnded": False}
        # Logging out with the API token itself leaves it working.
        plain = {"Authorization": f"Bearer {console.carol_token}"}
        kept = await http.post(LOGOUT, headers=plain)
        assert kept.status_code == 200 and kept.json()["data"] == {"sessionEnded": False}
        assert (await http.post("/api/jobs", json={}, headers=plain)).status_code == 200

        # The trail: the login, with its address, and the logout.
        audit = GraphQLClient(console.server.url, console.admin_token)
        try:
            entries = (await audit.execute(AUDIT, {"actor": "carol"}))["auditLog"]["nodes"]
            logins = [e for e in entries if e["outcome"] == "allowed"]
            assert logins and logins[0]["clientAddr"] == "127.0.0.1"
            assert "session token s-" in logins[0]["detail"]
        finally:
            await audit.close()


async def test_a_wrong_pair_is_refused_with_a_message_and_no_token(console):
    async with httpx.AsyncClient(base_url=console.server.url, timeout=30) as http:
        # Another user's token, an unknown token, a token that is not one at all.
        wrong_user = refused(await login(http, "mallory", console.carol_token), 401)
        assert wrong_user["code"] == "UNAUTHENTICATED"
        assert "'mallory'" in wrong_user["message"] and "not a credential of this user" in wrong_user["message"]
        unknown = refused(await login(http, "carol", "jg_not-a-real-token"), 401)
        assert "unknown API token" in unknown["message"]
        garbage = refused(await login(http, "carol", "password123"), 401)
        assert "neither an API token nor a JWT" in garbage["message"]

        # Malformed forms say what to send.
        missing = refused(await http.post(LOGIN, json={"ak": "carol", "type": "account"}), 400)
        assert missing["field"] == "sk" and "API token" in missing["message"]
        not_json = refused(await http.post(LOGIN, content=b"ak=carol&sk=x"), 400)
        assert "JSON" in not_json["message"]
        wrong_type = refused(await http.post(LOGIN, json={"ak": 7, "sk": console.carol_token}), 400)
        assert wrong_type["field"] == "ak"

    audit = GraphQLClient(console.server.url, console.admin_token)
    try:
        entries = (await audit.execute(AUDIT, {"actor": "mallory"}))["auditLog"]["nodes"]
    finally:
        await audit.close()
    [entry] = entries
    assert entry["outcome"] == "refused" and entry["clientAddr"] == "127.0.0.1"
    assert "not a credential of this user" in entry["detail"]


async def test_refused_logins_are_rate_limited_by_address(server_factory):
    # A server of its own: its limit is low (three attempts, then one a minute).
    server = await server_factory(
        JOBGRAPH_RATE_LIMIT_PER_MINUTE="1", JOBGRAPH_RATE_LIMIT_BURST="3",
    )
    admin_token = server.token("root", admin=True)
    erin_token = server.token("erin")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for _ in range(3):
                refused(await login(http, "erin", "jg_guess"), 401)
            limited = refused(await login(http, "erin", "jg_guess"), 429)
            assert limited["code"] == "RATE_LIMITED" and "retry in" in limited["message"]
            # Past the limit even the right pair waits: guesses are bounded, not verified.
            right = await login(http, "erin", erin_token)
            refused(right, 429)
            assert int(right.headers["Retry-After"]) >= 1
        audit = GraphQLClient(server.url, admin_token)
        try:
            entries = (await audit.execute(AUDIT, {"actor": "erin"}))["auditLog"]["nodes"]
        finally:
            await audit.close()
        # Three refused attempts audited; those past the limit cost no write.
        assert [e["outcome"] for e in entries] == ["refused"] * 3
    finally:
        server.stop()
