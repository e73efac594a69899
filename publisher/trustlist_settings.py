"""The `[trustlist]` section: the key and certificate that sign the trust list, the scheme
operator's names and how far ahead each list's next update lies. Read from the shared
`Table` tree like every part's section; absent, the repository publishes no trust list."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .certs import split_certificates
from .config import Table
from .errors import ConfigError, MalformedInput
from .signer import load_key_signer
from .trustlist import LANGUAGES, MAX_NAME, is_plain_text
from .xmlsig import XmlSigner


@dataclass(frozen=True)
class TrustListSettings:
    key: Path  # PEM private key (RSA or ECDSA) that signs every list
    certificate: Path  # its certificate, carried in each signature's KeyInfo
    key_passphrase_file: Path | None
    key_passphrase_env: str | None
    operator: tuple[tuple[str, str], ...]  # (language, scheme operator name)
    next_update: dt.timedelta  # each list's NextUpdate, after its issue
    source: Path  # the config file, for messages


def load_trustlist_settings(top: Table) -> TrustListSettings | None:
    """The `[trustlist]` section, or None when the config has none."""
    if "trustlist" not in top.data:
        return None
    t = top.table("trustlist")
    ops = t.table("operator")
    operator = []
    for lang in LANGUAGES:
        name = ops.str(lang)
        if not name or not name.strip():
            raise ops.error(lang, "the scheme operator's name in this language is required")
        if len(name) > MAX_NAME or not is_plain_text(name):
            raise ops.error(lang, f"one line of at most {MAX_NAME} characters, without control characters")
        operator.append((lang, name.strip()))
    ops.check_unknown()
    s = TrustListSettings(
        key=t.path("key", _required(t, "key")),
        certificate=t.path("certificate", _required(t, "certificate")),
        key_passphrase_file=t.path("key_passphrase_file"),
        key_passphrase_env=t.str("key_passphrase_env"),
        operator=tuple(operator),
        # TS 119 612 allows at most six months between issue and next update.
        next_update=dt.timedelta(days=t.int("next_update_days", 30, min=1, max=183)),
        source=t.source,
    )
    t.check_unknown()
    return s


def _required(t: Table, key: str) -> str:
    if key not in t.data:
        raise t.error(key, "is required")
    return t.data[key]


def load_trustlist_signer(s: TrustListSettings) -> XmlSigner:
    """The signer of the configured key and certificate; ConfigError naming the key at fault."""
    where = f"{s.source}: trustlist"
    signer = load_key_signer(s.key, passphrase_file=s.key_passphrase_file, passphrase_env=s.key_passphrase_env,
                             what=f"{where}.key")
    try:
        cert: x509.Certificate = split_certificates(s.certificate.read_bytes(), str(s.certificate))[0]
    except OSError as e:
        raise ConfigError(f"{where}.certificate: cannot read {s.certificate}: {e.strerror}") from None
    except MalformedInput as e:
        raise ConfigError(f"{where}.certificate: {e.message}") from None
    try:
        return XmlSigner(signer.private_key, cert)
    except ValueError:
        raise ConfigError(f"{where}.key: {s.key} does not belong to {s.certificate}") from None
