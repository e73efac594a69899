"""Fixtures for the LDAP tests (data and helpers in ldap_fixtures.py)."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from ldap.directory import Directory, DirectoryHolder
from ldap.settings import LdapSettings

from ldap_fixtures import PKI, Session, make_entries, make_pki


@pytest.fixture(scope="session")
def pki() -> PKI:
    return make_pki()


@pytest.fixture(scope="session")
def entries(pki) -> list[tuple[str, dict]]:
    return make_entries(pki)


@pytest.fixture(scope="session")
def directory(entries) -> Directory:
    return Directory.from_entries(entries)


@pytest.fixture
def session_factory(directory):
    def make(settings: LdapSettings | None = None, directory_: Directory | None = None,
             clock: Clock | None = None) -> Session:
        return Session(DirectoryHolder(directory_ or directory), settings or LdapSettings(),
                       clock or Clock())
    return make


@pytest.fixture
def session(session_factory) -> Session:
    return session_factory()

