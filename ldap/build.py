"""The directory built from config and the store, in the layout the CPS describes:

    c=HK                                             (suffix: the naming context)
    o=Hongkong Post,c=HK                             (base)
      cn=Hongkong Post Root CA 2,...                 pkiCA: cACertificate, authorityRevocationList
      cn=Hongkong Post e-Cert CA 2 - 17,...          pkiCA: cACertificate, certificateRevocationList
        uid=<SERIAL HEX>,cn=Hongkong Post e-Cert...  pkiUser + inetOrgPerson: cn, mail, userCertificate
      cn=Hongkong Post e-Cert CA 2 - 17 CRL1,...     cRLDistributionPoint: the full CRL
      cn=Hongkong Post e-Cert CA 2 - 17 CRL2,...     cRLDistributionPoint: a partition
      cn=Hongkong Post Root CA 2 ARL,...             cRLDistributionPoint: the ARL

`make_entries` is pure (records and DER in, entries out); `DirectoryBuilder` reads the store
and keeps subscriber entries between builds, so a rebuild after one revocation parses only
what changed.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from publisher.crl import ScopeKind
from publisher.store import CertRecord, CrlRecord, DocumentRecord, Issuer, Status, Store, serial_hex

from . import dn as dnmod
from .directory import Directory, Entry
from .names import certificate_names
from .settings import CaLayout, Layout

log = logging.getLogger("pkirepo.ldap")

_CRL_NUMBER = re.compile(r"CRL(\d+)$")
_CONTAINER_CLASSES = {
    "c": ["top", "country"],
    "o": ["top", "organization"],
    "ou": ["top", "organizationalUnit"],
    "l": ["top", "locality"],
    "st": ["top", "locality"],
    "dc": ["top", "dcObject", "organization"],
}


def _rdn(attr: str, value: str) -> str:
    return f"{attr}={dnmod.escape_value(value)}"


def _rdn_attrs(dn: str) -> list[tuple[str, str]]:
    """The attribute values of a DN's first RDN, which its entry must hold (RFC 4512 2.3)."""
    return list(dnmod.parse(dn)[0])


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else None


@dataclass(frozen=True)
class CaInfo:
    issuer: Issuer
    layout: CaLayout
    cn: str
    dn: str


@dataclass(frozen=True)
class PublishedCrl:
    record: CrlRecord
    der: bytes


# What every subscriber entry holds (see `subscriber_entry`): a search whose filter requires
# another attribute, or another object class, never matches one.
SUBSCRIBER_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson", "pkiUser")
SUBSCRIBER_KEYS = frozenset({"objectclass", "uid", "cn", "sn", "mail", "usercertificate"})


def subscriber_entry(cert: CertRecord, ca_dn: str) -> Entry | None:
    """The entry of one certificate: pkiUser with inetOrgPerson naming attributes taken
    from the certificate (cn; mail from the subject's emailAddress and rfc822Name SANs)."""
    if cert.der is None:
        return None
    try:
        cn, mails = certificate_names(cert.der)
    except ValueError as e:
        log.warning("certificate %s of issuer %d does not parse, not in LDAP: %s",
                    cert.serial_hex, cert.issuer_id, e)
        return None
    uid = serial_hex(cert.serial)
    name = cn or uid
    attrs: list[tuple[str, Any]] = [
        ("objectClass", list(SUBSCRIBER_CLASSES)),
        ("uid", uid),
        ("cn", name),
        ("sn", name),  # person requires a surname; the certificate rarely has one
    ]
    if mails:
        attrs.append(("mail", mails))
    attrs.append(("userCertificate;binary", cert.der))
    return Entry.make(f"uid={uid},{ca_dn}", attrs)


def published(cert: CertRecord) -> bool:
    """Subscriber certificates in the directory: not revoked (a hold is temporary), not CAs."""
    return cert.status is not Status.REVOKED and not cert.is_ca and cert.der is not None


def ca_infos(layout: Layout, issuers: Sequence[Issuer], base: str) -> list[CaInfo]:
    out = []
    for issuer in issuers:
        lay = layout.ca(issuer.name)
        cert = x509.load_der_x509_certificate(issuer.cert_der)
        cn = _first(cert.subject, NameOID.COMMON_NAME) or issuer.name
        out.append(CaInfo(issuer, lay, cn, lay.dn or f"{_rdn('cn', cn)},{base}"))
    return out


def default_suffix_base(layout: Layout, issuers: Sequence[Issuer]) -> tuple[str, str]:
    """Configured suffix and base, else c=<C> / o=<O>,c=<C> of the first CA certificate."""
    suffix, base = layout.suffix, layout.base
    if suffix is None or base is None:
        c = o = None
        if issuers:
            subject = x509.load_der_x509_certificate(issuers[0].cert_der).subject
            c = _first(subject, NameOID.COUNTRY_NAME)
            o = _first(subject, NameOID.ORGANIZATION_NAME)
        top = _rdn("c", c) if c else _rdn("o", o or "pkirepo")
        if suffix is None:
            suffix = base if base is not None else top
        if base is None:
            base = f"{_rdn('o', o)},{suffix}" if (o and c) else suffix
    return suffix, base


def make_entries(
    layout: Layout,
    issuers: Sequence[Issuer],
    crls: Sequence[PublishedCrl],
    subscribers: Mapping[int, Iterable[Entry]],
    policy_uris: Sequence[str] = (),
) -> tuple[str, list[Entry]]:
    """(naming context, entries in order).  `subscribers` maps issuer id to its entries,
    already filtered and built (see `subscriber_entry`); `policy_uris` are the labeledURI
    values every CA entry carries (see `policy_uris`)."""
    configured = {c.name for c in layout.cas}
    issuers = [i for i in issuers if not configured or i.name in configured]
    suffix, base = default_suffix_base(layout, issuers)
    entries: list[Entry] = []
    seen: set[str] = set()

    def add(e: Entry) -> None:
        if e.ndn in seen:
            log.warning("LDAP entry %r defined twice; keeping the first", e.dn)
            return
        seen.add(e.ndn)
        entries.append(e)

    # The suffix and every level down to the base, as containers.
    chain = dnmod.parse(base)
    depth = len(chain) - len(dnmod.parse(suffix))
    for k in range(len(chain) - 1, -1, -1):
        if k > depth:
            continue
        text = ",".join("+".join(f"{t}={dnmod.escape_value(v)}" for t, v in rdn) for rdn in chain[k:])
        t, v = chain[k][0]
        classes = _CONTAINER_CLASSES.get(t.lower(), ["top", "extensibleObject"])
        attrs: list[tuple[str, Any]] = [("objectClass", classes)]
        attrs += [(tt, vv) for tt, vv in chain[k]]
        if t.lower() == "dc":
            attrs.append(("o", v))
        add(Entry.make(text, attrs))

    infos = ca_infos(layout, issuers, base)
    by_issuer = {i.issuer.id: i for i in infos}
    full = {p.record.scope.issuer_id: p for p in crls if p.record.scope.kind is ScopeKind.FULL}
    arls = {p.record.scope.issuer_id: p for p in crls if p.record.scope.kind is ScopeKind.ARL}
    for info in infos:
        classes = ["top", "applicationProcess", "pkiCA"] + (["labeledURIObject"] if policy_uris else [])
        attrs = [("objectClass", classes), ("cn", info.cn),
                 *_rdn_attrs(info.dn), ("cACertificate;binary", info.issuer.cert_der)]
        if policy_uris:
            attrs.append(("labeledURI", list(policy_uris)))
        if info.issuer.id in full:
            attrs.append(("certificateRevocationList;binary", full[info.issuer.id].der))
        if info.issuer.id in arls:
            attrs.append(("authorityRevocationList;binary", arls[info.issuer.id].der))
        add(Entry.make(info.dn, attrs))
        if info.layout.subscribers:
            for e in subscribers.get(info.issuer.id, ()):
                add(e)

    for p in sorted(crls, key=lambda p: (p.record.scope.issuer_id, p.record.scope.name)):
        info = by_issuer.get(p.record.scope.issuer_id)
        if info is None:
            continue
        dn = crl_dn(layout, info, p.record, base)
        attr = ("authorityRevocationList;binary" if p.record.scope.kind is ScopeKind.ARL
                else "certificateRevocationList;binary")
        rdn = _rdn_attrs(dn)
        cn = [("cn", rdn[0][1])] if not any(t.lower() in ("cn", "commonname", "2.5.4.3")
                                           for t, _ in rdn) else []
        add(Entry.make(dn, [("objectClass", ["top", "cRLDistributionPoint"]), *cn, *rdn,
                            (attr, p.der)]))
    return suffix, entries


# The documents a relying party looks for on a CA's entry: the practice statement and the policy.
POLICY_KINDS = ("cps", "cp")


def policy_uris(documents: Sequence[DocumentRecord], base_url: str) -> list[str]:
    """RFC 2079 labeledURI values ("<URL> <label>") for the current version of the CPS and
    the CP in each language: the last one published (publication refuses an effective date
    before the current one, so the last is the newest)."""
    current: dict[tuple[str, str], DocumentRecord] = {}
    for d in documents:
        if d.kind in POLICY_KINDS:
            current[(d.kind, d.lang)] = d
    ordered = sorted(current.values(), key=lambda d: (POLICY_KINDS.index(d.kind), d.id))
    return [f"{base_url}/{d.path} {d.kind.upper()} {d.version} ({d.lang})" for d in ordered]


def crl_dn(layout: Layout, info: CaInfo, record: CrlRecord, base: str) -> str:
    """The cRLDistributionPoint entry of a published CRL: configured, else `cn=<CA CN>
    CRL1` for the full CRL, `cn=<CA CN> CRL<n>` for a partition whose name ends in CRL<n>,
    `cn=<CA CN> ARL` for the ARL, and `cn=<CRL name>` otherwise."""
    name = record.scope.name
    if name in layout.crl_dns:
        return layout.crl_dns[name]
    kind = record.scope.kind
    if kind is ScopeKind.FULL:
        return info.layout.crl_dn or f"{_rdn('cn', info.cn + ' CRL1')},{base}"
    if kind is ScopeKind.ARL:
        return info.layout.arl_dn or f"{_rdn('cn', info.cn + ' ARL')},{base}"
    m = _CRL_NUMBER.search(name)
    if m and m.group(1) != "1":
        return f"{_rdn('cn', f'{info.cn} CRL{m.group(1)}')},{base}"
    return f"{_rdn('cn', name)},{base}"


def configured_issuers(layout: Layout, issuers: Sequence[Issuer]) -> list[Issuer]:
    """The issuers the directory shows, in config order (the first gives the default base)."""
    configured = {c.name for c in layout.cas}
    if not configured:
        return list(issuers)
    order = {c.name: k for k, c in enumerate(layout.cas)}
    return sorted((i for i in issuers if i.name in configured), key=lambda i: order[i.name])


def subscriber_dn(layout: Layout, issuers: Sequence[Issuer], cert: CertRecord) -> str | None:
    """Where the directory publishes `cert` (uid=<SERIAL>,<its CA's entry>), or None when it
    is not in the directory (revoked, a CA certificate, its file unknown, or its CA's
    subscribers left out)."""
    issuers = configured_issuers(layout, issuers)
    info = next((i for i in ca_infos(layout, issuers, default_suffix_base(layout, issuers)[1])
                 if i.issuer.id == cert.issuer_id), None)
    if info is None or not info.layout.subscribers or not published(cert):
        return None
    return f"uid={serial_hex(cert.serial)},{info.dn}"


class DirectoryBuilder:
    """Builds snapshots from the store, reusing what did not change since the last build."""

    def __init__(self, layout: Layout, *, page: int = 500, base_url: str = "") -> None:
        self.layout = layout
        self.page = page
        self.base_url = base_url  # the HTTP prefix where documents are served; "" : no labeledURI
        # certificate id -> (status, entry): a certificate's DER never changes, its status may.
        self._subs: dict[int, tuple[Status, Entry | None]] = {}
        self._crl_der: dict[int, bytes] = {}  # CRL record id -> DER
        self.subscriber_cas: list[tuple[int, str]] = []

    async def build(self, store: Store, *, subscribers: bool = True) -> Directory:
        """The whole directory; with `subscribers` False, everything but the subscriber
        entries (which `ldap.subscribers` serves from the store), read in time independent
        of the number of certificates.  `subscriber_cas` then names where they go."""
        issuers = configured_issuers(self.layout, await store.issuers())
        crls = []
        crl_der = {}
        for rec in await store.current_crls():
            der = self._crl_der.get(rec.id)
            if der is None:
                der = await store.crl_der(rec.id)
            crl_der[rec.id] = der
            crls.append(PublishedCrl(rec, der))
        self._crl_der = crl_der
        _, base = default_suffix_base(self.layout, issuers)
        infos = {i.issuer.id: i for i in ca_infos(self.layout, issuers, base)}
        # (issuer id, CA entry DN) of every CA whose subscribers the directory publishes.
        self.subscriber_cas = [(i, info.dn) for i, info in infos.items() if info.layout.subscribers]
        subs: dict[int, list[Entry]] = {}
        kept: dict[int, tuple[Status, Entry | None]] = {}
        for issuer_id, info in infos.items():
            if not info.layout.subscribers or not subscribers:
                continue
            out: list[Entry] = []
            after = -1
            while True:
                page = await store.certificates(issuer_id, after_serial=after, limit=self.page)
                for cert in page:
                    old = self._subs.get(cert.id)
                    if old is not None and old[0] is cert.status:
                        entry = old[1]
                    else:
                        entry = subscriber_entry(cert, info.dn) if published(cert) else None
                    kept[cert.id] = (cert.status, entry)
                    if entry is not None and published(cert):
                        out.append(entry)
                if len(page) < self.page:
                    break
                after = page[-1].serial
                # Parsing a page of new certificates takes the loop for a while; let HTTP
                # and the LDAP sessions in between pages.
                await asyncio.sleep(0)
            subs[issuer_id] = out
        self._subs = kept
        uris = policy_uris(await store.documents(), self.base_url) if self.base_url else []

        def assemble() -> Directory:
            suffix, entries = make_entries(self.layout, issuers, crls, subs, uris)
            return Directory(entries, naming_contexts=[suffix])

        # Entries carry every current CRL (megabytes at a million certificates), encoded and
        # copied as they are made: in a thread, so that a CRL issued does not hold the loop.
        return await asyncio.to_thread(assemble)
