"""Shared fixtures: demo repositories made by the real CLI and servers started as real
subprocesses on 127.0.0.1 (the helpers themselves are in repo_testlib.py)."""
from __future__ import annotations

import pytest
from repo_testlib import Demo, Server, make_demo

__all__ = ["Demo", "Server"]


@pytest.fixture(scope="session")
def shared_demo(tmp_path_factory) -> Demo:
    """A demo repository for tests that only read it."""
    return make_demo(tmp_path_factory.mktemp("demo"), subscribers=60)


@pytest.fixture(scope="session")
def shared_server(shared_demo):
    server = Server(shared_demo)
    yield server
    server.stop()


@pytest.fixture
def fresh_demo(tmp_path) -> Demo:
    """A demo repository of the test's own, to change."""
    return make_demo(tmp_path / "demo")


@pytest.fixture
def server_factory():
    started: list[Server] = []

    def start(demo: Demo, *extra: str) -> Server:
        s = Server(demo, *extra)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()


@pytest.fixture(scope="session")
def demo_factory():
    """make_demo(directory, subscribers=..., delay=...) for fixtures of other scopes."""
    return make_demo


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the session (starting one takes a couple of seconds);
    each test makes its own database on it."""
    from pg_testlib import PgServer

    server = PgServer().start()
    yield server
    server.stop()
