"""The token bucket every signaling rate limit uses, against a fake clock."""

from __future__ import annotations

from signaling.token_bucket import TokenBucket


def test_a_full_bucket_gives_its_burst_then_refuses() -> None:
    bucket = TokenBucket.full(per_s=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s(0.0) == 0.5


def test_it_refills_at_its_rate_and_no_further_than_its_burst() -> None:
    bucket = TokenBucket.full(per_s=2.0, burst=3, now=0.0)
    for _ in range(3):
        bucket.take(0.0)
    assert not bucket.take(0.25)  # half a token
    assert bucket.wait_s(0.25) == 0.25
    assert bucket.take(0.5)
    assert not bucket.is_full(1.0)
    assert bucket.is_full(100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_looking_takes_nothing() -> None:
    bucket = TokenBucket.full(per_s=1.0, burst=1, now=0.0)
    assert bucket.has_token(0.0) and bucket.has_token(0.0)
    assert bucket.take(0.0)
    assert not bucket.has_token(0.0)


def test_a_clock_that_goes_back_adds_no_tokens() -> None:
    bucket = TokenBucket.full(per_s=1.0, burst=2, now=10.0)
    bucket.take(10.0)
    bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)  # the half second from 10 counts, the jump back does not
    assert bucket.take(11.0)
