"""The event-loop lag probe (publisher.looplag), the deferred start-up of the front-ends
(publisher.startup), and `/healthz/loop` on a real `pkirepo serve`."""
from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.gcpause import GcPauses
from publisher.looplag import LoopLag, LoopProbeSettings
from publisher.startup import DeferredStart


class HandClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def probe(clock: HandClock, **kw) -> LoopLag:
    return LoopLag(LoopProbeSettings(**kw), clock=clock)


class TestLoopLag:
    def test_windows_keep_only_recent_samples_and_start_keeps_all(self):
        clock = HandClock()
        p = probe(clock)
        p.record(0.250)  # an old stall
        clock.t += 30
        for _ in range(99):
            p.record(0.001)
        p.record(0.020)
        snap = p.snapshot()
        assert snap["max_ms"] == 250.0 and snap["samples"] == 101
        assert snap["windows"]["10s"] == {"max_ms": 20.0, "p99_ms": 20.0, "samples": 100}
        assert snap["windows"]["60s"]["max_ms"] == 250.0
        clock.t += 61
        assert snap["max_ms"] == p.snapshot()["max_ms"]  # since start: never forgotten
        assert p.snapshot()["windows"]["60s"]["samples"] == 0

    def test_memory_is_bounded(self):
        clock = HandClock()
        p = probe(clock, interval_ms=10)
        for _ in range(20_000):
            clock.t += 0.01
            p.record(0.0)
        assert len(p._recent) <= 6001
        assert p.snapshot()["samples"] == 20_000

    def test_late_wakeups_are_logged_at_a_bounded_rate(self, caplog):
        clock = HandClock()
        p = probe(clock, warn_ms=50)
        with caplog.at_level(logging.WARNING, logger="pkirepo.loop"):
            p.record(0.049)
            for _ in range(100):
                p.record(0.080)
        lines = [r.getMessage() for r in caplog.records]
        assert 1 <= len(lines) <= 3
        assert "event loop held for 80 ms (threshold 50 ms)" in lines[0]

    @given(st.lists(st.floats(min_value=-1, max_value=20, allow_nan=False), min_size=1, max_size=300))
    @settings(max_examples=60, deadline=None)
    def test_figures_are_consistent(self, lags):
        clock = HandClock()
        p = probe(clock)
        for lag in lags:
            p.record(lag)
        snap = p.snapshot()
        worst = max(0.0, max(lags)) * 1000
        assert snap["samples"] == len(lags)
        assert snap["max_ms"] == pytest.approx(worst, abs=0.06)
        for w in snap["windows"].values():
            assert w["samples"] == len(lags)
            assert 0 <= w["p99_ms"] <= w["max_ms"]
        assert snap["p99_ms"] <= min(worst, 10_000) + 1

    def test_the_probe_runs_on_a_real_loop(self):
        async def main():
            p = LoopLag(LoopProbeSettings(interval_ms=5))
            task = asyncio.create_task(p.run())
            for _ in range(200):  # bounded: until a few wake-ups were measured
                await asyncio.sleep(0.005)
                if p.snapshot()["samples"] >= 3:
                    break
            task.cancel()
            return p.snapshot()

        assert asyncio.run(main())["samples"] >= 3


class TestDeferredStart:
    def test_startup_runs_in_the_background_and_cleanup_in_order(self):
        events = []

        async def main():
            gate = asyncio.Event()

            async def slow(app):
                events.append("start")
                await gate.wait()
                events.append("ready")
                yield
                events.append("cleanup")

            d = DeferredStart()
            gen = d.defer(slow, "slow")(None)
            await gen.__anext__()  # returns before the slow start-up is done
            events.append("listening")
            gate.set()
            await d.wait()
            with pytest.raises(StopAsyncIteration):
                await gen.__anext__()
            return d

        d = asyncio.run(main())
        assert events == ["listening", "start", "ready", "cleanup"] or events == ["start", "listening", "ready",
                                                                                   "cleanup"]
        assert "slow" in d.durations

    def test_a_failed_startup_is_raised_by_wait_and_skips_cleanup(self):
        async def main():
            async def broken(app):
                raise OSError("port in use")
                yield  # pragma: no cover

            d = DeferredStart()
            gen = d.defer(broken, "broken")(None)
            await gen.__anext__()
            with pytest.raises(OSError, match="port in use"):
                await d.wait()
            with pytest.raises(StopAsyncIteration):
                await gen.__anext__()

        asyncio.run(main())

    def test_stopping_during_startup_cancels_it_and_releases(self):
        released = []

        async def main():
            async def stuck(app):
                try:
                    await asyncio.Event().wait()
                    yield
                finally:
                    released.append(True)

            d = DeferredStart()
            gen = d.defer(stuck, "stuck")(None)
            await gen.__anext__()
            await asyncio.sleep(0)
            with pytest.raises(StopAsyncIteration):
                await gen.__anext__()

        asyncio.run(main())
        assert released == [True]


def _get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, json.loads(r.read())


def test_healthz_loop_reports_and_nothing_resets_it(shared_server):
    status, first = _get(f"{shared_server.url}/healthz/loop")
    assert status == 200
    assert {"since", "max_ms", "p99_ms", "samples", "windows"} <= first.keys()
    assert set(first["windows"]) == {"10s", "60s"}
    # pkirepo serve froze its start-up objects out of the collector's walks, and times collections.
    assert first["gc"]["frozen_objects"] > 10_000
    assert [g["generation"] for g in first["gc"]["generations"]] == [0, 1, 2]
    _, second = _get(f"{shared_server.url}/healthz/loop?reset=1")
    assert second["samples"] >= first["samples"] and second["max_ms"] >= first["max_ms"]
    assert second["since"] == first["since"]


@given(st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=40))
@settings(max_examples=25, deadline=None)
def test_healthz_loop_any_query_is_the_same_read_only_answer(shared_server, query):
    status, body = _get(f"{shared_server.url}/healthz/loop?{urllib.parse.quote(query, safe='=&')}")
    assert status == 200 and body["samples"] >= 0 and "windows" in body


class TestGcPauses:
    def test_collections_are_counted_and_timed_by_generation(self):
        import gc

        clock = HandClock()
        pauses = GcPauses(clock=clock)
        pauses.install()
        try:
            pauses._callback("start", {"generation": 2})
            clock.t += 0.031
            pauses._callback("stop", {"generation": 2})
            before = pauses.count[0] + pauses.count[1] + pauses.count[2]
            gc.collect(0)  # a real one, through the installed callback
        finally:
            pauses.uninstall()
        assert pauses.count[2] >= 1 and pauses.worst[2] >= 0.030
        assert sum(pauses.count) == before + 1
        gens = pauses.snapshot()["generations"]
        assert gens[2]["worst_ms"] >= 30.0
        assert pauses._callback not in gc.callbacks

    def test_a_stop_without_a_start_is_ignored(self):
        pauses = GcPauses(clock=HandClock())
        pauses._callback("stop", {"generation": 1})
        assert pauses.count == [0, 0, 0]


class TestStallWatch:
    def test_a_stall_is_sampled_once_with_the_loop_threads_stack(self):
        import threading

        from publisher.stallwatch import StallWatch

        clock = HandClock()
        watch = StallWatch(40, clock=clock)
        watch._loop_thread = threading.get_ident()  # this thread plays the loop
        watch.beat()
        clock.t += 0.030
        assert watch.check() is None  # not over the threshold yet
        clock.t += 0.020
        stack = watch.check()
        assert stack is not None and "test_looplag.py" in stack and "test_a_stall_is_sampled_once" in stack
        assert watch.check() is None  # the same stall is sampled once
        watch.beat()
        clock.t += 0.050
        again = watch.check()
        assert again is not None and "test_a_stall_is_sampled_once" in again
        snap = watch.snapshot()
        assert snap["stalls"] == 2 and sum(w["count"] for w in snap["where"]) == 2

    def test_the_watcher_thread_names_a_blocking_step_on_a_real_loop(self):
        import time

        from publisher.stallwatch import StallWatch

        def blocking_step():
            time.sleep(0.3)  # holds the loop, as a slow synchronous call would

        async def main():
            p = LoopLag(LoopProbeSettings(interval_ms=5), stalls=StallWatch(50, period_ms=5))
            task = asyncio.create_task(p.run())
            await asyncio.sleep(0.05)
            blocking_step()
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return p

        p = asyncio.run(main())
        where = p.snapshot()["stalls"]["where"]
        assert any("blocking_step" in w["stack"] for w in where), where
        assert p.stalls._thread is None  # stopped with the probe


def test_prewarm_reads_every_byte_of_the_store_files_and_stops_when_told(tmp_path):
    import threading

    from publisher import prewarm

    db = tmp_path / "s.sqlite"
    db.write_bytes(b"x" * (prewarm.CHUNK * 2 + 5))
    (tmp_path / "s.sqlite-wal").write_bytes(b"y" * 7)
    files = prewarm.store_files(db)
    assert prewarm.read_into_cache(files) == prewarm.CHUNK * 2 + 5 + 7
    assert prewarm.read_into_cache([tmp_path / "missing"]) == 0
    stop = threading.Event()
    seen = []
    stop_after_one = lambda n: (seen.append(n), stop.set())  # noqa: E731
    assert prewarm.read_into_cache(files, stop=stop, progress=stop_after_one) == prewarm.CHUNK


def test_prewarm_runs_as_a_child_process_that_reports_what_it_read(tmp_path):
    """The server never opens the database file itself for this (closing a descriptor would
    drop SQLite's POSIX locks): it runs `python -m publisher.prewarm` and reads its report."""
    import subprocess

    from publisher import prewarm

    db = tmp_path / "s.sqlite"
    db.write_bytes(b"z" * 12345)
    argv = prewarm.command(db)
    assert argv[1:3] == ["-m", "publisher.prewarm"] and str(db) in argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert int(out[0]) == 12345 and float(out[1]) >= 0
