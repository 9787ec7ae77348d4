"""Web-terminal credentials: signed, bound, short-lived, single-use."""

from __future__ import annotations

import os
import stat

import pytest

from app.core.terminal_tickets import TerminalTickets, load_secret
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
