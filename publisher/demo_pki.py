"""A demo PKI shaped like the Hongkong Post e-Cert hierarchy (CPS Appendix B).

`make_demo_pki` writes a root ("RootCA2"), an issuing CA ("eCertCA2-17"), a second
intermediate to be revoked on the ARL, delegated OCSP responder certificates for both CAs,
and a bundle of subscriber certificates spread over three partitioned CRLs. It returns the
paths together with the status changes (revocations, one hold) that the caller applies
once the certificates are in the store.

Everything is deterministic apart from key material: names, validity periods, which
certificates are revoked, held or expired, and all times derive from the `now` argument.
Serial numbers are derived from the issuing CA's private key (see `_SerialMaker`), so they
too change only when the keys do. Nothing here reads the clock.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
)

from . import der
from .store import NewCert

#: Config names of the two CAs, as used by `PlannedChange.issuer`.
ROOT_NAME = "RootCA2"
CA_NAME = "eCertCA2-17"

#: The g-Cert CPS OID (CPS 1.1), used as the certificate policy of every certificate.
GCERT_POLICY_OID = x509.ObjectIdentifier("1.3.6.1.4.1.16030.1.8.2")

#: RFC 5280 reason names accepted in `PlannedChange.reason`.
REASONS = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
)

#: Below this many subscribers there is no room for three partitions' revocations plus
#: distinct good and held samples.
MIN_SUBSCRIBERS = 10

# Reasons given to subscriber revocations, in turn. None: the subscriber gave no reason,
# so the CRL entry carries no reasonCode (common in practice, see REQUIREMENTS).
_REASON_CYCLE = (
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    None,
    "unspecified",
)
# Subscribers whose index is 31 mod 32 (about 3%) are already expired.
_EXPIRED_MODULUS = 32
# Subscriber keys are shared round-robin from a pool this big (demo only, see below).
_KEY_POOL_SIZE = 8
_PARTITIONS = 3
#: Key types `make_demo_pki` can give the issuing CA.
ISSUING_KEYS = ("rsa", "ec")

#: Above this many subscribers no PEM bundle of them all is written (it would take about
#: 1.8 KB a certificate); the store has them, and the named samples are always written.
BUNDLE_MAX = 10_000

_O = "Hongkong Post Demo"


@dataclass(frozen=True)
class PlannedChange:
    """A status change the caller applies after adding the certificates."""

    issuer: str  # config name of the issuing CA: "RootCA2" or "eCertCA2-17"
    serial: int
    action: str  # "revoke" or "hold"
    reason: str | None  # an RFC 5280 reason name from REASONS, or None (none given); hold: None
    time: dt.datetime  # revocation or hold time, aware UTC, before now
    invalidity: dt.datetime | None  # invalidity date, aware UTC, or None


@dataclass(frozen=True)
class DemoPki:
    """Where `make_demo_pki` put everything, and what to do with it next."""

    root: Path
    root_key: Path
    ca: Path
    ca_key: Path
    revoked_ca: Path  # second intermediate under the root, to be revoked (ARL entry)
    ocsp_root: Path  # delegated OCSP responder for RootCA2, and its key
    ocsp_root_key: Path
    ocsp_ca: Path  # delegated OCSP responder for eCertCA2-17, and its key
    ocsp_ca_key: Path
    subscribers: Path | None  # one PEM bundle with all subscriber certificates (None: not written)
    good: Path  # single-certificate samples: stays good,
    revoked: Path  # revoked with keyCompromise,
    held: Path  # put on hold
    changes: tuple[PlannedChange, ...]
    partition_urls: tuple[str, ...]  # CRL distribution points of the subscriber partitions
    plan: "SubscriberPlan | None" = None  # how to make the subscriber certificates (make_subscribers)


@dataclass(frozen=True)
class _Plan:
    """Which subscriber index gets which treatment; pure function of the count."""

    expired: frozenset[int]
    revoked: tuple[int, ...]  # sorted
    good: int
    held: int
    revoked_sample: int


def make_demo_pki(
    directory: Path,
    *,
    base_url: str,
    subscribers: int = 1000,
    now: dt.datetime,
    progress: Callable[[int, int], object] | None = None,
    bundle: bool = True,
    issuing_key: str = "rsa",
    revoke_every: int = 20,
) -> DemoPki:
    """Write a demo PKI under `directory/pki/` and return its paths and planned changes.

    `base_url` (e.g. "http://127.0.0.1:8080") prefixes every URL placed in certificates:
    CRL distribution points, OCSP, caIssuers and the CPS. `now` must be timezone-aware;
    every validity period and change time derives from it. `progress`, if given, is called
    as progress(done, total) while the subscriber certificates are made. With `bundle`
    (and at most BUNDLE_MAX subscribers) they are written to pki/subscribers.pem; either
    way `DemoPki.plan` makes them again on demand (`make_subscribers`). `issuing_key`
    "ec" gives the issuing CA a P-256 key instead of RSA-2048: signing a million
    subscriber certificates then takes seconds instead of minutes. About one subscriber in
    `revoke_every` is revoked (20: 5%).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if subscribers < MIN_SUBSCRIBERS:
        raise ValueError(f"subscribers must be at least {MIN_SUBSCRIBERS}, got {subscribers}")
    if revoke_every < 4:
        raise ValueError(f"revoke_every must be at least 4, got {revoke_every}")
    if issuing_key not in ISSUING_KEYS:
        raise ValueError(f"issuing_key must be one of {', '.join(ISSUING_KEYS)}, got {issuing_key!r}")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
    base = base_url.rstrip("/")
    # Certificates carry whole seconds; keep change times consistent with them.
    now = now.astimezone(dt.timezone.utc).replace(microsecond=0)

    out = Path(directory) / "pki"
    out.mkdir(parents=True, exist_ok=True)

    partition_urls = tuple(f"{base}/crl/{CA_NAME}CRL{k}.crl" for k in range(2, 2 + _PARTITIONS))
    arl_url = f"{base}/crl/{ROOT_NAME}ARL.crl"
    ocsp_url = f"{base}/ocsp"
    cps_url = f"{base}/cps"
    policies = x509.CertificatePolicies([x509.PolicyInformation(GCERT_POLICY_OID, [cps_url])])

    ca_from = _add_years(now, -1)

    # The CAs.
    root_key = _rsa_key()
    root_name = _name(cn="Demo Root CA 2", o=_O, c="HK")
    root_serials = _SerialMaker(root_key)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(root_serials.serial("root"))
        .not_valid_before(ca_from)
        .not_valid_after(_add_years(ca_from, 20))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )

    def intermediate(key, name: x509.Name, label: str) -> x509.Certificate:
        return (
            _issued_by(root)
            .subject_name(name)
            .public_key(key.public_key())
            .serial_number(root_serials.serial(label))
            .not_valid_before(ca_from)
            .not_valid_after(_add_years(ca_from, 10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                # digitalSignature lets the CA sign OCSP responses itself, without a delegate.
                _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(_crl_dp(arl_url), critical=False)
            .add_extension(_aia(ocsp_url), critical=False)
            .add_extension(policies, critical=False)
            .sign(root_key, hashes.SHA256())
        )

    ca_key = _rsa_key() if issuing_key == "rsa" else ec.generate_private_key(ec.SECP256R1())
    ca = intermediate(
        ca_key,
        _name(cn="Demo e-Cert CA 2 - 17", o=_O, l="Hong Kong", st="Hong Kong", c="HK"),
        "ca:" + CA_NAME,
    )
    retired_key = _rsa_key()
    retired = intermediate(retired_key, _name(cn="Demo Retired CA 2 - 16", o=_O, c="HK"), "ca:RetiredCA2-16")

    # Delegated OCSP responders, one per CA (RFC 6960 4.2.2.2).
    def responder(issuer: x509.Certificate, issuer_key, serials: _SerialMaker, cn: str, *, ec_key: bool = False):
        # An EC issuing CA gets an EC responder too: a large demo pre-signs its answers in
        # minutes rather than an hour.
        key = ec.generate_private_key(ec.SECP256R1()) if ec_key else _rsa_key()
        cert = (
            _issued_by(issuer)
            .subject_name(_name(cn=cn, o=_O, c="HK"))
            .public_key(key.public_key())
            .serial_number(serials.serial("ocsp"))
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            # id-pkix-ocsp-nocheck: relying parties need not check the responder's status.
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )
        return cert, key

    ca_serials = _SerialMaker(ca_key)
    ocsp_root, ocsp_root_key = responder(root, root_key, root_serials, "Demo Root CA 2 OCSP Responder")
    ocsp_ca, ocsp_ca_key = responder(ca, ca_key, ca_serials, "Demo e-Cert CA 2 - 17 OCSP Responder",
                                     ec_key=issuing_key == "ec")

    # Subscribers. Generating 1000 RSA-2048 keys takes minutes, so a small pool of keys
    # is shared round-robin. Demo only: real subscribers never share keys.
    pool = [_rsa_key().public_key() for _ in range(_KEY_POOL_SIZE)]
    plan = _plan(subscribers, revoke_every)
    ca_aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
        ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    )
    ee_from, ee_until = now - dt.timedelta(days=60), _add_years(now, 3)
    # Expired ones lie within the CA's lifetime, so that their chain is consistent.
    expired_from, expired_until = ca_from, now - dt.timedelta(days=180)

    def prototype(digits: int, k: int, p: int, expired: bool) -> x509.Certificate:
        email = f"subscriber{_PLACEHOLDER * digits}@example.hk"
        return (
            x509.CertificateBuilder()
            .issuer_name(ca.subject)
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Demo Organisation"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Demo Unit"),
                        x509.NameAttribute(NameOID.EMAIL_ADDRESS, email),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"Demo Subscriber {_PLACEHOLDER * digits}"),
                    ]
                )
            )
            .public_key(pool[k])
            .serial_number(_SERIAL_PLACEHOLDER)
            .not_valid_before(expired_from if expired else ee_from)
            .not_valid_after(expired_until if expired else ee_until)
            .add_extension(ca_aki, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pool[k]), critical=False)
            .add_extension(_key_usage(digital_signature=True, content_commitment=True, key_encipherment=True),
                           critical=True)
            .add_extension(policies, critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(_crl_dp(partition_urls[p]), critical=False)
            .add_extension(_aia(ocsp_url, ca_issuers=f"{base}/ca/{CA_NAME}.cer"), critical=False)
            .sign(ca_key, hashes.SHA256())
        )

    templates = {}
    algorithm = b""
    for digits in range(4, max(4, len(str(subscribers - 1))) + 1):
        for k in range(_KEY_POOL_SIZE):
            for p in range(_PARTITIONS):
                for expired in (False, True):
                    cert = prototype(digits, k, p, expired)
                    templates[digits, k, p, expired] = _template(cert, digits)
                    algorithm = _signature_algorithm(cert.public_bytes(serialization.Encoding.DER))
    sub_plan = SubscriberPlan(
        count=subscribers,
        ca_key_der=ca_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
        serial_secret=ca_serials.secret,
        templates=templates,
        algorithm=algorithm,
        partition_urls=partition_urls,
        expired_modulus=_EXPIRED_MODULUS,
        validity=(int(ee_from.timestamp()), int(ee_until.timestamp()),
                  int(expired_from.timestamp()), int(expired_until.timestamp())),
    )

    def serial_of(i: int) -> int:
        return subscriber_serial(sub_plan.serial_secret, i)

    changes = _changes(plan, serial_of, expired_until, retired, now)

    def one(i: int) -> x509.Certificate:
        return x509.load_der_x509_certificate(make_subscribers(sub_plan, 0, i, i + 1)[0].der)

    paths = {
        "root": _write_cert(out / f"{ROOT_NAME}.pem", root),
        "root_key": _write_key(out / f"{ROOT_NAME}.key", root_key),
        "ca": _write_cert(out / f"{CA_NAME}.pem", ca),
        "ca_key": _write_key(out / f"{CA_NAME}.key", ca_key),
        "revoked_ca": _write_cert(out / "RetiredCA2-16.pem", retired),
        "ocsp_root": _write_cert(out / f"ocsp-{ROOT_NAME}.pem", ocsp_root),
        "ocsp_root_key": _write_key(out / f"ocsp-{ROOT_NAME}.key", ocsp_root_key),
        "ocsp_ca": _write_cert(out / f"ocsp-{CA_NAME}.pem", ocsp_ca),
        "ocsp_ca_key": _write_key(out / f"ocsp-{CA_NAME}.key", ocsp_ca_key),
        "subscribers": None,
        "good": _write_cert(out / "good.pem", one(plan.good)),
        "revoked": _write_cert(out / "revoked.pem", one(plan.revoked_sample)),
        "held": _write_cert(out / "held.pem", one(plan.held)),
    }
    if bundle and subscribers <= BUNDLE_MAX:
        # In this process: callers that stream the certificates into a store (demo init)
        # pass bundle=False and make them in worker processes instead.
        path = out / "subscribers.pem"
        with open(path, "wb") as f:
            for first in range(0, subscribers, _CHUNK):
                last = min(subscribers, first + _CHUNK)
                for i, c in enumerate(make_subscribers(sub_plan, 0, first, last), start=first):
                    f.write(pem(c.der))
                    if progress is not None:
                        progress(i + 1, subscribers)
        paths["subscribers"] = path
    return DemoPki(**paths, changes=changes, partition_urls=partition_urls, plan=sub_plan)


# Subscriber certificates from templates. Each certificate differs from a prototype (made
# by cryptography's builder for the same key, partition, validity and index width) only in
# its serial number and the digits of its index, which have fixed widths: they are written
# into the prototype's to-be-signed bytes, which are then signed. The result is
# byte-identical to what the builder makes, at a fraction of its cost, and the work splits
# into chunks that worker processes make from a picklable plan.

_PLACEHOLDER = "Q"
# Bit 158 set like every real serial, so that its DER is as long (20 octets).
_SERIAL_PLACEHOLDER = (1 << 158) | int.from_bytes(b"pkirepo demo serial.", "big") & ((1 << 158) - 1)
_CHUNK = 2000


@dataclass(frozen=True)
class _Template:
    tbs: bytes
    serial_at: int  # offset of the serial's 20 content octets
    digits_at: tuple[int, ...]  # offsets of the index digits (e-mail twice, common name)
    subject: str  # RFC 4514, with the placeholder digits


@dataclass(frozen=True)
class SubscriberPlan:
    """Everything needed to make subscriber certificates first..last in any process."""

    count: int
    ca_key_der: bytes  # PKCS#8, unencrypted (demo only)
    serial_secret: bytes
    templates: dict[tuple[int, int, int, bool], _Template]  # (index width, key, partition, expired)
    algorithm: bytes  # signatureAlgorithm DER
    partition_urls: tuple[str, ...]
    expired_modulus: int
    validity: tuple[int, int, int, int]  # Unix seconds: current from, until; expired from, until


def subscriber_serial(secret: bytes, i: int) -> int:
    """Serial number of subscriber `i` (the same derivation as `_SerialMaker`)."""
    digest = hmac.new(secret, f"subscriber:{i}".encode(), hashlib.sha256).digest()
    return (1 << 158) | (int.from_bytes(digest[:20], "big") & ((1 << 158) - 1))


def make_subscribers(plan: SubscriberPlan, issuer_id: int, first: int, last: int) -> list[NewCert]:
    """Subscriber certificates first..last-1 as store rows (status good; times in Unix
    seconds). A top-level function so that a process pool can run it."""
    key = _load_key(plan.ca_key_der)
    if isinstance(key, rsa.RSAPrivateKey):
        def sign(data: bytes) -> bytes:
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        def sign(data: bytes) -> bytes:
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
    cur_from, cur_until, old_from, old_until = plan.validity
    out = []
    for i in range(first, last):
        digits = f"{i:04d}"
        expired = i % plan.expired_modulus == plan.expired_modulus - 1
        p = i % _PARTITIONS
        t = plan.templates[len(digits), i % _KEY_POOL_SIZE, p, expired]
        serial = subscriber_serial(plan.serial_secret, i)
        tbs = bytearray(t.tbs)
        tbs[t.serial_at:t.serial_at + 20] = serial.to_bytes(20, "big")
        d = digits.encode()
        for at in t.digits_at:
            tbs[at:at + len(d)] = d
        tbs = bytes(tbs)
        cert = der.sequence(tbs, plan.algorithm, der.bit_string(sign(tbs)))
        out.append(NewCert(
            issuer_id, serial, cert, t.subject.replace(_PLACEHOLDER * len(digits), digits),
            old_from if expired else cur_from, old_until if expired else cur_until,
            plan.partition_urls[p], False))
    return out


def pem(cert_der: bytes) -> bytes:
    b64 = base64.encodebytes(cert_der).replace(b"\n", b"")
    lines = b"\n".join(b64[k:k + 64] for k in range(0, len(b64), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


@functools.lru_cache(maxsize=2)
def _load_key(key_der: bytes):
    return serialization.load_der_private_key(key_der, password=None)


def _template(cert: x509.Certificate, digits: int) -> _Template:
    tbs = cert.tbs_certificate_bytes
    serial_der = der.integer(_SERIAL_PLACEHOLDER)
    serial_at = tbs.find(serial_der)
    marks, at = [], tbs.find(_PLACEHOLDER.encode() * digits)
    while at >= 0:
        marks.append(at)
        at = tbs.find(_PLACEHOLDER.encode() * digits, at + digits)
    if serial_at < 0 or tbs.find(serial_der, serial_at + 1) >= 0 or len(marks) != 3:
        # Key bytes that happen to hold a placeholder: astronomically unlikely, but checked.
        raise RuntimeError("demo certificate template is ambiguous; run again (new keys)")
    return _Template(tbs, serial_at + 2, tuple(marks), cert.subject.rfc4514_string())


def _signature_algorithm(cert_der: bytes) -> bytes:
    _, start, _ = der.read_tlv(cert_der)
    _, _, tbs_end = der.read_tlv(cert_der, start)
    _, _, alg_end = der.read_tlv(cert_der, tbs_end)
    return cert_der[tbs_end:alg_end]


def _plan(n: int, revoke_every: int = 20) -> _Plan:
    expired = frozenset(i for i in range(n) if i % _EXPIRED_MODULUS == _EXPIRED_MODULUS - 1)
    # Revoke every stride-th subscriber from offset on: with stride 20, 5%. The stride is
    # never a multiple of 3, so consecutive picks fall in consecutive partitions. Small
    # counts get a shorter stride so that at least three picks fit.
    stride = revoke_every
    while stride > 2 and (stride % 3 == 0 or stride // 3 + 1 + 2 * stride >= n):
        stride -= 1
    offset = stride // 3 + 1
    revoked = set(range(offset, n, stride))
    # An expired pick is revoked too (long ago), but does not count towards a partition:
    # a CRL that drops expired entries must still have one revocation in each partition.
    good = 0
    for p in range(_PARTITIONS):
        if not any(i % _PARTITIONS == p and i not in expired for i in revoked):
            revoked.add(next(i for i in range(1, n) if i % _PARTITIONS == p and i not in expired | revoked))

    def free(i: int) -> bool:
        return i not in revoked and i not in expired and i != good

    # The first free index past the middle (or, failing that, the first free one).
    held = next((i for i in range(n // 2, n) if free(i)), None)
    if held is None:
        held = next(i for i in range(n) if free(i))
    ordered = tuple(sorted(revoked))
    revoked_sample = next(
        i for k, i in enumerate(ordered) if _REASON_CYCLE[k % len(_REASON_CYCLE)] == "keyCompromise" and i not in expired
    )
    return _Plan(expired, ordered, good, held, revoked_sample)


def _changes(plan: _Plan, serial_of: Callable[[int], int], expired_until: dt.datetime,
             retired: x509.Certificate, now: dt.datetime):
    day = dt.timedelta(days=1)
    changes = [PlannedChange(ROOT_NAME, retired.serial_number, "revoke", "superseded", now - 30 * day, None)]
    current = [i for i in plan.revoked if i not in plan.expired]
    rank = {i: j for j, i in enumerate(current)}
    # Current revocations are spread evenly over the past 30 days, strictly before now.
    step = dt.timedelta(days=30) / (len(current) + 1)
    for k, i in enumerate(plan.revoked):
        reason = _REASON_CYCLE[k % len(_REASON_CYCLE)]
        if i in plan.expired:
            # Revoked a month before it expired: an entry for a CRL expiry policy to drop.
            when = expired_until - 30 * day
            invalidity = None
        else:
            j = rank[i]
            when = (now - dt.timedelta(days=30) + (j + 1) * step).replace(microsecond=0)
            invalidity = {1: when - day, 3: when - 2 * day}.get(j % 4)
        changes.append(PlannedChange(CA_NAME, serial_of(i), "revoke", reason, when, invalidity))
    changes.append(PlannedChange(CA_NAME, serial_of(plan.held), "hold", None, now - 2 * day, None))
    changes.sort(key=lambda c: (c.time, c.issuer, c.serial))
    return tuple(changes)


class _SerialMaker:
    """20-octet serial numbers, unpredictable without the issuer's key, yet reproducible.

    CAs put entropy in serials so that nobody can predict the bytes a CA is about to sign
    (CA/B Forum BR 7.1). A keyed hash of a label under a secret derived from the issuer's
    private key gives that, and keeps the demo deterministic apart from key material.
    """

    def __init__(self, issuer_key) -> None:
        der = issuer_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.secret = hashlib.sha256(b"pkirepo demo serials\0" + der).digest()
        self._seen: set[int] = set()

    def serial(self, label: str) -> int:
        digest = hmac.new(self.secret, label.encode(), hashlib.sha256).digest()
        # Bit 158 set, bit 159 clear: positive, and exactly 20 octets in DER.
        value = (1 << 158) | (int.from_bytes(digest[:20], "big") & ((1 << 158) - 1))
        if value in self._seen:  # 2**-158 odds; checked because duplicates would be a bug
            raise RuntimeError(f"duplicate serial number for {label!r}")
        self._seen.add(value)
        return value


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(*, cn: str, o: str, c: str, l: str | None = None, st: str | None = None) -> x509.Name:
    # DER order, most general first; its RFC 4514 string reads CN=..., ..., C=HK.
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, c)]
    if st:
        attrs.append(x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, st))
    if l:
        attrs.append(x509.NameAttribute(NameOID.LOCALITY_NAME, l))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _issued_by(issuer: x509.Certificate) -> x509.CertificateBuilder:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .issuer_name(issuer.subject)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(url)], relative_name=None, reasons=None, crl_issuer=None)]
    )


def _aia(ocsp_url: str, *, ca_issuers: str | None = None) -> x509.AuthorityInformationAccess:
    access = [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]
    if ca_issuers:
        access.append(
            x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(ca_issuers))
        )
    return x509.AuthorityInformationAccess(access)


def _add_years(when: dt.datetime, years: int) -> dt.datetime:
    try:
        return when.replace(year=when.year + years)
    except ValueError:  # 29 February in a year without one
        return when.replace(year=when.year + years, day=28)


def _write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def _write_key(path: Path, key) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already exists
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return path


# ETSI TS 119 612 annex: the extended key usage of a trusted list signer (id-tsl-kp-tslSigning).
TSL_SIGNING_OID = x509.ObjectIdentifier("0.4.0.2231.3.0")


def make_trustlist_signer(directory: Path, *, now: dt.datetime) -> tuple[Path, Path]:
    """Write `pki/trustlist-signer.pem` and `.key`: the demo scheme operator's self-signed
    trust-list signing certificate and its key (the operator is not the CA, so the CA's
    hierarchy does not issue it). Returns (certificate, key)."""
    out = Path(directory) / "pki"
    out.mkdir(parents=True, exist_ok=True)
    now = now.astimezone(dt.timezone.utc).replace(microsecond=0)
    key = _rsa_key()
    name = _name(cn="Demo Trust List Scheme Operator", o="Demo Digital Policy Office", c="HK")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_SerialMaker(key).serial("trustlist-signer"))
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(_add_years(now, 3))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, content_commitment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([TSL_SIGNING_OID]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write_cert(out / "trustlist-signer.pem", cert), _write_key(out / "trustlist-signer.key", key)


def make_audit_key(directory: Path) -> Path:
    """Write `pki/audit-checkpoint.key`: the Ed25519 key that signs the demo's audit checkpoints."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    out = directory / "pki"
    out.mkdir(parents=True, exist_ok=True)
    return _write_key(out / "audit-checkpoint.key", ed25519.Ed25519PrivateKey.generate())
