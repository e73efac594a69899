"""The `[admin]` section: refusals name the key; the demo's section loads."""
from __future__ import annotations

import pytest

from publisher.errors import ConfigError
from publisher.root import load_settings
from repo_testlib import make_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("admin-settings") / "demo", subscribers=10)


def test_the_demo_section_loads(demo):
    s = load_settings(demo.config).admin
    assert s.enabled and s.listen == ("127.0.0.1", demo.admin_port)
    assert {r for c in s.clients for r in c.roles} == {"publisher", "revoker", "operator", "auditor"}
    assert len(s.client_ca_certs) == 1 and s.max_batch == 100


@pytest.mark.parametrize("change, message", [
    (lambda t, d: t.replace(f'listen = "127.0.0.1:{d.admin_port}"', f'listen = "127.0.0.1:{d.http_port}"'),
     "admin.listen: port"),
    (lambda t, d: t + '\n[[admin.tokens]]\nname = "x"\nsha256 = "secret"\nroles = ["revoker"]\n',
     "sha256: the token's SHA-256"),
    (lambda t, d: t + '\n[[admin.tokens]]\nname = "x"\nsha256 = "' + "a" * 64 + '"\nroles = ["root"]\n',
     "unknown role(s) root"),
    (lambda t, d: t.replace('roles = ["auditor"]', 'roles = ["auditor"]\ncolour = "red"'), "unknown key(s): colour"),
    (lambda t, d: t.replace('subject = "CN=Demo admin auditor', 'subject = "no name here'), "RFC 4514"),
    (lambda t, d: t.replace('client_cas = ["pki/admin-ca.pem"]', 'client_cas = ["pki/nope.pem"]'),
     "client_cas[0]: cannot read"),
    (lambda t, d: t.replace('max_batch = 100', 'max_batch = 0'), "max_batch: must be at least 1"),
])
def test_refusals_name_the_key(demo, tmp_path, change, message):
    text = demo.config.read_text()
    bad = demo.dir / "bad.toml"
    bad.write_text(change(text, demo))
    with pytest.raises(ConfigError) as e:
        load_settings(bad)
    assert message in e.value.message
