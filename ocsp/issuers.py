"""Finding the CA a CertID asks about, by issuerNameHash and issuerKeyHash.

RFC 6960 §4.1.1: issuerNameHash is the hash of the issuer's distinguished name as it is
encoded in the certificate being checked, which is the CA certificate's subject DER, and
issuerKeyHash is the hash of the CA's subjectPublicKey BIT STRING value (without tag,
length and unused-bits octet). A hash taken any other way silently never matches, so both
are taken from the CA certificate's original bytes, never from a re-encoding.
"""
from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from asn1crypto import x509 as asn1_x509

from .request import CertID, HashAlgorithm
from .response import public_key_bits

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class IssuerHashes:
    hash_algorithm: HashAlgorithm
    name_hash: bytes
    key_hash: bytes


def issuer_hashes(ca_certificate_der: bytes, hash_algorithm: HashAlgorithm) -> IssuerHashes:
    """The (issuerNameHash, issuerKeyHash) a client computes for certificates this CA issued."""
    subject = asn1_x509.Certificate.load(ca_certificate_der)["tbs_certificate"]["subject"].dump()
    name = hashlib.new(hash_algorithm.hashlib_name, subject).digest()
    key = hashlib.new(hash_algorithm.hashlib_name, public_key_bits(ca_certificate_der)).digest()
    return IssuerHashes(hash_algorithm, name, key)


class IssuerIndex(Generic[K]):
    """An immutable map from CertID issuer hashes to the caller's issuer keys.

    Built once from the CA certificates we serve, under every supported hash algorithm, so
    a lookup is one dictionary access. Two CAs with the same name but different keys (a key
    rollover) are told apart by the key hash.
    """

    def __init__(self, issuers: Iterable[tuple[K, bytes]]) -> None:
        table: dict[tuple[HashAlgorithm, bytes, bytes], K] = {}
        for key, ca_der in issuers:
            for alg in HashAlgorithm:
                h = issuer_hashes(ca_der, alg)
                slot = (alg, h.name_hash, h.key_hash)
                if slot in table and table[slot] != key:
                    raise ValueError(f"issuers {table[slot]!r} and {key!r} have the same name and key")
                table[slot] = key
        self._table = table
        self._keys = frozenset(table.values())

    def find(self, cert_id: CertID) -> K | None:
        """The issuer the CertID names, or None if we do not serve it."""
        return self._table.get((cert_id.hash_algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash))

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self):
        return iter(self._keys)
