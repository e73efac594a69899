"""The `[ocsp]` settings and each CA's responder keys, read once and validated.

The `[ocsp]` table is read with the repository's `Table` helper (unknown keys are typos
and refused); the per-CA keys `ocsp_responder`, `ocsp_responder_key`,
`ocsp_responder_key_passphrase_file` and `ocsp_responder_key_passphrase_env` sit in each
`[[ca]]` table, which the repository and OCSP read side by side.
"""
from __future__ import annotations

import datetime as dt
import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from publisher.config import CaSettings, Table

from .request import NONCE_MAX_ALLOWED, HashAlgorithm, RequestLimits


class SignerMode(enum.Enum):
    #: A delegated responder certificate per CA (EKU OCSPSigning, ocsp-nocheck).
    DELEGATED = "delegated"
    #: The CA key itself signs; the CA certificate is the responder certificate.
    CA = "ca"


class NeverIssued(enum.Enum):
    #: certStatus unknown (the usual answer).
    UNKNOWN = "unknown"
    #: RFC 6960 §2.2: revoked, certificateHold, 1970-01-01, Extended Revoked Definition.
    REVOKED = "revoked"


@dataclass(frozen=True)
class ResponderFiles:
    """Where one CA's delegated responder certificate and key are."""

    certificate: Path
    key: Path
    key_passphrase_file: Path | None
    key_passphrase_env: str | None
    where: str  # "FILE: ca[i]" for error messages


@dataclass(frozen=True)
class OcspSettings:
    #: Serve /ocsp at all.
    enabled: bool = True
    #: Who signs: a delegated responder per CA, or each CA's own key.
    signer: SignerMode = SignerMode.DELEGATED
    #: Single requests per request; more are answered malformedRequest.
    max_requests: int = 16
    #: Longest nonce accepted (RFC 9654: 32 by default, at most 128).
    max_nonce_length: int = 32
    #: Answer requests with a nonce from the pre-signed responses too (RFC 5019 §4 allows it).
    ignore_nonce: bool = False
    #: Refuse unsigned requests with sigRequired.
    require_signed_requests: bool = False
    #: How to answer a serial the CA never issued.
    never_issued: NeverIssued = NeverIssued.UNKNOWN
    #: Pre-signed responses are signed again this often.
    refresh: dt.timedelta = dt.timedelta(hours=4)
    #: nextUpdate - thisUpdate; also capped by the issuer's current CRL nextUpdate and the
    #: responder certificate's notAfter.
    validity: dt.timedelta = dt.timedelta(hours=8)
    #: CertID hash algorithms answered from pre-signed responses; others are signed on demand.
    presign_hashes: tuple[HashAlgorithm, ...] = (HashAlgorithm.SHA1, HashAlgorithm.SHA256)
    #: POST bodies larger than this are refused with 413.
    max_body_bytes: int = 10 * 1024
    #: Responses kept in memory in front of the store.
    cache_entries: int = 100_000
    #: How often the background loop looks for responses to sign again.
    scan_interval: dt.timedelta = dt.timedelta(minutes=5)
    #: Put the responder certificate into every response (needed for delegated responders).
    include_certificate: bool = True
    #: Processes that sign pre-signed answers; 0 signs in a thread of the serving process.
    #: `[ocsp] sign_workers` defaults to the number of CPUs: the workers run at a lower
    #: priority, so the event loop is not starved; this dataclass default (tests) is 0.
    sign_workers: int = 0
    #: Per-CA delegated responder files, by CA name.
    responders: tuple[tuple[str, ResponderFiles], ...] = ()

    @property
    def limits(self) -> RequestLimits:
        return RequestLimits(max_requests=self.max_requests, max_nonce_length=self.max_nonce_length)

    def responder_files(self, ca_name: str) -> ResponderFiles | None:
        return dict(self.responders).get(ca_name)


def _enum(t: Table, key: str, cls, default):
    value = t.str(key, default.value)
    try:
        return cls(value)
    except ValueError:
        choices = " or ".join(f'"{m.value}"' for m in cls)
        raise t.error(key, f"{value!r}: use {choices}") from None


def _responder_files(t: Table) -> ResponderFiles | None:
    """The delegated responder keys of one `[[ca]]` table, or None when it has none."""
    cert = t.path("ocsp_responder")
    key = t.path("ocsp_responder_key")
    passphrase_file = t.path("ocsp_responder_key_passphrase_file")
    passphrase_env = t.str("ocsp_responder_key_passphrase_env")
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing = "ocsp_responder" if cert is None else "ocsp_responder_key"
        raise t.error(missing, "needed together with the other ocsp_responder key")
    return ResponderFiles(
        certificate=cert,
        key=key,
        key_passphrase_file=passphrase_file,
        key_passphrase_env=passphrase_env,
        where=f"{t.source}: {t.where}",
    )


def default_sign_workers() -> int:
    return max(1, os.cpu_count() or 1)


def load_ocsp_settings(top: Table, cas: Sequence[CaSettings]) -> OcspSettings:
    """Read `[ocsp]` and the CAs' responder keys from the config tree; ConfigError names
    file and key at fault. Unknown keys of `[[ca]]` are left to the caller's check."""
    t = top.table("ocsp")
    hashes = t.list_str("presign_hashes", ["sha1", "sha256"])
    by_name = {h.hashlib_name: h for h in HashAlgorithm}
    try:
        presign = tuple(by_name[h.lower()] for h in hashes)
    except KeyError as e:
        raise t.error("presign_hashes", f"{e.args[0]!r}: use sha1, sha256, sha384 or sha512") from None
    refresh = dt.timedelta(minutes=t.int("refresh_minutes", 240, min=1, max=7 * 24 * 60))
    validity = dt.timedelta(minutes=t.int("validity_minutes", 480, min=1, max=7 * 24 * 60))
    if validity < refresh:
        raise t.error("validity_minutes", "must not be shorter than refresh_minutes: answers would expire unrefreshed")
    s = OcspSettings(
        enabled=t.bool("enabled", True),
        signer=_enum(t, "signer", SignerMode, SignerMode.DELEGATED),
        max_requests=t.int("max_requests", 16, min=1, max=1000),
        max_nonce_length=t.int("max_nonce_length", 32, min=1, max=NONCE_MAX_ALLOWED),
        ignore_nonce=t.bool("ignore_nonce", False),
        require_signed_requests=t.bool("require_signed_requests", False),
        never_issued=_enum(t, "never_issued", NeverIssued, NeverIssued.UNKNOWN),
        refresh=refresh,
        validity=validity,
        presign_hashes=presign,
        max_body_bytes=t.int("max_body_bytes", 10 * 1024, min=256, max=1024 * 1024),
        cache_entries=t.int("cache_entries", 100_000, min=0),
        scan_interval=dt.timedelta(seconds=t.int("scan_seconds", 300, min=1, max=86400)),
        include_certificate=t.bool("include_certificate", True),
        sign_workers=t.int("sign_workers", default_sign_workers(), min=0, max=64),
        responders=tuple(
            (ca.name, files)
            for ca, table in zip(cas, top.array("ca"))
            if (files := _responder_files(table)) is not None
        ),
    )
    t.check_unknown()
    return s
