"""The attribute types this directory serves: names, OIDs, and how their values match.

ldaptor has no schema, so `certificateRevocationList`, `certificateRevocationList;binary`
and `2.5.4.39` would be three unrelated names to it.  Here each attribute description is
reduced to a key (the lower-cased primary name) plus its options, and the RFC 4523 types
whose values are DER are always transferred with the `;binary` option (RFC 4522), whatever
form the client asked for.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache


class Matching(enum.Enum):
    # caseIgnoreMatch / caseIgnoreIA5Match with insignificant-space handling.
    CASE_IGNORE = "caseIgnore"
    # octetStringMatch: the DER of certificates and CRLs is compared byte for byte.
    OCTETS = "octets"

    @property
    def orders(self) -> bool:
        """Whether `>=` and `<=` are defined. RFC 4523 gives the certificate and CRL types
        no ORDERING rule (nor RFC 4517 their syntaxes), so on them an ordering filter is
        Undefined (RFC 4511 §4.5.1.7) and matches nothing."""
        return self is Matching.CASE_IGNORE

    @property
    def has_substrings(self) -> bool:
        """Whether substring filters are defined: not for DER values, which have no SUBSTR
        rule, so `(userCertificate=0*)` is Undefined rather than a prefix test on the DER."""
        return self is Matching.CASE_IGNORE


@dataclass(frozen=True, slots=True)
class AttributeType:
    name: str  # primary name, as sent back to clients
    oid: str
    aliases: tuple[str, ...] = ()
    binary: bool = False  # transferred as "<name>;binary" (RFC 4522)

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def matching(self) -> Matching:
        return Matching.OCTETS if self.binary else Matching.CASE_IGNORE


ATTRIBUTE_TYPES: tuple[AttributeType, ...] = (
    AttributeType("objectClass", "2.5.4.0"),
    AttributeType("cn", "2.5.4.3", ("commonName",)),
    AttributeType("sn", "2.5.4.4", ("surname",)),
    AttributeType("serialNumber", "2.5.4.5"),
    AttributeType("c", "2.5.4.6", ("countryName",)),
    AttributeType("l", "2.5.4.7", ("localityName",)),
    AttributeType("st", "2.5.4.8", ("stateOrProvinceName",)),
    AttributeType("o", "2.5.4.10", ("organizationName",)),
    AttributeType("ou", "2.5.4.11", ("organizationalUnitName",)),
    AttributeType("description", "2.5.4.13"),
    AttributeType("givenName", "2.5.4.42", ("gn",)),
    AttributeType("displayName", "2.16.840.1.113730.3.1.241"),
    AttributeType("uid", "0.9.2342.19200300.100.1.1", ("userid",)),
    AttributeType("mail", "0.9.2342.19200300.100.1.3", ("rfc822Mailbox",)),
    AttributeType("dc", "0.9.2342.19200300.100.1.25", ("domainComponent",)),
    # RFC 2079: where the CA's current CPS and CP are published (CPS 2.5, CP 四.9).
    AttributeType("labeledURI", "1.3.6.1.4.1.250.1.57"),
    # RFC 4523, section 2.
    AttributeType("userCertificate", "2.5.4.36", binary=True),
    AttributeType("cACertificate", "2.5.4.37", binary=True),
    AttributeType("authorityRevocationList", "2.5.4.38", binary=True),
    AttributeType("certificateRevocationList", "2.5.4.39", binary=True),
    AttributeType("crossCertificatePair", "2.5.4.40", binary=True),
    AttributeType("deltaRevocationList", "2.5.4.53", binary=True),
    # Root DSE (RFC 4512, section 5.1).
    AttributeType("namingContexts", "1.3.6.1.4.1.1466.101.120.5"),
    AttributeType("supportedExtension", "1.3.6.1.4.1.1466.101.120.7"),
    AttributeType("supportedControl", "1.3.6.1.4.1.1466.101.120.13"),
    AttributeType("supportedLDAPVersion", "1.3.6.1.4.1.1466.101.120.15"),
    AttributeType("vendorName", "1.3.6.1.1.4"),
)

_BY_NAME: dict[str, AttributeType] = {}
for _t in ATTRIBUTE_TYPES:
    for _n in (_t.name, _t.oid, *_t.aliases):
        _BY_NAME[_n.lower()] = _t
del _t, _n


def lookup(name: str) -> AttributeType | None:
    """The attribute type for a name, alias or OID (case-insensitive), or None."""
    return _BY_NAME.get(name.lower())


@dataclass(frozen=True, slots=True)
class Description:
    """A parsed attribute description: key of the type, and whether it is usable here.

    `usable` is False when the description carries an option we do not hold (e.g. a
    language tag) or `;binary` on a type that is not transferred in binary: such a
    description matches nothing, as RFC 4512 section 2.5 implies.
    """

    key: str
    type: AttributeType | None
    usable: bool


@lru_cache(maxsize=4096)
def parse_description(text: str | bytes) -> Description:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    name, *options = text.strip().split(";")
    at = lookup(name)
    key = at.key if at is not None else name.lower()
    usable = True
    for option in options:
        if option.lower() != "binary" or at is None or not at.binary:
            usable = False
    return Description(key=key, type=at, usable=usable)


def wire_name(name: str) -> tuple[str, str]:
    """(key, name sent on the wire) for an attribute stored under `name`.

    Stored names may be given with or without `;binary`; binary types always go out with it.
    """
    base = name.split(";", 1)[0]
    at = lookup(base)
    if at is None:
        return base.lower(), base
    return at.key, at.name + (";binary" if at.binary else "")


def normalise_value(key: str, value: bytes) -> bytes | str:
    """The form values of attribute `key` are compared in: the DER itself for binary
    types, otherwise case-folded text with runs of spaces collapsed (RFC 4518, simplified)."""
    at = _BY_NAME.get(key)
    if at is not None and at.binary:
        return value
    return " ".join(value.decode("utf-8", "replace").casefold().split())
