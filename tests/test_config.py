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
    _assert_refused(tmp_path, snippet, message)


def _assert_refused(tmp_path, snippet: str, message: str) -> None:
    """A one-CA config with `snippet` is refused, naming the file and saying `message`."""
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


@pytest.mark.parametrize("snippet,message", [
    ('[crl]\nnext_update_hours = 48\n', "crl.next_update_hours: 48 h breaks policy.max_next_update_hours = 24"),
    ('[crl]\nnext_update_hours = 12\n[policy]\nmax_next_update_hours = 6\n',
     "crl.next_update_hours: 12 h breaks policy.max_next_update_hours = 6"),
    ('[crl]\nsupplementary_delay_seconds = 7200\n[policy]\nmax_revocation_publication_hours = 1\n',
     "crl.supplementary_delay_seconds: 7200 s breaks policy.max_revocation_publication_hours = 1"),
    # One issuance a day at 01:15 leaves 24 h between CRLs: more than a 12-hour policy allows.
    ('[crl]\ndaily = ["01:15"]\nsupplementary_delay_seconds = 60\n[policy]\nmax_revocation_publication_hours = 12\n',
     "crl.daily: the issuance times leave 1 day, 0:00:00 between two CRLs"),
    ('[crl]\narl_period_days = 400\n', "crl.arl_period_days: 400 days breaks policy.min_arl_frequency_days = 365"),
    ('[crl]\narchive_years = 8\n[policy]\nmin_archive_years = 10\n',
     "crl.archive_years: 8 breaks policy.min_archive_years = 10"),
    ('[policy]\nmax_next_update_hours = 0\n', "policy.max_next_update_hours: must be at least 1"),
    ('[policy]\nmax_downtime = 5\n', "[policy] has unknown key(s): max_downtime"),
])
def test_settings_that_break_the_policy_are_refused(tmp_path, snippet, message):
    _assert_refused(tmp_path, snippet, message)


def test_policy_reports_every_broken_rule_and_is_kept(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[crl]\nnext_update_hours = 48\narl_period_days = 400\n'
                   '[[ca]]\nname = "A"\ncertificate = "ca.pem"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "crl.next_update_hours" in e.value.message and "crl.arl_period_days" in e.value.message
    cfg.write_text('[policy]\nmax_maintenance_minutes_per_week = 90\nmax_next_update_hours = 48\n'
                   '[crl]\nnext_update_hours = 48\n[[ca]]\nname = "A"\ncertificate = "ca.pem"\n')
    s = load_settings(cfg)
    assert s.policy.max_maintenance_minutes_per_week == 90 and s.crl.next_update.total_seconds() == 48 * 3600


def test_store_prewarm_is_for_sqlite_only(tmp_path):
    """`store.prewarm` defaults on for SQLite and is refused, naming the key, with a
    PostgreSQL store (whose buffers are its own)."""
    cfg = copy_example(tmp_path, "pkirepo.example.toml", ["pki/root.pem", "pki/ca.pem"])
    base = cfg.read_text()
    assert load_settings(cfg).store_prewarm is True
    cfg.write_text(base.replace("# prewarm = true", "prewarm = false"))
    assert load_settings(cfg).store_prewarm is False
    cfg.write_text(base.replace("# prewarm = true", "prewarm = true")
                   .replace('path = "pkirepo.sqlite"', 'path = "pkirepo.sqlite"\nurl = "postgresql://u@127.0.0.1/db"'))
    with pytest.raises(ConfigError, match="store.prewarm"):
        load_settings(cfg)
