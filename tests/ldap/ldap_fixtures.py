"""The hand-made directory of the LDAP tests, in the CPS layout with real DER (CA
certificates, a CRL, an ARL, subscriber certificates), and a server-side session driven
through Twisted's StringTransport with a fake clock."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ldap.directory import DirectoryHolder
from ldap.server import DirectoryFactory
from ldap.settings import LdapSettings

# Pinned so the fixture's DER is the same on every run apart from the ECDSA signatures.
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

SUFFIX = "c=HK"
ORG = "o=Hongkong Post,c=HK"
ROOT_DN = "cn=Hongkong Post Root CA 2,o=Hongkong Post,c=HK"
CA_DN = "cn=Hongkong Post e-Cert CA 2 - 17,o=Hongkong Post,c=HK"
CRL1_DN = "cn=Hongkong Post e-Cert CA 2 - 17 CRL1,o=Hongkong Post,c=HK"
ARL_DN = "cn=Hongkong Post Root CA 2 ARL,o=Hongkong Post,c=HK"
SUBSCRIBERS = [
    ("Chan Tai Man", "tm.chan@example.hk"),
    ("Wong Siu Ming", "sm.wong@example.hk"),
    ("Lee Ka Yan", "ky.lee@example.hk"),
    ("Cheung Wai", "w.cheung@example.hk"),
]


@dataclass
class PKI:
    root: bytes
    ca: bytes
    crl: bytes
    arl: bytes
    users: dict[str, bytes]  # mail -> certificate DER


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hongkong Post"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def make_pki() -> PKI:
    der = lambda o: o.public_bytes(serialization.Encoding.DER)  # noqa: E731
    rk = ec.generate_private_key(ec.SECP256R1())
    ck = ec.generate_private_key(ec.SECP256R1())
    uk = ec.generate_private_key(ec.SECP256R1()).public_key()
    rname, cname = _name("Hongkong Post Root CA 2"), _name("Hongkong Post e-Cert CA 2 - 17")

    def cert(subject, issuer, pub, key, serial, ca):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(pub).serial_number(serial)
             .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=365)))
        if ca:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        return der(b.sign(key, hashes.SHA256()))

    def crl(issuer, key, serials):
        revoked = [x509.RevokedCertificateBuilder().serial_number(s).revocation_date(NOW).build()
                   for s in serials]
        return der(x509.CertificateRevocationListBuilder(
            issuer_name=issuer, last_update=NOW, next_update=NOW + dt.timedelta(days=1),
            revoked_certificates=revoked).sign(key, hashes.SHA256()))

    users = {}
    for i, (cn, mail) in enumerate(SUBSCRIBERS):
        subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.EMAIL_ADDRESS, mail)])
        users[mail] = cert(subj, cname, uk, ck, 0x1000 + i, False)
    return PKI(
        root=cert(rname, rname, rk.public_key(), rk, 1, True),
        ca=cert(cname, rname, ck.public_key(), rk, 2, True),
        crl=crl(cname, ck, range(0x5000, 0x5040)),
        arl=crl(rname, rk, [7]),
        users=users,
    )


def make_entries(pki: PKI) -> list[tuple[str, dict]]:
    entries: list[tuple[str, dict]] = [
        (SUFFIX, {"objectClass": ["top", "country"], "c": "HK"}),
        (ORG, {"objectClass": ["top", "organization"], "o": "Hongkong Post"}),
        (ROOT_DN, {"objectClass": ["top", "applicationProcess", "pkiCA"],
                   "cn": "Hongkong Post Root CA 2", "cACertificate;binary": pki.root,
                   "authorityRevocationList;binary": pki.arl}),
        (CA_DN, {"objectClass": ["top", "applicationProcess", "pkiCA"],
                 "cn": "Hongkong Post e-Cert CA 2 - 17", "cACertificate": pki.ca,
                 "certificateRevocationList": pki.crl}),
        (CRL1_DN, {"objectClass": ["top", "cRLDistributionPoint"],
                   "cn": "Hongkong Post e-Cert CA 2 - 17 CRL1",
                   "certificateRevocationList;binary": pki.crl}),
        (ARL_DN, {"objectClass": ["top", "cRLDistributionPoint"],
                  "cn": "Hongkong Post Root CA 2 ARL",
                  "authorityRevocationList;binary": pki.arl}),
    ]
    for i, (cn, mail) in enumerate(SUBSCRIBERS):
        uid = f"{0x1000 + i:X}"
        entries.append((f"uid={uid},{CA_DN}", {
            "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson", "pkiUser"],
            "uid": uid, "cn": cn, "sn": cn.split()[0], "mail": mail,
            "userCertificate;binary": pki.users[mail],
        }))
    return entries


class Session:
    """One server-side LDAP session over a StringTransport, with a fake clock."""

    def __init__(self, holder: DirectoryHolder, settings: LdapSettings, clock: Clock,
                 factory: DirectoryFactory | None = None) -> None:
        self.holder = holder
        self.clock = clock
        self.factory = factory or DirectoryFactory(holder, settings, clock)
        self.transport = StringTransport()
        self.proto = self.factory.buildProtocol(None)
        self.proto.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def take(self) -> bytes:
        out = self.transport.value()
        self.transport.clear()
        return out

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting or self.transport.disconnected


