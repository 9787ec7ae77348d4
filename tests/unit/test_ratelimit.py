import pytest

from app.core.ratelimit import RateLimiter
from app.domain.errors import RateLimited


def test_bucket_allows_a_burst_then_refills_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("alice")
    with pytest.raises(RateLimited) as caught:
        limiter.check("alice")
    assert 0.9 < caught.value.retry_after <= 1.0 and caught.value.code == "RATE_LIMITED"
    limiter.check("bob")  # buckets are per principal
    now[0] += 1.0
    limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")


def test_zero_rate_disables_the_limit():
    limiter = RateLimiter(per_minute=0, burst=0)
    refused = 0
    for _ in range(1000):
        try:
            limiter.check("alice")
        except RateLimited:
            refused += 1
    assert refused == 0
    # The same loop against a limit is refused: the count above could have been other.
    limited = RateLimiter(per_minute=60, burst=10, clock=lambda: 0.0)
    for _ in range(10):
        limited.check("alice")
    with pytest.raises(RateLimited):
        limited.check("alice")


def test_units_are_taken_all_or_none():
    limiter = RateLimiter(per_minute=60, burst=10, clock=lambda: 0.0)
    limiter.check("alice", units=8)
    with pytest.raises(RateLimited) as caught:
        limiter.check("alice", units=3)
    assert "3 more in this request" in caught.value.message
    limiter.check("alice", units=2)  # the refused three took nothing
    with pytest.raises(RateLimited):
        limiter.check("alice")
