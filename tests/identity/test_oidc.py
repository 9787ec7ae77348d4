"""OIDC / JWT verification against a real JWKS server with real signatures (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey

from app.core.oidc import IdentityProviderUnavailable, OidcConfig, OidcVerifier, looks_like_jwt
from app.domain.errors import Unauthenticated
from app.domain.principal import Principal
from tests.identity.jwks_server import JwksServer

AUDIENCE = "jobgraph"
ADMINS = "jobgraph-admins"


class FakeClock:
    """Monotonic clock for the JWKS cache, moved by hand (no sleeping)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})


@pytest.fixture(scope="session")
def rsa_key_2() -> RSAKey:
    # Pins its algorithm, as many providers do.
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "use": "sig", "alg": "RS256"})


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"})


@pytest.fixture(scope="session")
def attacker_key() -> RSAKey:
    # Same kid as the real key, different key material.
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture
async def idp(rsa_key: RSAKey, ec_key: ECKey) -> AsyncIterator[JwksServer]:
    server = JwksServer()
    server.keys = [rsa_key, ec_key]
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_verifier(idp: JwksServer, clock: FakeClock, **overrides: Any) -> OidcVerifier:
    settings: dict[str, Any] = {
        "issuer": idp.issuer,
        "audience": AUDIENCE,
        "jwks_url": idp.jwks_url,
        "admin_group": ADMINS,
    }
    settings.update(overrides)
    return OidcVerifier(OidcConfig(**settings), clock=clock)


def claims_for(idp: JwksServer, **overrides: Any) -> dict[str, Any]:
    """Valid claims; an override of None removes the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "groups": ["ml", ADMINS],
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(key: RSAKey | ECKey, claims: dict[str, Any], *, alg: str = "RS256", **header: Any) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, claims, key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value).encode())


async def assert_refused(
    verifier: OidcVerifier, token: str, *fragments: str, error: type = Unauthenticated
) -> str:
    with pytest.raises(error) as caught:
        await verifier.verify(token, client_addr="10.0.0.1")
    message = str(caught.value)
    assert message == caught.value.message
    for fragment in fragments:
        assert fragment in message.lower(), message
    assert not token or token not in message
    for segment in token.split("."):
        if len(segment) >= 8:
            assert segment not in message, message
    return message


# --- accepted tokens --------------------------------------------------------------------


async def test_valid_rs256_token_gives_principal(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    principal = await verifier.verify(sign(rsa_key, claims_for(idp)), client_addr="10.0.0.7")
    assert principal == Principal(
        user="alice", is_admin=True, groups=("ml", ADMINS), client_addr="10.0.0.7"
    )
    assert idp.jwks_fetches == 1
    # The key set is cached: a second token costs no fetch.
    await verifier.verify(sign(rsa_key, claims_for(idp, sub="bob")))
    assert idp.jwks_fetches == 1


async def test_valid_es256_token_with_other_user_claim(idp, clock, ec_key) -> None:
    verifier = make_verifier(idp, clock, user_claim="preferred_username")
    claims = claims_for(idp, preferred_username="carol", groups=["ml"])
    principal = await verifier.verify(sign(ec_key, claims, alg="ES256"))
    assert principal == Principal(user="carol", is_admin=False, groups=("ml",))


async def test_audience_may_be_a_list(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    claims = claims_for(idp, aud=["account", AUDIENCE])
    assert (await verifier.verify(sign(rsa_key, claims))).user == "alice"


async def test_clock_skew_is_tolerated(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock, clock_skew_seconds=60)
    now = int(time.time())
    claims = claims_for(idp, exp=now - 30, nbf=now + 30, iat=now + 30)
    assert (await verifier.verify(sign(rsa_key, claims))).user == "alice"


async def test_ps256_when_configured(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock, algorithms=("PS256",))
    token = sign(rsa_key, claims_for(idp), alg="PS256")
    assert (await verifier.verify(token)).user == "alice"
    await assert_refused(verifier, sign(rsa_key, claims_for(idp)), "algorithm not allowed")


async def test_no_kid_tries_the_keys_of_the_right_type(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    token = jwt.encode({"alg": "RS256"}, claims_for(idp), rsa_key, algorithms=["RS256"])
    assert (await verifier.verify(token)).user == "alice"


# --- claims -> principal ---------------------------------------------------------------


async def test_groups_from_nested_keycloak_claim(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock, groups_claim="realm_access.roles")
    claims = claims_for(idp, groups=None, realm_access={"roles": ["offline_access", ADMINS]})
    principal = await verifier.verify(sign(rsa_key, claims))
    assert principal.groups == ("offline_access", ADMINS)
    assert principal.is_admin


async def test_groups_from_separated_string(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    claims = claims_for(idp, groups="ml, vision  ml,research")
    principal = await verifier.verify(sign(rsa_key, claims))
    assert principal.groups == ("ml", "vision", "research")
    assert not principal.is_admin


async def test_claim_name_containing_dots_is_read_literally(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock, groups_claim="https://jobgraph.example/groups")
    claims = claims_for(idp, groups=None, **{"https://jobgraph.example/groups": [ADMINS]})
    assert (await verifier.verify(sign(rsa_key, claims))).is_admin


async def test_missing_groups_claim_means_no_groups(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    principal = await verifier.verify(sign(rsa_key, claims_for(idp, groups=None)))
    assert principal == Principal(user="alice")


async def test_missing_user_claim(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock, user_claim="preferred_username")
    await assert_refused(verifier, sign(rsa_key, claims_for(idp)), "missing user claim")
    bad = claims_for(idp, preferred_username="")
    await assert_refused(verifier, sign(rsa_key, bad), "missing user claim")


# --- refused: time, audience, issuer ---------------------------------------------------


async def test_expired(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    now = int(time.time())
    token = sign(rsa_key, claims_for(idp, iat=now - 3600, exp=now - 120))
    await assert_refused(verifier, token, "expired")


async def test_not_yet_valid(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    now = int(time.time())
    await assert_refused(verifier, sign(rsa_key, claims_for(idp, nbf=now + 600)), "not yet valid")
    await assert_refused(
        verifier, sign(rsa_key, claims_for(idp, iat=now + 600)), "not yet valid", "future"
    )


async def test_exp_is_required(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    await assert_refused(verifier, sign(rsa_key, claims_for(idp, exp=None)), "missing", "exp")


async def test_wrong_audience(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    await assert_refused(verifier, sign(rsa_key, claims_for(idp, aud="other")), "wrong audience")
    await assert_refused(verifier, sign(rsa_key, claims_for(idp, aud=["a", "b"])), "wrong audience")
    await assert_refused(verifier, sign(rsa_key, claims_for(idp, aud=None)), "missing", "aud")


async def test_wrong_issuer(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    token = sign(rsa_key, claims_for(idp, iss="https://evil.example/realms/test"))
    await assert_refused(verifier, token, "wrong issuer")
    await assert_refused(verifier, sign(rsa_key, claims_for(idp, iss=None)), "missing", "iss")


# --- refused: algorithms, keys, signatures ---------------------------------------------


async def test_alg_none_is_refused(idp, clock) -> None:
    verifier = make_verifier(idp, clock)
    for header in ({"alg": "none"}, {"alg": "none", "kid": "rsa-1"}, {"alg": "None"}):
        token = f"{b64json(header)}.{b64json(claims_for(idp))}."
        assert looks_like_jwt(token)
        await assert_refused(verifier, token, "algorithm not allowed")
    assert idp.jwks_fetches == 0  # refused before any key is needed


async def test_hs256_signed_with_the_rsa_public_key_is_refused(idp, clock, rsa_key) -> None:
    """The classic confusion attack: HMAC keyed with the (public) RSA PEM."""
    verifier = make_verifier(idp, clock)
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}." + b64json(
        claims_for(idp, sub="root")
    )
    for secret in (rsa_key.as_pem(private=False), json.dumps(rsa_key.as_dict()).encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64(mac)}"
        message = await assert_refused(verifier, token, "algorithm not allowed")
        assert "'HS256'" in message


async def test_symmetric_algorithms_cannot_be_configured(idp) -> None:
    for algorithms in (("HS256",), ("RS256", "HS512"), ("none",), ()):
        with pytest.raises(ValueError):
            OidcConfig(issuer=idp.issuer, audience=AUDIENCE, algorithms=algorithms)


async def test_symmetric_algorithms_refused_even_if_forced_into_config(idp, clock, rsa_key) -> None:
    config = OidcConfig(issuer=idp.issuer, audience=AUDIENCE, jwks_url=idp.jwks_url)
    object.__setattr__(config, "algorithms", ("RS256", "HS256", "none"))
    verifier = OidcVerifier(config, clock=clock)
    signing_input = f"{b64json({'alg': 'HS256', 'kid': 'rsa-1'})}.{b64json(claims_for(idp))}"
    mac = hmac.new(rsa_key.as_pem(private=False), signing_input.encode(), hashlib.sha256)
    await assert_refused(verifier, f"{signing_input}.{b64(mac.digest())}", "algorithm not allowed")
    # A symmetric key published in the JWKS is ignored as well.
    idp.extra_entries = [{"kty": "oct", "kid": "hmac", "k": b64(b"s" * 32)}]
    signing_input = f"{b64json({'alg': 'HS256', 'kid': 'hmac'})}.{b64json(claims_for(idp))}"
    mac = hmac.new(b"s" * 32, signing_input.encode(), hashlib.sha256)
    await assert_refused(verifier, f"{signing_input}.{b64(mac.digest())}", "algorithm not allowed")


async def test_key_type_must_match_algorithm(idp, clock, rsa_key, ec_key) -> None:
    verifier = make_verifier(idp, clock)
    # Signed by the EC key but naming the RSA key, and the other way round.
    token = jwt.encode(
        {"alg": "ES256", "kid": "rsa-1"}, claims_for(idp), ec_key, algorithms=["ES256"]
    )
    await assert_refused(verifier, token, "algorithm not allowed", "does not match")
    token = jwt.encode(
        {"alg": "RS256", "kid": "ec-1"}, claims_for(idp), rsa_key, algorithms=["RS256"]
    )
    await assert_refused(verifier, token, "algorithm not allowed", "does not match")
    assert idp.jwks_fetches == 1  # a known kid never triggers a refresh


async def test_key_pinned_to_another_algorithm(idp, clock, rsa_key_2) -> None:
    idp.keys.append(rsa_key_2)  # pinned to RS256
    verifier = make_verifier(idp, clock, algorithms=("RS256", "PS256"))
    unpinned = {k: v for k, v in rsa_key_2.as_dict(private=True).items() if k != "alg"}
    token = sign(RSAKey.import_key(unpinned), claims_for(idp), alg="PS256")
    await assert_refused(verifier, token, "does not match")


async def test_tampered_payload_is_refused(idp, clock, rsa_key, ec_key) -> None:
    verifier = make_verifier(idp, clock)
    for key, alg in ((rsa_key, "RS256"), (ec_key, "ES256")):
        header, _, signature = sign(key, claims_for(idp, sub="bob", groups=[]), alg=alg).split(".")
        forged = claims_for(idp, sub="bob", groups=[ADMINS])
        await assert_refused(verifier, f"{header}.{b64json(forged)}.{signature}", "bad signature")


async def test_signature_by_another_key_with_the_same_kid(idp, clock, attacker_key) -> None:
    verifier = make_verifier(idp, clock)
    await assert_refused(verifier, sign(attacker_key, claims_for(idp)), "bad signature")


async def test_malformed_tokens(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    good = sign(rsa_key, claims_for(idp))
    header, payload, signature = good.split(".")
    not_json_payload = jws.serialize_compact(
        {"alg": "RS256", "kid": "rsa-1"}, b"not json", rsa_key, algorithms=["RS256"]
    )
    array_payload = jws.serialize_compact(
        {"alg": "RS256", "kid": "rsa-1"}, b"[1, 2]", rsa_key, algorithms=["RS256"]
    )
    cases = [
        "",
        "not-a-token",
        f"{header}.{payload}",
        f"{header}.{payload}.{signature}.extra",
        f"{header}!.{payload}.{signature}",
        f"{b64(b'not json')}.{payload}.{signature}",
        f"{b64json(['alg', 'RS256'])}.{payload}.{signature}",
        f"{b64json({'kid': 'rsa-1'})}.{payload}.{signature}",
        f"{b64json({'alg': 'RS256', 'kid': 7})}.{payload}.{signature}",
        ".".join((b64json({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"]}), payload, signature)),
        f"{header}.{payload}.{signature}" + "A" * 40_000,
        not_json_payload,
        array_payload,
    ]
    for token in cases:
        await assert_refused(verifier, token, "malformed token")


async def test_messages_never_echo_token_content(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    evil = "\u202e<script>" + "x" * 64
    for header in ({"alg": evil}, {"alg": "RS256", "kid": evil}):
        token = f"{b64json(header)}.{b64json(claims_for(idp))}.c2ln"
        message = await assert_refused(verifier, token)
        assert evil not in message and "<script>" not in message


# --- JWKS: rotation, storms, discovery, outages ----------------------------------------


async def test_unknown_kid_after_rotation_refreshes_once(idp, clock, rsa_key_2) -> None:
    verifier = make_verifier(idp, clock)
    await verifier.verify(sign(idp.keys[0], claims_for(idp)))
    assert idp.jwks_fetches == 1

    idp.keys.append(rsa_key_2)  # the provider rotates in a new key
    clock.advance(10)  # the minimum refresh interval has passed
    principal = await verifier.verify(sign(rsa_key_2, claims_for(idp, sub="dave")))
    assert principal.user == "dave"
    assert idp.jwks_fetches == 2
    # Known from now on: no further fetch.
    await verifier.verify(sign(rsa_key_2, claims_for(idp)))
    assert idp.jwks_fetches == 2


async def test_unknown_kid_refresh_is_rate_limited(idp, clock, rsa_key, rsa_key_2) -> None:
    verifier = make_verifier(idp, clock)
    await verifier.verify(sign(rsa_key, claims_for(idp)))
    idp.keys.append(rsa_key_2)
    # Within the interval the key cannot be learnt yet ...
    clock.advance(5)
    token = sign(rsa_key_2, claims_for(idp))
    await assert_refused(verifier, token, "unknown signing key")
    assert idp.jwks_fetches == 1
    # ... once it has passed, it can.
    clock.advance(5)
    assert (await verifier.verify(token)).user == "alice"
    assert idp.jwks_fetches == 2


async def test_flood_of_unknown_kids_causes_no_request_storm(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    await verifier.verify(sign(rsa_key, claims_for(idp)))
    assert idp.jwks_fetches == 1
    clock.advance(60)

    def random_kid_token() -> str:
        return sign(rsa_key, claims_for(idp), kid=secrets.token_hex(8))

    idp.hold()  # keep the refresh in flight until every request has joined it
    flood = asyncio.gather(
        *(verifier.verify(random_kid_token()) for _ in range(50)), return_exceptions=True
    )
    await idp.jwks_waiting.wait()
    idp.release()
    results = await flood
    assert all(isinstance(r, Unauthenticated) for r in results), results
    assert all("unknown signing key" in str(r) for r in results)
    assert idp.jwks_fetches == 2  # one refresh for all fifty

    # An immediate second wave costs nothing at all.
    results = await asyncio.gather(
        *(verifier.verify(random_kid_token()) for _ in range(50)), return_exceptions=True
    )
    assert all("unknown signing key" in str(r) for r in results)
    assert idp.jwks_fetches == 2
    # Valid tokens keep working throughout.
    assert (await verifier.verify(sign(rsa_key, claims_for(idp)))).user == "alice"


async def test_cold_start_concurrent_requests_share_one_fetch(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock)
    idp.hold()
    batch = asyncio.gather(
        *(verifier.verify(sign(rsa_key, claims_for(idp, sub=f"u{i}"))) for i in range(20))
    )
    await idp.jwks_waiting.wait()
    idp.release()
    principals = await batch
    assert [p.user for p in principals] == [f"u{i}" for i in range(20)]
    assert idp.jwks_fetches == 1


async def test_cache_expiry_refetches_and_outage_keeps_stale_keys(idp, clock, rsa_key) -> None:
    verifier = make_verifier(idp, clock, jwks_cache_seconds=300)
    # A new token each time: a token verified before is not checked against the keys again.
    await verifier.verify(sign(rsa_key, claims_for(idp, jti="1")))
    clock.advance(300)
    await verifier.verify(sign(rsa_key, claims_for(idp, jti="2")))
    assert idp.jwks_fetches == 2
    # The provider goes down: the cached keys stay in use.
    idp.fail_status = 500
    clock.advance(300)
    assert (await verifier.verify(sign(rsa_key, claims_for(idp, jti="3")))).user == "alice"
    assert idp.jwks_fetches == 3


async def test_verified_tokens_are_kept_until_their_exp(idp, clock, rsa_key) -> None:
    now = [time.time()]
    verifier = OidcVerifier(
        OidcConfig(issuer=idp.issuer, audience=AUDIENCE, jwks_url=idp.jwks_url, admin_group=ADMINS),
        clock=clock, now=lambda: now[0],
    )
    token = sign(rsa_key, claims_for(idp, exp=int(now[0]) + 60))
    assert (await verifier.verify(token, client_addr="10.0.0.1")).user == "alice"
    # Kept: the provider being away and the key cache having expired change nothing.
    idp.fail_status = 500
    clock.advance(10_000)
    principal = await verifier.verify(token, client_addr="10.0.0.2")
    assert (principal.user, principal.client_addr) == ("alice", "10.0.0.2")
    assert idp.jwks_fetches == 1
    # A tampered copy is another token, verified in full (and refused).
    head, body, signature = token.split(".")
    await assert_refused(verifier, f"{head}.{body}.{signature[:-4]}AAAA", "bad signature")
    # Past its exp (and the clock skew allowed) it is verified again, and refused.
    idp.fail_status = None
    now[0] += 3600
    await assert_refused(verifier, token, "expired")


async def test_discovery_when_no_jwks_url(idp, clock, ec_key) -> None:
    verifier = make_verifier(idp, clock, jwks_url=None)
    principal = await verifier.verify(sign(ec_key, claims_for(idp), alg="ES256"))
    assert principal.user == "alice"
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


async def test_discovery_with_mismatched_issuer_is_unavailable(idp, clock, rsa_key) -> None:
    idp.discovery_issuer = "https://evil.example"
    verifier = make_verifier(idp, clock, jwks_url=None)
    await assert_refused(
        verifier,
        sign(rsa_key, claims_for(idp)),
        "keys are unavailable",
        error=IdentityProviderUnavailable,
    )
    assert idp.jwks_fetches == 0


async def test_unreachable_jwks_is_unavailable_and_not_hammered(idp, clock, rsa_key) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = make_verifier(idp, clock, jwks_url=f"http://127.0.0.1:{port}/jwks")
    token = sign(rsa_key, claims_for(idp))
    message = await assert_refused(verifier, token, error=IdentityProviderUnavailable)
    assert message == "cannot verify the token: the identity provider's keys are unavailable"
    await assert_refused(verifier, token, error=IdentityProviderUnavailable)
    assert verifier.jwks.fetch_attempts == 1  # the failure is remembered for the interval
    clock.advance(10)
    await assert_refused(verifier, token, error=IdentityProviderUnavailable)
    assert verifier.jwks.fetch_attempts == 2


async def test_jwks_http_error_is_unavailable(idp, clock, rsa_key) -> None:
    idp.fail_status = 503
    verifier = make_verifier(idp, clock)
    err = await assert_refused(
        verifier, sign(rsa_key, claims_for(idp)), error=IdentityProviderUnavailable
    )
    assert "unavailable" in err
    assert issubclass(IdentityProviderUnavailable, Unauthenticated)


async def test_unusable_jwks_entries_are_skipped(idp, clock, rsa_key) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        small = RSAKey.generate_key(1024, parameters={"kid": "small"})
    idp.extra_entries = [
        {"kty": "RSA", "kid": "broken", "n": "!!"},
        {**small.as_dict(private=False)},
        {**rsa_key.as_dict(private=False), "kid": "enc", "use": "enc"},
        "not an object",
    ]
    verifier = make_verifier(idp, clock)
    assert (await verifier.verify(sign(rsa_key, claims_for(idp)))).user == "alice"
    await assert_refused(verifier, sign(small, claims_for(idp)), "unknown signing key")
    enc_token = jwt.encode(
        {"alg": "RS256", "kid": "enc"}, claims_for(idp), rsa_key, algorithms=["RS256"]
    )
    await assert_refused(verifier, enc_token, "unknown signing key")


# --- routing ---------------------------------------------------------------------------


def test_looks_like_jwt(rsa_key) -> None:
    token = jwt.encode({"alg": "RS256"}, {"sub": "x"}, rsa_key, algorithms=["RS256"])
    assert looks_like_jwt(token)
    assert looks_like_jwt("eyJhbGciOiJub25lIn0.e30.")  # unsigned: routed, then refused
    for other in (
        "jg_" + secrets.token_urlsafe(32),
        "jg_a.b.c",
        "a.b",
        "a.b.c.d",
        ".b.c",
        "a..c",
        "a b.c.d",
        "a+b.c/d.e",
        "",
    ):
        assert not looks_like_jwt(other), other
