"""`pkirepo probe`: the repository checked from outside, as a relying party (or a CA's CRL
and OCSP monitor) sees it. Every CRL in the index is fetched and checked (signature by its
CA, CRL number never going back across runs, nextUpdate margin); OCSP is asked about given
serials (signature, certificate status); over LDAP every CRL must be byte-identical to the
one served over HTTP. One result per check, with Nagios codes (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN). Blocking I/O: the CLI runs it in a thread."""
from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class ProbeSettings:
    urls: tuple[str, ...]
    ocsp: tuple[tuple[str, int], ...] = ()  # (CA name, serial)
    ldap: str | None = None
    state: Path | None = None
    warn: dt.timedelta = dt.timedelta(hours=3)
    critical: dt.timedelta = dt.timedelta(hours=1)
    timeout: float = 10.0


@dataclass(frozen=True)
class Result:
    code: int
    check: str
    text: str

    def line(self) -> str:
        return f"{LABELS[self.code]} {self.check}: {self.text}"


def _get(url: str, timeout: float, data: bytes | None = None, ctype: str | None = None) -> bytes:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype} if ctype else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def _verify(public_key, signature: bytes, data: bytes, hash_algorithm) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    else:
        public_key.verify(signature, data)


def _load_state(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)


def check_crl(name: str, der: bytes, ca: x509.Certificate, *, now: dt.datetime, previous: int | None,
              warn: dt.timedelta, critical: dt.timedelta) -> tuple[Result, int | None]:
    """One CRL: parses, is signed by `ca`, its number has not gone back, its nextUpdate is
    far enough. Returns the result and the CRL number seen."""
    check = f"crl {name}"
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as e:
        return Result(CRITICAL, check, f"not a CRL: {e}"), None
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return Result(CRITICAL, check, "no CRL number"), None
    if not crl.is_signature_valid(ca.public_key()):
        return Result(CRITICAL, check, f"#{number}: the signature does not verify with {ca.subject.rfc4514_string()}"), number
    if previous is not None and number < previous:
        return Result(CRITICAL, check, f"CRL number went back: #{number} after #{previous}"), number
    next_update = crl.next_update_utc
    if next_update is None:
        return Result(CRITICAL, check, f"#{number}: no nextUpdate"), number
    left = next_update - now
    text = f"#{number}, signature ok, nextUpdate {next_update.isoformat()} (in {int(left.total_seconds() // 60)} min)"
    if previous is not None:
        text += f", previous run #{previous}"
    if left <= critical:
        return Result(CRITICAL, check, text + f": within {int(critical.total_seconds() // 60)} min"), number
    if left <= warn:
        return Result(WARNING, check, text + f": within {int(warn.total_seconds() // 60)} min"), number
    return Result(OK, check, text), number


def check_ocsp(base: str, ca_name: str, ca: x509.Certificate, serial: int, *, now: dt.datetime,
               timeout: float) -> Result:
    check = f"ocsp {ca_name} {serial:X}"
    a = asn1_x509.Certificate.load(ca.public_bytes(Encoding.DER))
    req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        a.subject.sha1, a.public_key.sha1, serial, hashes.SHA1()).build()
    der = req.public_bytes(Encoding.DER)
    try:
        body = _get(f"{base}/ocsp", timeout, der, "application/ocsp-request")
        resp = ocsp.load_der_ocsp_response(body)
    except (OSError, ValueError) as e:
        return Result(CRITICAL, check, f"no answer from {base}/ocsp: {e}")
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return Result(CRITICAL, check, f"responseStatus {resp.response_status.name}")
    signer = resp.certificates[0] if resp.certificates else ca
    try:
        if signer is not ca:
            signer.verify_directly_issued_by(ca)
        _verify(signer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
    except (InvalidSignature, ValueError, TypeError) as e:
        return Result(CRITICAL, check, f"the answer's signature does not verify: {e or type(e).__name__}")
    if resp.serial_number != serial:
        return Result(CRITICAL, check, f"answer for another serial ({resp.serial_number:X})")
    status = resp.certificate_status.name.lower()
    nu = resp.next_update_utc
    if nu is not None and nu <= now:
        return Result(CRITICAL, check, f"{status}, but the answer's nextUpdate {nu.isoformat()} has passed")
    return Result(OK, check, f"{status}, signature ok" + (f", nextUpdate {nu.isoformat()}" if nu else ""))


def ldap_crls(url: str, timeout: float) -> set[bytes]:
    """Every CRL and ARL value the directory publishes (`;binary` attributes), under each
    naming context."""
    import ldap3

    u = urllib.parse.urlparse(url)
    server = ldap3.Server(u.hostname or "127.0.0.1", port=u.port or 389, get_info=ldap3.NONE, connect_timeout=timeout)
    conn = ldap3.Connection(server, auto_bind=True, receive_timeout=max(1, int(timeout)), read_only=True)
    try:
        conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["namingContexts"])
        bases = [v for e in conn.response if e.get("type") == "searchResEntry"
                 for v in e["attributes"].get("namingContexts", [])]
        values: set[bytes] = set()
        attrs = ["certificateRevocationList;binary", "authorityRevocationList;binary"]
        for base in bases:
            conn.search(base, "(|(objectClass=cRLDistributionPoint)(objectClass=pkiCA))", search_scope=ldap3.SUBTREE,
                        attributes=attrs)
            for e in conn.response:
                if e.get("type") != "searchResEntry":
                    continue
                for name, vals in e.get("raw_attributes", {}).items():
                    if name.lower().startswith(("certificaterevocationlist", "authorityrevocationlist")):
                        values.update(vals)
        return values
    finally:
        conn.unbind()


def probe_repository(base: str, settings: ProbeSettings, state: dict, now: dt.datetime) -> list[Result]:
    out: list[Result] = []
    try:
        index = json.loads(_get(f"{base}/crl/", settings.timeout))["crls"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [Result(CRITICAL, f"index {base}/crl/", f"cannot read the CRL index: {e}")]
    cas: dict[str, x509.Certificate | None] = {}

    def ca(name: str) -> x509.Certificate | None:
        if name not in cas:
            try:
                cas[name] = x509.load_der_x509_certificate(_get(f"{base}/ca/{urllib.parse.quote(name)}.cer",
                                                                settings.timeout))
            except (OSError, ValueError):
                cas[name] = None
        return cas[name]

    served: dict[str, bytes] = {}
    for entry in index:
        name, issuer = entry.get("name"), entry.get("issuer")
        if not isinstance(name, str) or not isinstance(issuer, str):
            out.append(Result(UNKNOWN, f"index {base}/crl/", f"an entry without name or issuer: {entry!r:.100}"))
            continue
        try:
            der = _get(f"{base}/crl/{urllib.parse.quote(name)}.crl", settings.timeout)
        except OSError as e:
            out.append(Result(CRITICAL, f"crl {name}", f"cannot fetch: {e}"))
            continue
        cert = ca(issuer)
        if cert is None:
            out.append(Result(CRITICAL, f"crl {name}", f"cannot fetch its CA certificate {base}/ca/{issuer}.cer"))
            continue
        key = f"{base} {name}"
        previous = state.get(key)
        result, number = check_crl(name, der, cert, now=now, previous=previous if isinstance(previous, int) else None,
                                   warn=settings.warn, critical=settings.critical)
        out.append(result)
        served[name] = der
        if number is not None and (not isinstance(previous, int) or number > previous):
            state[key] = number
    for ca_name, serial in settings.ocsp:
        cert = ca(ca_name)
        if cert is None:
            out.append(Result(CRITICAL, f"ocsp {ca_name} {serial:X}", f"cannot fetch {base}/ca/{ca_name}.cer"))
            continue
        out.append(check_ocsp(base, ca_name, cert, serial, now=now, timeout=settings.timeout))
    if settings.ldap:
        try:
            values = ldap_crls(settings.ldap, settings.timeout)
        except Exception as e:  # ldap3 raises many classes of its own
            out.append(Result(CRITICAL, f"ldap {settings.ldap}", f"search failed: {type(e).__name__}: {e}"))
        else:
            for name, der in served.items():
                same = der in values
                out.append(Result(OK if same else CRITICAL, f"ldap {name}",
                                  "the same bytes as over HTTP" if same else
                                  f"not found over LDAP with the bytes served over HTTP ({len(values)} CRL values there)"))
    return out


def run_probe(settings: ProbeSettings, *, now: dt.datetime | None = None) -> list[Result]:
    now = now or dt.datetime.now(dt.timezone.utc)
    state = _load_state(settings.state)
    results: list[Result] = []
    for base in settings.urls:
        results += probe_repository(base, settings, state, now)
    if settings.state is not None:
        try:
            _save_state(settings.state, state)
        except OSError as e:
            results.append(Result(UNKNOWN, "state", f"cannot write {settings.state}: {e.strerror}"))
    return results
