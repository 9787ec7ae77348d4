"""The legacy console's login with an OIDC token as sk (issue 10): the answer's token is
that OIDC token itself, so a login never outlives what the identity provider granted."""

from __future__ import annotations

import httpx


async def test_login_with_an_oidc_token(secured):
    token = secured.jwt(sub="dana", groups=["ml-team", "platform-admins"])
    async with httpx.AsyncClient(base_url=secured.server.url, timeout=30) as http:
        answer = await http.post("/api/login/account", json={"ak": "dana", "sk": token, "type": "account"})
        body = answer.json()
        assert answer.status_code == 200, body
        assert body["status"] == "ok" and body["currentAuthority"] == "admin"
        assert body["token"] == token and body["data"]["expiresAt"] is None
        me = await http.get("/api/currentUser", headers={"X-Auth-Token": body["token"]})
        assert me.json()["data"]["name"] == "dana"
        # Logout has nothing of ours to revoke; the token keeps working until it expires.
        out = await http.post("/api/login/outLogin", headers={"Authorization": f"Bearer {token}"})
        assert out.status_code == 200 and out.json()["data"] == {"sessionEnded": False}

        # Someone else's OIDC token, or an expired one, is a wrong pair.
        other = await http.post("/api/login/account", json={"ak": "erin", "sk": token})
        assert other.status_code == 401 and other.json()["status"] == "error"
        assert "token" not in other.json()
        now = secured.claims()["iat"]
        expired = secured.jwt(sub="dana", exp=now - 120, iat=now - 400)
        late = await http.post("/api/login/account", json={"ak": "dana", "sk": expired})
        assert late.status_code == 401 and "expired" in late.json()["message"]
