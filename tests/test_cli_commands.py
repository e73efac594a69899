"""The operator's commands beyond feeding and publishing: `--version`, `cert show` and
`cert list`, `config check`, `ca retire`, `--dry-run`, `import openssl-index --crlnumber`,
and what `revoke` says about when the change is published. Real `pkirepo` subprocesses over
private copies of the demo."""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sqlite3
from importlib import metadata

import pytest
from cryptography import x509

from crl_testlib import ARL, CA, FULL, PARTITIONS, ROOT, copy_demo, crl_number, run_cli, template_demo
from publisher.cli import build_parser

BAD_INPUT = 2


@pytest.fixture
def demo(tmp_path_factory, tmp_path):
    return copy_demo(template_demo(tmp_path_factory), tmp_path / "demo")


def serial_of(path) -> str:
    return f"{x509.load_pem_x509_certificate(path.read_bytes()).serial_number:X}".zfill(2)


def store_dump(demo) -> str:
    """Every row of the store, as SQL: equal dumps mean nothing was written."""
    conn = sqlite3.connect(demo.dir / "pkirepo.sqlite")
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def test_version_is_the_installed_package_version():
    p = run_cli("--version")
    assert p.returncode == 0
    assert p.stdout.strip() == f"pkirepo {metadata.version('pkirepo')}"


def _actions(parser: argparse.ArgumentParser, path=("pkirepo",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        else:
            yield path, parser, action


def test_every_option_is_described_and_every_command_has_an_example():
    commands = set()
    for path, parser, action in _actions(build_parser()):
        assert action.help, f"{' '.join(path)} {action.option_strings or action.dest} has no help"
        if parser._defaults.get("func"):
            commands.add(path)
            assert parser.epilog and "Example:" in parser.epilog, f"{' '.join(path)} has no example"
    assert ("pkirepo", "cert", "show") in commands and ("pkirepo", "config", "check") in commands
    text = " ".join(run_cli("revoke", "--help").stdout.split())  # undo argparse's wrapping
    assert "0x prefix" in text and "20" in text and "YYYYMMDDHHMMSSZ" in text and "1950" in text


def test_verbose_does_not_log_every_database_call(demo):
    p = demo.cli("-v", "cert", "list", "--status", "hold")
    assert p.returncode == 0, p.stderr
    assert "aiosqlite" not in p.stderr


def test_cert_show_revoked_lists_its_crls(demo):
    serial = serial_of(demo.pki / "revoked.pem")
    p = demo.cli("cert", "show", "--issuer", CA, "--serial", serial, "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["serial"] == serial.upper() and info["status"] == "revoked" and info["ocsp"] == "revoked"
    assert info["revoked_at"].endswith("Z") and dt.datetime.fromisoformat(info["revoked_at"])
    by_name = {c["name"]: c for c in info["crls"]}
    # The full CRL and exactly one partition: the one its distribution point names.
    assert FULL in by_name and len(by_name) == 2
    (part,) = [n for n in by_name if n in PARTITIONS]
    assert info["distribution_point"].endswith(f"/{part}.crl")
    full_der = (demo.crl_dir / f"{FULL}.crl").read_bytes()
    assert by_name[FULL]["crl_number"] == crl_number(full_der) and by_name[FULL]["listed"] is True
    listed = x509.load_der_x509_crl((demo.crl_dir / f"{part}.crl").read_bytes())
    assert listed.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    text = demo.cli("cert", "show", "--issuer", CA, "--serial", serial).stdout
    assert f"{FULL} #{by_name[FULL]['crl_number']}" in text and "listed" in text and "OCSP:" in text


def test_cert_show_a_revocation_not_yet_in_a_crl_then_after_publish(demo):
    serial = serial_of(demo.pki / "good.pem")
    before = json.loads(demo.cli("cert", "show", "--issuer", CA, "--serial", serial, "--json").stdout)
    assert before["status"] == "good" and not any(c["listed"] for c in before["crls"])
    assert demo.cli("revoke", "--issuer", CA, "--serial", serial).returncode == 0
    pending = json.loads(demo.cli("cert", "show", "--issuer", CA, "--serial", serial, "--json").stdout)
    assert pending["status"] == "revoked" and pending["crls"] and not any(c["listed"] for c in pending["crls"])
    assert demo.cli("publish").returncode == 0
    after = json.loads(demo.cli("cert", "show", "--issuer", CA, "--serial", serial, "--json").stdout)
    assert all(c["listed"] for c in after["crls"])
    assert {c["crl_number"] for c in after["crls"]} != {c["crl_number"] for c in pending["crls"]}


def test_cert_show_a_revoked_ca_certificate_names_the_arl(demo):
    p = demo.cli("cert", "list", "--issuer", ROOT, "--status", "revoked", "--json")
    (retired,) = json.loads(p.stdout)
    info = json.loads(demo.cli("cert", "show", "--issuer", ROOT, "--serial", retired["serial"], "--json").stdout)
    assert [(c["name"], c["listed"]) for c in info["crls"]] == [(ARL, True)]


def test_cert_show_unknown_serial_and_issuer(demo):
    p = demo.cli("cert", "show", "--issuer", CA, "--serial", "0x1234")
    assert p.returncode != 0 and "1234" in p.stderr and "Traceback" not in p.stderr
    p = demo.cli("cert", "show", "--issuer", "NoSuchCA", "--serial", "0x1234")
    assert p.returncode != 0 and "NoSuchCA" in p.stderr
    p = demo.cli("cert", "show", "--issuer", CA, "--serial", "12G4")
    assert p.returncode == BAD_INPUT and "12G4" in p.stderr


def test_cert_list_filters_and_json(demo):
    everything = json.loads(demo.cli("cert", "list", "--json").stdout)
    assert len(everything) > 20
    keys = {"issuer", "serial", "subject", "status", "reason", "revoked_at", "invalidity_date",
            "not_before", "not_after", "is_ca", "distribution_point", "has_file"}
    assert all(set(c) == keys for c in everything)
    assert all(c["serial"] == c["serial"].upper() for c in everything)
    held = json.loads(demo.cli("cert", "list", "--issuer", CA, "--status", "hold", "--json").stdout)
    assert [c["serial"] for c in held] == [serial_of(demo.pki / "held.pem")]
    assert held[0]["reason"] == "certificateHold"
    revoked = json.loads(demo.cli("cert", "list", "--status", "revoked", "--json").stdout)
    assert revoked and all(c["status"] == "revoked" for c in revoked)
    assert {c["issuer"] for c in revoked} == {CA, ROOT}
    # Every certificate expires after notBefore + a day: nothing expires before 1950+.
    soon = min(dt.datetime.fromisoformat(c["not_after"]) for c in everything)
    cut = (soon + dt.timedelta(seconds=1)).strftime("%Y%m%d%H%M%SZ")
    expiring = json.loads(demo.cli("cert", "list", "--expiring-before", cut, "--json").stdout)
    assert expiring and all(dt.datetime.fromisoformat(c["not_after"]) <= soon for c in expiring)
    assert len(expiring) < len(everything)
    text = demo.cli("cert", "list", "--issuer", CA)
    assert text.stdout.count("\n") == sum(1 for c in everything if c["issuer"] == CA)


def test_cert_list_pages_through_more_than_one_page(demo, tmp_path):
    # 1,500 imported serials: more than one page of the listing.
    lines = [f"V\t301231235959Z\t\t{0x10000 + i:X}\tunknown\t/CN=p{i}" for i in range(1500)]
    (tmp_path / "index.txt").write_text("\n".join(lines) + "\n")
    assert demo.cli("import", "openssl-index", str(tmp_path / "index.txt"),
                    "--ca", str(demo.pki / "ca.pem")).returncode == 0
    listed = json.loads(demo.cli("cert", "list", "--issuer", CA, "--json").stdout)
    serials = [int(c["serial"], 16) for c in listed]
    assert serials == sorted(set(serials)) and len(serials) >= 1500


def test_config_check_ok(demo):
    demo.set_config("[admin]\nenabled = false", "[admin]\nenabled = true")
    p = run_cli("config", "check", str(demo.config))
    assert p.returncode == 0, p.stderr
    assert f"CA {CA}" in p.stdout and f"OCSP {CA}" in p.stdout and p.stdout.rstrip().endswith("ok")
    assert "admin API: https://127.0.0.1:" in p.stdout and "1 client CA(s)" in p.stdout
    # Without the store: config check never needs it.
    (demo.dir / "pkirepo.sqlite").rename(demo.dir / "elsewhere.sqlite")
    assert run_cli("config", "check", "--config", str(demo.config)).returncode == 0


def test_config_check_reports_every_problem(demo):
    demo.set_config("[admin]\nenabled = false", "[admin]\nenabled = true")
    os.chmod(demo.pki / "eCertCA2-17.key", 0o644)                      # a key others can read
    (demo.pki / "ocsp-RootCA2.pem").write_text("not a certificate")    # a broken responder
    (demo.pki / "admin-server.pem").write_bytes((demo.pki / "admin-revoker.pem").read_bytes())  # not its key's
    p = run_cli("config", "check", str(demo.config))
    assert p.returncode == BAD_INPUT
    assert "ca[1].key" in p.stderr and "chmod 600" in p.stderr
    assert "OCSP for RootCA2" in p.stderr and "ocsp-RootCA2.pem" in p.stderr
    assert "admin.certificate / admin.key" in p.stderr
    assert "3 problem(s)" in p.stderr and "Traceback" not in p.stderr


def test_config_check_wrong_passphrase_and_policy(demo):
    demo.set_config("next_update_hours = 24", "next_update_hours = 48")
    p = run_cli("config", "check", str(demo.config))
    assert p.returncode == BAD_INPUT
    assert "crl.next_update_hours" in p.stderr and "policy.max_next_update_hours" in p.stderr
    # The same rule refuses a start.
    assert demo.cli("crl", "list").returncode == BAD_INPUT


def test_config_check_missing_file():
    p = run_cli("config", "check", "/nonexistent/pkirepo.toml")
    assert p.returncode == BAD_INPUT and "/nonexistent/pkirepo.toml" in p.stderr


def test_revoke_says_when_it_is_published_and_dry_run_writes_nothing(demo):
    serial = serial_of(demo.pki / "good.pem")
    before = store_dump(demo)
    p = demo.cli("revoke", "--issuer", CA, "--serial", serial, "--reason", "keyCompromise", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "would become revoked (keyCompromise)" in p.stdout
    assert store_dump(demo) == before
    held = serial_of(demo.pki / "held.pem")
    assert "would become good" in demo.cli("release", "--issuer", CA, "--serial", held, "--dry-run").stdout
    p = demo.cli("hold", "--issuer", CA, "--serial", held, "--dry-run")
    assert p.returncode == BAD_INPUT and "already on hold" in p.stderr
    assert store_dump(demo) == before
    p = demo.cli("revoke", "--issuer", CA, "--serial", serial)
    assert p.returncode == 0
    assert "OCSP answers revoked now" in p.stdout
    assert "within 0 s" in p.stdout and "pkirepo publish" in p.stdout  # the demo copy's delay is 0
    assert store_dump(demo) != before


def test_import_crlnumber_and_dry_run(demo, tmp_path):
    index = tmp_path / "index.txt"
    index.write_text("V\t301231235959Z\t\t7001\tunknown\t/CN=a\n"
                     "R\t301231235959Z\t250101000000Z,keyCompromise\t7002\tunknown\t/CN=b\n")
    crlnumber = tmp_path / "crlnumber"
    crlnumber.write_text("64\n")  # openssl writes hex: 100
    before = store_dump(demo)
    args = ("import", "openssl-index", str(index), "--ca", str(demo.pki / "ca.pem"), "--crlnumber", str(crlnumber))
    p = demo.cli(*args, "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "would import 2 certificate(s), 1 revoked" in p.stdout
    assert store_dump(demo) == before
    assert demo.cli(*args).returncode == 0
    p = demo.cli(*args, "--dry-run")  # the same serials again: the dry run finds the duplicate
    assert p.returncode == BAD_INPUT and "7001" in p.stderr
    assert demo.cli("publish").returncode == 0
    for name in (FULL, *PARTITIONS):
        assert crl_number((demo.crl_dir / f"{name}.crl").read_bytes()) == 101, name
    # The root's numbering is its own.
    assert crl_number((demo.crl_dir / f"{ARL}.crl").read_bytes()) < 100
    crlnumber.write_text("zz\n")
    p = demo.cli(*args)
    assert p.returncode == BAD_INPUT and str(crlnumber) in p.stderr


def test_ca_retire(demo):
    arl = (demo.crl_dir / f"{ARL}.crl").read_bytes()
    p = demo.cli("ca", "retire", ROOT)
    assert p.returncode == 0, p.stderr
    assert f"{ARL} #{crl_number(arl)} stays published until" in p.stdout
    listing = demo.cli("crl", "list").stdout
    (line,) = [l for l in listing.splitlines() if l.startswith(ARL)]
    assert "retired" in line and "published until" in line
    # Its scopes are no longer issued, and it needs no key: the others still publish.
    demo.set_config(f'key = "pki/{ROOT}.key"\n', "")
    p = demo.cli("publish")
    assert p.returncode == 0, p.stderr
    assert ARL not in p.stdout and FULL in p.stdout
    assert (demo.crl_dir / f"{ARL}.crl").read_bytes() == arl
    events = sqlite3.connect(demo.dir / "pkirepo.sqlite").execute(
        "SELECT detail FROM events WHERE kind = 'ca-retire'").fetchall()
    assert events == [(ROOT,)]
    p = demo.cli("ca", "retire", ROOT)
    assert p.returncode == BAD_INPUT and "already retired" in p.stderr
    p = demo.cli("ca", "retire", "NoSuchCA")
    assert p.returncode != 0 and "NoSuchCA" in p.stderr
