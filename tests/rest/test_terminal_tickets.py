"""Web-terminal credentials: signed, bound, short-lived, single-use."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from joserfc import jwt

from app.core.terminal_tickets import TerminalTickets, load_secret, signing_key
from app.domain.errors import Unauthenticated


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tickets(clock) -> TerminalTickets:
    return TerminalTickets(secret=b"s" * 32, ttl_seconds=60, clock=clock)


def test_verify_returns_the_binding_and_a_fresh_nonce(tickets):
    ticket = tickets.issue(user="alice", job_id="j-1", pod_name="j-1-0")
    binding, nonce = tickets.verify(ticket.credential)
    assert (binding.user, binding.job_id, binding.pod_name) == ("alice", "j-1", "j-1-0")
    assert binding.expires_at == ticket.expires_at
    other = tickets.issue(user="alice", job_id="j-1", pod_name="j-1-0")
    assert tickets.verify(other.credential)[1] != nonce


def test_an_expired_credential_is_refused(tickets, clock):
    ticket = tickets.issue(user="alice", job_id="j-1", pod_name="j-1-0")
    clock.now += 60
    with pytest.raises(Unauthenticated, match="expired"):
        tickets.verify(ticket.credential)


@pytest.mark.parametrize("mangle", [
    lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # signature
    lambda c: "f" + c[1:],  # payload
    lambda c: c.split(".")[0],  # no signature
    lambda c: "",
    lambda c: "not.base64!",
])
def test_tampered_credentials_are_refused(tickets, mangle):
    credential = tickets.issue(user="alice", job_id="j-1", pod_name="j-1-0").credential
    with pytest.raises(Unauthenticated):
        tickets.verify(mangle(credential))


def test_another_secret_does_not_verify(tickets, clock):
    credential = tickets.issue(user="alice", job_id="j-1", pod_name="p").credential
    other = TerminalTickets(secret=b"t" * 32, clock=clock)
    with pytest.raises(Unauthenticated, match="not valid"):
        other.verify(credential)


def test_the_secret_is_generated_once_with_mode_0600(tmp_path):
    secret = load_secret(data_dir=tmp_path, configured=None)
    assert load_secret(data_dir=tmp_path, configured=None) == secret
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600
    assert load_secret(data_dir=tmp_path, configured="from-env") == b"from-env"


def _segment(credential: str, index: int) -> dict:
    part = credential.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_the_credential_is_a_standard_jwt(tickets, clock):
    ticket = tickets.issue(user="alice", job_id="j-1", pod_name="j-1-0", is_admin=True)
    assert _segment(ticket.credential, 0) == {"alg": "HS256", "typ": "JWT"}
    claims = _segment(ticket.credential, 1)
    assert claims["aud"] == "jobgraph-terminal"
    assert (claims["sub"], claims["job"], claims["pod"], claims["adm"]) == ("alice", "j-1", "j-1-0", True)
    assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + 60
    assert claims["jti"] == tickets.verify(ticket.credential)[1]
    # Any JOSE library verifies it with the terminal key.
    token = jwt.decode(ticket.credential, signing_key(b"s" * 32), algorithms=["HS256"])
    assert token.claims == claims


def _signed(claims: dict, header: dict | None = None) -> str:
    return jwt.encode(header or {"alg": "HS256"}, claims, signing_key(b"s" * 32))


def test_tokens_of_the_same_key_for_another_audience_or_without_claims_are_refused(tickets, clock):
    good = {"aud": "jobgraph-terminal", "sub": "alice", "job": "j-1", "pod": "j-1-0",
            "exp": int(clock.now) + 30, "jti": "n-1"}
    assert tickets.verify(_signed(good))[0].user == "alice"
    for claims in (
        {**good, "aud": "someone-else"},
        {k: v for k, v in good.items() if k != "aud"},
        {k: v for k, v in good.items() if k != "exp"},
        {k: v for k, v in good.items() if k != "jti"},
        {k: v for k, v in good.items() if k != "pod"},
        {**good, "sub": 7},
        {**good, "exp": "soon"},
    ):
        with pytest.raises(Unauthenticated, match="not valid"):
            tickets.verify(_signed(claims))


def test_unsigned_and_other_algorithms_are_refused(tickets, clock):
    claims = {"aud": "jobgraph-terminal", "sub": "alice", "job": "j-1", "pod": "j-1-0",
              "exp": int(clock.now) + 30, "jti": "n-1"}
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    with pytest.raises(Unauthenticated, match="not valid"):
        tickets.verify(unsigned)
    hs512 = jwt.encode({"alg": "HS512"}, claims, signing_key(b"s" * 32), algorithms=["HS512"])
    with pytest.raises(Unauthenticated, match="not valid"):
        tickets.verify(hs512)


def test_expiry_follows_the_injected_clock(tickets, clock):
    ticket = tickets.issue(user="alice", job_id="j-1", pod_name="j-1-0")
    clock.now += 59
    assert tickets.verify(ticket.credential)[0].user == "alice"
    clock.now += 1
    with pytest.raises(Unauthenticated, match="expired") as refused:
        tickets.verify(ticket.credential)
    # Expired but genuine: the refusal still says whose it was, for the audit trail.
    assert refused.value.binding.user == "alice"
