"""The rate limiter behind rate-limited logs, and the event loop's error log built on it."""
from __future__ import annotations

import asyncio
import logging

import pytest

from publisher.ratelimit import RateLimit, suffix
from publisher.server import install_loop_error_log


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class TestRateLimit:
    def test_burst_then_rate_with_the_count_of_held_back(self):
        clock = FakeClock()
        limit = RateLimit(rate=2.0, burst=3, clock=clock)
        assert [limit.allow() for _ in range(5)] == [0, 0, 0, None, None]
        clock.t = 0.5  # one token back
        assert limit.allow() == 2 and limit.allow() is None
        clock.t = 100  # refills up to the burst only
        assert [limit.allow() for _ in range(4)] == [1, 0, 0, None]

    def test_bad_arguments(self):
        with pytest.raises(ValueError):
            RateLimit(rate=0, burst=1, clock=FakeClock())
        with pytest.raises(ValueError):
            RateLimit(rate=1, burst=0, clock=FakeClock())

    def test_suffix(self):
        assert suffix(0) == "" and "3 similar" in suffix(3)


async def test_loop_errors_are_logged_at_a_bounded_rate(caplog):
    """accept() failing for want of file descriptors is reported by the loop on every
    attempt; a storm of them leaves a few lines, without tracebacks."""
    loop = asyncio.get_running_loop()
    old = loop.get_exception_handler()
    install_loop_error_log(loop)
    try:
        with caplog.at_level(logging.ERROR):
            for _ in range(1000):
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "Too many open files")})
    finally:
        loop.set_exception_handler(old)
    lines = [r for r in caplog.records if "out of system resource" in r.getMessage()]
    assert 1 <= len(lines) <= 5 and all(r.exc_info is None for r in lines)
