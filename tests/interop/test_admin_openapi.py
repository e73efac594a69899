"""The admin API's OpenAPI document is kept true: schemathesis generates requests from the
document the server serves, sends them with valid credentials (a token holding every role)
and checks each answer against it: no server error, no status, content type, header or body
the document does not declare. A demo of its own: the generated requests change it."""
from __future__ import annotations

import hashlib

import pytest
import requests
import schemathesis
from schemathesis.checks import positive_data_acceptance
from hypothesis import HealthCheck, settings

from repo_testlib import Server, make_demo

TOKEN = "schemathesis-all-roles-token"


@pytest.fixture(scope="module")
def admin_schema(tmp_path_factory):
    demo = make_demo(tmp_path_factory.mktemp("openapi") / "demo", subscribers=20, delay=0)
    with demo.config.open("a") as f:
        f.write(f'\n[[admin.tokens]]\nname = "all"\nsha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
                f'roles = ["publisher", "revoker", "operator", "auditor"]\n')
    server = Server(demo)
    base = f"https://127.0.0.1:{demo.admin_port}"
    doc = requests.get(f"{base}/admin/v1/openapi.json", verify=str(demo.pki / "admin-ca.pem"), timeout=10).json()
    _CA[:] = [str(demo.pki / "admin-ca.pem")]  # requests trusts the listener through the admin CA
    schema = schemathesis.openapi.from_dict(doc)
    schema.config.base_url = base
    yield schema
    server.stop()


_CA: list[str] = []


def _session(case) -> requests.Session:
    s = requests.Session()
    s.verify = _CA[0]
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    return s



def test_the_served_api_answers_as_its_document_says(admin_schema):
    """Every operation, a bounded number of generated requests each (schemathesis's pytest
    plugin does not run under this pytest: its Python API does the same)."""
    from hypothesis import given

    operations = [r.ok() for r in admin_schema.get_all_operations()]
    assert len(operations) >= 15
    session = _session(None)
    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            # Not positive_data_acceptance: a request the schema allows may still be refused
            # with a documented 400 (a PEM that is no certificate, a time in the future).
            case.call_and_validate(session=session, timeout=20, verify=_CA[0],
                                   excluded_checks=[positive_data_acceptance])

        check()
