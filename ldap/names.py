"""The names a subscriber entry is found by (cn, mail), read from the certificate, and the
rows of the store's name index made from them.

Pure: no Twisted, no I/O.
"""
from __future__ import annotations

import logging

from publisher.store import CertRecord, serial_hex

from . import ber, schema

log = logging.getLogger("pkirepo.ldap")

# The index's attributes: `cn` holds the entry's cn (and sn, its copy), `mail` every mail.
INDEXED = {"cn": "cn", "sn": "cn", "mail": "mail"}


_CN = b"\x55\x04\x03"  # 2.5.4.3
_EMAIL = b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01"  # 1.2.840.113549.1.9.1
_SAN = b"\x55\x1d\x11"  # 2.5.29.17
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x1A: "ascii", 0x12: "ascii",
            0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


def _items(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, content start, content end) of the TLVs between start and end."""
    out = []
    pos = start
    while pos < end:
        h = ber.header(der, pos)
        if h is None or h[1] + h[2] > end:
            raise ValueError("truncated DER")
        out.append((h[0], h[1], h[1] + h[2]))
        pos = h[1] + h[2]
    return out


def _text(der: bytes, tag: int, start: int, end: int) -> str:
    codec = _STRINGS.get(tag)
    if codec is None:
        raise ValueError(f"not a string type: tag 0x{tag:02x}")
    return der[start:end].decode(codec)


def certificate_names(der: bytes) -> tuple[str | None, list[str]]:
    """(subject CN or None, mails from the subject's emailAddress and rfc822Name SANs);
    ValueError when the DER does not parse.

    Read straight from the DER: parsing the whole certificate and its extensions with
    cryptography costs ten times as much, and a million certificates are read this way
    (the name index, entries of searches that page through subscribers).
    """
    try:
        (cert,) = _items(der, 0, len(der))
        tbs = _items(der, cert[1], cert[2])[0]
        fields = _items(der, tbs[1], tbs[2])
        if fields and fields[0][0] == 0xA0:  # version
            fields = fields[1:]
        if len(fields) < 6:
            raise ValueError("not a certificate")
        subject = fields[4]
        cn: str | None = None
        mails: list[str] = []
        for rdn in _items(der, subject[1], subject[2]):
            for atv in _items(der, rdn[1], rdn[2]):
                oid, value = _items(der, atv[1], atv[2])[:2]
                name = der[oid[1]:oid[2]]
                if name == _CN and cn is None:
                    cn = _text(der, value[0], value[1], value[2])
                elif name == _EMAIL:
                    mails.append(_text(der, value[0], value[1], value[2]))
        for f in fields[6:] if _SAN in der else ():
            if f[0] != 0xA3:  # extensions
                continue
            (exts,) = _items(der, f[1], f[2])
            for ext in _items(der, exts[1], exts[2]):
                parts = _items(der, ext[1], ext[2])
                if der[parts[0][1]:parts[0][2]] != _SAN:
                    continue
                (names,) = _items(der, parts[-1][1], parts[-1][2])
                for tag, a, b in _items(der, names[1], names[2]):
                    if tag == 0x81:  # rfc822Name
                        m = der[a:b].decode("ascii")
                        if m not in mails:
                            mails.append(m)
        return cn, mails
    except (ber.FrameError, UnicodeDecodeError, IndexError) as e:
        raise ValueError(f"certificate does not parse: {e}") from None


def normalised(key: str, value: str) -> str:
    """A value as filters compare it (`schema.normalise_value`), the form the index holds."""
    out = schema.normalise_value(key, value.encode("utf-8"))
    return out if isinstance(out, str) else out.decode("utf-8", "replace")


def index_rows(cert: CertRecord) -> list[tuple[str, str, int]]:
    """(attr, normalised value, certificate id) for every name of a subscriber certificate;
    none for CA certificates, certificates without DER and DER that does not parse (those
    have no entry either)."""
    if cert.der is None or cert.is_ca:
        return []
    try:
        cn, mails = certificate_names(cert.der)
    except ValueError:
        return []
    rows = [("cn", normalised("cn", cn or serial_hex(cert.serial)), cert.id)]
    seen = set()
    for m in mails:
        v = normalised("mail", m)
        if v not in seen:
            seen.add(v)
            rows.append(("mail", v, cert.id))
    return rows
