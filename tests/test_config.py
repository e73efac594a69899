"""Config loading: the shipped examples are valid; errors name the key."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from publisher.config import parse_listen
from publisher.root import load_settings
from publisher.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def copy_example(tmp_path, name, files):
    cfg = tmp_path / name
    shutil.copy(ROOT / "config" / name, cfg)
    for f in files:
        p = Path(f) if Path(f).is_absolute() else tmp_path / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("placeholder")
    return cfg


def test_reference_example_loads(tmp_path):
    cfg = copy_example(tmp_path, "pkirepo.example.toml", ["pki/root.pem", "pki/ca.pem"])
    s = load_settings(cfg)
    assert [c.name for c in s.cas] == ["RootCA2", "IssuingCA"]
    assert s.crl.supplementary_delay.total_seconds() == 300
    assert s.crl.archive_retention.days >= 7 * 365
    # The [ocsp] and [ldap] sections are read by their own packages: every key there is valid.
    assert s.ocsp.max_nonce_length == 32
    assert s.ldap.listen == "127.0.0.1:1389"


def test_hongkongpost_example_maps_appendix_c(tmp_path):
    text = (ROOT / "config" / "hongkongpost.example.toml").read_text().replace("/etc/pkirepo/", str(tmp_path) + "/")
    (tmp_path / "hk.toml").write_text(text)
    for f in ("hongkongpost-root-ca-2.pem", "hongkongpost-ecert-ca-2-17.pem"):
        (tmp_path / f).write_text("placeholder")
    s = load_settings(tmp_path / "hk.toml")
    ca = s.ca("eCertCA2-17")
    assert ca.full_crl == "eCertCA2-17CRL1"
    assert ca.partition_names["http://crl1.eCert.gov.hk/crl/eCertCA2-17CRL2.crl"] == "eCertCA2-17CRL2"
    assert [t.strftime("%H:%M") for t in s.crl.daily] == ["01:15", "06:15", "11:00"]
    assert s.ca("RootCA2").key is None and s.ca("RootCA2").arl == "RootCA2ARL"
    assert s.crl.reason_policy.value == "write"


@pytest.mark.parametrize("snippet,message", [
    ('[crl]\nsupplementary_delay_seconds = 90000\n', "crl.supplementary_delay_seconds: must be at most 86400"),
    ('[crl]\ndaily = ["25:00"]\n', "crl.daily"),
    ('[crl]\nreason_unspecified = "sometimes"\n', "crl.reason_unspecified"),
    ('[crl]\narchive_years = 3\n', "crl.archive_years: must be at least 7"),
    ('[crl]\nnext_update_hours = "24"\n', "crl.next_update_hours: must be an integer"),
    ('[http]\nlisten = "nowhere"\n', "http.listen"),
    ('[http]\nbase_url = "ftp://x"\n', "http.base_url"),
    ('[store]\npaht = "x"\n', "unknown key(s): paht"),
    ('[bogus]\n', "unknown key(s): bogus"),
])
def test_bad_values_name_the_key(tmp_path, snippet, message):
    (tmp_path / "ca.pem").write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text(snippet + '\n[[ca]]\nname = "A"\ncertificate = "ca.pem"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert message in e.value.message
    assert str(cfg) in e.value.message


def test_ca_table_errors(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[ca]]\nname = "A"\ncertificate = "missing.pem"\n')
    with pytest.raises(ConfigError, match=r"ca\[0\]\.certificate: no such file"):
        load_settings(cfg)
    cfg.write_text("")
    with pytest.raises(ConfigError, match=r"at least one \[\[ca\]\]"):
        load_settings(cfg)
    (tmp_path / "a.pem").write_text("x")
    cfg.write_text('[[ca]]\nname = "A"\ncertificate = "a.pem"\nfull_crl = "X"\n'
                   '[[ca]]\nname = "B"\ncertificate = "a.pem"\nfull_crl = "X"\n')
    with pytest.raises(ConfigError, match="used twice"):
        load_settings(cfg)


def test_parse_listen():
    assert parse_listen("127.0.0.1:389") == ("127.0.0.1", 389)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ValueError):
        parse_listen("127.0.0.1")
